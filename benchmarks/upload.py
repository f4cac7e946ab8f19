"""Uploading a 200 MB workdir to a real local SkyPilot server: ours against the official client.

Each side runs in its own fresh subprocess (so its peak RSS is its own): ours is
``skypilot_client.resources.uploads.upload_local_files`` driven by ``SkyPilotClient`` in this
Python; the official one is ``sky.client.common.upload_mounts_to_api_server`` in the SkyPilot venv's
Python. Both do the whole job: walk, zip into a temporary file, blob id, ``GET
/upload_v2/blob``, chunk POSTs, and the server assembles and extracts. Imports and the first
health check happen before the clock starts. Every run uploads a workdir with fresh random
content (same size and shape), so the server never already has it; rounds alternate which
side goes first.

Measured: wall seconds of the upload, peak RSS of the process (``ru_maxrss``), and how much
the peak grew during the upload (peak after minus peak before: the upload's own memory).

The official client skips uploads when it thinks the server is local, i.e. its URL is the
local default port (46580); the server started here listens on another port, so it uploads.

    python -m benchmarks.upload [--size-mb 200] [--rounds 2] [--url URL] [--venv-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts.local_server import LocalSkyPilotServer, default_venv_dir

REPO_ROOT = Path(__file__).resolve().parent.parent


FILE_MB = 4  # the workdir is made of files this big, plus a few small ones

OURS = r"""
import json, resource, sys, time
from skypilot_client import SkyPilotClient
from skypilot_client._effects import Call
from skypilot_client.resources.uploads import upload_local_files

url, workdir = sys.argv[1], sys.argv[2]
with SkyPilotClient(url, timeout=60) as client:
    client.health()  # the server's API version, read before the clock starts
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call = Call("POST", "/launch", "launch", json={"task": json.dumps({"workdir": workdir})})
    start = time.perf_counter()
    sent = client._run(upload_local_files(client, call, timeout=3600))
    seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert sent.json.get("file_mounts_blob_id")
print(json.dumps({"seconds": seconds, "rss_before_kb": before, "rss_peak_kb": after}))
"""

OFFICIAL = r"""
import json, resource, sys, time
import sky
from sky.client import common, sdk
from sky.server import versions
from sky.utils import dag_utils

url, workdir = sys.argv[1], sys.argv[2]
sdk.api_info()  # health check: sets the server's API version (v2 uploads need it)
assert versions.get_remote_api_version() is not None
task = sky.Task(run="true", workdir=workdir)
dag = dag_utils.convert_entrypoint_to_dag(task)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
_, blob_id = common.upload_mounts_to_api_server(dag)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert blob_id
print(json.dumps({"seconds": seconds, "rss_before_kb": before, "rss_peak_kb": after}))
"""


@dataclass
class Runs:
    """Results of one side."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    growth_mb: list[float] = field(default_factory=list)

    def add(self, result: dict[str, float]) -> None:
        self.seconds.append(result["seconds"])
        self.peak_mb.append(result["rss_peak_kb"] / 1024)
        self.growth_mb.append((result["rss_peak_kb"] - result["rss_before_kb"]) / 1024)

    def row(self, size_mb: int) -> str:
        secs = statistics.median(self.seconds)
        return (
            f"{self.name:<22} {secs:8.2f} {size_mb / secs:9.1f} "
            f"{statistics.median(self.peak_mb):10.1f} {statistics.median(self.growth_mb):11.1f}"
        )


def make_workdir(root: Path, size_mb: int, seed: int) -> Path:
    """``size_mb`` of incompressible files (the worst case for zipping) in nested folders."""
    wd = root / f"workdir-{seed}"
    (wd / "empty").mkdir(parents=True)
    (wd / "README.md").write_text(f"run {seed}\n")
    (wd / ".skyignore").write_text("*.tmp\n")
    for i in range(size_mb // FILE_MB):
        folder = wd / "data" / f"shard-{i % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part-{i:04d}.bin").write_bytes(os.urandom(FILE_MB * 1024 * 1024))
    return wd


def run_child(
    python: str, code: str, url: str, workdir: Path, env: dict[str, str]
) -> dict[str, float]:
    done = subprocess.run(
        [python, "-c", code, url, str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{python} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def server_url(url: str | None, venv_dir: Path | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    server = LocalSkyPilotServer(venv_dir=venv_dir)
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--url", default=None, help="use a running server (not port 46580)")
    parser.add_argument("--venv-dir", type=Path, default=None)
    args = parser.parse_args()
    venv = args.venv_dir or default_venv_dir()
    sky_python = str(venv / "bin" / "python")
    scratch = Path(tempfile.mkdtemp(prefix="skypilot-upload-bench-"))
    ours_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(scratch / "home-ours")}
    official_env = {
        **os.environ,
        "HOME": str(scratch / "home-official"),
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
    }
    ours, official = Runs("skypilot_client"), Runs("official sky.client")
    try:
        with server_url(args.url, args.venv_dir) as url:
            ours_env["SKYPILOT_API_SERVER_URL"] = url
            official_env["SKYPILOT_API_SERVER_ENDPOINT"] = url
            print(f"server {url}, workdir {args.size_mb} MB, {args.rounds} round(s)")
            for rnd in range(args.rounds):
                order = [(ours, sys.executable, OURS, ours_env)]
                order.append((official, sky_python, OFFICIAL, official_env))
                if rnd % 2:
                    order.reverse()
                for i, (runs, python, code, env) in enumerate(order):
                    wd = make_workdir(scratch, args.size_mb, seed=rnd * 2 + i)
                    runs.add(run_child(python, code, url, wd, env))
                    shutil.rmtree(wd)
                    print(f"  round {rnd + 1}: {runs.name:<20} {runs.seconds[-1]:6.2f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(
        f"{'median of ' + str(args.rounds):<22} {'seconds':>8} {'MB/s':>9} "
        f"{'peak RSS MB':>10} {'RSS growth MB':>11}"
    )
    print(ours.row(args.size_mb))
    print(official.row(args.size_mb))
    t = statistics.median(ours.seconds) / statistics.median(official.seconds)
    p = statistics.median(ours.peak_mb) / statistics.median(official.peak_mb)
    g_official = statistics.median(official.growth_mb)
    g = statistics.median(ours.growth_mb) / g_official if g_official > 0 else float("nan")
    print(f"ratios ours/official: time {t:.2f}, peak RSS {p:.2f}, RSS growth {g:.2f}")


if __name__ == "__main__":
    main()
