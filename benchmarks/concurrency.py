"""Many concurrent ``await client.list_clusters()`` through ONE ``AsyncSkyPilotClient``.

Starts a real local SkyPilot server (or uses ``--url``) and, for each pool size in
``--max-connections`` (default: the client's default of 100, then 20), gathers ``--calls``
(default 200) concurrent ``list_clusters()`` calls on one client. Reports successes, errors by
type, connection-pool timeouts, the client's own retries (from its log), wall time and
per-call latency.

Every call holds a pool connection while it long-polls ``/api/get``, so a pool smaller than
the number of calls makes calls queue inside httpx: that must cost time, never errors.
Expected: 0 errors and 0 pool timeouts for every pool size. The server (five short-request
workers on a 2-core machine) is the bottleneck: wall time is roughly the server's time for
``--calls`` status requests.

A freshly started server is much slower under a sudden burst (its request workers start on
demand): 200 concurrent status requests took it ~230 s even from plain httpx, against ~30 s
once warm. So ``--warmup-calls`` (default 40, through a pool of 10, not counted) run first;
``--warmup-calls 0`` shows the cold case.

``list_clusters()`` waits up to ``SKYPILOT_STATUS_TIMEOUT`` (30 s by default) for each
result; 200 queued status requests can take the server longer than that on a slow machine,
so this script sets ``--status-timeout`` (default 180 s) for its client, unless you pass 0.

    python -m benchmarks.concurrency [--calls 200] [--max-connections 100 20] [--url URL]
                                     [--warmup-calls 40] [--status-timeout 180]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.local_server import LocalSkyPilotServer, default_venv_dir
from skypilot_client import AsyncSkyPilotClient

REPO_ROOT = Path(__file__).resolve().parent.parent


STATUS_TIMEOUT_ENV = "SKYPILOT_STATUS_TIMEOUT"
WARMUP_POOL = 10


class RetryCounter(logging.Handler):
    """Counts the client's "retrying after <Error>" log records, by error type."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_error: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying after"):
            self.by_error[str(getattr(record, "error", "?"))] += 1


@dataclass
class Outcome:
    """What one batch of concurrent calls did."""

    max_connections: int
    calls: int
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    pool_timeouts: int = 0
    retries: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def successes(self) -> int:
        return len(self.latencies)


def caused_by_pool_timeout(exc: BaseException) -> bool:
    """True when httpx.PoolTimeout is anywhere in the exception's cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.PoolTimeout):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "PoolTimeout" in str(exc)


async def run_batch(base_url: str, calls: int, max_connections: int) -> Outcome:
    outcome = Outcome(max_connections, calls)
    counter = RetryCounter()
    client_logger = logging.getLogger("skypilot_client")
    client_logger.addHandler(counter)
    previous_level = client_logger.level
    client_logger.setLevel(logging.INFO)

    async def one(client: AsyncSkyPilotClient) -> float:
        started = time.perf_counter()
        await client.list_clusters()
        return time.perf_counter() - started

    try:
        # Every call must reach the server here (pool queueing is what is measured), so
        # identical reads are not shared (coalescing: benchmarks/coalescing.py).
        async with AsyncSkyPilotClient(
            base_url, max_connections=max_connections, coalesce_reads=False
        ) as client:
            await client.health()  # learn the server version once, outside the timing
            started = time.perf_counter()
            results = await asyncio.gather(
                *(one(client) for _ in range(calls)), return_exceptions=True
            )
            outcome.wall = time.perf_counter() - started
    finally:
        client_logger.removeHandler(counter)
        client_logger.setLevel(previous_level)
    for result in results:
        if isinstance(result, BaseException):
            name = type(result).__name__
            outcome.errors[name] += 1
            outcome.examples.setdefault(name, repr(result)[:300])
            if caused_by_pool_timeout(result):
                outcome.pool_timeouts += 1
        else:
            outcome.latencies.append(result)
    outcome.retries = counter.by_error
    return outcome


def report(outcome: Outcome) -> None:
    calls, pool = outcome.calls, outcome.max_connections
    print(f"\n== {calls} concurrent list_clusters(), max_connections={pool}")
    print(f"successes:     {outcome.successes}/{outcome.calls}")
    errors = ", ".join(f"{k}={v}" for k, v in outcome.errors.most_common()) or "none"
    print(f"errors:        {errors}")
    print(f"pool timeouts: {outcome.pool_timeouts}")
    retries = ", ".join(f"{k}={v}" for k, v in outcome.retries.most_common()) or "none"
    print(f"retries:       {retries}")
    print(
        f"wall time:     {outcome.wall:.1f} s "
        f"({outcome.calls / outcome.wall:.1f} calls/s through one client)"
    )
    if outcome.latencies:
        ms = sorted(x * 1000 for x in outcome.latencies)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        print(
            f"per call:      median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, "
            f"max {ms[-1]:.0f} ms"
        )
    for name, example in outcome.examples.items():
        print(f"  e.g. {name}: {example}")


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
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls (default 200)")
    parser.add_argument(
        "--max-connections",
        type=int,
        nargs="+",
        default=[100, 20],
        help="pool sizes to try, one batch each (default: 100 20)",
    )
    parser.add_argument(
        "--status-timeout",
        type=float,
        default=180.0,
        help="seconds list_clusters() waits for each result (0: the client's setting)",
    )
    parser.add_argument(
        "--warmup-calls",
        type=int,
        default=40,
        help=f"uncounted calls (pool of {WARMUP_POOL}) to warm the server up first (0: none)",
    )
    parser.add_argument("--url", default=None, help="use this running server instead")
    parser.add_argument(
        "--venv-dir",
        type=Path,
        default=None,
        help=f"SkyPilot 0.14.1 venv for the local server (default: {default_venv_dir()})",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 on any error or pool timeout")
    args = parser.parse_args(argv)
    if args.calls < 1 or any(n < 1 for n in args.max_connections):
        parser.error("--calls and --max-connections must be 1 or more")
    if args.warmup_calls < 0:
        parser.error("--warmup-calls must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.status_timeout > 0:
        os.environ[STATUS_TIMEOUT_ENV] = f"{args.status_timeout:g}"
    wait = os.environ.get(STATUS_TIMEOUT_ENV, "30s (client default)")
    outcomes: list[Outcome] = []
    with server_url(args) as base_url:
        print(f"server {base_url}; list_clusters() wait deadline {wait}", flush=True)
        if args.warmup_calls:
            warm = asyncio.run(run_batch(base_url, args.warmup_calls, WARMUP_POOL))
            print(
                f"warm-up (not counted): {warm.successes}/{warm.calls} calls through a pool of "
                f"{WARMUP_POOL} in {warm.wall:.1f} s",
                flush=True,
            )
        for max_connections in args.max_connections:
            outcome = asyncio.run(run_batch(base_url, args.calls, max_connections))
            report(outcome)
            outcomes.append(outcome)
    clean = all(not o.errors and not o.pool_timeouts for o in outcomes)
    print(f"\nexpected: no errors, no pool timeouts -> {'MET' if clean else 'MISSED'}")
    return 1 if args.check and not clean else 0


if __name__ == "__main__":
    sys.exit(main())
