"""Uploads of local files against the real SkyPilot 0.14.1 server (started by the fixture).

Requests are counted with httpx event hooks; the uploaded files are looked for where the
server keeps them: ``<server HOME>/.sky/api_server/clients/<user>/file_mounts/...``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scripts.local_server import LocalSkyPilotServer, default_venv_dir
from skypilot_client import (
    AsyncSkyPilotClient,
    ExecuteRequest,
    LaunchPhase,
    LaunchRequest,
    ProgressEvent,
    SkyPilotClient,
    errors,
)
from skypilot_client.resources import uploads

pytestmark = pytest.mark.integration

RESOURCES = {"infra": "hyperbolic", "accelerators": "H100:1"}


def make_workdir(root: Path, marker: str) -> Path:
    """Files, a nested folder, an empty folder, a .skyignore'd file and a symlink."""
    wd = root / f"wd-{marker}"
    (wd / "src" / "pkg").mkdir(parents=True)
    (wd / "empty").mkdir()
    (wd / "train.py").write_text(f"print({marker!r})\n")
    (wd / "src" / "pkg" / "model.py").write_text("W = 1\n")
    (wd / "run.log").write_text("ignored\n")
    (wd / "cache").mkdir()
    (wd / "cache" / "big.bin").write_bytes(b"\0" * 1000)
    (wd / ".skyignore").write_text("*.log\n/cache\n")
    (wd / "latest.py").symlink_to("train.py")
    return wd


class Recorder:
    """Every request a client sends: method, path, query and JSON body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []

    def _note(self, request: httpx.Request) -> None:
        body: Any = None
        if request.headers.get("content-type") == "application/json":
            body = json.loads(request.content)
        self.requests.append((request.method, request.url.path, dict(request.url.params), body))

    def hook(self, request: httpx.Request) -> None:
        self._note(request)

    async def ahook(self, request: httpx.Request) -> None:
        self._note(request)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _, _ in self.requests if (m, p) == (method, path))

    def body(self, path: str) -> Any:
        return [b for m, p, _, b in self.requests if (m, p) == ("POST", path)][-1]

    def clear(self) -> None:
        self.requests.clear()


def blob_dir(server: LocalSkyPilotServer, blob_id: str) -> Path:
    # Under the uploader's user id; blob ids are content hashes, so one match per user.
    found = sorted(
        (server.home / ".sky" / "api_server" / "clients").glob(f"*/file_mounts/blobs/{blob_id}")
    )
    assert found, f"blob {blob_id} not on the server"
    return found[0]


def assert_uploaded_tree(base: Path, wd: Path) -> None:
    there = base / str(wd).lstrip("/")
    assert (there / "train.py").read_text() == (wd / "train.py").read_text()
    assert (there / "src" / "pkg" / "model.py").is_file()
    assert (there / "empty").is_dir() and not any((there / "empty").iterdir())
    assert (there / "latest.py").is_symlink()
    assert (there / "latest.py").read_text() == (wd / "train.py").read_text()
    assert not (there / "run.log").exists()  # .skyignore: *.log
    assert not (there / "cache").exists()  # .skyignore: /cache


def launch_sync(url: str, recorder: Recorder, task: dict[str, Any], **kw: Any) -> Any:
    http = httpx.Client(event_hooks={"request": [recorder.hook]})
    with http, SkyPilotClient(url, http_client=http) as client:
        handle = client.launch(LaunchRequest(cluster_name="sdk-up", task=task, dryrun=True, **kw))
        return handle.result()


async def launch_async(url: str, recorder: Recorder, task: dict[str, Any], **kw: Any) -> Any:
    http = httpx.AsyncClient(event_hooks={"request": [recorder.ahook]})
    async with http, AsyncSkyPilotClient(url, http_client=http) as client:
        request = LaunchRequest(cluster_name="sdk-up", task=task, dryrun=True, **kw)
        handle = await client.launch(request)
        return await handle.result()


@pytest.mark.anyio
async def test_workdir_uploaded_once_sync_and_async(
    skypilot_server: LocalSkyPilotServer, tmp_path: Path
) -> None:
    url = skypilot_server.base_url
    wd = make_workdir(tmp_path, "one")
    task = {"workdir": str(wd), "resources": RESOURCES, "run": "python train.py"}
    recorder = Recorder()
    events: list[ProgressEvent] = []

    result = launch_sync(url, recorder, task, on_upload_progress=events.append)
    assert result.dryrun
    assert recorder.count("POST", "/upload_v2") == 1
    body = recorder.body("/launch")
    blob_id = body["file_mounts_blob_id"]
    assert yaml.safe_load(body["task"])["file_mounts_mapping"] == {str(wd): str(wd)}
    assert_uploaded_tree(blob_dir(skypilot_server, blob_id), wd)
    assert {e.phase for e in events} == {LaunchPhase.UPLOADING} and events[-1].percent == 100

    # The same content again, from the async client: checked, not sent.
    recorder.clear()
    assert (await launch_async(url, recorder, task)).dryrun
    assert recorder.count("GET", "/upload_v2/blob") == 1
    assert recorder.count("POST", "/upload_v2") == 0
    assert recorder.body("/launch")["file_mounts_blob_id"] == blob_id

    # Changed content is a new blob: async uploads it, then sync finds it there.
    (wd / "train.py").write_text("print('two')\n")
    recorder.clear()
    assert (await launch_async(url, recorder, task)).dryrun
    new_blob = recorder.body("/launch")["file_mounts_blob_id"]
    assert new_blob != blob_id and recorder.count("POST", "/upload_v2") == 1
    assert_uploaded_tree(blob_dir(skypilot_server, new_blob), wd)
    recorder.clear()
    launch_sync(url, recorder, task)
    assert recorder.count("POST", "/upload_v2") == 0


def test_file_mounts_files_and_folders_and_cloud_uris(
    skypilot_server: LocalSkyPilotServer, tmp_path: Path
) -> None:
    wd = make_workdir(tmp_path, "mounts")
    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    remote = "https://raw.githubusercontent.com/skypilot-org/skypilot/master/README.md"
    mounts = {"/data.csv": str(data), "/code": str(wd), "/remote": remote}
    task = {"file_mounts": mounts, "resources": RESOURCES, "run": "ls"}
    recorder = Recorder()
    assert launch_sync(skypilot_server.base_url, recorder, task).dryrun
    body = recorder.body("/launch")
    sent = yaml.safe_load(body["task"])
    assert sent["file_mounts"]["/remote"] == remote  # untouched
    assert sent["file_mounts_mapping"] == {str(data): str(data), str(wd): str(wd)}
    base = blob_dir(skypilot_server, body["file_mounts_blob_id"])
    assert (base / str(data).lstrip("/")).read_text() == "a,b\n"
    assert_uploaded_tree(base, wd)


def test_missing_local_path_sends_nothing(
    skypilot_server: LocalSkyPilotServer, tmp_path: Path
) -> None:
    recorder = Recorder()
    task = {"workdir": str(tmp_path / "missing"), "resources": RESOURCES, "run": "ls"}
    with pytest.raises(errors.InvalidInputError, match="does not exist"):
        launch_sync(skypilot_server.base_url, recorder, task)
    assert recorder.requests == []


def test_exec_uploads_only_the_workdir(
    skypilot_server: LocalSkyPilotServer, tmp_path: Path
) -> None:
    wd = make_workdir(tmp_path, "exec")
    data = tmp_path / "exec-data.txt"
    data.write_text("d")
    recorder = Recorder()
    http = httpx.Client(event_hooks={"request": [recorder.hook]})
    task = {"workdir": str(wd), "file_mounts": {"/d.txt": str(data)}, "run": "ls"}
    with http, SkyPilotClient(skypilot_server.base_url, http_client=http) as client:
        with pytest.raises(errors.ClusterNotFoundError):
            client.execute(ExecuteRequest(cluster_name="sdk-up-none", task=task))
    body = recorder.body("/exec")
    assert yaml.safe_load(body["task"])["file_mounts_mapping"] == {str(wd): str(wd)}
    base = blob_dir(skypilot_server, body["file_mounts_blob_id"])
    assert_uploaded_tree(base, wd)
    assert not (base / str(data).lstrip("/")).exists()


class NoV2Transport(httpx.HTTPTransport):
    """A server (or proxy) that does not know /upload_v2."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/upload_v2"):
            return httpx.Response(404, json={"detail": "Not Found"})
        return super().handle_request(request)


