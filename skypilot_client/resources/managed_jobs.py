"""Managed jobs (``client.jobs``): launch, queue, cancel, logs, wait.

A managed job runs under SkyPilot's jobs controller, which recovers it after preemptions.
The server's routes are ``POST /jobs/launch``, ``/jobs/queue/v2``, ``/jobs/cancel``,
``/jobs/logs`` and ``/jobs/wait`` (``sky/jobs/server/server.py``); their bodies are
``JobsLaunchBody`` ... ``JobsWaitBody`` of ``sky/server/requests/payloads.py``.

The flows are written once (``ManagedJobFlows``, generators over the shared core);
``ManagedJobs`` runs them with a ``SkyPilotClient`` and ``AsyncManagedJobs`` with an
``AsyncSkyPilotClient``. Reach them as ``client.jobs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, closing
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import _constants as constants
from .._base_client import BaseClient
from .._deadline import Deadline
from .._effects import Call, Collect, Collected, Flow, Wait
from .._protocol import (
    LogLine,
    RequestOutcome,
    clean_output,
    expect_dict,
    expect_list,
    malformed,
    parse_answer,
)
from .._tasks import prepare_launch_task
from ..errors import (
    InvalidInputError,
    MalformedResponseError,
    RequestFailedError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from .._async_client import AsyncSkyPilotClient
    from .._client import SkyPilotClient
    from .._handles import AsyncRequestHandle, RequestHandle
    from ..models import CloudCredentials, ProgressEvent
    from ..models_managed_jobs import ManagedJob, ManagedJobLogs

#: The first server API version with ``POST /jobs/wait`` (the official client's gate).
JOBS_WAIT_API_VERSION = 45
#: The server refuses a ``/jobs/wait`` poll interval below this many seconds.
MIN_POLL_INTERVAL = 5


def _job_id(value: Any, what: str = "job_id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{what} must be a positive integer, got {value!r}")
    return value


def _job_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"name must be a non-empty string, got {value!r}")
    return value


def _one_job(job_id: int | None, name: str | None, operation: str) -> None:
    if job_id is not None and name is not None:
        raise InvalidInputError(f"{operation}: give job_id or name, not both")
    if job_id is not None:
        _job_id(job_id)
    if name is not None:
        _job_name(name)


class ManagedJobFlows:
    """The managed-job flows over the shared core (no I/O: they yield effects)."""

    def __init__(self, core: BaseClient[Any]) -> None:
        self._core = core

    # -- launch -----------------------------------------------------------------------

    def launch_call(
        self,
        task: str | dict[str, Any],
        *,
        name: str | None,
        envs: dict[str, str] | None,
        credentials: CloudCredentials | None,
    ) -> Call:
        """The ``POST /jobs/launch`` submission (task checked locally first)."""
        if name is not None:
            _job_name(name)
        text = prepare_launch_task(
            task, envs=dict(envs or {}), idle_minutes_to_stop=None, down=False
        )
        call = self._core._submit(
            "/jobs/launch",
            {"task": text},
            operation="jobs.launch",
            submits_work=True,
            credentials=credentials,
        )
        # JobsLaunchBody.name is required though it may be null: always send it.
        return replace(call, json={**call.json, "name": name})

    def submit_launch(
        self, call: Call, on_upload_progress: Callable[[ProgressEvent], object] | None
    ) -> Flow[str]:
        """Upload the task's local files (as a launch does), then submit; the request id."""
        from .uploads import upload_local_files

        call = yield from upload_local_files(self._core, call, on_progress=on_upload_progress)
        request_id: str = yield from self._core._flow_submit(call)
        return request_id

    def launch_result(
        self, request_id: str, deadline: Deadline, secrets: tuple[str, ...] = ()
    ) -> Flow[list[int]]:
        """Wait for a launch; the managed job id(s) it created."""
        outcome: RequestOutcome = yield Wait(request_id, deadline, "jobs.launch", secrets)
        where = "return_value"
        value = expect_dict(
            outcome.return_value, operation="jobs.launch", where=where, request_id=request_id
        )
        ids = value.get("job_id")
        if isinstance(ids, int) and not isinstance(ids, bool):
            return [ids]
        if isinstance(ids, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            return list(ids)
        error = malformed(
            "jobs.launch",
            f"{where}.job_id",
            f"expected the managed job id(s), got {type(ids).__name__}",
            request_id=request_id,
        )
        error.maybe_submitted = True  # the launch succeeded: a job may exist
        error.message += ". The managed job may have been launched: check client.jobs.queue()"
        raise error

    # -- queue ------------------------------------------------------------------------

    def queue(
        self,
        *,
        skip_finished: bool,
        all_users: bool,
        job_ids: list[int] | None,
        refresh: bool,
    ) -> Flow[list[ManagedJob]]:
        """``POST /jobs/queue/v2``, waited for; one ``ManagedJob`` per task record."""
        from ..models_managed_jobs import ManagedJob

        if job_ids is not None:
            if isinstance(job_ids, (str, bytes)) or not isinstance(job_ids, (list, tuple)):
                raise InvalidInputError("job_ids must be a list of job ids")
            job_ids = [_job_id(i, "each of job_ids") for i in job_ids]
        fields = {
            "refresh": refresh,
            "skip_finished": skip_finished,
            "all_users": all_users,
            "job_ids": job_ids,
        }
        call = self._core._submit(
            "/jobs/queue/v2", fields, operation="jobs.queue", submits_work=False
        )
        deadline = (
            Deadline.after(self._core._settings.launch_timeout)
            if refresh  # may restart the controller
            else self._core._status_deadline()
        )
        outcome = yield from self._core._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        value = outcome.return_value
        where = "return_value"
        if isinstance(value, dict):  # {jobs, total, status_counts, ...} of 0.14.1
            value, where = value.get("jobs"), "return_value.jobs"
        records = expect_list(value, operation="jobs.queue", where=where, request_id=rid)
        jobs = []
        for i, record in enumerate(records):
            at = f"{where}[{i}]"
            record = expect_dict(record, operation="jobs.queue", where=at, request_id=rid)
            jobs.append(
                parse_answer(ManagedJob, record, operation="jobs.queue", where=at, request_id=rid)
            )
        return jobs

    # -- cancel -----------------------------------------------------------------------

    def cancel(self, fields: dict[str, Any], deadline: Deadline) -> Flow[None]:
        """``POST /jobs/cancel`` with fields from ``cancel_fields``, waited for."""
        call = self._core._submit(
            "/jobs/cancel", fields, operation="jobs.cancel", submits_work=False
        )
        yield from self._core._submit_and_wait(call, deadline)

    @staticmethod
    def cancel_fields(
        job_ids: list[int] | None,
        *,
        name: str | None,
        all: bool,
        all_users: bool,
    ) -> dict[str, Any]:
        """The cancel body's fields; InvalidInputError unless exactly one target is given."""
        if job_ids is not None:
            if isinstance(job_ids, (str, bytes, int)) or not isinstance(job_ids, (list, tuple)):
                raise InvalidInputError("job_ids must be a list of job ids")
            if not job_ids:
                raise InvalidInputError("job_ids is empty: name the jobs to cancel")
            job_ids = [_job_id(i, "each of job_ids") for i in job_ids]
        if name is not None:
            _job_name(name)
        if all_users and not all:
            raise InvalidInputError("all_users=True needs all=True")
        given = [job_ids is not None, name is not None, bool(all)]
        if sum(given) != 1:
            raise InvalidInputError(
                f"jobs.cancel: give exactly one of job_ids, name or all=True (got {sum(given)})"
            )
        return {"job_ids": job_ids, "name": name, "all": all, "all_users": all_users}

    # -- logs -------------------------------------------------------------------------

    def logs_call(
        self,
        job_id: int | None,
        *,
        name: str | None,
        controller: bool,
        follow: bool,
        tail: int | None,
        deadline: Deadline | None = None,
    ) -> Call:
        """The streamed ``POST /jobs/logs`` (neither id nor name: the latest job)."""
        _one_job(job_id, name, "jobs.logs")
        if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 1):
            raise InvalidInputError(f"tail must be a positive integer, got {tail!r}")
        fields = {
            "name": name,
            "job_id": job_id,
            "follow": follow,
            "controller": controller,
            "refresh": False,
            "tail": tail,
        }
        call = self._core._submit("/jobs/logs", fields, operation="jobs.logs", submits_work=False)
        return replace(call, read_timeout=constants.STREAM_READ_TIMEOUT, deadline=deadline)

    def logs(self, call: Call, deadline: Deadline) -> Flow[ManagedJobLogs]:
        """Read the whole stream, then its request's result (the exit code)."""
        from ..models_managed_jobs import ManagedJobLogs

        yield from self._core._require_version("jobs.logs")
        collected: Collected = yield Collect(call)
        if not collected.request_id:
            raise MalformedResponseError(
                "jobs.logs: the server sent no request id for the log stream",
                field="X-Skypilot-Request-ID",
            )
        outcome: RequestOutcome = yield Wait(collected.request_id, deadline, "jobs.logs")
        value = outcome.return_value
        # Not reported (follow=False) or not a number is unknown, never a plausible 0.
        exit_code = value if isinstance(value, int) and not isinstance(value, bool) else None
        body = call.json
        return ManagedJobLogs(
            request_id=collected.request_id,
            job_id=body.get("job_id"),
            name=body.get("name"),
            controller=bool(body.get("controller")),
            output=clean_output(collected.lines),
            exit_code=exit_code,
        )

    # -- wait -------------------------------------------------------------------------

    def wait(
        self,
        job_id: int | None,
        *,
        name: str | None,
        deadline: Deadline,
        poll_interval: int,
    ) -> Flow[int]:
        """``POST /jobs/wait`` with the deadline as the server's own timeout; the exit code."""
        _one_job(job_id, name, "jobs.wait")
        if job_id is None and name is None:
            raise InvalidInputError("jobs.wait: give job_id or name")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int):
            raise InvalidInputError("poll_interval must be a whole number of seconds")
        if poll_interval < MIN_POLL_INTERVAL:
            raise InvalidInputError(
                f"poll_interval must be {MIN_POLL_INTERVAL} seconds or more (the server's minimum)"
            )
        yield from self._core._require_version("jobs.wait", JOBS_WAIT_API_VERSION)
        fields = {
            "job_id": job_id,
            "name": name,
            # The server stops waiting by itself by then: no wait is left running.
            "timeout": max(1, int(deadline.remaining())),
            "poll_interval": poll_interval,
        }
        call = self._core._submit("/jobs/wait", fields, operation="jobs.wait", submits_work=False)
        outcome = yield from self._core._submit_and_wait(call, deadline)
        value = outcome.return_value
        if isinstance(value, bool) or not isinstance(value, int):
            raise malformed(
                "jobs.wait",
                "return_value",
                f"expected the job's exit code (an integer), got {type(value).__name__}",
                request_id=outcome.status.request_id,
            )
        return value


