"""Ledger write overhead per submission on SQLite: what recording a request adds to a submit.

A submit through a ledger-wired client costs one ``record_request`` (written before the call
returns to the caller); a provider launch costs ``record_intent`` before the create call and
``complete_intent`` after it. Each is timed ``--writes`` times on a fresh file in ``--dir``
(default: a temporary directory), with both durability settings: ``synchronous=FULL`` (the
default: every commit synced to disk) and ``NORMAL`` (survives process crashes, not power loss).
Prints mean, median, p90, p99 and max per write; the file system matters (fsync cost), so the
directory's device is printed too.

Target: mean ``record_request`` under 2 ms with the default settings.

    python -m benchmarks.ledger [--writes 2000] [--dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from skypilot_client.ledger import SQLiteLedger, account_fingerprint

TARGET_MS = 2.0
ACCOUNT = account_fingerprint("lambda", "benchmark-key-not-a-secret")


def _times(count: int, write: Callable[[int], object]) -> list[float]:
    """Milliseconds per call of ``write(i)``."""
    out: list[float] = []
    for i in range(count):
        started = time.perf_counter()
        write(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _row(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return (
        f"{label:<34} {statistics.fmean(samples):7.3f} {statistics.median(samples):7.3f} "
        f"{pct(0.90):7.3f} {pct(0.99):7.3f} {ordered[-1]:8.3f}"
    )


def run(directory: Path, writes: int, synchronous: str) -> dict[str, list[float]]:
    path = directory / f"bench-{synchronous.lower()}.sqlite3"
    ledger = SQLiteLedger(path, synchronous="FULL" if synchronous == "FULL" else "NORMAL")
    try:
        ledger.record_request("warm-up", "launch")  # the file, its schema, the WAL
        intents: list[str] = []
        results = {
            "record_request": _times(
                writes,
                lambda i: ledger.record_request(
                    f"req-{i}", "launch", cluster=f"cluster-{i % 50}", tenant="bench"
                ),
            ),
            "update_request (RUNNING)": _times(
                writes, lambda i: ledger.update_request(f"req-{i}", "RUNNING")
            ),
            "record_intent": _times(
                writes,
                lambda i: intents.append(
                    ledger.record_intent(
                        "lambda", ACCOUNT, name=f"node-{i}", labels={"job": str(i)}
                    ).intent_id
                ),
            ),
            "complete_intent": _times(
                writes, lambda i: ledger.complete_intent(intents[i], f"inst-{i}")
            ),
        }
    finally:
        ledger.close()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=2000, help="writes per measurement")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (a temp dir)")
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 when the mean is {TARGET_MS:g} ms or more"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ledger-bench-", dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"ledger files in {directory} (device {os.stat(directory).st_dev}); "
              f"{args.writes} writes each; times in ms")  # fmt: skip
        print(f"{'':<34} {'mean':>7} {'median':>7} {'p90':>7} {'p99':>7} {'max':>8}")
        means: dict[str, float] = {}
        for synchronous in ("FULL", "NORMAL"):
            results = run(directory, args.writes, synchronous)
            for label, samples in results.items():
                print(_row(f"{label} [{synchronous}]", samples))
            means[synchronous] = statistics.fmean(results["record_request"])
    met = means["FULL"] < TARGET_MS
    print(
        f"\ntarget: record_request mean < {TARGET_MS:g} ms with the default (FULL): "
        f"{means['FULL']:.3f} ms, {'met' if met else 'MISSED'}"
    )
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
