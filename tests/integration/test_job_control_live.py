"""Job control and cluster facts against a real SkyPilot 0.14.1 server on loopback (offline:
no cluster can come UP, so the UP-cluster paths run on the fake in tests/unit/
test_job_control.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import (
    AsyncSkyPilotClient,
    ClusterCost,
    ClusterState,
    LaunchRequest,
    SkyPilotClient,
    errors,
)
from skypilot_client._deadline import Deadline
from tests.scenarios import GPU_TASK

pytestmark = pytest.mark.integration

SLOW_TASK = "resources:\n  infra: hyperbolic\n  accelerators: H100:1\nrun: x\n"


def test_check_reports_enabled_and_disabled_clouds(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        found = client.check(["hyperbolic", "aws"])
    assert found.enabled == {"default": {"Hyperbolic": ["compute"]}}
    assert found.clouds() == ["Hyperbolic"]
    assert set(found.disabled) == {"AWS"}
    assert found.disabled["AWS"].startswith("Reason [compute, storage]:")
    assert "Hyperbolic: enabled [compute]" in found.report
    assert "\x1b[" not in found.report and "sky-payload" not in found.report


@pytest.mark.anyio
async def test_check_of_every_cloud_sync_and_async(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        expected = client.check()
    async with AsyncSkyPilotClient(skypilot_server.base_url) as aclient:
        got = await aclient.check()
    assert got.enabled == expected.enabled == {"default": {"Hyperbolic": ["compute"]}}
    assert set(got.disabled) == set(expected.disabled)
    assert {"AWS", "Azure"} <= set(got.disabled) and "Hyperbolic" not in got.disabled


@pytest.mark.anyio
async def test_a_dry_run_costs_nothing(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        launch = LaunchRequest(cluster_name="sdk-jc-dry", task=GPU_TASK, dryrun=True)
        assert client.launch(launch).result().dryrun
        rows = client.cost_report(days=30)
    async with AsyncSkyPilotClient(skypilot_server.base_url) as aclient:
        arows = await aclient.cost_report(days=30)
    assert all(isinstance(row, ClusterCost) for row in rows + arows)
    assert "sdk-jc-dry" not in {row.name for row in rows + arows}


MISSING = "sdk-jc-missing"


def _missing_cluster_calls(client: SkyPilotClient) -> dict[str, Callable[[], Any]]:
    return {
        "job_status": lambda: client.job_status(MISSING),
        "job_status_ids": lambda: client.job_status(MISSING, [1]),
        "cancel_jobs": lambda: client.cancel_jobs(MISSING, [1]),
        "cancel_all": lambda: client.cancel_jobs(MISSING, all=True),
    }


@pytest.mark.parametrize("name", ["job_status", "job_status_ids", "cancel_jobs", "cancel_all"])
def test_a_missing_cluster_is_cluster_not_found(
    skypilot_server: LocalSkyPilotServer, name: str
) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        with pytest.raises(errors.ClusterNotFoundError) as info:
            _missing_cluster_calls(client)[name]()
    assert info.value.request_id and not info.value.is_retryable
    assert MISSING in info.value.message


def test_endpoints_of_a_missing_cluster_is_not_up(skypilot_server: LocalSkyPilotServer) -> None:
    # core.endpoints of 0.14.1 raises ClusterNotUpError("Cluster ... not found."): the
    # server's own classification, kept (not re-guessed from the message text).
    with SkyPilotClient(skypilot_server.base_url) as client:
        with pytest.raises(errors.ClusterNotUpError) as info:
            client.endpoints(MISSING)
    assert info.value.error_type == "ClusterNotUpError" and "not found" in info.value.message


@pytest.mark.anyio
async def test_a_missing_cluster_async(skypilot_server: LocalSkyPilotServer) -> None:
    async with AsyncSkyPilotClient(skypilot_server.base_url) as aclient:
        with pytest.raises(errors.ClusterNotFoundError):
            await aclient.job_status(MISSING, [1])
        with pytest.raises(errors.ClusterNotFoundError):
            await aclient.cancel_jobs(MISSING, all=True)
        with pytest.raises(errors.ClusterNotUpError):
            await aclient.endpoints(MISSING, 8888)


def test_a_cluster_that_is_not_up(skypilot_server: LocalSkyPilotServer) -> None:
    name = "sdk-jc-init"
    with SkyPilotClient(skypilot_server.base_url) as client:
        # retry_until_up keeps the launch provisioning (offline) with the cluster in INIT
        handle = client.launch(
            LaunchRequest(cluster_name=name, task=SLOW_TASK, retry_until_up=True)
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(errors.ClusterNotFoundError):
                    if client.get_status(name).status == ClusterState.INIT:
                        break
                assert time.monotonic() < deadline, "the cluster never showed up in INIT"
                time.sleep(1)
            with pytest.raises(errors.ClusterNotUpError):
                client.job_status(name, [1])
            with pytest.raises(errors.ClusterNotUpError):
                client.cancel_jobs(name, [1])
            with pytest.raises(errors.ClusterNotUpError):
                client.endpoints(name)
            with pytest.raises(errors.ClusterNotUpError):
                client.download_logs(name, [1], local_dir="/nonexistent-never-written")
        finally:
            handle.cancel()
            handle.wait(timeout=60)
            with contextlib.suppress(errors.ClusterNotFoundError):
                client.terminate(name, purge=True)


def test_request_handle_resumes_a_stored_launch(skypilot_server: LocalSkyPilotServer) -> None:
    launch = LaunchRequest(cluster_name="sdk-jc-resume", task=GPU_TASK, dryrun=True)
    with SkyPilotClient(skypilot_server.base_url) as first:
        stored = first.launch(launch).request_id
    # a new process: only the request id survived
    with SkyPilotClient(skypilot_server.base_url) as client:
        handle = client.request_handle(stored, operation="launch", dryrun=True)
        result = handle.result(timeout=120)
        assert handle.request_id == stored and handle.wait().status.value == "SUCCEEDED"
        with pytest.raises(errors.InvalidInputError, match=r"sky\.launch"):
            client.request_handle(stored, operation="start")
        with pytest.raises(errors.NotFoundError):
            client.request_handle("00000000-0000-0000-0000-000000000000", operation="launch")
    assert (result.request_id, result.cluster_name) == (stored, "sdk-jc-resume")
    assert result.job_id is None and result.dryrun


@pytest.mark.anyio
async def test_request_handle_async(skypilot_server: LocalSkyPilotServer) -> None:
    launch = LaunchRequest(cluster_name="sdk-jc-aresume", task=GPU_TASK, dryrun=True)
    async with AsyncSkyPilotClient(skypilot_server.base_url) as aclient:
        stored = (await aclient.launch(launch)).request_id
        handle = await aclient.request_handle(stored, operation="launch", dryrun=True)
        result = await handle.result(timeout=120)
        with pytest.raises(errors.NotFoundError):
            await aclient.request_handle("no-such-request", operation="start")
    assert (result.request_id, result.cluster_name, result.job_id) == (
        stored,
        "sdk-jc-aresume",
        None,
    )


def test_download_logs_of_a_missing_cluster(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        with pytest.raises(errors.ClusterNotFoundError) as info:
            client.download_logs(MISSING, [1], local_dir="/nonexistent-never-written")
    assert info.value.request_id and MISSING in info.value.message


def test_the_download_half_against_the_real_server(
    skypilot_server: LocalSkyPilotServer, tmp_path: Path
) -> None:
    # No cluster can come UP offline, so /download_logs cannot succeed; /download can: a log
    # folder put where /download_logs leaves them (the user's staging dir on the server) is
    # zipped by the real server and unpacked by the client.
    with SkyPilotClient(skypilot_server.base_url) as client:
        user = client._identity["SKYPILOT_USER_ID"]
        staging = skypilot_server.home / ".sky" / "api_server" / "clients" / user / "sky_logs"
        folder = staging / "sky-2026-11-30-00-00-00-000001"
        (folder / "tasks").mkdir(parents=True)
        (folder / "run.log").write_text("hello from job 1\n")
        (folder / "tasks" / "run.log").write_text("task\n")
        deadline = Deadline.after(60)
        got = client._run(client._flow_download_folders([str(folder)], tmp_path, deadline))
        assert got == {str(folder): tmp_path.resolve() / folder.name}
        assert (got[str(folder)] / "run.log").read_text() == "hello from job 1\n"
        assert (got[str(folder)] / "tasks" / "run.log").read_text() == "task\n"
        with pytest.raises(errors.BadRequestError, match="Invalid folder path"):
            client._run(client._flow_download_folders(["/etc"], tmp_path, deadline))
