"""The request monitor against the real local SkyPilot server, killed mid-way and restarted.

Launches are submitted through a ledger-backed client (dry runs on the offline Hyperbolic
catalog: some succeed, one fails on resources, one real launch with ``retry_until_up`` keeps
running until we cancel it). A monitoring subprocess is killed with SIGKILL after it emitted
its first final event; a new one on the same ledger takes over once the dead one's claims
expire, and every request reaches its final state with its final event emitted once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import LaunchRequest, SkyPilotClient
from skypilot_client.ledger import open_ledger
from tests.scenarios import GPU_TASK

ROOT = Path(__file__).resolve().parents[2]
FINAL_KINDS = {"RequestSucceeded", "RequestFailed", "RequestCancelled", "RequestLost"}


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _monitor(base_url: str, ledger: Path, events: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.monitor_process",
            base_url,
            str(ledger),
            str(events),
            "--lease",
            "3",
            "--interval",
            "0.3",
            *extra,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def _until(condition: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_monitor_is_replaced_and_every_request_ends_once(
    skypilot_server: LocalSkyPilotServer, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(ledger_path)
    impossible = GPU_TASK.replace("H100:1", "H100:1000")
    with SkyPilotClient(skypilot_server.base_url, ledger=ledger, tenant="kill-test") as client:
        ok = [
            client.launch(LaunchRequest(cluster_name=f"mon-ok-{i}", task=GPU_TASK, dryrun=True))
            for i in range(3)
        ]
        bad = client.launch(LaunchRequest(cluster_name="mon-bad", task=impossible, dryrun=True))
        hang = client.launch(
            LaunchRequest(cluster_name="mon-hang", task=GPU_TASK, retry_until_up=True)
        )
        ids = {h.request_id for h in [*ok, bad, hang]}
        # Recorded before launch() returned, every one of them:
        assert {r.request_id for r in ledger.list_pending()} == ids

        first_events = tmp_path / "events-1.jsonl"
        second_events = tmp_path / "events-2.jsonl"
        first = _monitor(skypilot_server.base_url, ledger_path, first_events)
        try:
            _until(
                lambda: any(e["kind"] in FINAL_KINDS for e in _events(first_events)),
                240,
                "the first monitor's first final event",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        pending = ledger.list_pending()
        assert pending, "the kill must leave work behind"
        assert hang.request_id in {r.request_id for r in pending}
        assert all(r.claimed_by for r in pending)  # held by the dead monitor until its lease ends

        second = _monitor(skypilot_server.base_url, ledger_path, second_events, "--exit-when-idle")
        try:
            _until(
                lambda: {r.request_id for r in ledger.list_pending()} == {hang.request_id},
                240,
                "every request but the hanging one to end",
            )
            client.cancel_request(hang.request_id)
            assert second.wait(120) == 0
        finally:
            if second.poll() is None:
                second.kill()

    records = {rid: ledger.get_request(rid) for rid in ids}
    assert all(r is not None and r.is_final for r in records.values())
    statuses = {rid: r.status for rid, r in records.items() if r is not None}
    assert statuses[bad.request_id] == "FAILED"
    assert records[bad.request_id].error_type == "ResourcesUnavailableError"  # type: ignore[union-attr]
    assert statuses[hang.request_id] == "CANCELLED"
    assert all(statuses[h.request_id] == "SUCCEEDED" for h in ok)

    events = _events(first_events) + _events(second_events)
    finals = Counter(e["request_id"] for e in events if e["kind"] in FINAL_KINDS)
    assert finals == Counter(dict.fromkeys(ids, 1))  # each request's final event, once
    by_id = {e["request_id"]: e for e in events if e["kind"] in FINAL_KINDS}
    assert by_id[bad.request_id]["error"] == "ResourcesUnavailableError"
    assert by_id[hang.request_id]["kind"] == "RequestCancelled"
    assert {e["pid"] for e in _events(second_events)} and _events(second_events)
    ledger.close()
