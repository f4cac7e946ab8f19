"""Transport faults on loopback: a tiny threaded TCP server misbehaves on purpose.

Every case runs against both clients. Backoff never sleeps (``_sleep=`` records the delays),
and every socket wait is bounded, so each test takes well under a few seconds.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import pytest

from skypilot_client import AsyncSkyPilotClient, LaunchRequest, SkyPilotClient
from skypilot_client.errors import (
    APIConnectionError,
    APITimeoutError,
    MalformedResponseError,
    ServiceUnavailableError,
    SkyPilotError,
)

pytestmark = pytest.mark.anyio

MODES = ["sync", "async"]
REQUEST_ID = "0b6c1f7e-3d1a-4f59-8a1e-6c2d9b4e7a10"
HEALTH_JSON = b'{"status":"healthy","api_version":"62","version":"0.14.1"}'
STALL_SECONDS = 5.0  # how long a "slow" answer would take (the client gives up far earlier)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Loopback must not go through a proxy, and no local SkyPilot config may leak in."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "SKYPILOT_API_SERVER_URL",
        "SKYPILOT_API_SERVER_ENDPOINT",
        "SKYPILOT_SERVICE_ACCOUNT_TOKEN",
        "SKYPILOT_REQUEST_TIMEOUT",
        "SKYPILOT_MAX_RETRIES",
        "SKYPILOT_RETRY_DELAY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


# ---------------------------------------------------------------------------- the fake server


@dataclass(frozen=True)
class Respond:
    """Answer with this status, headers and body, then close the connection."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Reset:
    """Send the first bytes of a response, then reset the connection (RST)."""

    partial: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: appl"


@dataclass(frozen=True)
class Stall:
    """Say nothing until the server stops (or STALL_SECONDS pass)."""


Action = Respond | Reset | Stall
Behaviour = Callable[[str, str], Action]

REASONS = {200: "OK", 503: "Service Unavailable"}


def health_ok(method: str, path: str) -> Action | None:
    """The normal /api/health answer (with the API version header), else None."""
    if method == "GET" and path == "/api/health":
        return Respond(
            200,
            (
                ("Content-Type", "application/json"),
                ("X-SkyPilot-API-Version", "62"),
                ("X-SkyPilot-Version", "0.14.1"),
            ),
            HEALTH_JSON,
        )
    return None