def test_v1_upload_fallback(skypilot_server: LocalSkyPilotServer, tmp_path: Path) -> None:
    wd = make_workdir(tmp_path, "v1")
    recorder = Recorder()
    http = httpx.Client(transport=NoV2Transport(), event_hooks={"request": [recorder.hook]})
    task = {"workdir": str(wd), "resources": RESOURCES, "run": "ls"}
    with http, SkyPilotClient(skypilot_server.base_url, http_client=http) as client:
        handle = client.launch(LaunchRequest(cluster_name="sdk-up", task=task, dryrun=True))
        assert handle.result().dryrun
    assert recorder.count("POST", "/upload") == 1
    body = recorder.body("/launch")
    assert "file_mounts_blob_id" not in body
    user = body["env_vars"]["SKYPILOT_USER_ID"]
    base = skypilot_server.home / ".sky" / "api_server" / "clients" / user / "file_mounts"
    assert_uploaded_tree(base, wd)


def test_blob_id_matches_the_official_client(tmp_path: Path) -> None:
    python = default_venv_dir() / "bin" / "python"
    if not python.exists():
        pytest.skip("the SkyPilot server venv is not installed")
    wd = make_workdir(tmp_path, "parity")
    (tmp_path / "extra.txt").write_text("x")
    paths = [str(wd), str(tmp_path / "extra.txt")]
    script = (
        "import sys, json\n"
        "from sky.data import storage_utils\n"
        "from sky.client import common\n"
        "paths, out = json.loads(sys.argv[1]), sys.argv[2]\n"
        "storage_utils.zip_files_and_folders(paths, out)\n"
        "print(common._compute_zip_blob_id(out))\n"
    )
    out = str(tmp_path / "official.zip")
    official = subprocess.run(
        [str(python), "-c", script, json.dumps(paths), out],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()[-1]
    packed = uploads.pack(paths, directory=str(tmp_path))
    assert packed.blob_id == official
    assert uploads.blob_id_of_zip(out) == official
