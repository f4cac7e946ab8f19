"""HTTP calls the request monitor makes for 1,000 pending requests on the real server.

Submits ``--requests`` (default 1,000) real requests to a real local SkyPilot server
(``POST /api/cancel`` of an unknown id: the cheapest request the server queues and runs; a
thousand launches would take the server far longer), records each in a fresh SQLite ledger as
a service's client would, then:

- runs ``RequestMonitor.check_once()`` until every request was checked once, counting the
  HTTP attempts through the client's ``on_request`` hook (batched ``/api/status`` calls with
  many ``request_ids`` and three ``fields``);
- polls the same requests one by one (``client.get_request``: one ``/api/status`` call per
  request), as a hand-written per-request poller does; measured on ``--poll-sample`` of them
  (default 100) and scaled linearly (one call per request by construction).

Target: at most 1 HTTP call per 100 pending requests for the monitor (``--check`` exits 1
when missed).

    python -m benchmarks.monitor [--requests 1000] [--url URL] [--reuse] [--poll-sample 100]
        [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from skypilot_client import RequestMetrics, SkyPilotClient
from skypilot_client.ledger import open_ledger
from skypilot_client.monitor import RequestMonitor

TARGET_PER_100 = 1.0


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from scripts.local_server import LocalSkyPilotServer

    with LocalSkyPilotServer() as server:
        yield server.base_url


def _submit(base_url: str, count: int, reuse: bool) -> list[str]:
    """``count`` real server requests (``POST /api/cancel`` of nothing), their ids; with
    ``reuse``, the server's earlier cancel requests count (a busy machine submits ~1/s)."""
    ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=300) as http:
        if reuse:
            known = http.get("/api/status", params={"all_status": "true"}).json()
            ids = [r["request_id"] for r in known if r.get("name") == "sky.api_cancel"][:count]
            print(f"  reusing {len(ids)} requests the server already holds", flush=True)
        for i in range(len(ids), count):
            response = http.post("/api/cancel", json={"request_ids": ["no-such-request"]})
            response.raise_for_status()
            ids.append(response.headers["x-skypilot-request-id"])
            if (i + 1) % 100 == 0:
                print(f"  {i + 1} submitted", flush=True)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--url", help="use a running server instead of starting one")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument(
        "--reuse", action="store_true", help="count the server's earlier cancel requests too"
    )
    parser.add_argument(
        "--poll-sample", type=int, default=100, help="requests polled one by one (default 100)"
    )
    args = parser.parse_args()

    calls: list[RequestMetrics] = []
    with _server(args.url) as base_url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ids = _submit(base_url, args.requests, args.reuse)
        print(f"submitted {len(ids)} requests in {time.perf_counter() - started:.1f} s")
        ledger = open_ledger(Path(tmp) / "ledger.sqlite3")
        for rid in ids:
            ledger.record_request(rid, "cancel_request")
        with SkyPilotClient(base_url, on_request=calls.append) as client:
            monitor = RequestMonitor(client, ledger, interval=1.0)
            checked: set[str] = set()
            cycles = 0
            started = time.perf_counter()
            pending = {r.request_id for r in ledger.list_pending()}
            while pending - checked and cycles < 20:
                before = {r.request_id: r.updated_at for r in ledger.list_pending()}
                monitor.check_once()
                cycles += 1
                after = {r.request_id: r for r in ledger.list_pending()}
                checked |= {rid for rid in before if rid not in after}  # ended
                checked |= {rid for rid, r in after.items() if r.updated_at != before.get(rid)}
            monitor_seconds = time.perf_counter() - started
            monitor_calls = len(calls)
            per_path: dict[str, int] = {}
            for c in calls:
                per_path[c.path] = per_path.get(c.path, 0) + 1

            calls.clear()
            started = time.perf_counter()
            sample = ids[: args.poll_sample]
            for rid in sample:
                client.get_request(rid)
            scale = len(ids) / max(len(sample), 1)  # one call per request: linear
            poll_seconds = (time.perf_counter() - started) * scale
            poll_calls = round(len(calls) * scale)
        ledger.close()

    n = len(ids)
    per_100 = monitor_calls / n * 100
    print(f"\n{n} pending requests (real SkyPilot server at {base_url})")
    print(f"{'':<28} {'HTTP calls':>10} {'per 100':>8} {'seconds':>8}")
    print(f"{'monitor (batched)':<28} {monitor_calls:>10} {per_100:>8.2f} {monitor_seconds:>8.2f}")
    print(
        f"{'per-request polling':<28} {poll_calls:>10} {poll_calls / n * 100:>8.2f} "
        f"{poll_seconds:>8.2f}"
    )
    print(f"monitor: {cycles} cycle(s) (claim limit 500 per cycle), calls by path {per_path}")
    print(f"per-request polling: measured on {len(sample)} requests, scaled to {n}")
    print(f"ratio: per-request polling makes {poll_calls / max(monitor_calls, 1):.0f}x the calls")
    met = per_100 <= TARGET_PER_100
    print(f"target <= {TARGET_PER_100:g} call per 100 pending: {'met' if met else 'MISSED'}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
