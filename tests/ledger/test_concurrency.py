"""Several real processes on one ledger: concurrent writers, and monitors claiming requests.

The processes are spawned (fresh interpreters), start together at a barrier, and report what
they did in JSON files; the checks read those reports and the database itself.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from skypilot_client.ledger import open_ledger
from tests.ledger import workers

CTX = multiprocessing.get_context("spawn")
JOIN_TIMEOUT = 180


def _run_all(processes: list[Any]) -> None:
    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_TIMEOUT)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0] * len(processes)


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_four_processes_write_at_once(ledger_url: str, tmp_path: Path) -> None:
    """Four processes create, migrate and fill one fresh ledger at the same moment."""
    start = CTX.Barrier(4)  # every process is up before any opens the ledger
    reports = [tmp_path / f"writer-{i}.json" for i in range(4)]
    processes = [
        CTX.Process(target=workers.write, args=(ledger_url, i, 50, start, str(reports[i])))
        for i in range(4)
    ]
    _run_all(processes)
    assert all(path.exists() for path in reports)
    with open_ledger(ledger_url) as ledger:
        assert ledger.schema_version == 2
        pending = ledger.list_pending()
        assert len(pending) == 200
        assert len({r.request_id for r in pending}) == 200
        intents = ledger.list_open_intents()
        assert len(intents) == 200
        assert {i.instance_id for i in intents} == {
            f"inst-{w}-{i}" for w in range(4) for i in range(50)
        }


def test_four_monitors_handle_200_requests_once_after_a_crashed_one(
    ledger_url: str, tmp_path: Path
) -> None:
    """A monitor claims 20 requests and is killed; four monitors then share the 200 requests:
    every request is handled exactly once, the dead monitor's 20 after its lease ran out."""
    with open_ledger(ledger_url) as ledger:
        for i in range(200):
            ledger.record_request(f"req-{i:03d}", "launch")
    crash_report = tmp_path / "crashed.json"
    lease = 2.0
    crashed = CTX.Process(
        target=workers.claim_and_die, args=(ledger_url, "crashed", 20, lease, str(crash_report))
    )
    crashed.start()
    crashed.join(JOIN_TIMEOUT)
    assert crashed.exitcode == -9  # SIGKILL: no clean-up ran
    held = set(_read(crash_report)["claimed"])
    assert len(held) == 20
    started = time.monotonic()

    start = CTX.Barrier(4)
    reports = [tmp_path / f"monitor-{i}.json" for i in range(4)]
    processes = [
        CTX.Process(
            target=workers.claim_until_done,
            args=(ledger_url, f"monitor-{i}", start, str(reports[i])),
        )
        for i in range(4)
    ]
    _run_all(processes)

    results = [_read(path) for path in reports]
    handled = Counter(rid for result in results for rid in result["handled"])
    assert sorted(handled) == [f"req-{i:03d}" for i in range(200)]
    assert set(handled.values()) == {1}, "a request was handled by two monitors"
    assert all(result["not_final"] == [] for result in results)
    assert sum(1 for result in results if result["handled"]) >= 2  # the work was shared
    assert time.monotonic() - started >= lease * 0.5  # the dead claims waited for their lease
    with open_ledger(ledger_url) as ledger:
        assert ledger.list_pending() == []
        for request_id in held:
            record = ledger.get_request(request_id)
            assert record is not None and record.status == "SUCCEEDED"
            assert record.summary is not None and "crashed" not in record.summary


def test_threads_share_one_sqlite_ledger(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        errors: list[BaseException] = []

        def write(worker: int) -> None:
            try:
                for i in range(50):
                    ledger.record_request(f"t{worker}-{i}", "launch")
                    ledger.update_request(f"t{worker}-{i}", "RUNNING")
            except BaseException as exc:  # reported to the test thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        pending = ledger.list_pending()
        assert len(pending) == 400 and {r.status for r in pending} == {"RUNNING"}
