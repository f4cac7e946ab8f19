"""Success paths the offline real server cannot reach (UP cluster, finished job), run
against the FAITHFUL FAKE in tests/fakes/transcript_server.py (not the real server)."""

from __future__ import annotations

import httpx
import pytest

from skypilot_client import (
    AsyncSkyPilotClient,
    ClusterState,
    ExecuteRequest,
    JobState,
    LaunchPhase,
    LaunchRequest,
    LogsRequest,
    SkyPilotClient,
)
from tests.fakes.transcript_server import UP_CLUSTER, FakeSkyPilotServer

URL = "http://fake-skypilot.test:46580"


def _client(fake: FakeSkyPilotServer) -> SkyPilotClient:
    return SkyPilotClient(URL, http_client=httpx.Client(transport=fake.transport()))


def test_execute_collects_output_exit_code_and_job_status() -> None:
    fake = FakeSkyPilotServer(job_exit_code=0)
    result = _client(fake).execute(ExecuteRequest(cluster_name="train-up", command="echo hi"))
    assert result.job_id == 1
    assert result.exit_code == 0 and result.succeeded
    assert result.job_status == JobState.SUCCEEDED
    # payload lines dropped, ANSI stripped, carriage-return progress collapsed
    assert result.output.splitlines() == [
        "✓ Cluster launched: train-up.",
        "⚙︎ Job submitted, ID: 1",
        "(task, pid=4242) hello from the cluster",
        "(task, pid=4242) step 3",
    ]
    exec_body = next(r for r in fake.requests if r.url.path == "/exec").content.decode()
    assert "run: echo hi" in exec_body


def test_execute_reports_a_failing_job() -> None:
    fake = FakeSkyPilotServer(job_exit_code=100, job_status="FAILED")
    result = _client(fake).execute(ExecuteRequest(cluster_name="train-up", command="false"))
    assert result.exit_code == 100 and not result.succeeded
    assert result.job_status == JobState.FAILED


def test_status_of_an_up_cluster_drops_handle_and_ssh_keys() -> None:
    status = _client(FakeSkyPilotServer()).get_status("train-up")
    assert status.status == ClusterState.UP
    assert status.autostop_minutes == 30 and status.to_down
    dumped = status.model_dump_json()
    assert "PRIVATE-KEY" not in dumped and "gAROLg" not in dumped
    assert status.model_extra == {"a_field_from_a_newer_server": {"nested": True}}
    listing = _client(FakeSkyPilotServer()).list_clusters()
    assert listing.total == 1 and listing.clusters[0].name == UP_CLUSTER["name"]


def test_queue_and_logs_of_an_up_cluster() -> None:
    client = _client(FakeSkyPilotServer())
    jobs = client.queue("train-up")
    assert [(j.job_id, j.status) for j in jobs] == [(1, JobState.SUCCEEDED)]
    logs = client.get_logs(LogsRequest(cluster_name="train-up", job_id=1))
    assert logs.exit_code == 0 and "hello from the cluster" in logs.output
    lines = list(client.stream_logs(LogsRequest(cluster_name="train-up", job_id=1)))
    assert "(task, pid=4242) hello from the cluster" in lines
    assert not any("sky-payload" in line for line in lines)


def test_launch_without_detach_waits_for_the_job() -> None:
    handle = _client(FakeSkyPilotServer(job_exit_code=0)).launch(
        LaunchRequest(cluster_name="train-up", task={"run": "python train.py"}, detach=False)
    )
    result = handle.result()
    assert result.job_id == 1 and result.exit_code == 0
    assert result.output is not None and "hello from the cluster" in result.output


def test_progress_phases_are_monotonic_and_end_in_success() -> None:
    client = _client(FakeSkyPilotServer())
    handle = client.launch(LaunchRequest(cluster_name="train-up", task={"run": "true"}))
    events = list(handle.progress())
    phases = [e.phase for e in events]
    assert phases[-1] == LaunchPhase.SUCCEEDED and events[-1].percent == 100
    assert LaunchPhase.INSTANCE_READY in phases and LaunchPhase.SETTING_UP in phases
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)


@pytest.mark.anyio
async def test_async_execute_and_progress_match_sync() -> None:
    fake = FakeSkyPilotServer()
    sync_result = _client(fake).execute(ExecuteRequest(cluster_name="train-up", command="x"))
    async with AsyncSkyPilotClient(
        URL, http_client=httpx.AsyncClient(transport=fake.transport())
    ) as client:
        result = await client.execute(ExecuteRequest(cluster_name="train-up", command="x"))
        handle = await client.launch(LaunchRequest(cluster_name="train-up", task={"run": "x"}))
        events = [e async for e in handle.progress()]
        seen: list[LaunchPhase] = []
        await handle.result(on_progress=lambda e: seen.append(e.phase))
    assert result.model_dump(exclude={"request_id"}) == sync_result.model_dump(
        exclude={"request_id"}
    )
    assert events[-1].phase == LaunchPhase.SUCCEEDED
    assert seen[-1] == LaunchPhase.SUCCEEDED
