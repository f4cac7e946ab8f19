"""Transport faults on loopback: a tiny threaded TCP server misbehaves on purpose.

Every case runs against both clients. Backoff never sleeps (``_sleep=`` records the delays),
and every socket wait is bounded, so each test takes well under a few seconds.
"""

from __future__ import annotations

import json
import socket
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
from tests.fakes.fault_server import (
    Action,
    Behaviour,
    FaultServer,
    Reset,
    Respond,
    Stall,
    health_ok,
)

pytestmark = pytest.mark.anyio

MODES = ["sync", "async"]
REQUEST_ID = "0b6c1f7e-3d1a-4f59-8a1e-6c2d9b4e7a10"


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
