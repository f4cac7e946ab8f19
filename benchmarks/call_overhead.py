"""Per-call overhead of ``SkyPilotClient.list_clusters()`` against the same raw httpx calls.

``list_clusters()`` is two HTTP calls: ``POST /status`` (submit) and ``GET /api/get`` (long
poll for the result). The baseline sends exactly the same two requests with a plain
``httpx.Client``: the body and headers are copied from what the client sent (captured once
with an httpx event hook), and the result JSON is parsed. Both run against the same real local
SkyPilot server, in ``--rounds`` interleaved rounds (ABBA order, so neither always goes first),
after uncounted warm-up rounds.

Target: the client's mean time per call is within 10% of the raw calls' mean.

Server latency is bimodal (about 45 ms or 165 ms per status request on a 2-core machine,
from the server's ``/api/get`` poll back-off; PROTOCOL.md section 13 in the shared SkyPilot
reference), so medians can jump between the two modes and 30 rounds are noisy; the CPU time
per call, measured in this process only, shows the client's own cost without the server.

    python -m benchmarks.call_overhead [--rounds 30] [--url URL] [--venv-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.local_server import LocalSkyPilotServer, default_venv_dir
from skypilot_client import SkyPilotClient

REPO_ROOT = Path(__file__).resolve().parent.parent


TARGET_RATIO = 1.10
# Headers httpx computes per request; everything else is copied from the client's request.
_PER_REQUEST_HEADERS = frozenset({"host", "content-length", "connection"})


@dataclass
class Samples:
    """Wall and CPU seconds of one kind of call."""

    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def measure(self, call: Callable[[], object]) -> None:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        call()
        self.wall.append(time.perf_counter() - wall0)
        self.cpu.append(time.process_time() - cpu0)

    def row(self) -> str:
        ms = sorted(w * 1000 for w in self.wall)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        return (
            f"{self.name:<28} {statistics.fmean(ms):7.1f} {statistics.median(ms):7.1f} "
            f"{ms[0]:7.1f} {p90:7.1f} {ms[-1]:7.1f} {statistics.fmean(self.cpu) * 1000:8.2f}"
        )


@dataclass(frozen=True)
class Captured:
    """The two requests ``list_clusters()`` sent."""

    status_body: bytes
    status_headers: dict[str, str]
    get_headers: dict[str, str]


def capture_requests(base_url: str) -> Captured:
    """Run ``list_clusters()`` once through an event hook and keep its requests."""
    seen: list[httpx.Request] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request)

    with httpx.Client(event_hooks={"request": [hook]}) as http:
        SkyPilotClient(base_url, http_client=http).list_clusters()
    posts = [r for r in seen if r.method == "POST" and r.url.path == "/status"]
    gets = [r for r in seen if r.method == "GET" and r.url.path == "/api/get"]
    if len(posts) != 1 or len(gets) != 1:
        raise SystemExit(
            "list_clusters() did not send exactly one POST /status and one GET /api/get: "
            + ", ".join(f"{r.method} {r.url.path}" for r in seen)
        )

    def copy(request: httpx.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _PER_REQUEST_HEADERS}

    return Captured(posts[0].content, copy(posts[0]), copy(gets[0]))


def raw_list_clusters(http: httpx.Client, base_url: str, captured: Captured) -> object:
    """The same two calls with plain httpx: submit, then long-poll the result."""
    submitted = http.post(
        base_url + "/status", content=captured.status_body, headers=captured.status_headers
    )
    submitted.raise_for_status()
    request_id = submitted.headers["X-Skypilot-Request-ID"]
    result = http.get(
        base_url + "/api/get",
        params={"request_id": request_id},
        headers=captured.get_headers,
        timeout=httpx.Timeout(30.0, read=60.0),
    )
    result.raise_for_status()
    return result.json()


@contextlib.contextmanager
def server_url(args: argparse.Namespace) -> Iterator[str]:
    if args.url:
        yield args.url.rstrip("/")
        return
    print("starting a local SkyPilot server ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with LocalSkyPilotServer(venv_dir=args.venv_dir) as server:
        print(
            f"server ready at {server.base_url} in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )
        yield server.base_url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted rounds (default 3)")
    parser.add_argument("--url", default=None, help="use this running server instead")
    parser.add_argument(
        "--venv-dir",
        type=Path,
        default=None,
        help=f"SkyPilot 0.14.1 venv for the local server (default: {default_venv_dir()})",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the mean ratio is over 1.10"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be 1 or more and --warmup 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with server_url(args) as base_url:
        captured = capture_requests(base_url)
        with SkyPilotClient(base_url) as client, httpx.Client() as http:
            ours = Samples("SkyPilotClient.list_clusters")
            raw = Samples("raw httpx POST + GET")

            def run_ours() -> object:
                return client.list_clusters()

            def run_raw() -> object:
                return raw_list_clusters(http, base_url, captured)

            for _ in range(args.warmup):
                run_ours()
                run_raw()
            for i in range(args.rounds):
                pair = [(ours, run_ours), (raw, run_raw)]
                if i % 2:
                    pair.reverse()
                for samples, call in pair:
                    samples.measure(call)

    print(f"\n{args.rounds} interleaved rounds against {base_url} (after {args.warmup} warm-up)\n")
    print(
        f"{'per call, ms':<28} {'mean':>7} {'median':>7} {'min':>7} {'p90':>7} {'max':>7} "
        f"{'CPU mean':>8}"
    )
    print(ours.row())
    print(raw.row())
    mean_ratio = statistics.fmean(ours.wall) / statistics.fmean(raw.wall)
    median_ratio = statistics.median(ours.wall) / statistics.median(raw.wall)
    cpu_extra = (statistics.fmean(ours.cpu) - statistics.fmean(raw.cpu)) * 1000
    print(f"\nratio client / raw: mean {mean_ratio:.3f}, median {median_ratio:.3f}")
    print(f"client CPU per call beyond raw httpx: {cpu_extra:+.2f} ms")
    print(
        "note: server latency is bimodal (~45 ms or ~165 ms per status request, from its\n"
        "/api/get poll back-off; PROTOCOL.md section 13): medians jump between modes, compare\n"
        "means over many rounds and the CPU column"
    )
    met = mean_ratio <= TARGET_RATIO
    verdict = "MET" if met else "MISSED"
    print(f"target: mean within {TARGET_RATIO - 1:.0%} of raw httpx -> {verdict}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
