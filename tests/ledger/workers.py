"""Entry points of the processes the ledger concurrency tests start (spawned, so importable).

Each opens the ledger itself after the start signal, so the processes also race to create and
migrate a fresh database, and writes what it did to a JSON file for the test to check.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from skypilot_client.ledger import account_fingerprint, open_ledger

ACCOUNT = account_fingerprint("lambda", "SENTINEL-ledger-worker-key-8e2f")


def _report(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data), encoding="utf-8")


def write(url: str, worker: int, count: int, start: Any, report: str) -> None:
    """Record ``count`` requests and launch intents (completed with an instance id)."""
    start.wait(60)
    with open_ledger(url) as ledger:
        for i in range(count):
            ledger.record_request(f"w{worker}-{i}", "launch", cluster=f"c{worker}")
            intent = ledger.record_intent("lambda", ACCOUNT, name=f"w{worker}-{i}")
            ledger.complete_intent(intent.intent_id, f"inst-{worker}-{i}")
    _report(report, {"worker": worker, "pid": os.getpid()})


def claim_until_done(url: str, owner: str, start: Any, report: str, batch: int = 5) -> None:
    """Claim and finish pending requests until none is left; report every request handled."""
    start.wait(60)
    handled: list[str] = []
    not_final: list[str] = []
    deadline = time.monotonic() + 120
    with open_ledger(url) as ledger:
        while time.monotonic() < deadline:
            claimed = ledger.claim_pending(owner, limit=batch, lease_seconds=60)
            if not claimed:
                if not ledger.list_pending(limit=1):
                    break
                time.sleep(0.05)  # the rest is held by others (or a dead monitor's lease)
                continue
            for record in claimed:
                handled.append(record.request_id)
                time.sleep(0.002)  # the work: long enough for the monitors to interleave
                if not ledger.update_request(
                    record.request_id, "SUCCEEDED", summary=f"handled by {owner}"
                ):
                    not_final.append(record.request_id)
    _report(report, {"owner": owner, "handled": handled, "not_final": not_final})


def claim_and_die(url: str, owner: str, count: int, lease_seconds: float, report: str) -> None:
    """Claim ``count`` requests, report them, and die by SIGKILL before finishing any."""
    with open_ledger(url) as ledger:
        claimed = ledger.claim_pending(owner, limit=count, lease_seconds=lease_seconds)
        _report(report, {"owner": owner, "claimed": [r.request_id for r in claimed]})
        os.kill(os.getpid(), signal.SIGKILL)
