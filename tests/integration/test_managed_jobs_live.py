"""Managed jobs against a real SkyPilot 0.14.1 API server on loopback (offline: it has no
jobs controller and cannot provision one). The paths that need a running controller run on
the faithful fake in tests/unit/test_managed_jobs.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import AsyncSkyPilotClient, SkyPilotClient, errors
from skypilot_client._base_client import Call
from tests.integration.test_live_server import iter_once

pytestmark = pytest.mark.integration

TASK = "name: sdk-mj\nresources:\n  cpus: 2\nrun: echo hi\n"
NO_CONTROLLER = "No in-progress managed jobs."


@pytest.fixture
def client(skypilot_server: LocalSkyPilotServer) -> Iterator[SkyPilotClient]:
    with SkyPilotClient(skypilot_server.base_url) as client:
        yield client
        _forget_the_controller(client)


def _forget_the_controller(client: SkyPilotClient) -> None:
    # A cancelled launch may leave the controller's record behind: other tests count clusters.
    for cluster in client.list_clusters(all_users=True).clusters:
        if cluster.name.startswith("sky-jobs-controller"):
            with contextlib.suppress(errors.SkyPilotError):
                client.terminate(cluster.name, purge=True, timeout=120)


def test_queue_without_a_controller_is_cluster_not_up(client: SkyPilotClient) -> None:
    with pytest.raises(errors.ClusterNotUpError) as info:
        client.jobs.queue(skip_finished=True, job_ids=[1])
    error = info.value
    assert NO_CONTROLLER in error.message and error.error_type == "ClusterNotUpError"
    assert error.request_id and error.request_name == "sky.jobs.queue_v2"
    assert not error.maybe_submitted


def test_cancel_logs_and_wait_without_a_controller(client: SkyPilotClient) -> None:
    for call in (
        lambda: client.jobs.cancel(all=True),
        lambda: client.jobs.logs(1, timeout=60),
        lambda: list(client.jobs.stream_logs(1)),
        lambda: client.jobs.wait(1, timeout=60),
    ):
        with pytest.raises(errors.ClusterNotUpError) as info:
            call()
        assert NO_CONTROLLER in info.value.message


@pytest.mark.anyio
async def test_async_without_a_controller_raises_the_same(
    skypilot_server: LocalSkyPilotServer,
) -> None:
    async with AsyncSkyPilotClient(skypilot_server.base_url) as client:
        with pytest.raises(errors.ClusterNotUpError) as info:
            await client.jobs.queue()
        assert NO_CONTROLLER in info.value.message
        with pytest.raises(errors.ClusterNotUpError):
            await client.jobs.cancel([1])
        with pytest.raises(errors.ClusterNotUpError):
            _ = [line async for line in client.jobs.stream_logs(name="sdk-mj")]


def test_launch_stays_in_flight_with_the_servers_message_then_cancel(
    client: SkyPilotClient,
) -> None:
    handle = client.jobs.launch(TASK, name="sdk-mj", envs={"SDK_TEST": "1"})
    assert handle.operation == "jobs.launch"
    # The server keeps trying to provision the jobs controller and says so.
    status = client.get_request(handle.request_id)
    give_up = time.monotonic() + 240
    while "retrying" not in (status.status_msg or "") and time.monotonic() < give_up:
        time.sleep(1)
        status = client.get_request(handle.request_id)
    assert status.name == "sky.jobs.launch" and not status.status.is_terminal
    assert "retrying in" in (status.status_msg or "")
    handle.cancel()
    with pytest.raises(errors.RequestCancelledError) as info:
        handle.result(timeout=120)
    assert info.value.request_id == handle.request_id


@pytest.mark.anyio
async def test_async_launch_cancelled(skypilot_server: LocalSkyPilotServer) -> None:
    async with AsyncSkyPilotClient(skypilot_server.base_url) as client:
        handle = await client.jobs.launch(TASK, name="sdk-mj-async")
        assert not (await client.get_request(handle.request_id)).status.is_terminal
        await handle.cancel()
        with pytest.raises(errors.RequestCancelledError):
            await handle.result(timeout=120)
    with SkyPilotClient(skypilot_server.base_url) as sync_client:
        _forget_the_controller(sync_client)


def test_a_launch_body_without_its_name_is_rejected_with_422(client: SkyPilotClient) -> None:
    # JobsLaunchBody.name may be null but is required: why client.jobs.launch always sends it.
    bad = Call("POST", "/jobs/launch", "jobs.launch", json={"task": TASK, "env_vars": {}})
    with pytest.raises(errors.UnprocessableEntityError) as info:
        client._run(iter_once(bad))
    assert info.value.status_code == 422
    assert ("body", "name") in {tuple(e["loc"]) for e in info.value.errors}
