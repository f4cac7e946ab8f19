"""SQLite specifics: WAL mode, busy timeout, schema migrations, fork, and import cost."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skypilot_client.ledger import (
    LedgerUnavailableError,
    SchemaVersionError,
    SQLiteLedger,
    open_ledger,
)
from skypilot_client.ledger import _sql as sql
from tests.ledger.conftest import FakeClock


def test_a_fresh_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "ledger.sqlite3"
    with open_ledger(f"sqlite://{path}") as ledger:
        assert isinstance(ledger, SQLiteLedger)
        ledger.record_request("req-1", "launch")
        assert Path(f"{path}-wal").exists()
        raw = sqlite3.connect(path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            versions = raw.execute(f"SELECT version, description FROM {sql.SCHEMA}").fetchall()
        finally:
            raw.close()
    assert [v for v, _ in versions] == [1, 2]


def test_the_default_location_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("SKYPILOT_LEDGER_URL", raising=False)
    with open_ledger() as ledger:
        assert isinstance(ledger, SQLiteLedger)
        assert ledger.path == tmp_path / "state" / "skypilot-sdk" / "ledger.sqlite3"
    monkeypatch.setenv("SKYPILOT_LEDGER_URL", str(tmp_path / "env.sqlite3"))
    with open_ledger() as ledger:
        assert isinstance(ledger, SQLiteLedger) and ledger.path == tmp_path / "env.sqlite3"
    with pytest.raises(ValueError, match="absolute path"):
        open_ledger("sqlite://relative.db")
    with pytest.raises(ValueError, match="ledger URL"):
        open_ledger("mysql://host/db")


def test_a_writer_waits_for_the_lock_then_gives_up_clearly(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with SQLiteLedger(path, busy_timeout=0.3) as ledger:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = time.monotonic()
            with pytest.raises(LedgerUnavailableError, match="locked") as info:
                ledger.record_request("req-1", "launch")
            assert time.monotonic() - started >= 0.25
            assert info.value.is_retryable
            # Released within the timeout: the write waits and succeeds.
            timer = threading.Timer(0.1, lambda: other.execute("ROLLBACK"))
            timer.start()
            assert ledger.record_request("req-1", "launch").request_id == "req-1"
            timer.join()
        finally:
            other.close()


def _create_v1(path: Path) -> None:
    """A ledger file as the first schema version left it, with one pending request."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute(sql.schema_table_sql("sqlite"))
        for statement in sql.MIGRATIONS[0].sql("sqlite"):
            raw.execute(statement)
        raw.execute(
            sql.RECORD_VERSION, {"version": 1, "description": "requests and launch intents",
                                 "now": 1.0}
        )  # fmt: skip
        raw.execute(
            f"INSERT INTO {sql.REQUESTS} (request_id, operation, submitted_at, status, "
            "updated_at) VALUES ('old-req', 'launch', 100.0, 'RUNNING', 100.0)"
        )
    finally:
        raw.close()


def test_an_older_schema_is_upgraded_in_place(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.sqlite3"
    _create_v1(path)
    with SQLiteLedger(path, clock=clock) as ledger:
        assert ledger.schema_version == 2
        old = ledger.get_request("old-req")
        assert old is not None and old.status == "RUNNING" and old.claimed_by is None
        assert [r.request_id for r in ledger.claim_pending("m", limit=5)] == ["old-req"]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    SQLiteLedger(path).close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute(sql.RECORD_VERSION, {"version": 3, "description": "from the future", "now": 1.0})
    raw.close()
    with pytest.raises(SchemaVersionError, match=r"version 3, newer than the 2.*upgrade"):
        SQLiteLedger(path)


def test_synchronous_setting(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "a.sqlite3", synchronous="NORMAL") as ledger:
        assert ledger.record_request("r", "launch").request_id == "r"
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteLedger(tmp_path / "b.sqlite3", synchronous="OFF")  # type: ignore[arg-type]


def _child_writes(ledger: SQLiteLedger) -> None:
    ledger.record_request("from-child", "launch")


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.record_request("from-parent", "launch")
        child = multiprocessing.get_context("fork").Process(target=_child_writes, args=(ledger,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert {r.request_id for r in ledger.list_pending()} == {"from-parent", "from-child"}


def test_importing_the_client_does_not_import_the_ledger() -> None:
    code = (
        "import sys, skypilot_client; "
        "print(sorted(m for m in ('skypilot_client.ledger', 'sqlite3', 'psycopg') "
        "if m in sys.modules)); "
        "import skypilot_client.ledger; "
        "print(sorted(m for m in ('sqlite3', 'psycopg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]
