"""A monitoring process for the restart tests: runs a ``RequestMonitor`` on a ledger and
appends every event to a JSON-lines file (flushed and synced per event, so a SIGKILL loses
nothing that was emitted).

    python -m tests.integration.monitor_process BASE_URL LEDGER EVENTS [--lease S]
        [--interval S] [--claim-limit N] [--exit-when-idle]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

from skypilot_client import SkyPilotClient
from skypilot_client.ledger import open_ledger
from skypilot_client.monitor import RequestEvent, RequestFailed, RequestMonitor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("ledger")
    parser.add_argument("events")
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--exit-when-idle", action="store_true")
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--claim-limit", type=int, default=500)
    args = parser.parse_args()
    lock = threading.Lock()
    out = open(args.events, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)

    def write(event: RequestEvent) -> None:
        line = {
            "kind": type(event).__name__,
            "request_id": event.request_id,
            "status": event.status,
            "message": event.status_message,
            "error": type(event.error).__name__ if isinstance(event, RequestFailed) else None,
            "pid": os.getpid(),
        }
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()
            os.fsync(out.fileno())

    with SkyPilotClient(args.base_url, max_retries=1) as client, open_ledger(args.ledger) as ledger:
        monitor = RequestMonitor(
            client,
            ledger,
            on_event=write,
            interval=args.interval,
            lease_seconds=args.lease,
            claim_limit=args.claim_limit,
        )
        with monitor:
            print(f"owner {monitor.owner}", flush=True)
            end = time.monotonic() + args.deadline
            while time.monotonic() < end:
                time.sleep(0.2)
                if args.exit_when_idle and not ledger.list_pending(limit=1):
                    break
    out.close()


if __name__ == "__main__":
    main()
