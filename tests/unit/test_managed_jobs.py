"""Managed jobs (``client.jobs``) against the FAITHFUL FAKE of a server with an UP jobs
controller (tests/fakes/managed_jobs_fake.py, not the real server); the offline paths run
against the real server in tests/integration/test_managed_jobs_live.py."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from skypilot_client import (
    AsyncSkyPilotClient,
    AWSCredentials,
    CloudCredentials,
    ManagedJob,
    ManagedJobLogs,
    ManagedJobStatus,
    SkyPilotClient,
    errors,
)
from tests.fakes.managed_jobs_fake import FakeManagedJobsServer, record

URL = "http://fake-skypilot.test:46580"


def _client(fake: FakeManagedJobsServer) -> SkyPilotClient:
    return SkyPilotClient(URL, http_client=httpx.Client(transport=fake.transport()))


def _aclient(fake: FakeManagedJobsServer) -> AsyncSkyPilotClient:
    return AsyncSkyPilotClient(URL, http_client=httpx.AsyncClient(transport=fake.transport()))


# ---------------------------------------------------------------------------- queue


def test_queue_reads_typed_records() -> None:
    fake = FakeManagedJobsServer()
    jobs = _client(fake).jobs.queue()
    assert [j.job_id for j in jobs] == [2, 1]
    done = jobs[1]
    assert isinstance(done, ManagedJob)
    assert done.name == "train" and done.task_id == 0
    assert done.status is ManagedJobStatus.SUCCEEDED and done.status.is_terminal
    assert jobs[0].status is ManagedJobStatus.RUNNING and not jobs[0].status.is_terminal
    assert done.resources == "1x[CPU:2]" and done.infra == "Hyperbolic/us-central-1"
    assert done.submitted_at == datetime.fromtimestamp(1795430100.5, tz=timezone.utc)
    assert jobs[0].end_at is None
    assert done.duration == 42.5 and done.recovery_count == 1
    assert done.failure_reason is None and done.user_name == "sdk-tests"
    assert done.model_extra is not None
    assert done.model_extra["a_field_from_a_newer_server"] == "kept"
    assert "entrypoint" not in done.model_extra  # opaque fields are never kept
    body = fake.bodies("/jobs/queue/v2")[0]
    assert body["refresh"] is False and body["skip_finished"] is False
    assert body["all_users"] is False and body["job_ids"] is None


def test_queue_filters_travel_to_the_server() -> None:
    fake = FakeManagedJobsServer()
    jobs = _client(fake).jobs.queue(skip_finished=True, all_users=True, job_ids=[2, 1])
    assert [j.job_id for j in jobs] == [2]
    body = fake.bodies("/jobs/queue/v2")[0]
    assert body["skip_finished"] is True and body["all_users"] is True
    assert body["job_ids"] == [2, 1]


@pytest.mark.anyio
async def test_queue_sync_and_async_agree() -> None:
    sync_jobs = _client(FakeManagedJobsServer()).jobs.queue()
    async with _aclient(FakeManagedJobsServer()) as client:
        async_jobs = await client.jobs.queue()
    assert async_jobs == sync_jobs


def test_every_status_of_0_14_1_and_an_unknown_new_one() -> None:
    statuses = [
        "PENDING", "SUBMITTED", "STARTING", "RUNNING", "WINDING_DOWN", "RECOVERING",
        "CANCELLING", "SUCCEEDED", "CANCELLED", "FAILED", "FAILED_SETUP", "FAILED_PRECHECKS",
        "FAILED_NO_RESOURCE", "FAILED_CONTROLLER", "PAUSED_BY_A_NEWER_SERVER",
    ]  # fmt: skip
    fake = FakeManagedJobsServer([record(i + 1, f"j{i}", s) for i, s in enumerate(statuses)])
    got = [j.status for j in _client(fake).jobs.queue()]
    assert [s.value for s in got if s is not None][:-1] == statuses[:-1]
    assert got[-1] is ManagedJobStatus.UNKNOWN and not got[-1].is_terminal
    terminal = {s.value for s in ManagedJobStatus if s.is_terminal}
    assert terminal == {
        "SUCCEEDED", "CANCELLED", "FAILED", "FAILED_SETUP", "FAILED_PRECHECKS",
        "FAILED_NO_RESOURCE", "FAILED_CONTROLLER",
    }  # fmt: skip
    assert {s.value for s in ManagedJobStatus if s.is_failed} == terminal - {
        "SUCCEEDED",
        "CANCELLED",
    }


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"jobs": "nope", "total": 0}, "return_value.jobs"),
        ({"jobs": ["nope"]}, "return_value.jobs[0]"),
        ({"jobs": [{"job_name": "x", "status": "RUNNING"}]}, "return_value.jobs[0].job_id"),
        ({"jobs": [{**record(1, "x", "RUNNING"), "status": 7}]}, "return_value.jobs[0].status"),
        ({"jobs": [{**record(1, "x", "RUNNING"), "submitted_at": "soon"}]}, "submitted_at"),
        ("a string", "return_value"),
    ],
)
def test_malformed_queue_answers_name_the_field(answer: Any, field: str) -> None:
    fake = FakeManagedJobsServer()
    fake.override["sky.jobs.queue_v2"] = answer
    with pytest.raises(errors.MalformedResponseError) as info:
        _client(fake).jobs.queue()
    assert info.value.field is not None and field in info.value.field


def test_a_plain_list_answer_is_read_too() -> None:
    # encode_jobs_queue_v2 returns a bare list when the runner gives no totals.
    fake = FakeManagedJobsServer()
    fake.override["sky.jobs.queue_v2"] = [record(5, "solo", "PENDING")]
    assert [j.job_id for j in _client(fake).jobs.queue()] == [5]


@pytest.mark.parametrize("bad", [["1"], [0], [True], "1,2", 3])
def test_bad_job_ids_are_refused_before_sending(bad: Any) -> None:
    fake = FakeManagedJobsServer()
    with pytest.raises(errors.InvalidInputError):
        _client(fake).jobs.queue(job_ids=bad)
    assert fake.requests == []


# ---------------------------------------------------------------------------- launch


TASK = "name: train\nresources:\n  cpus: 2\nrun: python train.py\n"


def test_launch_returns_the_managed_job_ids() -> None:
    fake = FakeManagedJobsServer()
    handle = _client(fake).jobs.launch(TASK, name="train", envs={"EPOCHS": "3"})
    assert handle.operation == "jobs.launch" and handle.request_id
    assert handle.result(timeout=30) == [3]
    body = fake.bodies("/jobs/launch")[0]
    assert body["name"] == "train"
    task = yaml.safe_load(body["task"])
    assert task["envs"] == {"EPOCHS": "3"} and task["run"] == "python train.py"


def test_launch_without_a_name_still_sends_the_required_null_name() -> None:
    # JobsLaunchBody.name is Optional but has no default: leaving it out is a 422.
    fake = FakeManagedJobsServer()
    _client(fake).jobs.launch({"run": "echo hi"}).result(timeout=30)
    body = fake.bodies("/jobs/launch")[0]
    assert "name" in body and body["name"] is None


def test_launch_of_several_jobs_returns_every_id() -> None:
    fake = FakeManagedJobsServer()
    fake.launch_job_id = [7, 8]
    assert _client(fake).jobs.launch(TASK).result(timeout=30) == [7, 8]


@pytest.mark.parametrize("job_id", [None, "3", [1, "2"], True])
def test_unreadable_launch_ids_are_malformed_and_maybe_submitted(job_id: Any) -> None:
    fake = FakeManagedJobsServer()
    fake.launch_job_id = job_id
    with pytest.raises(errors.MalformedResponseError) as info:
        _client(fake).jobs.launch(TASK).result(timeout=30)
    assert info.value.field == "return_value.job_id"
    assert info.value.maybe_submitted and not info.value.is_retryable


def test_launch_uploads_the_local_workdir_first(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    fake = FakeManagedJobsServer()
    task = {"workdir": str(tmp_path), "run": "python train.py"}
    _client(fake).jobs.launch(task).result(timeout=30)
    paths = [r.url.path for r in fake.requests]
    assert paths.index("/upload_v2/blob") < paths.index("/jobs/launch")
    body = fake.bodies("/jobs/launch")[0]
    assert body["file_mounts_blob_id"]
    assert yaml.safe_load(body["task"])["file_mounts_mapping"] == {str(tmp_path): str(tmp_path)}


def test_launch_refuses_a_bad_task_before_sending() -> None:
    fake = FakeManagedJobsServer()
    with pytest.raises(errors.InvalidInputError):
        _client(fake).jobs.launch("")
    with pytest.raises(errors.InvalidInputError):
        _client(fake).jobs.launch({"workdir": "/no/such/dir/anywhere", "run": "true"})
    assert fake.requests == []


@pytest.mark.anyio
async def test_async_launch_returns_the_ids() -> None:
    fake = FakeManagedJobsServer()
    async with _aclient(fake) as client:
        handle = await client.jobs.launch(TASK, name="train")
        assert await handle.result(timeout=30) == [3]


# ---------------------------------------------------------------------------- cancel


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"job_ids": [1], "name": "train"},
        {"job_ids": [1], "all": True},
        {"name": "train", "all": True},
        {"job_ids": []},
        {"job_ids": [0]},
        {"all_users": True},
        {"name": ""},
    ],
)
def test_cancel_needs_exactly_one_target_checked_before_sending(kwargs: dict[str, Any]) -> None:
    fake = FakeManagedJobsServer()
    with pytest.raises(errors.InvalidInputError):
        _client(fake).jobs.cancel(**kwargs)
    assert fake.requests == []


def test_cancel_by_ids_name_and_all() -> None:
    fake = FakeManagedJobsServer(
        [record(3, "c", "RUNNING"), record(2, "b", "PENDING"), record(1, "a", "RECOVERING")]
    )
    jobs = _client(fake).jobs
    jobs.cancel([3])
    assert {j.job_id: j.status for j in jobs.queue()}[3] is ManagedJobStatus.CANCELLED
    jobs.cancel(name="b")
    jobs.cancel(all=True, all_users=True)
    assert {j.status for j in jobs.queue()} == {ManagedJobStatus.CANCELLED}
    bodies = fake.bodies("/jobs/cancel")
    assert [(b["job_ids"], b.get("name"), b["all"], b["all_users"]) for b in bodies] == [
        ([3], None, False, False),
        (None, "b", False, False),
        (None, None, True, True),
    ]


@pytest.mark.anyio
async def test_async_cancel() -> None:
    fake = FakeManagedJobsServer([record(2, "b", "RUNNING")])
    async with _aclient(fake) as client:
        await client.jobs.cancel([2])
        assert [j.status for j in await client.jobs.queue()] == [ManagedJobStatus.CANCELLED]
    with pytest.raises(errors.InvalidInputError):
        await _aclient(fake).jobs.cancel()


# ---------------------------------------------------------------------------- logs


def test_logs_whole_with_exit_code() -> None:
    fake = FakeManagedJobsServer()
    logs = _client(fake).jobs.logs(1, timeout=30)
    assert isinstance(logs, ManagedJobLogs)
    assert logs.job_id == 1 and logs.exit_code == 0 and not logs.controller
    assert logs.output.splitlines() == [
        "(train, pid=2121) epoch 1",
        "(train, pid=2121) epoch 3",
        "✓ Managed job finished: 1 (status: SUCCEEDED).",
    ]
    body = fake.bodies("/jobs/logs")[0]
    assert body["job_id"] == 1 and body["follow"] is True and body["controller"] is False


def test_controller_logs_by_name() -> None:
    fake = FakeManagedJobsServer()
    logs = _client(fake).jobs.logs(name="train", controller=True, tail=50)
    assert logs.controller and logs.name == "train"
    assert "Job 1 SUCCEEDED." in logs.output
    body = fake.bodies("/jobs/logs")[0]
    assert body["name"] == "train" and body["controller"] is True and body["tail"] == 50


def test_a_failed_job_reports_its_exit_code() -> None:
    fake = FakeManagedJobsServer([record(4, "bad", "FAILED_SETUP")])
    assert _client(fake).jobs.logs(4).exit_code == 100


@pytest.mark.parametrize(
    "kwargs", [{"job_id": 1, "name": "train"}, {"job_id": 0}, {"tail": 0}, {"name": ""}]
)
def test_logs_arguments_checked_before_sending(kwargs: dict[str, Any]) -> None:
    fake = FakeManagedJobsServer()
    client = _client(fake)
    with pytest.raises(errors.InvalidInputError):
        client.jobs.logs(**kwargs)
    with pytest.raises(errors.InvalidInputError):
        client.jobs.stream_logs(**kwargs)  # at the call, not at the first line
    assert fake.requests == []


@pytest.mark.anyio
async def test_streamed_logs_sync_and_async_agree() -> None:
    sync_lines = list(_client(FakeManagedJobsServer()).jobs.stream_logs(1))
    async with _aclient(FakeManagedJobsServer()) as client:
        async_lines = [line async for line in client.jobs.stream_logs(1)]
        whole = await client.jobs.logs(1)
    assert async_lines == sync_lines
    assert "(train, pid=2121) epoch 2\r(train, pid=2121) epoch 3" in sync_lines
    assert not any("sky-payload" in line for line in sync_lines)
    assert whole.exit_code == 0


# ---------------------------------------------------------------------------- wait


def test_wait_returns_the_exit_code_of_an_ended_job() -> None:
    fake = FakeManagedJobsServer()
    assert _client(fake).jobs.wait(1, timeout=120) == 0
    body = fake.bodies("/jobs/wait")[0]
    assert body["job_id"] == 1 and body["poll_interval"] == 15
    assert 0 < body["timeout"] <= 120  # the server stops waiting by our deadline


def test_wait_by_name_for_a_cancelled_job() -> None:
    fake = FakeManagedJobsServer([record(6, "x", "CANCELLED")])
    assert _client(fake).jobs.wait(name="x", poll_interval=5) == 103


def test_wait_past_the_deadline_is_a_wait_timeout() -> None:
    fake = FakeManagedJobsServer()
    with pytest.raises(errors.WaitTimeoutError) as info:
        _client(fake).jobs.wait(2, timeout=10)
    assert "Timed out waiting for managed job 2" in str(info.value)
    assert isinstance(info.value.__cause__, errors.RequestFailedError)


def test_wait_for_an_unknown_job_is_the_server_error() -> None:
    fake = FakeManagedJobsServer()
    with pytest.raises(errors.RequestFailedError) as info:
        _client(fake).jobs.wait(99)
    assert info.value.error_type == "ValueError" and "Managed job 99 not found" in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{}, {"job_id": 1, "name": "x"}, {"job_id": 1, "poll_interval": 4}]
)
def test_wait_arguments_checked_before_sending(kwargs: dict[str, Any]) -> None:
    fake = FakeManagedJobsServer()
    with pytest.raises(errors.InvalidInputError):
        _client(fake).jobs.wait(**kwargs)
    assert fake.requests == []


@pytest.mark.parametrize("answer", [None, "0", True, {"exit_code": 0}])
def test_malformed_wait_answers(answer: Any) -> None:
    fake = FakeManagedJobsServer()
    fake.override["sky.jobs.wait"] = answer
    with pytest.raises(errors.MalformedResponseError) as info:
        _client(fake).jobs.wait(1)
    assert info.value.field == "return_value"


@pytest.mark.anyio
async def test_async_wait() -> None:
    async with _aclient(FakeManagedJobsServer()) as client:
        assert await client.jobs.wait(1) == 0
        with pytest.raises(errors.WaitTimeoutError):
            await client.jobs.wait(2, timeout=10)


def test_with_options_copies_reach_managed_jobs_with_their_own_token() -> None:
    fake = FakeManagedJobsServer()
    client = _client(fake).with_options(token="sky_" + "a" * 40)
    client.jobs.queue()
    sent = next(r for r in fake.requests if r.url.path == "/jobs/queue/v2")
    assert sent.headers["authorization"].startswith("Bearer sky_")
    assert json.loads(sent.content)["env_vars"]["SKYPILOT_USER_ID"]


def test_launch_credentials_travel_in_env_vars_and_never_leak_in_errors() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    creds = CloudCredentials(
        aws=AWSCredentials(access_key_id="AKIASDKTEST", secret_access_key=secret)
    )
    fake = FakeManagedJobsServer()
    fake.launch_error = ("ValueError", f"bad key {secret} for the controller")
    handle = _client(fake).jobs.launch(TASK, credentials=creds)
    assert fake.bodies("/jobs/launch")[0]["env_vars"]["AWS_SECRET_ACCESS_KEY"] == secret
    with pytest.raises(errors.RequestFailedError) as info:
        handle.result(timeout=30)
    assert secret not in str(info.value) and secret not in repr(info.value.body)
    assert "bad key" in info.value.message
