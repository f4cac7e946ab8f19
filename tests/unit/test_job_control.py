"""Job control on an UP cluster (submit, job_status, cancel_jobs, endpoints, download_logs)
and cost_report rows, against the FAITHFUL FAKE in tests/fakes/transcript_server.py (not the
real server: the offline real server has no UP cluster). Sync and async alike."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from skypilot_client import (
    AsyncSkyPilotClient,
    ClusterState,
    ExecuteRequest,
    JobState,
    SkyPilotClient,
    SubmittedJob,
)
from skypilot_client._downloads import extract_folders
from skypilot_client.errors import InvalidInputError, MalformedResponseError
from skypilot_client.resources.facts import disabled_clouds
from tests.fakes.transcript_server import (
    COST_REPORT,
    ENDPOINTS,
    LOG_STAGING,
    FakeSkyPilotServer,
)

URL = "http://fake-skypilot.test:46580"


def _client(fake: FakeSkyPilotServer) -> SkyPilotClient:
    return SkyPilotClient(URL, http_client=httpx.Client(transport=fake.transport()))


def _aclient(fake: FakeSkyPilotServer) -> AsyncSkyPilotClient:
    return AsyncSkyPilotClient(URL, http_client=httpx.AsyncClient(transport=fake.transport()))


def _bodies(fake: FakeSkyPilotServer, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in fake.requests if r.url.path == path]


def test_submit_returns_the_job_id_without_reading_its_log() -> None:
    fake = FakeSkyPilotServer(job_status="RUNNING")
    job = _client(fake).submit(ExecuteRequest(cluster_name="train-up", command="sleep 600"))
    assert isinstance(job, SubmittedJob)
    assert (job.cluster_name, job.job_id) == ("train-up", 1) and job.request_id
    paths = [r.url.path for r in fake.requests]
    assert "/exec" in paths and "/logs" not in paths and "/job_status" not in paths


def test_job_status_known_unknown_and_latest() -> None:
    fake = FakeSkyPilotServer(job_status="RUNNING")
    fake.jobs[2] = "SUCCEEDED"
    client = _client(fake)
    assert client.job_status("train-up", [1, 2, 7]) == {
        1: JobState.RUNNING,
        2: JobState.SUCCEEDED,
        7: None,  # no such job: None, not a made-up status
    }
    assert client.job_status("train-up") == {2: JobState.SUCCEEDED}  # the latest job
    assert _bodies(fake, "/job_status")[-1]["job_ids"] is None


def test_job_status_of_a_cluster_without_jobs_is_empty() -> None:
    fake = FakeSkyPilotServer()
    fake.jobs.clear()
    assert _client(fake).job_status("train-up") == {}  # the server answers {None: None}


def test_a_job_status_from_a_newer_server_is_unknown() -> None:
    fake = FakeSkyPilotServer(job_status="PAUSED_BY_A_NEWER_SERVER")
    assert _client(fake).job_status("train-up", [1]) == {1: JobState.UNKNOWN}


def test_cancel_by_ids_and_all() -> None:
    fake = FakeSkyPilotServer(job_status="RUNNING")
    fake.jobs.update({2: "RUNNING", 3: "SUCCEEDED"})
    client = _client(fake)
    client.cancel_jobs("train-up", [1])
    assert client.job_status("train-up", [1, 2]) == {1: JobState.CANCELLED, 2: JobState.RUNNING}
    client.cancel_jobs("train-up", all=True)
    assert fake.jobs == {1: "CANCELLED", 2: "CANCELLED", 3: "SUCCEEDED"}
    first, second = _bodies(fake, "/cancel")
    assert (first["job_ids"], first["all"]) == ([1], False)
    assert (second["job_ids"], second["all"], second["all_users"]) == (None, True, False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # neither: the server would cancel the latest job, a guess we do not make
        {"job_ids": [1], "all": True},
        {"job_ids": []},
        {"job_ids": [0]},
        {"job_ids": [True]},
        {"job_ids": "1"},
        {"all_users": True},
    ],
)
def test_cancel_arguments_are_checked_before_any_call(kwargs: dict[str, Any]) -> None:
    fake = FakeSkyPilotServer()
    with pytest.raises(InvalidInputError):
        _client(fake).cancel_jobs("train-up", **kwargs)
    assert fake.requests == []


def test_endpoints_map_ports_to_urls() -> None:
    fake = FakeSkyPilotServer()
    client = _client(fake)
    assert client.endpoints("train-up") == ENDPOINTS
    assert client.endpoints("train-up", 8888) == {8888: ENDPOINTS[8888]}
    body = _bodies(fake, "/endpoints")[-1]
    assert (body["cluster"], body["port"]) == ("train-up", 8888)
    with pytest.raises(InvalidInputError):
        client.endpoints("train-up", 70000)


def test_cost_report_rows_are_typed_and_drop_the_pickle() -> None:
    rows = _client(FakeSkyPilotServer()).cost_report(days=7)
    assert [r.name for r in rows] == [row["name"] for row in COST_REPORT]
    live, gone = rows
    assert live.status == ClusterState.INIT and gone.status is None
    assert live.total_cost == pytest.approx(0.00938888888888889) and live.duration == 169
    assert live.usage_intervals == [(1795434149, None)]
    assert gone.usage_intervals == [(1795000000, 1795003600)]
    assert live.launched_at is not None and live.launched_at.year == 2026
    assert "resources" not in live.model_dump() and "gASV" not in live.model_dump_json()
    with pytest.raises(InvalidInputError):
        _client(FakeSkyPilotServer()).cost_report(days=0)


@pytest.mark.parametrize(
    ("path", "answer", "field", "call"),
    [
        ("/job_status", ["RUNNING"], "return_value", "job_status"),
        ("/job_status", {"one": "RUNNING"}, "return_value['one']", "job_status"),
        ("/job_status", {"1": 5}, "return_value['1']", "job_status"),
        ("/endpoints", {"8888": None}, "return_value['8888']", "endpoints"),
        ("/endpoints", "http://x", "return_value", "endpoints"),
        ("/cost_report", [{"duration": 3}], "return_value[0].name", "cost_report"),
        ("/cost_report", {"name": "c"}, "return_value", "cost_report"),
        ("/exec", {"job_id": "1"}, "return_value.job_id", "submit"),
    ],
)
def test_unreadable_answers_name_the_field(path: str, answer: Any, field: str, call: str) -> None:
    fake = FakeSkyPilotServer()
    fake.answers[path] = answer
    client = _client(fake)
    calls: dict[str, Callable[[], object]] = {
        "job_status": lambda: client.job_status("train-up", [1]),
        "endpoints": lambda: client.endpoints("train-up"),
        "cost_report": lambda: client.cost_report(),
        "submit": lambda: client.submit(ExecuteRequest(cluster_name="train-up", command="x")),
    }
    with pytest.raises(MalformedResponseError) as info:
        calls[call]()
    assert info.value.field == field


@pytest.mark.anyio
async def test_async_twins_answer_the_same() -> None:
    sync_fake, async_fake = (
        FakeSkyPilotServer(job_status="RUNNING"),
        FakeSkyPilotServer(job_status="RUNNING"),
    )
    client = _client(sync_fake)
    request = ExecuteRequest(cluster_name="train-up", command="sleep 600")
    expected = (
        client.submit(request).job_id,
        client.job_status("train-up", [1, 9]),
        client.endpoints("train-up"),
        client.cost_report(),
    )
    client.cancel_jobs("train-up", [1])
    async with _aclient(async_fake) as aclient:
        got = (
            (await aclient.submit(request)).job_id,
            await aclient.job_status("train-up", [1, 9]),
            await aclient.endpoints("train-up"),
            await aclient.cost_report(),
        )
        await aclient.cancel_jobs("train-up", [1])
        with pytest.raises(InvalidInputError):
            await aclient.cancel_jobs("train-up", [1], all=True)
    assert got == expected
    assert async_fake.jobs == sync_fake.jobs == {1: "CANCELLED"}


def test_disabled_clouds_are_read_from_the_check_report() -> None:
    report = (
        "Checking credentials to enable infra for SkyPilot.\n"
        "  AWS: disabled \n"
        "    Reason [compute, storage]: AWS dependencies are not installed.\n"
        "      $ pip install skypilot[aws]\n"
        "  Hyperbolic: enabled [compute]\n"
        "  Cudo: disabled \n"
        "    Reason [compute]: Cudo tools are not installed.\n"
        "\n"
        "🎉 Enabled infra 🎉\n"
        "  Hyperbolic [compute]\n"
    )
    assert disabled_clouds(report) == {
        "AWS": "Reason [compute, storage]: AWS dependencies are not installed.\n"
        "$ pip install skypilot[aws]",
        "Cudo": "Reason [compute]: Cudo tools are not installed.",
    }


def test_download_logs_unpacks_each_job_folder(tmp_path: Path) -> None:
    fake = FakeSkyPilotServer()
    fake.jobs[2] = "FAILED"
    folders = _client(fake).download_logs("train-up", [1, 2], local_dir=tmp_path)
    assert set(folders) == {1, 2}
    for job_id, folder in folders.items():
        assert folder.parent == tmp_path.resolve() and folder.name.endswith(str(job_id))
        assert "hello from the cluster" in (folder / "run.log").read_text()
        assert (folder / "tasks" / "run.log").read_text() == "task log\n"
        assert not (folder / "latest").exists()  # the server's symbolic link is not recreated
    logs_body, download_body = _bodies(fake, "/download_logs")[0], _bodies(fake, "/download")[0]
    assert logs_body["job_ids"] == ["1", "2"]  # strings, as ClusterJobsDownloadLogsBody has them
    assert download_body["folder_paths"] == sorted(
        f"{LOG_STAGING}/{folder.name}" for folder in folders.values()
    )


@pytest.mark.anyio
async def test_download_logs_async_latest_job(tmp_path: Path) -> None:
    fake = FakeSkyPilotServer()
    async with _aclient(fake) as aclient:
        folders = await aclient.download_logs("train-up", local_dir=tmp_path / "logs")
    assert list(folders) == [1] and (folders[1] / "run.log").is_file()
    assert _bodies(fake, "/download_logs")[0]["job_ids"] is None


def test_download_logs_of_no_job_downloads_nothing(tmp_path: Path) -> None:
    fake = FakeSkyPilotServer()
    fake.answers["/download_logs"] = {}
    assert _client(fake).download_logs("train-up", local_dir=tmp_path) == {}
    assert "/download" not in [r.url.path for r in fake.requests]


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [b"not a zip", _zip({"../escape.log": b"x"}), _zip({"/etc/evil.log": b"x"})],
    ids=["garbage", "dotdot", "absolute"],
)
def test_an_unsafe_or_unreadable_download_is_malformed(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(MalformedResponseError) as info:
        extract_folders(data, tmp_path / "in", request_id="r-1")
    assert info.value.field == "/download body"
    assert not (tmp_path / "escape.log").exists()


def test_download_logs_unreadable_answer_names_the_field(tmp_path: Path) -> None:
    fake = FakeSkyPilotServer()
    fake.answers["/download_logs"] = {"1": 7}
    with pytest.raises(MalformedResponseError) as info:
        _client(fake).download_logs("train-up", [1], local_dir=tmp_path)
    assert info.value.field == "return_value['1']"
