"""Jobs on a cluster: run a command (``execute``), read a job's log and exit code, its status,
the cluster's queue."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .. import _constants as constants
from .._base_client import BaseClient, HttpClientT
from .._deadline import Deadline
from .._effects import Call, Collect, Collected, Flow, Wait
from .._protocol import RequestOutcome, clean_output, expect_dict, malformed
from .._tasks import command_task, prepare_launch_task
from ..errors import InvalidInputError, MalformedResponseError

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from ..models import (
        ExecuteRequest,
        ExecuteResult,
        Job,
        JobLogs,
        JobState,
        LogsRequest,
        SubmittedJob,
    )


class JobFlows(BaseClient[HttpClientT]):
    """Flows of ``execute``, ``get_logs``/``stream_logs``, job status and ``queue``."""

    def _flow_submit_exec(
        self, request: ExecuteRequest, deadline: Deadline
    ) -> Flow[tuple[RequestOutcome, int]]:
        """Run ``/exec`` until the server has queued the job; its outcome and job id."""
        if request.command is not None:
            task = command_task(request.command, request.envs)
        else:
            assert request.task is not None  # checked by the model
            task = prepare_launch_task(
                request.task, envs=request.envs, idle_minutes_to_stop=None, down=False
            )
        call = self._submit(
            "/exec",
            {"task": task, "cluster_name": request.cluster_name},
            operation="execute",
            submits_work=True,
            credentials=request.credentials,
            cluster_name=request.cluster_name,
        )
        from .uploads import upload_local_files  # uploads: the local workdir goes first

        call = yield from upload_local_files(
            self, call, on_progress=request.on_upload_progress, timeout=deadline.remaining()
        )
        outcome = yield from self._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        value = expect_dict(
            outcome.return_value, operation="execute", where="return_value", request_id=rid
        )
        job_id = value.get("job_id")
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            error = malformed(
                "execute",
                "return_value.job_id",
                f"expected the job id (an integer), got {type(job_id).__name__}",
                request_id=rid,
            )
            self._mark_maybe_submitted(error, call)  # the command may be running
            raise error
        return outcome, job_id

    def _flow_submit_job(self, request: ExecuteRequest, deadline: Deadline) -> Flow[SubmittedJob]:
        from ..models import SubmittedJob

        outcome, job_id = yield from self._flow_submit_exec(request, deadline)
        return SubmittedJob(
            request_id=outcome.status.request_id,
            cluster_name=request.cluster_name,
            job_id=job_id,
        )

    def _flow_execute(self, request: ExecuteRequest, deadline: Deadline) -> Flow[ExecuteResult]:
        from ..models import ExecuteResult, LogsRequest

        outcome, job_id = yield from self._flow_submit_exec(request, deadline)
        logs = yield from self._flow_logs(
            LogsRequest(cluster_name=request.cluster_name, job_id=job_id), deadline
        )
        statuses = yield from self._flow_job_status(request.cluster_name, [job_id], deadline)
        return ExecuteResult(
            request_id=outcome.status.request_id,
            cluster_name=request.cluster_name,
            job_id=job_id,
            exit_code=logs.exit_code,
            output=logs.output,
            job_status=statuses.get(job_id),
        )

    def _logs_call(self, request: LogsRequest) -> Call:
        fields = {
            "cluster_name": request.cluster_name,
            "job_id": request.job_id,
            "follow": request.follow,
            "tail": request.tail,
        }
        call = self._submit(
            "/logs", fields, operation="logs", submits_work=False, cluster_name=request.cluster_name
        )
        return replace(call, read_timeout=constants.STREAM_READ_TIMEOUT)

    def _flow_logs(self, request: LogsRequest, deadline: Deadline) -> Flow[JobLogs]:
        from ..models import JobLogs

        yield from self._require_version("logs")
        call = replace(self._logs_call(request), deadline=deadline)
        collected: Collected = yield Collect(call)
        if not collected.request_id:
            raise MalformedResponseError(
                "logs: the server sent no request id for the log stream",
                field="X-Skypilot-Request-ID",
            )
        self._remember(collected.request_id, call)
        outcome: RequestOutcome = yield Wait(collected.request_id, deadline, "logs")
        value = outcome.return_value
        # Not reported (or not a number) is unknown, never a plausible 0.
        exit_code = value if isinstance(value, int) and not isinstance(value, bool) else None
        return JobLogs(
            request_id=collected.request_id,
            cluster_name=request.cluster_name,
            job_id=request.job_id,
            output=clean_output(collected.lines),
            exit_code=exit_code,
        )

    @staticmethod
    def _job_ids(job_ids: list[int] | None) -> list[int] | None:
        """Checked job ids (positive integers, at least one), or None."""
        if job_ids is None:
            return None
        if isinstance(job_ids, (str, bytes)) or not hasattr(job_ids, "__iter__"):
            raise InvalidInputError("job_ids must be a list of job ids (integers)")
        ids = list(job_ids)
        if not ids:
            raise InvalidInputError("job_ids must name at least one job (or be None)")
        for job_id in ids:
            if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
                raise InvalidInputError(f"job ids are integers from 1, got {job_id!r}")
        return ids

    def _flow_job_status(
        self, cluster_name: str, job_ids: list[int] | None, deadline: Deadline
    ) -> Flow[dict[int, JobState | None]]:
        from ..models import JobState

        call = self._submit(
            "/job_status",
            {"cluster_name": self._cluster_name(cluster_name), "job_ids": self._job_ids(job_ids)},
            operation="job_status",
            submits_work=False,
            cluster_name=cluster_name,
        )
        outcome = yield from self._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        where = "return_value"
        value = expect_dict(
            outcome.return_value, operation="job_status", where=where, request_id=rid
        )
        states: dict[int, JobState | None] = {}
        for key, state in value.items():
            if key == "None" and state is None:
                continue  # job_ids=None on a cluster without jobs: {None: None}
            if not (isinstance(key, str) and key.isdigit()) or not isinstance(state, str | None):
                problem = "expected {job id: job status}"
                raise malformed("job_status", f"{where}[{key!r}]", problem, request_id=rid)
            # None: no such job on the cluster (never a made-up status).
            states[int(key)] = JobState(state) if state else None
        return states

    def _flow_cancel_jobs(
        self,
        cluster_name: str,
        job_ids: list[int] | None,
        *,
        all_jobs: bool,
        all_users: bool,
        deadline: Deadline,
    ) -> Flow[None]:
        ids = self._job_ids(job_ids)
        if (ids is None) == (not all_jobs):
            raise InvalidInputError("cancel_jobs: give exactly one of job_ids= or all=True")
        if all_users and not all_jobs:
            raise InvalidInputError("cancel_jobs: all_users=True goes with all=True")
        fields = {
            "cluster_name": self._cluster_name(cluster_name),
            "job_ids": ids,
            "all": all_jobs,
            "all_users": all_users,
        }
        call = self._submit(
            "/cancel",
            fields,
            operation="cancel_jobs",
            submits_work=False,
            cluster_name=cluster_name,
        )
        yield from self._submit_and_wait(call, deadline)

    def _flow_queue(self, name: str, *, skip_finished: bool, all_users: bool) -> Flow[list[Job]]:
        from ..models import Job

        call = self._submit(
            "/queue",
            {
                "cluster_name": self._cluster_name(name),
                "skip_finished": skip_finished,
                "all_users": all_users,
            },
            operation="queue",
            submits_work=False,
            cluster_name=name,
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        return [job for _, job in self._records(outcome, Job, "queue")]

    def _flow_download_logs(
        self,
        cluster_name: str,
        job_ids: list[int] | None,
        local_dir: str | Path,
        deadline: Deadline,
    ) -> Flow[dict[int, Path]]:
        """``/download_logs`` (the server syncs the logs down from the cluster), then
        ``/download`` (a zip of them), unpacked under ``local_dir``."""
        ids = self._job_ids(job_ids)
        fields = {
            "cluster_name": self._cluster_name(cluster_name),
            "job_ids": None if ids is None else [str(i) for i in ids],  # strings on the wire
        }
        call = self._submit(
            "/download_logs",
            fields,
            operation="download_logs",
            submits_work=False,
            cluster_name=cluster_name,
        )
        outcome = yield from self._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        where = "return_value"
        value = expect_dict(
            outcome.return_value, operation="download_logs", where=where, request_id=rid
        )
        remote: dict[int, str] = {}
        for key, path in value.items():
            if not (isinstance(key, str) and key.isdigit()) or not isinstance(path, str):
                problem = "expected {job id: log folder on the API server}"
                raise malformed("download_logs", f"{where}[{key!r}]", problem, request_id=rid)
            remote[int(key)] = path
        if not remote:
            return {}
        folders = yield from self._flow_download_folders(
            sorted(set(remote.values())), Path(local_dir), deadline
        )
        return {job_id: folders[path] for job_id, path in remote.items()}

    def _flow_download_folders(
        self, paths: list[str], local_dir: Path, deadline: Deadline
    ) -> Flow[dict[str, Path]]:
        """Fetch folders of the API server (``POST /download``) into ``local_dir``: each
        lands as ``local_dir/<its last path component>``."""
        from .._downloads import extract_folders

        call = replace(
            self._submit(
                "/download", {"folder_paths": paths}, operation="download", submits_work=False
            ),
            params={"relative": "items"},  # entries <folder name>/<file>, not full paths
            binary=True,
            deadline=deadline,
        )
        reply = yield call
        extract_folders(reply.content, local_dir, request_id=reply.request_id)
        root = local_dir.expanduser().resolve()
        return {path: root / PurePosixPath(path).name for path in paths}
