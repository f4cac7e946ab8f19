"""The default ledger: one SQLite file in WAL mode (standard library, nothing to set up).

Writers across threads and processes take SQLite's write lock with ``BEGIN IMMEDIATE`` and wait
for it up to the busy timeout; readers never block writers (WAL). One connection per ledger
object, guarded by a lock; a forked child opens its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import InvalidInputError
from . import _sql as sql
from ._base import LedgerCore
from ._model import (
    IntentOutcome,
    LaunchIntent,
    LedgerError,
    LedgerNotFoundError,
    LedgerUnavailableError,
    RequestRecord,
)

if TYPE_CHECKING:
    import sqlite3

__all__ = ["SQLiteLedger"]

Synchronous = Literal["FULL", "NORMAL"]


class SQLiteLedger(LedgerCore):
    """The ledger in one SQLite file (created with its directory when missing).

    Args:
        path: The database file.
        busy_timeout: Seconds a write waits for another writer before
            ``LedgerUnavailableError``.
        synchronous: ``"FULL"`` (default) syncs every commit to disk, so a power loss keeps
            every recorded submission; ``"NORMAL"`` only survives process crashes, and is faster.
        clock: UNIX-seconds clock (tests inject one); ``time.time`` by default.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        synchronous: Synchronous = "FULL",
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(clock)
        if synchronous not in ("FULL", "NORMAL"):
            raise InvalidInputError("synchronous must be 'FULL' or 'NORMAL'")
        if not busy_timeout > 0:
            raise InvalidInputError("busy_timeout must be positive")
        self.path = Path(path).expanduser()
        self._busy_ms = int(busy_timeout * 1000)
        self._synchronous = synchronous
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._connection()

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    # -- connection and transactions ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        import sqlite3

        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:
            # Never close a connection inherited over fork (SQLite forbids using it; closing it
            # could disturb the parent's locks): keep it referenced, open a fresh one.
            self._inherited.append(self._conn)
            self._conn, self._pid = None, os.getpid()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise LedgerUnavailableError(f"cannot open the ledger {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            with _opening_lock(self.path, self._busy_ms / 1000):
                mode = self._enable_wal(conn)
                if str(mode).lower() != "wal":
                    raise LedgerError(
                        f"the ledger {self.path} cannot use WAL mode (journal mode {mode!r}): "
                        "put it on a local file system"
                    )
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise _wrap(exc, self.path) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch the file to WAL (persistent: a no-op once done), retrying "database is
        locked" until the busy timeout: several processes opening a fresh file at once were
        seen to fail here under load."""
        import sqlite3

        deadline = time.monotonic() + self._busy_ms / 1000
        pause = 0.005
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(sql.schema_table_sql("sqlite"))
        # Fast path without the write lock once the file is current.
        if conn.execute(sql.CURRENT_VERSION).fetchone()[0] == sql.LATEST_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others then find it done
        try:
            current = int(conn.execute(sql.CURRENT_VERSION).fetchone()[0])
            for migration in sql.migrations_after(current, where=str(self.path)):
                for statement in migration.sql("sqlite"):
                    conn.execute(statement)
                conn.execute(
                    sql.RECORD_VERSION,
                    {
                        "version": migration.version,
                        "description": migration.description,
                        "now": self._now(),
                    },
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Cursor]:
        import sqlite3

        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn.cursor()
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _wrap(exc, self.path) from exc

    @property
    def schema_version(self) -> int:
        """The schema version of the database file."""
        with self._transaction(write=False) as cur:
            return int(cur.execute(sql.CURRENT_VERSION).fetchone()[0])

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------------

    def record_request(
        self,
        request_id: str,
        operation: str,
        *,
        cluster: str | None = None,
        workspace: str | None = None,
        tenant: str | None = None,
        submitted_at: datetime | None = None,
        status: str = "PENDING",
    ) -> RequestRecord:
        """Record a submitted request (idempotent: a known id keeps its first record)."""
        params = self._record_params(
            request_id,
            operation,
            cluster=cluster,
            workspace=workspace,
            tenant=tenant,
            submitted_at=submitted_at,
            status=status,
        )
        with self._transaction(write=True) as cur:
            cur.execute(sql.INSERT_REQUEST, params)
            row = cur.execute(sql.GET_REQUEST, params).fetchone()
        return sql.request_from_row(row)

    def update_request(
        self,
        request_id: str,
        status: str,
        *,
        status_message: str | None = None,
        summary: str | None = None,
        error_type: str | None = None,
    ) -> bool:
        """Write the last known status of a pending request; a final status ends it.

        Returns True when the request was pending (the row changed), False when it is unknown
        or already final: of racing writers, only one is told it wrote the final status.
        """
        params = self._update_params(
            request_id,
            status,
            status_message=status_message,
            summary=summary,
            error_type=error_type,
        )
        with self._transaction(write=True) as cur:
            return cur.execute(sql.UPDATE_REQUEST, params).rowcount == 1

    def get_request(self, request_id: str) -> RequestRecord | None:
        """The record of one request, or None."""
        params = self._request_key(request_id)
        with self._transaction(write=False) as cur:
            row = cur.execute(sql.GET_REQUEST, params).fetchone()
        return None if row is None else sql.request_from_row(row)

    def list_pending(
        self, *, limit: int | None = None, operation: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        """Requests without a final status, oldest submission first."""
        params = self._pending_params(limit=limit, operation=operation, tenant=tenant)
        with self._transaction(write=False) as cur:
            rows = cur.execute(sql.LIST_PENDING, params).fetchall()
        return [sql.request_from_row(row) for row in rows]

    def claim_pending(
        self, owner: str, *, limit: int = 100, lease_seconds: float = 60.0
    ) -> list[RequestRecord]:
        """Claim up to ``limit`` pending requests for monitor ``owner`` for ``lease_seconds``.

        Takes requests nobody holds, whose lease expired, or that ``owner`` already holds
        (their lease is renewed), least recently updated first.
        """
        params = self._claim_params(owner, limit=limit, lease_seconds=lease_seconds)
        with self._transaction(write=True) as cur:
            ids = [r[0] for r in cur.execute(sql.CLAIMABLE_SQLITE, params).fetchall()]
            if not ids:
                return []
            update, select = sql.claim_sqlite(len(ids))
            by_id = {f"id{i}": request_id for i, request_id in enumerate(ids)}
            cur.execute(update, {**by_id, "owner": params["owner"], "until": params["until"]})
            rows = cur.execute(select, by_id).fetchall()
        records = [sql.request_from_row(row) for row in rows]
        return sorted(records, key=lambda r: (r.updated_at, r.request_id))

    def release_claims(self, owner: str) -> int:
        """Give back every pending request ``owner`` holds (a monitor that stops cleanly)."""
        params = self._owner_params(owner)
        with self._transaction(write=True) as cur:
            return cur.execute(sql.RELEASE_CLAIMS, params).rowcount

    # -- launch intents ---------------------------------------------------------------------------

    def record_intent(
        self,
        provider: str,
        account: str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> LaunchIntent:
        """Write down a launch before the create call (write-ahead)."""
        params = self._intent_params(provider, account, name=name, labels=labels)
        with self._transaction(write=True) as cur:
            cur.execute(sql.INSERT_INTENT, params)
            row = cur.execute(sql.GET_INTENT, params).fetchone()
        return sql.intent_from_row(row)

    def complete_intent(self, intent_id: str, instance_id: str) -> LaunchIntent:
        """Record the instance id the create call returned."""
        params = self._complete_params(intent_id, instance_id)
        with self._transaction(write=True) as cur:
            cur.execute(sql.COMPLETE_INTENT, params)
            row = cur.execute(sql.GET_INTENT, params).fetchone()
        if row is None:
            raise LedgerNotFoundError(f"ledger: no launch intent {intent_id}")
        return sql.intent_from_row(row)

    def close_intent(
        self, intent_id: str, outcome: IntentOutcome | str = IntentOutcome.TERMINATED
    ) -> bool:
        """Close one intent; False when it was unknown or already closed."""
        params = {**self._close_params(outcome), **self._intent_key(intent_id)}
        with self._transaction(write=True) as cur:
            return cur.execute(sql.CLOSE_INTENT, params).rowcount == 1

    def close_instance(
        self,
        provider: str,
        instance_id: str,
        outcome: IntentOutcome | str = IntentOutcome.TERMINATED,
    ) -> int:
        """Close the open intents of an instance (on terminate); returns how many."""
        params = self._close_instance_params(provider, instance_id, outcome)
        with self._transaction(write=True) as cur:
            return cur.execute(sql.CLOSE_INSTANCE, params).rowcount

    def get_intent(self, intent_id: str) -> LaunchIntent | None:
        """One intent, or None."""
        params = self._intent_key(intent_id)
        with self._transaction(write=False) as cur:
            row = cur.execute(sql.GET_INTENT, params).fetchone()
        return None if row is None else sql.intent_from_row(row)

    def list_open_intents(
        self,
        *,
        provider: str | None = None,
        account: str | None = None,
        without_instance: bool = False,
        older_than: timedelta | float | None = None,
    ) -> list[LaunchIntent]:
        """Intents not closed yet, oldest first: what may still exist and bill."""
        params = self._open_intent_params(
            provider=provider,
            account=account,
            without_instance=without_instance,
            older_than=older_than,
        )
        with self._transaction(write=False) as cur:
            rows = cur.execute(sql.LIST_OPEN_INTENTS, params).fetchall()
        return [sql.intent_from_row(row) for row in rows]

    def prune(self, older_than: timedelta | float) -> int:
        """Delete final requests and closed intents older than ``older_than``; returns how many."""
        params = self._prune_params(older_than)
        with self._transaction(write=True) as cur:
            count = cur.execute(sql.PRUNE_REQUESTS, params).rowcount
            return count + cur.execute(sql.PRUNE_INTENTS, params).rowcount


@contextmanager
def _opening_lock(path: Path, timeout: float) -> Iterator[None]:
    """Serialise the first steps of opening (WAL switch, migrations) across processes with an
    advisory lock file beside the ledger, so openers of a fresh file never race on the
    journal-mode change. Without ``fcntl`` (Windows) the SQLite-level retries alone remain."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        handle = open(f"{path}.lock", "a+b")  # noqa: SIM115 - closed below, after unlocking
    except OSError as exc:
        raise LedgerUnavailableError(f"cannot open the ledger lock {path}.lock: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LedgerUnavailableError(
                        f"ledger {path}: another process kept it locked while opening "
                        f"for more than {timeout:g} s"
                    ) from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _wrap(exc: Exception, path: Path) -> LedgerError:
    text = str(exc)
    if "locked" in text or "busy" in text or "unable to open" in text or "disk I/O" in text:
        return LedgerUnavailableError(f"ledger {path}: {text}")
    return LedgerError(f"ledger {path}: {type(exc).__name__}: {text}")
