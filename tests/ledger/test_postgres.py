"""PostgreSQL specifics on a real server: migrations, the async ledger, secrets in the URL."""

from __future__ import annotations

import multiprocessing
import re
import socket
import sys

import pytest

from skypilot_client.ledger import (
    AsyncLedger,
    LedgerError,
    LedgerUnavailableError,
    PostgresLedger,
    SchemaVersionError,
    open_ledger,
)
from skypilot_client.ledger import _sql as sql
from skypilot_client.ledger._postgres import INSTALL, AsyncPostgresLedger
from tests.ledger.conftest import FakeClock

PASSWORD = "SENTINEL-postgres-password-5d0e"


def test_an_older_schema_is_upgraded_and_a_newer_one_refused(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute(sql.schema_table_sql("postgres"))
        for statement in sql.MIGRATIONS[0].sql("postgres"):
            raw.execute(statement)
        raw.execute(sql.to_pyformat(sql.RECORD_VERSION), {"version": 1, "description": "v1",
                                                          "now": 1.0})  # fmt: skip
        raw.execute(
            f"INSERT INTO {sql.REQUESTS} (request_id, operation, submitted_at, status, "
            "updated_at) VALUES ('old-req', 'launch', 100.0, 'RUNNING', 100.0)"
        )
    with open_ledger(postgres_url) as ledger:
        assert isinstance(ledger, PostgresLedger)
        assert ledger.schema_version == 2
        assert [r.request_id for r in ledger.claim_pending("m")] == ["old-req"]
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute(sql.to_pyformat(sql.RECORD_VERSION), {"version": 7, "description": "future",
                                                          "now": 2.0})  # fmt: skip
    with pytest.raises(SchemaVersionError, match="version 7"):
        PostgresLedger(postgres_url)


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(LedgerError, match=re.escape(INSTALL)):
        open_ledger("postgresql://127.0.0.1:1/db")


def test_the_password_stays_out_of_repr_and_errors(psycopg_installed: None) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://ledger:{PASSWORD}@127.0.0.1:{port}/db"
    with pytest.raises(LedgerUnavailableError) as info:
        PostgresLedger(url, connect_timeout=2)
    error = info.value
    assert PASSWORD not in f"{error} {error!r} {error.__cause__}"
    assert f"127.0.0.1:{port}/db" in str(error)


def test_repr_names_the_server_not_the_password(postgres_server: object, postgres_url: str) -> None:
    with PostgresLedger(postgres_url) as ledger:
        assert "@" not in repr(ledger) and "127.0.0.1" in repr(ledger)


@pytest.mark.anyio
async def test_the_async_ledger_shares_the_tables(postgres_url: str, clock: FakeClock) -> None:
    ledger = await AsyncPostgresLedger.connect(postgres_url, clock=clock)
    assert isinstance(ledger, AsyncLedger)
    async with ledger:
        assert await ledger.schema_version() == 2
        await ledger.record_request("req-1", "launch", cluster="train")
        await ledger.record_request("req-2", "launch")
        claimed = await ledger.claim_pending("async-monitor", limit=1, lease_seconds=30)
        assert [r.request_id for r in claimed] == ["req-1"]
        assert await ledger.update_request("req-1", "SUCCEEDED", summary="up")
        assert not await ledger.update_request("req-1", "FAILED")
        intent = await ledger.record_intent(
            "lambda", "acct_0123456789abcdef", name="n", labels={"job": "7"}
        )
        await ledger.complete_intent(intent.intent_id, "inst-9")
        assert await ledger.close_instance("lambda", "inst-9") == 1
    # Written through the async connection, read through the sync one.
    with PostgresLedger(postgres_url, clock=clock) as sync:
        assert [r.request_id for r in sync.list_pending()] == ["req-2"]
        done = sync.get_request("req-1")
        assert done is not None and done.summary == "up"
        closed = sync.get_intent(intent.intent_id)
        assert closed is not None and not closed.is_open


def _child_writes(ledger: PostgresLedger) -> None:
    ledger.record_request("from-child", "launch")


def test_a_forked_child_leaves_the_parents_session_alone(postgres_url: str) -> None:
    with PostgresLedger(postgres_url) as ledger:
        ledger.record_request("from-parent", "launch")
        child = multiprocessing.get_context("fork").Process(target=_child_writes, args=(ledger,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        # The parent's connection still works after the child exited.
        assert {r.request_id for r in ledger.list_pending()} == {"from-parent", "from-child"}
