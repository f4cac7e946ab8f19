"""One deadline per public call: progress, streams and waits share it, silent streams too.

Against the loopback fault server (real sockets, so read timeouts really apply). Each case
asks for a short timeout and checks the call ends with ``WaitTimeoutError`` soon after it;
the server would keep the client busy for STALL_SECONDS (5 s) if the deadline were ignored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio.to_thread
import pytest

from skypilot_client import (
    AsyncSkyPilotClient,
    LaunchRequest,
    LogsRequest,
    ProgressEvent,
    SkyPilotClient,
)
from skypilot_client.errors import SkyPilotError, WaitTimeoutError
from tests.fakes.fault_server import (
    Action,
    Behaviour,
    Delay,
    FaultServer,
    Respond,
    Stall,
    Trickle,
    health_ok,
)

pytestmark = pytest.mark.anyio

MODES = ["sync", "async"]
LAUNCH_ID = "7d0c9e52-4a41-4c8e-9a55-1f0e2d3c4b5a"
LOGS_ID = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
SLACK = 1.5  # 2-core CI machines are noisy: generous, yet far below STALL_SECONDS

JSON = (("Content-Type", "application/json"),)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SKYPILOT_API_SERVER_URL", "SKYPILOT_API_SERVER_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], FaultServer]]:
    servers: list[FaultServer] = []

    def start(behaviour: Behaviour) -> FaultServer:
        servers.append(FaultServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def record(request_id: str, name: str, status: str, return_value: Any = None) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "name": name,
            "status": status,
            "created_at": 1795433897.31,
            "user_id": "5eed0001",
            "return_value": json.dumps(return_value),
            "error": "null",
            "cluster_name": "dl-test",
        }
    ).encode()


def submitted(request_id: str) -> Respond:
    return Respond(200, (*JSON, ("X-Skypilot-Request-ID", request_id)), b"null")


def server_with(routes: dict[str, Action]) -> Behaviour:
    """Answer ``"METHOD /path"`` with its action (404 otherwise); health is normal."""

    def behaviour(method: str, path: str) -> Action:
        return health_ok(method, path) or routes.get(f"{method} {path}", Respond(404))

    return behaviour


async def timed(
    mode: str,
    url: str,
    sync_call: Callable[[SkyPilotClient], object],
    async_call: Callable[[AsyncSkyPilotClient], Awaitable[object]],
) -> tuple[SkyPilotError | None, float]:
    """Run the call on one client; return what it raised and how long it took."""
    error: SkyPilotError | None = None
    started = time.monotonic()
    if mode == "sync":

        def run() -> None:
            nonlocal error
            with SkyPilotClient(url, max_retries=0) as client:
                try:
                    sync_call(client)
                except SkyPilotError as exc:
                    error = exc

        await anyio.to_thread.run_sync(run)
    else:
        async with AsyncSkyPilotClient(url, max_retries=0) as aclient:
            try:
                await async_call(aclient)
            except SkyPilotError as exc:
                error = exc
    return error, time.monotonic() - started


SPINNER = '<sky-payload>"<rich_update>[bold cyan]Launching[/]</rich_update>"</sky-payload>'


@pytest.mark.parametrize("mode", MODES)
async def test_result_with_progress_keeps_its_timeout(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    """Progress and the final wait share the deadline of result(timeout=...)."""
    server = serve(
        server_with(
            {
                "POST /launch": submitted(LAUNCH_ID),
                "GET /api/status": Respond(
                    200, JSON, b"[" + record(LAUNCH_ID, "sky.launch", "RUNNING") + b"]"
                ),
                "GET /api/stream": Trickle(lines=(SPINNER, "Launching the cluster")),
                "GET /api/get": Stall(),
            }
        )
    )
    seen: list[ProgressEvent] = []
    request = LaunchRequest(cluster_name="dl-test", task={"run": "echo hi"})

    def sync_call(client: SkyPilotClient) -> None:
        client.launch(request).result(timeout=0.5, on_progress=seen.append)

    async def async_call(client: AsyncSkyPilotClient) -> None:
        await (await client.launch(request)).result(timeout=0.5, on_progress=seen.append)

    error, elapsed = await timed(mode, server.url, sync_call, async_call)

    assert isinstance(error, WaitTimeoutError)
    assert error.request_id == LAUNCH_ID
    assert elapsed < 0.5 + SLACK
    assert seen  # progress was reported while it lasted


@pytest.mark.parametrize("mode", MODES)
async def test_silent_log_stream_ends_at_the_deadline(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    server = serve(
        server_with(
            {
                "POST /logs": Trickle(headers=(("X-Skypilot-Request-ID", LOGS_ID),)),
                "GET /api/get": Stall(),
            }
        )
    )
    request = LogsRequest(cluster_name="dl-test", job_id=1)

    def sync_call(client: SkyPilotClient) -> None:
        client.get_logs(request, timeout=0.5)

    async def async_call(client: AsyncSkyPilotClient) -> None:
        await client.get_logs(request, timeout=0.5)

    error, elapsed = await timed(mode, server.url, sync_call, async_call)

    assert isinstance(error, WaitTimeoutError)
    assert error.request_id == LOGS_ID
    assert elapsed < 0.5 + SLACK


@pytest.mark.parametrize("mode", MODES)
async def test_launch_and_its_job_share_one_deadline(
    mode: str, serve: Callable[[Behaviour], FaultServer]
) -> None:
    """detach=False: the launch wait and the job's log wait together keep the timeout."""
    launched = record(LAUNCH_ID, "sky.launch", "SUCCEEDED", {"job_id": 1})
    server = serve(
        server_with(
            {
                "POST /launch": submitted(LAUNCH_ID),
                "GET /api/get": Delay(2.5, Respond(200, JSON, launched)),
                # The job keeps printing: only the deadline ends the wait.
                "POST /logs": Trickle(
                    headers=(("X-Skypilot-Request-ID", LOGS_ID),),
                    lines=tuple(f"step {i}" for i in range(40)),
                    interval=0.2,
                ),
            }
        )
    )
    request = LaunchRequest(cluster_name="dl-test", task={"run": "echo hi"}, detach=False)

    def sync_call(client: SkyPilotClient) -> None:
        client.launch(request).result(timeout=3)

    async def async_call(client: AsyncSkyPilotClient) -> None:
        await (await client.launch(request)).result(timeout=3)

    error, elapsed = await timed(mode, server.url, sync_call, async_call)

    assert isinstance(error, WaitTimeoutError)
    assert elapsed < 3 + SLACK
