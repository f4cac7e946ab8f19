"""A loopback FAKE of the SkyPilot server's request endpoints, for monitor tests at scale.

Not the real server: the real one (tests/integration) cannot hold hundreds of requests
quickly. This fake answers ``POST`` of any operation (``/launch``, ...: a new request that
succeeds after one check, its id in ``X-Skypilot-Request-ID``), ``GET /api/health``,
``GET /api/status`` (repeated ``request_ids``, ``fields``, ``all_status``, as the real
server: unknown ids are simply absent, unknown field names are a 400) and ``GET /api/get``
(200 for finished, 500 wrapping the record for failed) from a table of requests whose states
a test scripts: each request moves to its final status after it has been looked at
``checks`` times.

Use ``handler`` with ``httpx.MockTransport`` in-process, or ``serve()`` for a real HTTP server
that other processes reach.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

VALID_FIELDS = {
    "request_id",
    "name",
    "entrypoint",
    "request_body",
    "status",
    "created_at",
    "user_id",
    "return_value",
    "error",
    "pid",
    "schedule_type",
    "user_name",
    "cluster_name",
    "status_msg",
    "should_retry",
    "finished_at",
}
VERSION_HEADERS = {"X-SkyPilot-API-Version": "62", "X-SkyPilot-Version": "0.14.1"}


@dataclass
class FakeRequest:
    request_id: str
    final: str = "SUCCEEDED"  # SUCCEEDED, FAILED, CANCELLED
    checks: int = 1  # status lookups answered RUNNING before the final status shows
    message: str | None = "Launching"
    error_type: str = "ResourcesUnavailableError"
    seen: int = 0

    @property
    def status(self) -> str:
        return self.final if self.seen > self.checks else "RUNNING"

    def record(self) -> dict[str, Any]:
        status = self.status
        error = (
            json.dumps({"type": self.error_type, "message": f"no capacity for {self.request_id}"})
            if status == "FAILED"
            else "null"
        )
        return {
            "request_id": self.request_id,
            "name": "sky.launch",
            "entrypoint": "",
            "request_body": "",
            "status": status,
            "created_at": 1_800_000_000.0,
            "user_id": "5eed0001",
            "return_value": "null",
            "error": error,
            "pid": None,
            "schedule_type": "long",
            "user_name": "sdk-tests",
            "cluster_name": "c",
            "status_msg": self.message if status == "RUNNING" else None,
            "should_retry": False,
            "finished_at": 1_800_000_100.0 if status != "RUNNING" else None,
        }


@dataclass
class FakeRequestServer:
    """The request table and the HTTP handling (thread-safe)."""

    requests: dict[str, FakeRequest] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    max_ids_seen: int = 0
    max_query_bytes: int = 0
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request_id: str, **kwargs: Any) -> FakeRequest:
        with self.lock:
            self.requests[request_id] = FakeRequest(request_id, **kwargs)
            return self.requests[request_id]

    def count(self, path: str) -> int:
        with self.lock:
            return self.calls.get(path, 0)

    def answer(self, method: str, target: str) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(target)
        query = parse_qs(url.query)
        with self.lock:
            self.calls[url.path] = self.calls.get(url.path, 0) + 1
            self.max_query_bytes = max(self.max_query_bytes, len(url.query))
            if method == "GET" and url.path == "/api/health":
                return 200, {"status": "healthy", "api_version": "62", "version": "0.14.1"}, {}
            if method == "GET" and url.path == "/api/status":
                return (*self._status(query), {})
            if method == "GET" and url.path == "/api/get":
                return (*self._get(query), {})
            if method == "POST":
                rid = str(uuid.uuid4())
                self.requests[rid] = FakeRequest(rid)
                return 200, None, {"X-Skypilot-Request-ID": rid}
            return 404, {"detail": "Not Found"}, {}

    def _status(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        fields = query.get("fields") or sorted(VALID_FIELDS)
        bad = [f for f in fields if f not in VALID_FIELDS]
        if bad:
            return 400, {"detail": f"Invalid fields: {bad}"}
        ids = query.get("request_ids", [])
        self.max_ids_seen = max(self.max_ids_seen, len(ids))
        out = []
        for rid in ids:
            fake = self.requests.get(rid)
            if fake is None:
                continue
            fake.seen += 1
            record = fake.record()
            out.append({k: (record[k] if k in fields else None) for k in VALID_FIELDS})
        return 200, out

    def _get(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        rid = (query.get("request_id") or [""])[0]
        fake = self.requests.get(rid)
        if fake is None:
            return 404, {"detail": f"Request {rid!r} not found"}
        record = fake.record()
        if record["status"] == "FAILED":
            return 500, {"detail": record}
        return 200, record

    def handler(self, request: httpx.Request) -> httpx.Response:
        """For ``httpx.MockTransport``: down = a refused connection."""
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        target = request.url.raw_path.decode()
        status, body, headers = self.answer(request.method, target)
        return httpx.Response(status, json=body, headers={**VERSION_HEADERS, **headers})

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        """A real HTTP server on loopback (in a daemon thread); returns it and its URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body, headers = fake.answer(method, self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in {**VERSION_HEADERS, **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"
