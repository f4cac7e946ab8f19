"""Offer search across providers: is the fan-out as fast as its slowest provider?

Serves the documented responders of Lambda, Paperspace, RunPod, TensorDock and Vast.ai
(``tests/providers/<provider>/documented.py``) over HTTP on 127.0.0.1, each answer delayed
by an injected latency (``--latency lambda=0.15 ...``), and times, median over ``--runs``:

- each provider alone (``search_offers`` asking only it): the slowest of these is the floor;
- ``search_offers`` asking all of them (threads);
- ``asearch_offers`` asking all of them (tasks).

Every run uses fresh API keys (fresh accounts), so a provider's rate limiter never carries
over from one run to the next, and the cache is off (``OfferCache(ttl=0)``): each run really
asks. Paperspace's offers take several pages, TensorDock's two lists (locations, hostnodes)
and Vast.ai's two searches (on-demand, interruptible): sequential requests, as at the vendor.

**Targets:** search wall time <= 1.2x the slowest provider alone; the sync search no slower
than the async one by more than 1.2x.

    python -m benchmarks.search [--runs 7] [--latency lambda=0.15 paperspace=0.1 runpod=0.3
                                tensordock=0.1 vastai=0.15] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from gpu_providers.search import OfferCache, OfferSearch, asearch_offers, search_offers
from tests.providers.lambda_cloud import documented as lambda_docs
from tests.providers.loopback import LoopbackServer
from tests.providers.paperspace import documented as paperspace_docs
from tests.providers.runpod import documented as runpod_docs
from tests.providers.tensordock import documented as tensordock_docs
from tests.providers.vastai import documented as vastai_docs

TARGET = 1.2
PATHS = {
    "lambda": "",
    "paperspace": "/v1",
    "runpod": "/graphql",
    "tensordock": tensordock_docs.API_PREFIX,
    "vastai": "",
}
_keys = itertools.count()


def serve(latency: dict[str, float]) -> None:
    """Child process: serve the loopback providers, print their URLs (one JSON line),
    and stop when stdin closes. In a process of its own, the fakes' work never competes
    with the measured search for the interpreter lock."""
    responders: dict[str, Any] = {
        "lambda": lambda_docs.DocumentedLambda(),
        "paperspace": paperspace_docs.DocumentedPaperspace(),
        "runpod": runpod_docs.DocumentedRunPod(),
        "tensordock": tensordock_docs.DocumentedTensorDock(),
        "vastai": vastai_docs.DocumentedVast(),
    }
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(LoopbackServer(responder, latency=latency[name])).url
            + PATHS[name]
            for name, responder in responders.items()
        }
        print(json.dumps(urls), flush=True)
        sys.stdin.read()


@contextmanager
def providers(latency: dict[str, float]) -> Iterator[dict[str, str]]:
    """Base URLs of the latency-injected loopback providers (in a child process)."""
    spec = " ".join(f"{name}={seconds}" for name, seconds in latency.items())
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.search", "--serve", "--latency", *spec.split()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def options(urls: dict[str, str], names: list[str]) -> dict[str, dict[str, Any]]:
    """Client options with fresh keys (one new account per run)."""
    run = next(_keys)
    return {n: {"base_url": urls[n], "api_key": f"bench-{n}-{run}"} for n in names}


def timed(call: Callable[[], OfferSearch]) -> float:
    started = time.perf_counter()
    found = call()
    elapsed = time.perf_counter() - started
    if found.failures:
        raise SystemExit(f"a provider failed: {found.failures}")
    return elapsed


def median_of(runs: int, call: Callable[[], OfferSearch]) -> float:
    timed(call)  # warm-up: imports, first connections
    return statistics.median(timed(call) for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--latency",
        nargs="*",
        default=["lambda=0.15", "paperspace=0.1", "runpod=0.3", "tensordock=0.1", "vastai=0.15"],
        help="seconds per answer, per provider (NAME=SECONDS)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    latency = dict.fromkeys(PATHS, 0.0)
    for item in args.latency:
        name, _, seconds = item.partition("=")
        latency[name] = float(seconds)
    names = sorted(latency)
    if args.serve:
        serve(latency)
        return 0
    nocache = OfferCache(ttl=0)

    with providers(latency) as urls:
        alone = {
            name: median_of(
                args.runs,
                lambda name=name: search_offers(  # type: ignore[misc]
                    None, [name], cache=nocache, provider_options=options(urls, [name])
                ),
            )
            for name in names
        }

        def run_sync() -> OfferSearch:
            return search_offers(None, names, cache=nocache, provider_options=options(urls, names))

        sync = median_of(args.runs, run_sync)

        def run_async() -> OfferSearch:
            return asyncio.run(
                asearch_offers(None, names, cache=nocache, provider_options=options(urls, names))
            )

        asynchronous = median_of(args.runs, run_async)

    slowest_name = max(alone, key=lambda n: alone[n])
    slowest = alone[slowest_name]
    print(f"latency injected per answer: {latency}")
    for name in names:
        print(f"  {name:<11} alone: {alone[name] * 1000:7.1f} ms")
    print(f"  search (sync, threads): {sync * 1000:7.1f} ms")
    print(f"  search (async, tasks): {asynchronous * 1000:7.1f} ms")
    fan_out = sync / slowest
    parity = sync / asynchronous
    print(f"search / slowest provider ({slowest_name}): {fan_out:.2f}x (target <= {TARGET}x)")
    print(f"async search / slowest provider: {asynchronous / slowest:.2f}x")
    print(f"sync search / async search: {parity:.2f}x (target <= {TARGET}x)")
    missed = fan_out > TARGET or parity > TARGET
    print("targets met" if not missed else "TARGET MISSED")
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