def _timed_out(exc: RequestFailedError, job: int | str | None, seconds: float) -> WaitTimeoutError:
    """The server's own wait timeout (``TimeoutError``) is our ``WaitTimeoutError``."""
    return WaitTimeoutError(
        f"jobs.wait: managed job {job!r} did not end within {seconds:g}s ({exc.message})",
        request_id=exc.request_id,
    )


def _default(timeout: float | None, default: float) -> Deadline:
    return Deadline.after(BaseClient._wait_timeout_arg(timeout, default))


class ManagedJobs:
    """Managed jobs of a ``SkyPilotClient`` (``client.jobs``): launch, queue, cancel, logs,
    wait."""

    def __init__(self, client: SkyPilotClient) -> None:
        self._client = client
        self._flows = ManagedJobFlows(client)

    def launch(
        self,
        task: str | dict[str, Any],
        *,
        name: str | None = None,
        envs: dict[str, str] | None = None,
        credentials: CloudCredentials | None = None,
        on_upload_progress: Callable[[ProgressEvent], object] | None = None,
    ) -> RequestHandle[list[int]]:
        """Submit a managed job; ``handle.result()`` returns its job id(s).

        The task's local ``workdir``/``file_mounts`` are uploaded first. The request runs
        until the jobs controller has taken the job (provisioning the controller if needed).
        The submission is never replayed once it may have reached the server.
        """
        from .._handles import RequestHandle

        call = self._flows.launch_call(task, name=name, envs=envs, credentials=credentials)
        request_id = self._client._run(self._flows.submit_launch(call, on_upload_progress))
        return RequestHandle(
            self._client,
            request_id,
            operation="jobs.launch",
            default_timeout=self._client._settings.launch_timeout,
            finish=lambda rid, d: self._flows.launch_result(rid, d, call.secrets),
        )

    def queue(
        self,
        *,
        skip_finished: bool = False,
        all_users: bool = False,
        job_ids: list[int] | None = None,
        refresh: bool = False,
    ) -> list[ManagedJob]:
        """Managed jobs (one record per task), newest first as the server orders them.

        ``refresh=True`` restarts a stopped jobs controller. Raises ``ClusterNotUpError``
        when there is no jobs controller ("No in-progress managed jobs.").
        """
        return self._client._run(
            self._flows.queue(
                skip_finished=skip_finished, all_users=all_users, job_ids=job_ids, refresh=refresh
            )
        )

    def cancel(
        self,
        job_ids: list[int] | None = None,
        *,
        name: str | None = None,
        all: bool = False,
        all_users: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Cancel managed jobs: exactly one of ``job_ids``, ``name`` or ``all=True``
        (``all_users=True`` with ``all=True``: everyone's). Checked before anything is
        sent (``InvalidInputError``)."""
        fields = ManagedJobFlows.cancel_fields(job_ids, name=name, all=all, all_users=all_users)
        deadline = _default(timeout, self._client._settings.terminate_timeout)
        self._client._run(self._flows.cancel(fields, deadline))

    def logs(
        self,
        job_id: int | None = None,
        *,
        name: str | None = None,
        controller: bool = False,
        follow: bool = True,
        tail: int | None = None,
        timeout: float | None = None,
    ) -> ManagedJobLogs:
        """A managed job's whole log (or its controller's with ``controller=True``) and exit
        code. Neither ``job_id`` nor ``name``: the latest job. ``follow=True`` waits for the
        job to end, by ``timeout`` (``WaitTimeoutError``)."""
        deadline = _default(timeout, self._client._settings.launch_timeout)
        call = self._flows.logs_call(
            job_id, name=name, controller=controller, follow=follow, tail=tail, deadline=deadline
        )
        return self._client._run(self._flows.logs(call, deadline))

    def stream_logs(
        self,
        job_id: int | None = None,
        *,
        name: str | None = None,
        controller: bool = False,
        follow: bool = True,
        tail: int | None = None,
    ) -> Iterator[str]:
        """A managed job's log lines as they are written; raises the classified error at the
        end if the server could not read them (e.g. ``ClusterNotUpError``). Arguments are
        checked now, before anything is sent."""
        call = self._flows.logs_call(
            job_id, name=name, controller=controller, follow=follow, tail=tail
        )
        return self._stream(call)

    def _stream(self, call: Call) -> Iterator[str]:
        client = self._client
        client._run(client._require_version("jobs.logs"))
        ids: list[str | None] = []
        with closing(client._stream_events(call, ids)) as events:
            for event in events:
                if isinstance(event, LogLine):
                    yield event.text
        if ids and ids[0]:
            client._wait(Wait(ids[0], client._status_deadline(), "jobs.logs"))

    def wait(
        self,
        job_id: int | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        poll_interval: int = 15,
    ) -> int:
        """Wait until the managed job ends; its exit code (0 succeeded, 100 failed, ...).

        The server polls the job every ``poll_interval`` seconds (5 or more). Raises
        ``WaitTimeoutError`` when ``timeout`` (default 300 s) passes first.
        """
        deadline = _default(timeout, constants.DEFAULT_WAIT_TIMEOUT)
        flow = self._flows.wait(job_id, name=name, deadline=deadline, poll_interval=poll_interval)
        try:
            return self._client._run(flow)
        except RequestFailedError as exc:
            if exc.error_type != "TimeoutError":
                raise
            raise _timed_out(exc, job_id if job_id is not None else name, deadline.seconds) from exc


class AsyncManagedJobs:
    """Managed jobs of an ``AsyncSkyPilotClient`` (``client.jobs``): the async twin of
    ``ManagedJobs``."""

    def __init__(self, client: AsyncSkyPilotClient) -> None:
        self._client = client
        self._flows = ManagedJobFlows(client)

    async def launch(
        self,
        task: str | dict[str, Any],
        *,
        name: str | None = None,
        envs: dict[str, str] | None = None,
        credentials: CloudCredentials | None = None,
        on_upload_progress: Callable[[ProgressEvent], object] | None = None,
    ) -> AsyncRequestHandle[list[int]]:
        """Submit a managed job; ``await handle.result()`` returns its job id(s)."""
        from .._handles import AsyncRequestHandle

        call = self._flows.launch_call(task, name=name, envs=envs, credentials=credentials)
        request_id = await self._client._run(self._flows.submit_launch(call, on_upload_progress))
        return AsyncRequestHandle(
            self._client,
            request_id,
            operation="jobs.launch",
            default_timeout=self._client._settings.launch_timeout,
            finish=lambda rid, d: self._flows.launch_result(rid, d, call.secrets),
        )

    async def queue(
        self,
        *,
        skip_finished: bool = False,
        all_users: bool = False,
        job_ids: list[int] | None = None,
        refresh: bool = False,
    ) -> list[ManagedJob]:
        """Managed jobs (one record per task); ``ClusterNotUpError`` without a controller."""
        return await self._client._run(
            self._flows.queue(
                skip_finished=skip_finished, all_users=all_users, job_ids=job_ids, refresh=refresh
            )
        )

    async def cancel(
        self,
        job_ids: list[int] | None = None,
        *,
        name: str | None = None,
        all: bool = False,
        all_users: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Cancel managed jobs: exactly one of ``job_ids``, ``name`` or ``all=True``."""
        fields = ManagedJobFlows.cancel_fields(job_ids, name=name, all=all, all_users=all_users)
        deadline = _default(timeout, self._client._settings.terminate_timeout)
        await self._client._run(self._flows.cancel(fields, deadline))

    async def logs(
        self,
        job_id: int | None = None,
        *,
        name: str | None = None,
        controller: bool = False,
        follow: bool = True,
        tail: int | None = None,
        timeout: float | None = None,
    ) -> ManagedJobLogs:
        """A managed job's whole log (or its controller's) and exit code."""
        deadline = _default(timeout, self._client._settings.launch_timeout)
        call = self._flows.logs_call(
            job_id, name=name, controller=controller, follow=follow, tail=tail, deadline=deadline
        )
        return await self._client._run(self._flows.logs(call, deadline))

    def stream_logs(
        self,
        job_id: int | None = None,
        *,
        name: str | None = None,
        controller: bool = False,
        follow: bool = True,
        tail: int | None = None,
    ) -> AsyncIterator[str]:
        """A managed job's log lines as they are written (``async for``); arguments are
        checked now, before anything is sent."""
        call = self._flows.logs_call(
            job_id, name=name, controller=controller, follow=follow, tail=tail
        )
        return self._stream(call)

    async def _stream(self, call: Call) -> AsyncIterator[str]:
        client = self._client
        await client._run(client._require_version("jobs.logs"))
        ids: list[str | None] = []
        async with aclosing(client._stream_events(call, ids)) as events:
            async for event in events:
                if isinstance(event, LogLine):
                    yield event.text
        if ids and ids[0]:
            await client._wait(Wait(ids[0], client._status_deadline(), "jobs.logs"))

    async def wait(
        self,
        job_id: int | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        poll_interval: int = 15,
    ) -> int:
        """Wait until the managed job ends; its exit code (``WaitTimeoutError`` by
        ``timeout``, default 300 s)."""
        deadline = _default(timeout, constants.DEFAULT_WAIT_TIMEOUT)
        flow = self._flows.wait(job_id, name=name, deadline=deadline, poll_interval=poll_interval)
        try:
            return await self._client._run(flow)
        except RequestFailedError as exc:
            if exc.error_type != "TimeoutError":
                raise
            raise _timed_out(exc, job_id if job_id is not None else name, deadline.seconds) from exc


__all__ = ["AsyncManagedJobs", "ManagedJobFlows", "ManagedJobs"]