class FaultServer:
    """A threaded HTTP/1.1-ish server on 127.0.0.1 that answers per ``behaviour``.

    ``requests`` lists ``(method, path)`` of every request read, ``connections`` counts
    accepted connections. Both are recorded before the server answers, so the client cannot
    observe an answer before its request is counted.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.requests.count((method, path))

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(STALL_SECONDS)
            request = self._read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            action = self._behaviour(*request)
            if isinstance(action, Reset):
                conn.sendall(action.partial)
                time.sleep(0.01)  # let the partial bytes leave before the RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif isinstance(action, Stall):
                self._stop.wait(STALL_SECONDS)
            else:
                conn.sendall(self._encode(action))
        except OSError:
            pass  # the client gave up first: fine
        finally:
            conn.close()

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[str, str] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return method, target.split("?", 1)[0]

    @staticmethod
    def _encode(response: Respond) -> bytes:
        reason = REASONS.get(response.status, "Status")
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + response.body

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._acceptor.join(timeout=2)
        for thread in self._threads:
            thread.join(timeout=2)


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], FaultServer]]:
    servers: list[FaultServer] = []

    def start(behaviour: Behaviour) -> FaultServer:
        server = FaultServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# ---------------------------------------------------------------------------- running a client


@dataclass
class Result:
    value: Any = None
    error: SkyPilotError | None = None
    delays: list[float] = field(default_factory=list)
    elapsed: float = 0.0


async def run_call(mode: str, url: str, operation: str, **settings: Any) -> Result:
    """``health()`` or ``launch()`` on the sync (in a worker thread) or async client."""
    result = Result()
    started = time.monotonic()
    request = LaunchRequest(cluster_name="fault-test", task={"run": "echo hi"})

    if mode == "sync":

        def sleep(seconds: float) -> None:
            result.delays.append(seconds)

        def run_sync() -> None:
            with SkyPilotClient(url, _sleep=sleep, **settings) as client:
                try:
                    if operation == "health":
                        result.value = client.health()
                    else:
                        result.value = client.launch(request).request_id
                except SkyPilotError as exc:
                    result.error = exc

        await anyio.to_thread.run_sync(run_sync)
    else:

        async def asleep(seconds: float) -> None:
            result.delays.append(seconds)

        async with AsyncSkyPilotClient(url, _sleep=asleep, **settings) as client:
            try:
                if operation == "health":
                    result.value = await client.health()
                else:
                    result.value = (await client.launch(request)).request_id
            except SkyPilotError as exc:
                result.error = exc
    result.elapsed = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------- faults on health()


@pytest.mark.parametrize("mode", MODES)
async def test_connection_refused(mode: str, refused_url: str) -> None:
    result = await run_call(mode, refused_url, "health", max_retries=2, retry_delay=0.5)

    assert type(result.error) is APIConnectionError
    assert "cannot reach the SkyPilot API server" in result.error.message
    assert result.error.is_retryable
    assert not result.error.maybe_submitted
    assert isinstance(result.error.__cause__, Exception)
    # max_retries + 1 attempts = max_retries sleeps between them, growing per backoff.
    assert len(result.delays) == 2
    assert 0.375 <= result.delays[0] <= 0.5
    assert 0.75 <= result.delays[1] <= 1.0
    assert result.elapsed < 5


@pytest.mark.parametrize("mode", MODES)
async def test_reset_mid_response(mode: str, serve: Callable[[Behaviour], FaultServer]) -> None:
    server = serve(lambda method, path: Reset())

    result = await run_call(mode, server.url, "health", max_retries=2)

    assert type(result.error) is APIConnectionError
    assert result.error.is_retryable
    assert server.connections == 3
    assert server.count("GET", "/api/health") == 3
    assert len(result.delays) == 2
    assert result.elapsed < 5


@pytest.mark.parametrize("mode", MODES)
async def test_slow_server_times_out(mode: str, serve: Callable[[Behaviour], FaultServer]) -> None:
    server = serve(lambda method, path: Stall())

    result = await run_call(mode, server.url, "health", timeout=0.3, max_retries=1)

    assert isinstance(result.error, APITimeoutError)
    assert isinstance(result.error, TimeoutError)
    assert "timed out" in result.error.message
    assert server.count("GET", "/api/health") == 2
    assert len(result.delays) == 1
    # Two 0.3 s read timeouts; far below the server's STALL_SECONDS.
    assert 0.5 <= result.elapsed < 3


@pytest.mark.parametrize("mode", MODES)
async def test_503_with_retry_after(mode: str, serve: Callable[[Behaviour], FaultServer]) -> None:
    server = serve(
        lambda method, path: Respond(
            503,
            (("Content-Type", "application/json"), ("Retry-After", "2")),
            b'{"detail":"Server is shutting down, please try again later."}',
        )
    )

    result = await run_call(mode, server.url, "health", max_retries=2)

    assert type(result.error) is ServiceUnavailableError
    assert result.error.status_code == 503
    assert result.error.retry_after == 2
    assert result.error.message == "HTTP 503: Server is shutting down, please try again later."
    assert result.delays == [2.0, 2.0]
    assert server.count("GET", "/api/health") == 3
    assert result.elapsed < 5  # the 2 s were recorded, never slept


@pytest.mark.parametrize("mode", MODES)
async def test_malformed_json(mode: str, serve: Callable[[Behaviour], FaultServer]) -> None:
    server = serve(
        lambda method, path: Respond(
            200,
            (("Content-Type", "application/json"), ("X-SkyPilot-API-Version", "62")),
            b'{"status": "healthy", "api_version": ',
        )
    )

    result = await run_call(mode, server.url, "health", max_retries=2)

    assert type(result.error) is MalformedResponseError
    assert result.error.status_code == 200
    assert isinstance(result.error.__cause__, ValueError)
    assert server.count("GET", "/api/health") == 1  # not retried
    assert result.delays == []


@pytest.mark.parametrize("mode", MODES)
async def test_healthy_server_baseline(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    """The fake server itself works: the faults above are the only reason for the errors."""
    server = serve(lambda method, path: health_ok(method, path) or Respond(404))

    result = await run_call(mode, server.url, "health", max_retries=2)

    assert result.error is None
    assert result.value.status == "healthy"
    assert result.value.api_version == 62
    assert server.count("GET", "/api/health") == 1


# ---------------------------------------------------------------------------- faults on launch()


def launch_misbehaves(action: Action) -> Behaviour:
    def behaviour(method: str, path: str) -> Action:
        return health_ok(method, path) or action

    return behaviour


@pytest.mark.parametrize("mode", MODES)
async def test_launch_reset_is_attempted_once(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    server = serve(launch_misbehaves(Reset()))

    result = await run_call(mode, server.url, "launch", max_retries=3)

    assert type(result.error) is APIConnectionError
    assert result.error.maybe_submitted
    assert not result.error.is_retryable
    assert "may have been submitted" in str(result.error)
    assert server.count("POST", "/launch") == 1
    assert server.count("GET", "/api/health") == 1
    assert result.delays == []


@pytest.mark.parametrize("mode", MODES)
async def test_launch_slow_is_attempted_once(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    server = serve(launch_misbehaves(Stall()))

    result = await run_call(mode, server.url, "launch", timeout=0.3, max_retries=3)

    assert isinstance(result.error, APITimeoutError)
    assert result.error.maybe_submitted
    assert not result.error.is_retryable
    assert "may have been submitted" in str(result.error)
    assert server.count("POST", "/launch") == 1
    assert result.delays == []
    assert result.elapsed < 3


@pytest.mark.parametrize("mode", MODES)
async def test_launch_succeeds_against_fake_server(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    """Baseline for the two launch cases: a well-behaved /launch is accepted."""
    server = serve(
        launch_misbehaves(
            Respond(
                200,
                (("Content-Type", "application/json"), ("X-Skypilot-Request-ID", REQUEST_ID)),
                b"null",
            )
        )
    )

    result = await run_call(mode, server.url, "launch", max_retries=3)

    assert result.error is None
    assert result.value == REQUEST_ID
    assert server.requests == [("GET", "/api/health"), ("POST", "/launch")]


def test_fake_server_encodes_json_answers() -> None:
    """Self-check of the test server's framing (no client involved)."""
    raw = FaultServer._encode(Respond(200, (("A", "b"),), json.dumps({"k": 1}).encode()))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Length: 8" in head
    assert json.loads(body) == {"k": 1}
