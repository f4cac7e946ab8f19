"""FAITHFUL FAKE of a SkyPilot 0.14.1 server's managed-job routes with an UP jobs
controller: NOT the real server.

Offline, the real server has no jobs controller (``/jobs/queue/v2``, ``/jobs/cancel``,
``/jobs/logs`` and ``/jobs/wait`` all fail with ``ClusterNotUpError: No in-progress managed
jobs.``, and ``/jobs/launch`` keeps retrying to provision it); those paths are tested against
the real server. The paths that need a running controller are tested here. The answers
follow the server's code of 0.14.1:

* routes and request names: ``sky/jobs/server/server.py`` (``sky.jobs.launch``,
  ``sky.jobs.queue_v2``, ``sky.jobs.cancel``, ``sky.jobs.logs``, ``sky.jobs.wait``), each an
  async request answering ``null`` with ``X-Skypilot-Request-ID``; ``/jobs/logs`` streams
  the log in the response (``stream_utils.stream_response_for_long_request``);
* bodies: ``JobsLaunchBody``/``JobsQueueV2Body``/``JobsCancelBody``/``JobsLogsBody``/
  ``JobsWaitBody`` of ``sky/server/requests/payloads.py`` (a missing required field is a
  FastAPI 422 with ``detail`` = a list of errors, as the real server answers);
* results: ``core.launch`` encoded by ``encoders.encode_launch`` (``{"job_id", "handle"}``,
  the id a list for several jobs); ``core.queue_v2_api`` encoded by
  ``encoders.encode_jobs_queue_v2`` (``{"jobs", "total", "total_no_filter",
  "status_counts", "infra_options"}`` with ``ManagedJobRecord`` dumps ``by_alias``, so
  ``_job_id``); ``core.cancel`` returns ``None`` and refuses anything but exactly one of
  job ids / name / all with a ``ValueError``; ``core.tail_logs`` and ``core.wait`` return
  a ``JobExitCode`` (0 succeeded, 100 failed, 103 cancelled), ``core.wait`` raises
  ``TimeoutError`` past its ``timeout`` and ``ValueError`` for an unknown job;
* ``GET /upload_v2/blob`` answers that the server already holds the task's files
  (``sky/server/server.py``), so a launch with a local workdir sends its blob id only;
* failures: ``/api/get`` answers 500 ``{"detail": <record>}`` whose ``error`` is a JSON
  string ``{"type", "message"}`` (shared/reference/skypilot/PROTOCOL.md).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from tests.fakes.transcript_server import VERSION_HEADERS, _Chunks

EXIT_CODES = {"SUCCEEDED": 0, "CANCELLED": 103}  # JobExitCode; any failure is 100
TERMINAL = {
    "SUCCEEDED",
    "CANCELLED",
    "FAILED",
    "FAILED_SETUP",
    "FAILED_PRECHECKS",
    "FAILED_NO_RESOURCE",
    "FAILED_CONTROLLER",
}

JOB_LOG = [
    '<sky-payload>"<rich_init>[bold cyan]Waiting for task resources[/]</rich_init>"</sky-payload>',
    "\x1b[36m(train, pid=2121) epoch 1\x1b[0m",
    "(train, pid=2121) epoch 2\r(train, pid=2121) epoch 3",
    '<sky-payload>"<heartbeat></heartbeat>"</sky-payload>',
    "✓ Managed job finished: 1 (status: SUCCEEDED).",
]
CONTROLLER_LOG = ["Started the controller of managed job 1.", "Job 1 SUCCEEDED."]


def record(job_id: int, name: str, status: str, **extra: Any) -> dict[str, Any]:
    """A ``ManagedJobRecord.model_dump(by_alias=True)`` of one task, as 0.14.1 sends it."""
    return {
        "_job_id": job_id,
        "job_id": job_id,
        "task_id": 0,
        "job_name": name,
        "task_name": name,
        "job_duration": 42.5,
        "workspace": "default",
        "status": status,
        "schedule_state": "DONE" if status in TERMINAL else "ALIVE",
        "resources": "1x[CPU:2]",
        "cluster_resources": "1x(cpus=2, mem=8, ...)",
        "cloud": "Hyperbolic",
        "region": "us-central-1",
        "zone": None,
        "infra": "Hyperbolic/us-central-1",
        "recovery_count": 1,
        "details": None,
        "failure_reason": None,
        "user_name": "sdk-tests",
        "user_hash": "5eed0001",
        "submitted_at": 1795430100.5,
        "start_at": 1795430110.0,
        "end_at": 1795430152.5 if status in TERMINAL else None,
        "user_yaml": "name: train\nrun: python train.py\n",
        "entrypoint": "sky jobs launch train.yaml",
        "metadata": {},
        "controller_pid": 7001,
        "priority": 500,
        "pool": None,
        "current_cluster_name": f"{name}-{job_id}",
        "accelerators": None,
        "labels": {},
        "links": {},
        "is_job_group": False,
        "is_primary_in_job_group": None,
        "a_field_from_a_newer_server": "kept",
        **extra,
    }


class FakeManagedJobsServer:
    """An ``httpx.MockTransport`` handler: the managed-job routes with an UP controller."""

    def __init__(self, jobs: list[dict[str, Any]] | None = None) -> None:
        self.jobs: list[dict[str, Any]] = (
            jobs
            if jobs is not None
            else [record(2, "eval", "RUNNING"), record(1, "train", "SUCCEEDED")]
        )
        self.requests: list[httpx.Request] = []
        self.records: dict[str, dict[str, Any]] = {}
        #: What the next launch returns as ``job_id`` (``encode_launch``).
        self.launch_job_id: Any = 3
        #: Make the next launches fail with this server error (``type``, ``message``).
        self.launch_error: tuple[str, str] | None = None
        #: Tamper with an answer: {request name: return value} replaces the computed one.
        self.override: dict[str, Any] = {}

    def transport(self) -> httpx.MockTransport:
        """A sync+async transport to give to ``httpx.Client``/``AsyncClient``."""
        return httpx.MockTransport(self.handle)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies sent to ``path``, in order."""
        return [json.loads(r.content) for r in self.requests if r.url.path == path]

    # -- the request table (sky/server/requests/requests.py) ------------------------------

    def _submit(
        self, name: str, return_value: Any = None, error: tuple[str, str] | None = None
    ) -> httpx.Response:
        request_id = str(uuid.uuid4())
        if name in self.override:
            return_value = self.override[name]
        self.records[request_id] = {
            "request_id": request_id,
            "name": name,
            "entrypoint": "gASV",
            "request_body": "gASV",
            "status": "FAILED" if error else "SUCCEEDED",
            "created_at": time.time(),
            "user_id": "5eed0001",
            "return_value": json.dumps(None if error else return_value),
            "error": json.dumps(
                {"object": "gASV", "type": error[0], "message": error[1]} if error else None
            ),
            "pid": 1,
            "schedule_type": "short",
            "user_name": "sdk-tests",
            "cluster_name": "sky-jobs-controller-5eed0001",
            "status_msg": None,
            "should_retry": False,
            "finished_at": time.time(),
            "file_mounts_blob_id": None,
        }
        return httpx.Response(
            200, json=None, headers={**VERSION_HEADERS, "x-skypilot-request-id": request_id}
        )

    @staticmethod
    def _missing(field: str) -> httpx.Response:
        return httpx.Response(
            422,
            json={"detail": [{"type": "missing", "loc": ["body", field], "msg": "Field required"}]},
            headers={**VERSION_HEADERS, "x-skypilot-request-id": str(uuid.uuid4())},
        )

    def _find(self, job_id: int | None, name: str | None) -> list[dict[str, Any]]:
        if job_id is not None:
            return [j for j in self.jobs if j["job_id"] == job_id]
        if name is not None:
            matching = [j for j in self.jobs if j["job_name"] == name]
            return matching[:1]  # the latest job of that name
        return self.jobs[:1]  # neither: the latest job

    # -- routes (sky/jobs/server/server.py) -----------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route one request."""
        self.requests.append(request)
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if path == "/api/health":
            return httpx.Response(
                200,
                json={"status": "healthy", "api_version": "62", "version": "0.14.1"},
                headers=VERSION_HEADERS,
            )
        if path == "/api/get":
            found = self.records.get(request.url.params["request_id"])
            if found is None:
                return httpx.Response(404, json={"detail": "Request not found"})
            if found["status"] == "FAILED":
                return httpx.Response(500, json={"detail": found}, headers=VERSION_HEADERS)
            return httpx.Response(200, json=found, headers=VERSION_HEADERS)
        if path == "/upload_v2/blob":  # uploads: as the server answers for a blob it holds
            return httpx.Response(200, json={"exists": True}, headers=VERSION_HEADERS)
        if path == "/jobs/launch":
            if "task" not in body:
                return self._missing("task")
            if "name" not in body:
                return self._missing("name")
            if self.launch_error is not None:
                return self._submit("sky.jobs.launch", error=self.launch_error)
            return self._submit("sky.jobs.launch", {"job_id": self.launch_job_id, "handle": None})
        if path == "/jobs/queue/v2":
            jobs = self.jobs
            if body.get("skip_finished"):
                jobs = [j for j in jobs if j["status"] not in TERMINAL]
            if body.get("job_ids") is not None:
                jobs = [j for j in jobs if j["job_id"] in body["job_ids"]]
            counts: dict[str, int] = {}
            for job in jobs:
                counts[job["status"]] = counts.get(job["status"], 0) + 1
            value = {
                "jobs": jobs,
                "total": len(jobs),
                "total_no_filter": len(self.jobs),
                "status_counts": counts,
                "infra_options": ["Hyperbolic/us-central-1"],
            }
            return self._submit("sky.jobs.queue_v2", value)
        if path == "/jobs/cancel":
            targets = [bool(body.get("job_ids")), body.get("name") is not None]
            targets.append(bool(body.get("all") or body.get("all_users")))
            if sum(targets) != 1:
                message = "Can only specify one of JOB_IDS, name, pool, or all/all_users."
                return self._submit("sky.jobs.cancel", error=("ValueError", message))
            if body.get("all") or body.get("all_users"):
                chosen = self.jobs
            else:
                chosen = (
                    self._find(None, body.get("name"))
                    if body.get("name") is not None
                    else [j for j in self.jobs if j["job_id"] in body["job_ids"]]
                )
            for job in chosen:
                if job["status"] not in TERMINAL:
                    job["status"] = "CANCELLED"
            return self._submit("sky.jobs.cancel", None)
        if path == "/jobs/logs":
            of_job = self._find(body.get("job_id"), body.get("name"))
            lines = CONTROLLER_LOG if body.get("controller") else JOB_LOG
            status = of_job[0]["status"] if of_job else "FAILED"
            response = self._submit("sky.jobs.logs", EXIT_CODES.get(status, 100))
            return httpx.Response(
                200,
                stream=_Chunks(lines),
                headers={**response.headers, "content-type": "text/plain; charset=utf-8"},
            )
        if path == "/jobs/wait":
            if body.get("poll_interval", 15) < 5:
                message = f"poll_interval must be at least 5 seconds, got {body['poll_interval']}."
                return self._submit("sky.jobs.wait", error=("ValueError", message))
            waited = self._find(body.get("job_id"), body.get("name"))
            if not waited:
                message = f"Managed job {body.get('job_id')} not found."
                return self._submit("sky.jobs.wait", error=("ValueError", message))
            status = waited[0]["status"]
            if status not in TERMINAL:  # the server polls until its timeout
                message = (
                    f"Timed out waiting for managed job {waited[0]['job_id']} after "
                    f"{body.get('timeout')} seconds. Non-terminal status(es): {status}."
                )
                return self._submit("sky.jobs.wait", error=("TimeoutError", message))
            return self._submit("sky.jobs.wait", EXIT_CODES.get(status, 100))
        return httpx.Response(404, json={"detail": "Not Found"})
