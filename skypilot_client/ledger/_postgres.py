"""The ledger in PostgreSQL, for fleets of processes (psycopg 3: the ``[postgres]`` extra).

Each call is one short transaction. Monitors claim requests with ``FOR UPDATE SKIP LOCKED``
and a lease, so several processes never hold the same request and a crashed monitor's claims
come back when its lease ends. Migrations run under a transaction-scoped advisory lock.

Every call is a *plan* (statements and how to read their results) built once; the sync and
async classes only execute plans (``psycopg.Connection`` / ``psycopg.AsyncConnection``).
Lease times come from the caller's clock: keep the fleet's clocks in sync (NTP) and leases
much longer than the skew.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .._redact import Redactor
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
    import psycopg

__all__ = ["AsyncPostgresLedger", "PostgresLedger"]

INSTALL = "pip install 'skypilot-sdk[postgres]'"
# pg_advisory_xact_lock key of ledger migrations (any constant works; this one spells "skyl").
_MIGRATION_LOCK = 0x736B796C

T = TypeVar("T")
Want = Literal["rows", "rowcount"]


@dataclass(frozen=True)
class _Plan(Generic[T]):
    """Statements of one transaction and the function that reads their results."""

    steps: tuple[tuple[str, Mapping[str, Any], Want], ...]
    finish: Callable[[list[Any]], T]


def _one_request(results: list[Any]) -> RequestRecord:
    return sql.request_from_row(results[-1][0])


def _maybe_request(results: list[Any]) -> RequestRecord | None:
    rows = results[-1]
    return sql.request_from_row(rows[0]) if rows else None


def _requests(results: list[Any]) -> list[RequestRecord]:
    return [sql.request_from_row(row) for row in results[-1]]


def _claimed(results: list[Any]) -> list[RequestRecord]:
    return sorted(_requests(results), key=lambda r: (r.updated_at, r.request_id))


def _changed(results: list[Any]) -> bool:
    return bool(results[-1] == 1)


def _count(results: list[Any]) -> int:
    return sum(int(r) for r in results)


def _maybe_intent(results: list[Any]) -> LaunchIntent | None:
    rows = results[-1]
    return sql.intent_from_row(rows[0]) if rows else None


def _one_intent(results: list[Any]) -> LaunchIntent:
    return sql.intent_from_row(results[-1][0])


def _intents(results: list[Any]) -> list[LaunchIntent]:
    return [sql.intent_from_row(row) for row in results[-1]]


def _completed(results: list[Any]) -> LaunchIntent:
    rows = results[-1]
    if not rows:
        raise LedgerNotFoundError("ledger: no launch intent with this id")
    return sql.intent_from_row(rows[0])


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise LedgerError(f"the PostgreSQL ledger needs psycopg 3 ({exc}): {INSTALL}") from exc
    return psycopg


class _PostgresPlans(LedgerCore):
    """Connection settings and the plan of every call (no I/O)."""

    def __init__(
        self,
        conninfo: str,
        *,
        connect_timeout: float,
        clock: Callable[[], float] | None,
    ) -> None:
        super().__init__(clock)
        pg = _import_psycopg()
        try:
            parts = pg.conninfo.conninfo_to_dict(conninfo)
        except pg.ProgrammingError:
            raise InvalidInputError("ledger: the PostgreSQL URL cannot be parsed") from None
        if not connect_timeout > 0:
            raise InvalidInputError("ledger: connect_timeout must be positive")
        self._conninfo = conninfo
        self._connect_timeout = max(1, round(connect_timeout))
        self._redactor = Redactor([str(parts.get("password") or ""), conninfo])
        self._where = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/" + str(
            parts.get("dbname") or ""
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    def _error(self, exc: Exception) -> LedgerError:
        pg = _import_psycopg()
        message = self._redactor.text(str(exc).strip().splitlines()[0] if str(exc) else "")
        text = f"PostgreSQL ledger {self._where}: {type(exc).__name__}: {message}"
        transient = (
            pg.OperationalError,
            pg.errors.SerializationFailure,
            pg.errors.DeadlockDetected,
        )
        if isinstance(exc, transient):
            return LedgerUnavailableError(text)
        return LedgerError(text)

    @staticmethod
    def _steps(*steps: tuple[str, Mapping[str, Any], Want]) -> tuple[Any, ...]:
        return tuple((sql.to_pyformat(text), params, want) for text, params, want in steps)

    def _migration_steps(self, current: int) -> list[tuple[str, Mapping[str, Any], Want]]:
        steps: list[tuple[str, Mapping[str, Any], Want]] = []
        for migration in sql.migrations_after(current, where=self._where):
            steps += [(statement, {}, "rowcount") for statement in migration.sql("postgres")]
            params = {"version": migration.version, "description": migration.description}
            steps.append((sql.RECORD_VERSION, {**params, "now": self._now()}, "rowcount"))
        return [(sql.to_pyformat(text), params, want) for text, params, want in steps]

    # -- plans ----------------------------------------------------------------------------------

    def _plan_schema_version(self) -> _Plan[int]:
        return _Plan(self._steps((sql.CURRENT_VERSION, {}, "rows")), lambda r: int(r[-1][0][0]))

    def _plan_record_request(self, *args: Any, **kwargs: Any) -> _Plan[RequestRecord]:
        params = self._record_params(*args, **kwargs)
        steps = self._steps(
            (sql.INSERT_REQUEST, params, "rowcount"), (sql.GET_REQUEST, params, "rows")
        )
        return _Plan(steps, _one_request)

    def _plan_update_request(self, *args: Any, **kwargs: Any) -> _Plan[bool]:
        params = self._update_params(*args, **kwargs)
        return _Plan(self._steps((sql.UPDATE_REQUEST, params, "rowcount")), _changed)

    def _plan_get_request(self, request_id: str) -> _Plan[RequestRecord | None]:
        params = self._request_key(request_id)
        return _Plan(self._steps((sql.GET_REQUEST, params, "rows")), _maybe_request)

    def _plan_list_pending(self, **kwargs: Any) -> _Plan[list[RequestRecord]]:
        params = self._pending_params(**kwargs)
        return _Plan(self._steps((sql.LIST_PENDING, params, "rows")), _requests)

    def _plan_claim(self, owner: str, **kwargs: Any) -> _Plan[list[RequestRecord]]:
        params = self._claim_params(owner, **kwargs)
        return _Plan(self._steps((sql.CLAIM_POSTGRES, params, "rows")), _claimed)

    def _plan_release(self, owner: str) -> _Plan[int]:
        params = self._owner_params(owner)
        return _Plan(self._steps((sql.RELEASE_CLAIMS, params, "rowcount")), _count)

    def _plan_record_intent(self, *args: Any, **kwargs: Any) -> _Plan[LaunchIntent]:
        params = self._intent_params(*args, **kwargs)
        steps = self._steps(
            (sql.INSERT_INTENT, params, "rowcount"), (sql.GET_INTENT, params, "rows")
        )
        return _Plan(steps, _one_intent)

    def _plan_complete_intent(self, intent_id: str, instance_id: str) -> _Plan[LaunchIntent]:
        params = self._complete_params(intent_id, instance_id)
        steps = self._steps(
            (sql.COMPLETE_INTENT, params, "rowcount"), (sql.GET_INTENT, params, "rows")
        )
        return _Plan(steps, _completed)

    def _plan_close_intent(self, intent_id: str, outcome: IntentOutcome | str) -> _Plan[bool]:
        params = {**self._close_params(outcome), **self._intent_key(intent_id)}
        return _Plan(self._steps((sql.CLOSE_INTENT, params, "rowcount")), _changed)

    def _plan_close_instance(
        self, provider: str, instance_id: str, outcome: IntentOutcome | str
    ) -> _Plan[int]:
        params = self._close_instance_params(provider, instance_id, outcome)
        return _Plan(self._steps((sql.CLOSE_INSTANCE, params, "rowcount")), _count)

    def _plan_get_intent(self, intent_id: str) -> _Plan[LaunchIntent | None]:
        params = self._intent_key(intent_id)
        return _Plan(self._steps((sql.GET_INTENT, params, "rows")), _maybe_intent)

    def _plan_open_intents(self, **kwargs: Any) -> _Plan[list[LaunchIntent]]:
        params = self._open_intent_params(**kwargs)
        return _Plan(self._steps((sql.LIST_OPEN_INTENTS, params, "rows")), _intents)

    def _plan_prune(self, older_than: timedelta | float) -> _Plan[int]:
        params = self._prune_params(older_than)
        steps = self._steps(
            (sql.PRUNE_REQUESTS, params, "rowcount"), (sql.PRUNE_INTENTS, params, "rowcount")
        )
        return _Plan(steps, _count)


_SCHEMA_STEPS: tuple[tuple[str, Mapping[str, Any], Want], ...] = (
    (f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})", {}, "rowcount"),
    (sql.schema_table_sql("postgres"), {}, "rowcount"),
    (sql.CURRENT_VERSION, {}, "rows"),
)


class PostgresLedger(_PostgresPlans):
    """The ledger in a PostgreSQL database (tables ``skypilot_ledger_*``, created on open).

    Args:
        conninfo: ``postgresql://user:password@host:port/dbname`` or a libpq key=value string.
            The password never appears in a repr or an error.
        connect_timeout: Seconds to wait for a connection.
        clock: UNIX-seconds clock for records and leases; ``time.time`` by default.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(conninfo, connect_timeout=connect_timeout, clock=clock)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self._inherited: list[psycopg.Connection[Any]] = []
        with self._lock:
            self._connection()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and self._pid != os.getpid():
            # A forked child must not use, or close, its parent's session (closing it would
            # end the parent's): keep it referenced and connect anew.
            self._inherited.append(self._conn)
            self._conn, self._pid = None, os.getpid()
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        pg = _import_psycopg()
        try:
            conn: psycopg.Connection[Any] = pg.connect(
                self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
            )
        except pg.Error as exc:
            raise self._error(exc) from exc
        try:
            with conn.transaction():
                current = int(self._execute(conn, _SCHEMA_STEPS)[-1][0][0])
                self._execute(conn, self._migration_steps(current))
        except pg.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @staticmethod
    def _execute(conn: psycopg.Connection[Any], steps: Sequence[Any]) -> list[Any]:
        results: list[Any] = []
        with conn.cursor() as cur:
            for text, params, want in steps:
                cur.execute(text, params)
                results.append(cur.fetchall() if want == "rows" else cur.rowcount)
        return results

    def _run(self, plan: _Plan[T]) -> T:
        pg = _import_psycopg()
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    results = self._execute(conn, plan.steps)
            except pg.Error as exc:
                raise self._error(exc) from exc
        return plan.finish(results)

    @property
    def schema_version(self) -> int:
        """The schema version of the database."""
        return self._run(self._plan_schema_version())

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """See ``Ledger.record_request``."""
        return self._run(
            self._plan_record_request(
                request_id,
                operation,
                cluster=cluster,
                workspace=workspace,
                tenant=tenant,
                submitted_at=submitted_at,
                status=status,
            )
        )

    def update_request(
        self,
        request_id: str,
        status: str,
        *,
        status_message: str | None = None,
        summary: str | None = None,
        error_type: str | None = None,
    ) -> bool:
        """See ``Ledger.update_request``."""
        return self._run(
            self._plan_update_request(
                request_id,
                status,
                status_message=status_message,
                summary=summary,
                error_type=error_type,
            )
        )

    def get_request(self, request_id: str) -> RequestRecord | None:
        """See ``Ledger.get_request``."""
        return self._run(self._plan_get_request(request_id))

    def list_pending(
        self, *, limit: int | None = None, operation: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        """See ``Ledger.list_pending``."""
        return self._run(self._plan_list_pending(limit=limit, operation=operation, tenant=tenant))

    def claim_pending(
        self, owner: str, *, limit: int = 100, lease_seconds: float = 60.0
    ) -> list[RequestRecord]:
        """See ``Ledger.claim_pending`` (rows another claimer is taking are skipped)."""
        return self._run(self._plan_claim(owner, limit=limit, lease_seconds=lease_seconds))

    def release_claims(self, owner: str) -> int:
        """See ``Ledger.release_claims``."""
        return self._run(self._plan_release(owner))

    def record_intent(
        self,
        provider: str,
        account: str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> LaunchIntent:
        """See ``Ledger.record_intent``."""
        return self._run(self._plan_record_intent(provider, account, name=name, labels=labels))

    def complete_intent(self, intent_id: str, instance_id: str) -> LaunchIntent:
        """See ``Ledger.complete_intent``."""
        return self._run(self._plan_complete_intent(intent_id, instance_id))

    def close_intent(
        self, intent_id: str, outcome: IntentOutcome | str = IntentOutcome.TERMINATED
    ) -> bool:
        """See ``Ledger.close_intent``."""
        return self._run(self._plan_close_intent(intent_id, outcome))

    def close_instance(
        self,
        provider: str,
        instance_id: str,
        outcome: IntentOutcome | str = IntentOutcome.TERMINATED,
    ) -> int:
        """See ``Ledger.close_instance``."""
        return self._run(self._plan_close_instance(provider, instance_id, outcome))

    def get_intent(self, intent_id: str) -> LaunchIntent | None:
        """See ``Ledger.get_intent``."""
        return self._run(self._plan_get_intent(intent_id))

    def list_open_intents(
        self,
        *,
        provider: str | None = None,
        account: str | None = None,
        without_instance: bool = False,
        older_than: timedelta | float | None = None,
    ) -> list[LaunchIntent]:
        """See ``Ledger.list_open_intents``."""
        return self._run(
            self._plan_open_intents(
                provider=provider,
                account=account,
                without_instance=without_instance,
                older_than=older_than,
            )
        )

    def prune(self, older_than: timedelta | float) -> int:
        """See ``Ledger.prune``."""
        return self._run(self._plan_prune(older_than))


class AsyncPostgresLedger(_PostgresPlans):
    """``PostgresLedger`` on ``psycopg.AsyncConnection``: the same plans, awaited.

    Create it with ``await AsyncPostgresLedger.connect(conninfo)``; use ``async with``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(conninfo, connect_timeout=connect_timeout, clock=clock)
        self._lock = asyncio.Lock()
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @classmethod
    async def connect(
        cls,
        conninfo: str,
        *,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> AsyncPostgresLedger:
        """Open the ledger (and create or migrate its tables)."""
        ledger = cls(conninfo, connect_timeout=connect_timeout, clock=clock)
        async with ledger._lock:
            await ledger._connection()
        return ledger

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        pg = _import_psycopg()
        try:
            conn: psycopg.AsyncConnection[Any] = await pg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
            )
        except pg.Error as exc:
            raise self._error(exc) from exc
        try:
            async with conn.transaction():
                current = int((await self._execute(conn, _SCHEMA_STEPS))[-1][0][0])
                await self._execute(conn, self._migration_steps(current))
        except pg.Error as exc:
            await conn.close()
            raise self._error(exc) from exc
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    @staticmethod
    async def _execute(conn: psycopg.AsyncConnection[Any], steps: Sequence[Any]) -> list[Any]:
        results: list[Any] = []
        async with conn.cursor() as cur:
            for text, params, want in steps:
                await cur.execute(text, params)
                results.append(await cur.fetchall() if want == "rows" else cur.rowcount)
        return results

    async def _run(self, plan: _Plan[T]) -> T:
        pg = _import_psycopg()
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction():
                    results = await self._execute(conn, plan.steps)
            except pg.Error as exc:
                raise self._error(exc) from exc
        return plan.finish(results)

    async def schema_version(self) -> int:
        """The schema version of the database."""
        return await self._run(self._plan_schema_version())

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> AsyncPostgresLedger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def record_request(
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
        """See ``Ledger.record_request``."""
        return await self._run(
            self._plan_record_request(
                request_id,
                operation,
                cluster=cluster,
                workspace=workspace,
                tenant=tenant,
                submitted_at=submitted_at,
                status=status,
            )
        )

    async def update_request(
        self,
        request_id: str,
        status: str,
        *,
        status_message: str | None = None,
        summary: str | None = None,
        error_type: str | None = None,
    ) -> bool:
        """See ``Ledger.update_request``."""
        return await self._run(
            self._plan_update_request(
                request_id,
                status,
                status_message=status_message,
                summary=summary,
                error_type=error_type,
            )
        )

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """See ``Ledger.get_request``."""
        return await self._run(self._plan_get_request(request_id))

    async def list_pending(
        self, *, limit: int | None = None, operation: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        """See ``Ledger.list_pending``."""
        return await self._run(
            self._plan_list_pending(limit=limit, operation=operation, tenant=tenant)
        )

    async def claim_pending(
        self, owner: str, *, limit: int = 100, lease_seconds: float = 60.0
    ) -> list[RequestRecord]:
        """See ``Ledger.claim_pending``."""
        return await self._run(self._plan_claim(owner, limit=limit, lease_seconds=lease_seconds))

    async def release_claims(self, owner: str) -> int:
        """See ``Ledger.release_claims``."""
        return await self._run(self._plan_release(owner))

    async def record_intent(
        self,
        provider: str,
        account: str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> LaunchIntent:
        """See ``Ledger.record_intent``."""
        return await self._run(
            self._plan_record_intent(provider, account, name=name, labels=labels)
        )

    async def complete_intent(self, intent_id: str, instance_id: str) -> LaunchIntent:
        """See ``Ledger.complete_intent``."""
        return await self._run(self._plan_complete_intent(intent_id, instance_id))

    async def close_intent(
        self, intent_id: str, outcome: IntentOutcome | str = IntentOutcome.TERMINATED
    ) -> bool:
        """See ``Ledger.close_intent``."""
        return await self._run(self._plan_close_intent(intent_id, outcome))

    async def close_instance(
        self,
        provider: str,
        instance_id: str,
        outcome: IntentOutcome | str = IntentOutcome.TERMINATED,
    ) -> int:
        """See ``Ledger.close_instance``."""
        return await self._run(self._plan_close_instance(provider, instance_id, outcome))

    async def get_intent(self, intent_id: str) -> LaunchIntent | None:
        """See ``Ledger.get_intent``."""
        return await self._run(self._plan_get_intent(intent_id))

    async def list_open_intents(
        self,
        *,
        provider: str | None = None,
        account: str | None = None,
        without_instance: bool = False,
        older_than: timedelta | float | None = None,
    ) -> list[LaunchIntent]:
        """See ``Ledger.list_open_intents``."""
        return await self._run(
            self._plan_open_intents(
                provider=provider,
                account=account,
                without_instance=without_instance,
                older_than=older_than,
            )
        )

    async def prune(self, older_than: timedelta | float) -> int:
        """See ``Ledger.prune``."""
        return await self._run(self._plan_prune(older_than))
