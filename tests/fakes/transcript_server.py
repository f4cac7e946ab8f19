"""FAITHFUL FAKE of a SkyPilot 0.14.1 server: NOT the real server.

The offline real server cannot reach an UP cluster or a finished job, so those success paths
are exercised against this fake, built from the observed protocol
(shared/reference/skypilot/PROTOCOL.md and its transcripts): async submissions answering
``null`` with ``X-Skypilot-Request-ID``, ``/api/get`` records whose ``return_value`` is a
JSON string, ``POST /logs`` streaming the job log with ``<sky-payload>`` control lines, and
``/status`` records of an UP cluster. Everything else in the suite runs against the real
server or its recorded cassettes.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx

VERSION_HEADERS = {"x-skypilot-api-version": "62", "x-skypilot-version": "0.14.1"}

UP_CLUSTER: dict[str, Any] = {
    "name": "train-up",
    "launched_at": 1795430000,
    "handle": "gAROLg==",
    "last_use": "sky launch -c train-up task.yaml",
    "status": "UP",
    "autostop": 30,
    "to_down": True,
    "cluster_hash": "0f0e0d0c-1111-2222-3333-444455556666",
    "user_hash": "5eed0001",
    "user_name": "sdk-tests",
    "workspace": "default",
    "resources_str": "1x Hyperbolic(1x-H100-28-271, {'H100': 1})",
    "resources_str_full": "1x Hyperbolic(1x-H100-28-271, cpus=28, mem=271, {'H100': 1})",
    "credentials": {"ssh_user": "ubuntu", "ssh_private_key_content": "PRIVATE-KEY-MUST-NOT-LEAK"},
    "nodes": 1,
    "cloud": "Hyperbolic",
    "region": "us-central-1",
    "cpus": "28",
    "memory": "271",
    "accelerators": "{'H100': 1}",
    "labels": {},
    "a_field_from_a_newer_server": {"nested": True},
}

# Ports the UP cluster exposes (core.endpoints: {port: url}, JSON keys are strings).
ENDPOINTS = {8888: "http://203.0.113.10:8888", 6006: "http://203.0.113.10:6006"}

# Two rows of cost_report as transcript 231 shows them (resources: a base64 pickle, cut
# short here), and a torn-down cluster (status null, a closed usage interval).
COST_REPORT: list[dict[str, Any]] = [
    {
        "name": "c4",
        "launched_at": 1795434149,
        "duration": 169,
        "num_nodes": 1,
        "resources": "gASVvQIAAAAA",
        "priority": None,
        "priority_class": None,
        "cluster_hash": "8041ac4f-99d5-4a28-9ef3-f04302a4f59c",
        "usage_intervals": [[1795434149, None]],
        "status": "INIT",
        "user_hash": "fcd1e5cf",
        "user_name": "root",
        "workspace": "default",
        "last_event": "Provisioning on hyperbolic in us-central-1",
        "node_names": None,
        "last_creation_yaml": None,
        "last_creation_command": None,
        "total_cost": 0.00938888888888889,
        "cloud": "Hyperbolic",
        "region": "us-central-1",
        "cpus": "4.0",
        "memory": "16.0",
        "accelerators": "None",
        "resources_str": "1x(cpus=4, mem=16, cpu-4x16, ...)",
        "resources_str_full": "1x(cpus=4, mem=16, cpu-4x16, disk=256)",
    },
    {
        "name": "old-train",
        "launched_at": 1795000000,
        "duration": 3600,
        "num_nodes": 1,
        "resources": "gASVvQIAAAAA",
        "cluster_hash": "11111111-2222-3333-4444-555555555555",
        "usage_intervals": [[1795000000, 1795003600]],
        "status": None,
        "user_hash": "fcd1e5cf",
        "user_name": "root",
        "workspace": "default",
        "total_cost": 1.99,
        "cloud": "Hyperbolic",
        "region": "us-central-1",
        "cpus": "28",
        "memory": "271",
        "accelerators": "{'H100': 1}",
        "resources_str": "1x(gpus=H100:1, cpus=28, mem=271, 1x-H100-28-271, ...)",
        "resources_str_full": "1x(gpus=H100:1, cpus=28, mem=271, 1x-H100-28-271, disk=256)",
    },
]

# Where /download_logs leaves a job's logs on the API server (the user's download staging
# dir ~/.sky/api_server/clients/<user hash>/sky_logs, then the job's run folder).
LOG_STAGING = "/home/sky/.sky/api_server/clients/5eed0001/sky_logs"
LOG_FOLDER = "sky-2026-11-30-22-40-00-000001"


def logs_zip(folders: list[str]) -> bytes:
    """The zip ``POST /download?relative=items`` sends (storage_utils.zip_files_and_folders:
    a folder's own entry, then its files, named relative to the folder's parent)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            name = folder.rsplit("/", 1)[-1]
            archive.writestr(name + "/", b"")
            archive.writestr(f"{name}/run.log", "\n".join(JOB_LOG[3:6]) + "\n")
            archive.writestr(f"{name}/tasks/", b"")
            archive.writestr(f"{name}/tasks/run.log", "task log\n")
            link = zipfile.ZipInfo(f"{name}/latest")
            link.external_attr = 0xA1ED0000  # how the server stores a symbolic link
            archive.writestr(link, "tasks")
    return buffer.getvalue()


_TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_DRIVER", "CANCELLED"}

JOB_LOG = [
    '<sky-payload>"<rich_init>[bold cyan]Launching[/]</rich_init>"</sky-payload>',
    "\x1b[32m✓ Cluster launched: train-up.\x1b[0m",
    '<sky-payload>"<rich_update>[bold cyan]Syncing files[/]</rich_update>"</sky-payload>',
    "⚙︎ Job submitted, ID: 1",
    "(task, pid=4242) hello from the cluster",
    "(task, pid=4242) step 2\r(task, pid=4242) step 3",
    '<sky-payload>"<heartbeat></heartbeat>"</sky-payload>',
    '<sky-payload>"<rich_exit></rich_exit>"</sky-payload>',
]


class FakeSkyPilotServer:
    """An ``httpx.MockTransport`` handler that behaves like the transcripts show."""

    def __init__(self, *, job_exit_code: object = 0, job_status: str = "SUCCEEDED") -> None:
        # job_exit_code is what the logs request returns: any JSON value (None = unreported).
        self.job_exit_code = job_exit_code
        self.job_status = job_status
        self.requests: list[httpx.Request] = []
        self._records: dict[str, dict[str, Any]] = {}
        # Tests of unreadable answers: path -> the return value the request ends with.
        self.answers: dict[str, Any] = {}
        # Jobs on the UP cluster (id -> status), as the cluster's job table holds them.
        self.jobs: dict[int, str] = {1: job_status}

    def transport(self) -> httpx.MockTransport:
        """A sync+async transport to give to ``httpx.Client``/``AsyncClient``."""
        return httpx.MockTransport(self.handle)

    def _submit(
        self, name: str, return_value: Any, cluster: str | None = None, status: str = "SUCCEEDED"
    ) -> httpx.Response:
        request_id = str(uuid.uuid4())
        self._records[request_id] = {
            "request_id": request_id,
            "name": name,
            "entrypoint": "gASV",
            "request_body": "gASV",
            "status": status,
            "created_at": time.time(),
            "user_id": "5eed0001",
            "return_value": json.dumps(return_value),
            "error": "null",
            "pid": 1,
            "schedule_type": "short",
            "user_name": "sdk-tests",
            "cluster_name": cluster,
            "status_msg": None,
            "should_retry": False,
            "finished_at": time.time(),
        }
        return httpx.Response(
            200, json=None, headers={**VERSION_HEADERS, "x-skypilot-request-id": request_id}
        )

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
            record = self._records.get(request.url.params["request_id"])
            if record is None:
                return httpx.Response(404, json={"detail": "Request not found"})
            record["status"] = "SUCCEEDED"  # the real /api/get blocks until the end
            return httpx.Response(200, json=record, headers=VERSION_HEADERS)
        if path == "/api/status":
            ids = request.url.params.get_list("request_ids")
            found = [
                {**self._records[i], "return_value": "null"} for i in ids if i in self._records
            ]
            return httpx.Response(200, json=found, headers=VERSION_HEADERS)
        if path in self.answers:
            return self._submit(f"sky{path.replace('/', '.')}", self.answers[path])
        if path == "/status":
            names = body.get("cluster_names")
            clusters = [UP_CLUSTER] if not names or UP_CLUSTER["name"] in names else []
            return self._submit("sky.status", clusters)
        if path in ("/exec", "/launch"):
            job = None if body.get("dryrun") else 1
            if job is not None:
                self.jobs[job] = self.job_status
            # Launches run for a while: RUNNING until their log stream has been read.
            return self._submit(
                f"sky{path.replace('/', '.')}",
                {"job_id": job, "handle": "gAROLg=="},
                body["cluster_name"],
                status="RUNNING",
            )
        if path == "/job_status":
            # JobStatusBody: job_ids is required (may be null = the latest job).
            ids = body["job_ids"]
            if ids is None:
                latest = max(self.jobs, default=None)
                statuses = {str(latest): self.jobs.get(latest) if latest else None}
            else:
                statuses = {str(i): self.jobs.get(i) for i in ids}  # unknown job: null
            return self._submit("sky.job_status", statuses, body["cluster_name"])
        if path == "/cancel":
            # CancelBody: job_ids required (may be null); core.cancel returns None.
            ids = body["job_ids"]
            targets = list(self.jobs) if body.get("all") or body.get("all_users") else ids
            for job_id in targets or []:
                if job_id in self.jobs and self.jobs[job_id] not in _TERMINAL_JOB_STATES:
                    self.jobs[job_id] = "CANCELLED"
            return self._submit("sky.cancel", None, body["cluster_name"])
        if path == "/endpoints":
            port = body.get("port")
            chosen = {p: u for p, u in ENDPOINTS.items() if port is None or int(port) == p}
            return self._submit(
                "sky.endpoints", {str(p): u for p, u in chosen.items()}, body["cluster"]
            )
        if path == "/download_logs":
            # ClusterJobsDownloadLogsBody: job_ids are strings; the result maps job id to the
            # folder the server synced the logs into.
            ids = body["job_ids"]
            wanted = [max(self.jobs)] if ids is None else [int(i) for i in ids]
            folders = {str(i): f"{LOG_STAGING}/{LOG_FOLDER[:-1]}{i}" for i in wanted}
            return self._submit("sky.download_logs", folders, body["cluster_name"])
        if path == "/download":
            paths = body["folder_paths"]
            if not all(p.startswith(LOG_STAGING + "/") for p in paths):
                return httpx.Response(400, json={"detail": f"Invalid folder path: {paths[0]}"})
            if request.url.params.get("relative") != "items":
                return httpx.Response(500, json={"detail": "test fake: only relative=items"})
            headers = {
                "content-type": "application/zip",
                "content-disposition": 'attachment; filename="folder_0f0e.zip"',
                "x-home-path": "/home/sky",
            }
            return httpx.Response(200, content=logs_zip(paths), headers=headers)
        if path == "/cost_report":
            return self._submit("sky.cost_report", COST_REPORT)
        if path == "/queue":
            queued = {
                "job_id": 1,
                "job_name": "sky-cmd",
                "username": "sdk-tests",
                "submitted_at": 1795430100.5,
                "start_at": 1795430101,
                "end_at": None,
                "resources": "1x[H100:1]",
                "status": self.job_status,
                "log_path": "~/sky_logs/1",
            }
            return self._submit("sky.queue", [queued], body["cluster_name"])
        if path == "/logs":
            response = self._submit("sky.logs", self.job_exit_code, body["cluster_name"])
            return httpx.Response(
                200,
                stream=_Chunks(JOB_LOG),
                headers={**response.headers, "content-type": "text/plain; charset=utf-8"},
            )
        if path == "/api/stream":
            streamed = self._records.get(request.url.params.get("request_id", ""))
            if streamed is not None:
                streamed["status"] = "SUCCEEDED"
            return httpx.Response(
                200, stream=_Chunks(JOB_LOG), headers={"content-type": "text/plain"}
            )
        return httpx.Response(404, json={"detail": "Not Found"})


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Streams lines split at awkward chunk boundaries, as a real chunked response can."""

    def __init__(self, lines: list[str]) -> None:
        self._data = ("\n".join(lines) + "\n").encode()

    def _chunks(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), 7):
            yield self._data[start : start + 7]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks()

    async def __aiter__(self) -> Any:
        for chunk in self._chunks():
            yield chunk
