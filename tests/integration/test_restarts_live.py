"""A real SkyPilot 0.14.1 server restarted under a waiting client (issue 11).

The server runs in its own process group (``scripts.local_server``), started here on a
fixed port and HOME so it can be killed and started again like a real restart: the new
server clears its request database, keeps its cluster database. The client must name the
requests it submitted that the server forgot (``RequestLostError``), ride out the outage in
between, and log it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import (
    AsyncSkyPilotClient,
    ClusterState,
    LaunchRequest,
    SkyPilotClient,
    errors,
)

pytestmark = pytest.mark.integration

# retry_until_up keeps an offline launch provisioning, with its cluster in INIT.
SLOW_TASK = "resources:\n  infra: hyperbolic\n  accelerators: H100:1\nrun: x\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSkyPilotServer]:
    """A server of this module alone: these tests kill and restart it."""
    import os
    import socket

    if os.environ.get("SKYPILOT_SDK_SKIP_INTEGRATION") == "1":
        pytest.skip("SKYPILOT_SDK_SKIP_INTEGRATION=1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = Path(tmp_path_factory.mktemp("restart-home"))
    server = LocalSkyPilotServer(port=port, home=home)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _outage_log(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "skypilot_client"
        and ("unreachable" in r.getMessage() or "answers again" in r.getMessage())
    ]


def test_a_launch_whose_server_restarts_mid_wait_is_named_and_reconciled(
    server: LocalSkyPilotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="skypilot_client")
    name = "sdk-restart-init"
    with SkyPilotClient(server.base_url) as client:
        handle = client.launch(
            LaunchRequest(cluster_name=name, task=SLOW_TASK, retry_until_up=True)
        )
        try:
            deadline = time.monotonic() + 120
            while True:  # the launch has created its cluster record (INIT) and keeps trying
                with contextlib.suppress(errors.ClusterNotFoundError):
                    if client.get_status(name).status == ClusterState.INIT:
                        break
                assert time.monotonic() < deadline, "the cluster never showed up in INIT"
                time.sleep(1)

            outcome: dict[str, Any] = {}

            def wait() -> None:
                try:
                    outcome["result"] = handle.result(timeout=300, reconcile=True)
                except errors.SkyPilotError as exc:
                    outcome["error"] = exc

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(1.0)  # the waiter sits in the server's long poll
            assert waiter.is_alive() and not outcome
            server.stop(grace=0)  # the whole process group, launch executor included
            server.start()
            back = time.monotonic()
            waiter.join(120)
            ended = time.monotonic()
            assert not waiter.is_alive()
        finally:
            with contextlib.suppress(errors.SkyPilotError):
                handle.cancel()

        lost = outcome.get("error")
        assert isinstance(lost, errors.RequestLostError), outcome
        assert isinstance(lost, errors.NotFoundError) and lost.status_code == 404
        assert lost.request_id == handle.request_id and lost.operation == "launch"
        assert lost.cluster_name == name and lost.maybe_submitted and not lost.is_retryable
        assert ended - back < 60  # promptly once the server is back (polls are <= 5 s apart)
        # The server kept its cluster database: the half-provisioned cluster is reported.
        assert lost.reconciled and lost.cluster_status is not None
        assert lost.cluster_status.status == ClusterState.INIT
        assert "is INIT" in lost.message and "restarted" in lost.message

        # The outage between kill and restart was logged once, and its end once.
        assert [level for level, _ in _outage_log(caplog)] == ["WARNING", "INFO"]

        # Another client never submitted that request: a plain NotFoundError for it.
        with SkyPilotClient(server.base_url) as stranger:
            with pytest.raises(errors.NotFoundError) as info:
                stranger.wait_for_request(handle.request_id, timeout=30)
            assert type(info.value) is errors.NotFoundError

        client.terminate(name, purge=True)
        with pytest.raises(errors.ClusterNotFoundError):
            client.get_status(name)


@pytest.mark.anyio
async def test_a_wait_started_mid_outage_rides_it_out_and_names_the_lost_read(
    server: LocalSkyPilotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="skypilot_client")
    async with AsyncSkyPilotClient(server.base_url) as client:
        await client.list_clusters()
        mine = [r for r in await client.list_requests(all_status=True) if r.name == "sky.status"]
        request_id = mine[0].request_id  # the status request list_clusters() submitted

        server.stop(grace=0)
        waiting = asyncio.ensure_future(client.wait_for_request(request_id, timeout=240))
        await asyncio.sleep(2.0)
        assert not waiting.done()  # rides out the outage instead of giving up
        await asyncio.to_thread(server.start)
        with pytest.raises(errors.RequestLostError) as info:
            await asyncio.wait_for(waiting, 120)

        lost = info.value
        assert lost.request_id == request_id and lost.operation == "status"
        assert not lost.maybe_submitted and "calling again is safe" in lost.message
        assert [level for level, _ in _outage_log(caplog)] == ["WARNING", "INFO"]
        # ... and the client works on: a read after the restart succeeds.
        assert (await client.list_clusters()).total >= 0
