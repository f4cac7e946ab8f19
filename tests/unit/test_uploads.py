"""Uploads of a task's local files: packing (no network) and the upload flow against an
in-process fake of the server's upload routes (``httpx.MockTransport``), sync and async."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from skypilot_client import (
    AsyncSkyPilotClient,
    ExecuteRequest,
    LaunchPhase,
    LaunchRequest,
    ProgressEvent,
    SkyPilotClient,
)
from skypilot_client._deadline import Deadline
from skypilot_client._effects import Call
from skypilot_client.errors import (
    APITimeoutError,
    InvalidInputError,
    NotFoundError,
    SkyPilotError,
)
from skypilot_client.resources import uploads
from tests.conftest import SENTINEL_TOKEN

pytestmark = pytest.mark.anyio

MODES = ["sync", "async"]
REQUEST_ID = "0b6c1f7e-3d1a-4f59-8a1e-6c2d9b4e7a10"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SKYPILOT_API_SERVER_URL", "SKYPILOT_API_SERVER_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SKYPILOT_SERVICE_ACCOUNT_TOKEN", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def workdir(root: Path) -> Path:
    """A small workdir: files, a nested folder, an empty folder, an ignored file, a link."""
    wd = root / "wd"
    (wd / "pkg" / "deep").mkdir(parents=True)
    (wd / "empty").mkdir()
    (wd / "main.py").write_text("print('hi')\n")
    (wd / "pkg" / "deep" / "data.txt").write_text("data\n")
    (wd / "debug.log").write_text("noise\n")
    (wd / ".skyignore").write_text("# comment\n*.log\n")
    (wd / "link.py").symlink_to(wd / "main.py")  # absolute target: stored relative
    return wd


def names(zip_path: str) -> set[str]:
    with zipfile.ZipFile(zip_path) as z:
        return {i.filename for i in z.infolist()}


def rel_names(zip_path: str, root: Path) -> set[str]:
    # Symlink entries keep a leading "/" (as upstream writes them); the server strips it.
    prefix = str(root).lstrip("/") + "/"
    stripped = {n.lstrip("/") for n in names(zip_path)}
    return {n[len(prefix) :] for n in stripped if n.startswith(prefix)} - {""}


# ---------------------------------------------------------------------------- packing


def test_pack_keeps_nested_empty_and_links_and_honours_skyignore(tmp_path: Path) -> None:
    wd = workdir(tmp_path)
    packed = uploads.pack([str(wd)], directory=str(tmp_path))
    try:
        assert rel_names(packed.path, wd) == {
            ".skyignore",
            "main.py",
            "pkg/",
            "pkg/deep/",
            "pkg/deep/data.txt",
            "empty/",
            "link.py",
        }
        with zipfile.ZipFile(packed.path) as z:
            link = next(i for i in z.infolist() if i.filename.endswith("link.py"))
            assert link.external_attr >> 28 == 0xA
            assert z.read(link) == b"main.py"  # relative, so it resolves on the server
        assert packed.blob_id == uploads.blob_id_of_zip(packed.path)
    finally:
        os.unlink(packed.path)


def test_incompressible_files_are_stored_and_text_deflated(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(200_000))
    (folder / "train.py").write_text("import torch\n" * 20_000)
    packed = uploads.pack([str(folder)], directory=str(tmp_path))
    try:
        with zipfile.ZipFile(packed.path) as z:
            kinds = {Path(i.filename).name: i.compress_type for i in z.infolist()}
            assert (
                z.read(str(folder / "train.py").lstrip("/")) == (folder / "train.py").read_bytes()
            )
        assert kinds["weights.bin"] == zipfile.ZIP_STORED
        assert kinds["train.py"] == zipfile.ZIP_DEFLATED
        assert packed.blob_id == uploads.blob_id_of_zip(packed.path)
    finally:
        os.unlink(packed.path)


def test_skyignore_rules(tmp_path: Path) -> None:
    root = tmp_path / "r"
    for rel in ("build/x.o", "src/build/y.o", "src/keep.py", "a.log", "src/b.log", "top.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".skyignore").write_text("/build\n*.log\n\n# /top.txt\n")
    # "/build" is anchored at the root; "*.log" matches at any depth.
    assert uploads.excluded_paths(str(root)) == {"build", "a.log", "src/b.log"}


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


@needs_git
def test_gitignore_used_only_without_skyignore_and_only_in_a_repo(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "out").mkdir(parents=True)
    (root / "out" / "bin").write_text("x")
    (root / "keep.py").write_text("x")
    (root / "secret.env").write_text("x")
    (root / ".gitignore").write_text("out/\n*.env\n")
    assert uploads.excluded_paths(str(root)) == set()  # not a repository: .gitignore unused
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    assert uploads.excluded_paths(str(root)) == {"out", "secret.env"}
    (root / ".skyignore").write_text("keep.py\n")
    assert uploads.excluded_paths(str(root)) == {"keep.py"}  # .skyignore wins


def test_explicit_file_is_never_ignored(tmp_path: Path) -> None:
    wd = workdir(tmp_path)
    log = wd / "debug.log"
    packed = uploads.pack([str(wd), str(log)], directory=str(tmp_path))
    try:
        assert str(log).lstrip("/") in names(packed.path)
    finally:
        os.unlink(packed.path)


def test_file_mount_inside_the_workdir_is_zipped_once(tmp_path: Path) -> None:
    wd = workdir(tmp_path)
    packed = uploads.pack([str(wd), str(wd / "main.py"), str(wd)], directory=str(tmp_path))
    try:
        with zipfile.ZipFile(packed.path) as z:
            all_names = [i.filename for i in z.infolist()]
        assert len(all_names) == len(set(all_names)) == packed.entries
    finally:
        os.unlink(packed.path)


async def test_async_progress_callback_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    async def report(event: ProgressEvent) -> None:
        pass

    server = FakeServer()
    runner = Runner("async", server)
    with pytest.raises(InvalidInputError, match="plain function"):
        await runner.upload({"workdir": str(workdir(tmp_path))}, on_progress=report)
    assert server.log == []


def test_blob_id_is_stable_and_follows_content(tmp_path: Path) -> None:
    wd = workdir(tmp_path)

    def blob() -> str:
        packed = uploads.pack([str(wd)], directory=str(tmp_path))
        os.unlink(packed.path)
        return packed.blob_id

    first = blob()
    os.utime(wd / "main.py", (1_000_000_000, 1_000_000_000))  # timestamps do not count
    assert blob() == first
    (wd / "debug.log").write_text("ignored files do not count either\n")
    assert blob() == first
    (wd / "main.py").write_text("print('changed')\n")
    changed = blob()
    assert changed != first and len(changed) == 64
    (wd / "empty" / "new").mkdir()
    assert blob() != changed  # a new empty folder is content too


def test_chunk_plan() -> None:
    assert uploads.chunk_plan(0, 10) == [uploads.Chunk(0, 1, 0, 0)]
    plan = uploads.chunk_plan(25, 10)
    assert [(c.index, c.total, c.offset, c.length) for c in plan] == [
        (0, 3, 0, 10),
        (1, 3, 10, 10),
        (2, 3, 20, 5),
    ]
    assert uploads.CHUNK_BYTES == 95_000_000  # the server's own chunk size


def test_file_slice_reads_its_range_again_on_each_iteration(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 1000)
    sent: list[int] = []
    piece = uploads.FileSlice(str(path), 1000, 70_000, sent.append)
    first = b"".join(piece)
    assert first == path.read_bytes()[1000:71_000] and len(piece) == 70_000
    assert b"".join(piece) == first  # a retried request sends the same bytes
    assert sent[-1] == 70_000


def test_find_local_files_rewrites_local_paths_and_passes_cloud_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wd = workdir(tmp_path)
    monkeypatch.chdir(tmp_path)
    task = {
        "workdir": "wd",
        "file_mounts": {
            "/data": "s3://bucket/data",
            "/models": "gs://bucket/m",
            "/r2": "r2://bucket/x",
            "/web": "https://example.com/file.bin",
            "/cfg": "wd/main.py",
            "/store": {"source": ["wd/pkg", "s3://b/y"], "mode": "COPY"},
            "/bucket": {"name": "b", "mode": "MOUNT"},
        },
        "run": "ls",
    }
    found = uploads.find_local_files(task)
    assert found.paths == [str(wd), str(wd / "main.py"), str(wd / "pkg")]
    mounts = found.task["file_mounts"]
    assert mounts["/data"] == "s3://bucket/data" and mounts["/web"].startswith("https://")
    assert mounts["/r2"] == "r2://bucket/x" and mounts["/models"] == "gs://bucket/m"
    assert mounts["/store"]["source"] == [str(wd / "pkg"), "s3://b/y"]
    assert mounts["/bucket"] == {"name": "b", "mode": "MOUNT"}
    assert found.task["workdir"] == str(wd)
    assert found.task["file_mounts_mapping"] == {p: p for p in found.paths}
    assert "file_mounts_mapping" not in task  # the caller's task is not changed
    exec_only = uploads.find_local_files(task, workdir_only=True)
    assert exec_only.paths == [str(wd)]
    cloud_only = uploads.find_local_files({"file_mounts": {"/d": "s3://b"}, "run": "x"})
    assert cloud_only.paths == [] and "file_mounts_mapping" not in cloud_only.task


def test_missing_local_path_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="workdir"):
        uploads.find_local_files({"workdir": str(tmp_path / "nope")})
    with pytest.raises(InvalidInputError, match="/x"):
        uploads.find_local_files({"file_mounts": {"/x": str(tmp_path / "nope.txt")}})
    (tmp_path / "f.py").write_text("x")
    with pytest.raises(InvalidInputError, match="give a folder"):
        uploads.find_local_files({"workdir": str(tmp_path / "f.py")})


# ---------------------------------------------------------------------------- the flow


@dataclass
class FakeServer:
    """The upload routes of a SkyPilot server, in process."""

    api_version: int = 62
    has_v2: bool = True
    blobs: dict[str, bytes] = field(default_factory=dict)
    parts: dict[str, dict[int, bytes]] = field(default_factory=dict)
    v1_uploads: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    bodies: dict[str, Any] = field(default_factory=dict)
    fail_once: set[int] = field(default_factory=set)
    lose_once: set[int] = field(default_factory=set)
    on_chunk: Callable[[], None] | None = None
    authorization: list[str | None] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = dict(request.url.params)
        self.log.append((request.method, path, params))
        self.authorization.append(request.headers.get("authorization"))
        headers = {"X-Skypilot-Request-ID": REQUEST_ID}
        if "x-skypilot-api-version" in request.headers:
            headers.update({"X-SkyPilot-API-Version": str(self.api_version)})
            headers.update({"X-SkyPilot-Version": "0.14.1"})
        if path == "/api/health":
            body = {"status": "healthy", "api_version": str(self.api_version)}
            return httpx.Response(200, json=body, headers=headers)
        if path == "/upload_v2/blob" and self.has_v2:
            return httpx.Response(200, json={"exists": params["blob_id"] in self.blobs})
        if path in ("/upload_v2", "/upload") and (self.has_v2 or path == "/upload"):
            return self._chunk(request, path, params)
        if path in ("/launch", "/exec"):
            self.bodies[path] = json.loads(request.read())
            return httpx.Response(200, json=None, headers=headers)
        return httpx.Response(404, json={"detail": "Not Found"}, headers=headers)

    def _chunk(self, request: httpx.Request, path: str, params: dict[str, str]) -> httpx.Response:
        index, total = int(params["chunk_index"]), int(params["total_chunks"])
        assert request.headers["content-type"] == "application/octet-stream"
        data = request.read()
        assert len(data) == int(request.headers["content-length"])
        if self.on_chunk is not None:
            self.on_chunk()
        if index in self.fail_once:
            self.fail_once.discard(index)
            return httpx.Response(503, json={"detail": "Server is shutting down"})
        parts = self.parts.setdefault(params["upload_id"], {})
        parts[index] = data
        for lost in self.lose_once & set(parts) - {index}:  # e.g. a server restart lost it
            self.lose_once.discard(lost)
            del parts[lost]
        missing = [f"part{i}" for i in range(total) if i not in parts]
        if missing:
            return httpx.Response(200, json={"status": "uploading", "missing_chunks": missing})
        whole = b"".join(parts[i] for i in range(total))
        store = self.blobs if path == "/upload_v2" else self.v1_uploads
        store[params["upload_id"]] = whole
        return httpx.Response(200, json={"status": "completed"})

    def posts(self, path: str) -> list[dict[str, str]]:
        return [p for m, pth, p in self.log if m == "POST" and pth == path]


class Runner:
    """Runs the same call through the sync or the async client (parity)."""

    def __init__(self, mode: str, server: FakeServer, **kwargs: Any) -> None:
        self.mode = mode
        self.sleeps: list[float] = []
        transport = httpx.MockTransport(server)
        common: dict[str, Any] = {"base_url": "http://sky.test", **kwargs}
        if mode == "sync":
            self.client: Any = SkyPilotClient(
                http_client=httpx.Client(transport=transport), _sleep=self.sleeps.append, **common
            )
        else:

            async def sleep(seconds: float) -> None:
                self.sleeps.append(seconds)

            self.client = AsyncSkyPilotClient(
                http_client=httpx.AsyncClient(transport=transport), _sleep=sleep, **common
            )

    async def run(self, flow: Any) -> Any:
        if self.mode == "sync":
            return self.client._run(flow)
        return await self.client._run(flow)

    async def upload(self, task: dict[str, Any], path: str = "/launch", **kwargs: Any) -> Call:
        call = Call("POST", path, "launch", json={"task": json.dumps(task), "cluster_name": "c"})
        result: Call = await self.run(uploads.upload_local_files(self.client, call, **kwargs))
        return result

    async def launch(self, request: LaunchRequest) -> str:
        if self.mode == "sync":
            return str(self.client.launch(request).request_id)
        handle = await self.client.launch(request)
        return str(handle.request_id)


def unzip_names(data: bytes, tmp_path: Path) -> set[str]:
    path = tmp_path / "received.zip"
    path.write_bytes(data)
    return names(str(path))


@pytest.mark.parametrize("mode", MODES)
async def test_upload_then_second_identical_upload_sends_nothing(mode: str, tmp_path: Path) -> None:
    wd = workdir(tmp_path)
    server = FakeServer()
    runner = Runner(mode, server)
    task = {"workdir": str(wd), "run": "python main.py"}
    events: list[ProgressEvent] = []
    call = await runner.upload(task, on_progress=events.append)
    blob_id = call.json["file_mounts_blob_id"]
    assert list(server.blobs) == [blob_id] and len(server.posts("/upload_v2")) == 1
    sent_task = yaml.safe_load(call.json["task"])
    assert sent_task["file_mounts_mapping"] == {str(wd): str(wd)}
    assert str(wd / "main.py").lstrip("/") in unzip_names(server.blobs[blob_id], tmp_path)
    assert events[0].phase == LaunchPhase.UPLOADING and events[-1].percent == 100
    assert [e.percent for e in events] == sorted({e.percent for e in events})

    server.log.clear()
    again = await runner.upload(task)
    assert again.json["file_mounts_blob_id"] == blob_id
    assert server.posts("/upload_v2") == []  # the server already has this content
    assert [p for _, p, _ in server.log] == ["/upload_v2/blob"]


@pytest.mark.parametrize("mode", MODES)
async def test_failed_chunk_is_retried_alone(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 200)
    wd = workdir(tmp_path)
    (wd / "big.bin").write_bytes(os.urandom(1500))  # incompressible: several chunks
    server = FakeServer(fail_once={1})
    runner = Runner(mode, server)
    call = await runner.upload({"workdir": str(wd)})
    indexes = [int(p["chunk_index"]) for p in server.posts("/upload_v2")]
    total = int(server.posts("/upload_v2")[0]["total_chunks"])
    assert total > 3
    assert indexes == [0, 1, 1, *range(2, total)]  # only chunk 1 went twice
    assert len(runner.sleeps) == 1  # one backoff, injected: nothing really slept
    received = server.blobs[call.json["file_mounts_blob_id"]]
    assert (
        uploads.blob_id_of_zip(_write(tmp_path / "r.zip", received))
        == (call.json["file_mounts_blob_id"])
    )


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("mode", MODES)
async def test_chunks_the_server_lost_are_sent_again(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 200)
    wd = workdir(tmp_path)
    (wd / "big.bin").write_bytes(os.urandom(700))
    server = FakeServer(lose_once={0})
    runner = Runner(mode, server)
    call = await runner.upload({"workdir": str(wd)})
    indexes = [int(p["chunk_index"]) for p in server.posts("/upload_v2")]
    total = int(server.posts("/upload_v2")[0]["total_chunks"])
    assert indexes == [*range(total), 0]  # one more round, with only the missing chunk
    assert call.json["file_mounts_blob_id"] in server.blobs


@pytest.mark.parametrize("mode", MODES)
async def test_upload_is_bounded_by_a_deadline(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "CHUNK_BYTES", 200)
    now = [1000.0]
    monkeypatch.setattr(uploads, "_clock", lambda: now[0])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    wd = workdir(tmp_path)
    (wd / "big.bin").write_bytes(os.urandom(1500))

    def slow_chunk() -> None:
        now[0] += 10.0  # each chunk "takes" ten seconds

    server = FakeServer(on_chunk=slow_chunk)
    runner = Runner(mode, server)
    with pytest.raises(APITimeoutError, match="within 25s") as info:
        await runner.upload({"workdir": str(wd)}, timeout=25)
    assert len(server.posts("/upload_v2")) == 3  # stopped at the deadline, not after
    assert not info.value.maybe_submitted
    assert os.listdir(scratch) == []  # the temporary zip is gone


@pytest.mark.parametrize("mode", MODES)
async def test_missing_path_rejected_before_anything_is_sent(mode: str, tmp_path: Path) -> None:
    server = FakeServer()
    runner = Runner(mode, server)
    request = LaunchRequest(cluster_name="c", task={"workdir": str(tmp_path / "gone"), "run": "x"})
    with pytest.raises(InvalidInputError, match="does not exist"):
        await runner.launch(request)
    assert server.log == []


@pytest.mark.parametrize("mode", MODES)
async def test_unreadable_file_is_our_error_and_nothing_is_sent(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(paths: list[str], **kwargs: Any) -> uploads.PackedZip:
        raise PermissionError(13, "Permission denied", paths[0])

    monkeypatch.setattr(uploads, "pack", denied)
    server = FakeServer()
    runner = Runner(mode, server)
    with pytest.raises(SkyPilotError, match="cannot zip") as info:
        await runner.upload({"workdir": str(workdir(tmp_path))})
    assert isinstance(info.value.__cause__, PermissionError)
    assert [p for _, p, _ in server.log] == ["/api/health"]  # no upload call


@pytest.mark.parametrize("mode", MODES)
async def test_cloud_uris_pass_through_untouched(mode: str) -> None:
    server = FakeServer()
    runner = Runner(mode, server)
    task = {"file_mounts": {"/d": "s3://bucket/d", "/w": "https://example.com/x"}, "run": "x"}
    call = await runner.upload(task)
    assert call.json == {"task": json.dumps(task), "cluster_name": "c"}
    assert server.log == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("why", ["old_server", "no_v2_route"])
async def test_v1_upload_for_servers_without_v2(mode: str, why: str, tmp_path: Path) -> None:
    wd = workdir(tmp_path)
    server = FakeServer(api_version=40) if why == "old_server" else FakeServer(has_v2=False)
    runner = Runner(mode, server)
    call = await runner.upload({"workdir": str(wd)})
    assert "file_mounts_blob_id" not in call.json
    [upload_id] = server.v1_uploads
    assert upload_id.startswith("sky-") and len(server.posts("/upload")) == 1
    paths = [p for _, p, _ in server.log]
    assert ("/upload_v2/blob" in paths) == (why == "no_v2_route")


@pytest.mark.parametrize("mode", MODES)
async def test_launch_and_exec_send_blob_id_and_mapping(mode: str, tmp_path: Path) -> None:
    wd = workdir(tmp_path)
    data = tmp_path / "data.txt"
    data.write_text("d")
    server = FakeServer()
    runner = Runner(mode, server)
    task = {"workdir": str(wd), "file_mounts": {"/data.txt": str(data)}, "run": "ls"}
    events: list[ProgressEvent] = []
    request = LaunchRequest(cluster_name="c", task=task, on_upload_progress=events.append)
    await runner.launch(request)
    body = server.bodies["/launch"]
    sent = yaml.safe_load(body["task"])
    assert sent["file_mounts_mapping"] == {str(wd): str(wd), str(data): str(data)}
    assert body["file_mounts_blob_id"] in server.blobs
    assert events and events[-1].percent == 100

    # exec syncs only the workdir (the server ignores an exec's file mounts)
    flow = runner.client._flow_execute(
        ExecuteRequest(cluster_name="c", task=task), Deadline.after(5.0)
    )
    with pytest.raises(NotFoundError):  # the fake has no /api/get: stops after the submit
        await runner.run(flow)
    sent = yaml.safe_load(server.bodies["/exec"]["task"])
    assert sent["file_mounts_mapping"] == {str(wd): str(wd)}


@pytest.mark.parametrize("mode", MODES)
async def test_token_never_logged_during_an_upload(
    mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wd = workdir(tmp_path)
    server = FakeServer(fail_once={0})
    runner = Runner(mode, server, token=SENTINEL_TOKEN)
    await runner.upload({"workdir": str(wd)})
    assert set(server.authorization) == {f"Bearer {SENTINEL_TOKEN}"}  # it did travel
    assert "upload" in caplog.text and SENTINEL_TOKEN not in caplog.text
