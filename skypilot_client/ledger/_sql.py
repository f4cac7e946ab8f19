"""The ledger's SQL, written once for both back ends (no I/O, no driver imports).

Statements use ``:name`` parameters; the PostgreSQL shell turns them into ``%(name)s``.
Times are stored as UNIX seconds (double precision), read back as aware UTC datetimes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Literal

from ._model import IntentOutcome, LaunchIntent, LedgerError, RequestRecord, SchemaVersionError

Dialect = Literal["sqlite", "postgres"]

REQUESTS = "skypilot_ledger_requests"
INTENTS = "skypilot_ledger_intents"
SCHEMA = "skypilot_ledger_schema"


@dataclass(frozen=True)
class Migration:
    """One schema version: statements with ``{real}`` for the dialect's float type."""

    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, dialect: Dialect) -> list[str]:
        real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
        return [s.format(real=real) for s in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "requests and launch intents",
        (
            f"""CREATE TABLE {REQUESTS} (
                request_id TEXT PRIMARY KEY,
                operation TEXT NOT NULL,
                cluster TEXT, workspace TEXT, tenant TEXT,
                submitted_at {{real}} NOT NULL,
                status TEXT NOT NULL,
                status_message TEXT, summary TEXT, error_type TEXT,
                updated_at {{real}} NOT NULL,
                finished_at {{real}})""",
            f"CREATE INDEX {REQUESTS}_pending ON {REQUESTS} (submitted_at) "
            "WHERE finished_at IS NULL",
            f"""CREATE TABLE {INTENTS} (
                intent_id TEXT PRIMARY KEY,
                provider TEXT NOT NULL,
                account TEXT NOT NULL,
                name TEXT,
                labels TEXT NOT NULL,
                created_at {{real}} NOT NULL,
                instance_id TEXT,
                launched_at {{real}},
                closed_at {{real}},
                outcome TEXT)""",
            f"CREATE INDEX {INTENTS}_open ON {INTENTS} (provider, created_at) "
            "WHERE closed_at IS NULL",
            f"CREATE INDEX {INTENTS}_instance ON {INTENTS} (provider, instance_id)",
        ),
    ),
    Migration(
        2,
        "claim leases for request monitors",
        (
            f"ALTER TABLE {REQUESTS} ADD COLUMN claimed_by TEXT",
            f"ALTER TABLE {REQUESTS} ADD COLUMN claim_expires_at {{real}}",
            f"CREATE INDEX {REQUESTS}_claimable ON {REQUESTS} (updated_at) "
            "WHERE finished_at IS NULL",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

CREATE_SCHEMA_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {SCHEMA} "
    "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {real} NOT NULL)"
)
CURRENT_VERSION = f"SELECT COALESCE(MAX(version), 0) FROM {SCHEMA}"
RECORD_VERSION = (
    f"INSERT INTO {SCHEMA} (version, description, applied_at) VALUES (:version, :description, :now)"
)


def schema_table_sql(dialect: Dialect) -> str:
    return CREATE_SCHEMA_TABLE.format(real="REAL" if dialect == "sqlite" else "DOUBLE PRECISION")


def migrations_after(current: int, *, where: str) -> list[Migration]:
    """The migrations to apply on a database at ``current``; a newer schema is an error."""
    if current > LATEST_VERSION:
        raise SchemaVersionError(
            f"the ledger at {where} has schema version {current}, newer than the {LATEST_VERSION} "
            "this skypilot-sdk knows: upgrade skypilot-sdk (never downgrade a shared ledger)"
        )
    return [m for m in MIGRATIONS if m.version > current]


# -- requests ---------------------------------------------------------------------------------

REQUEST_COLUMNS = (
    "request_id, operation, cluster, workspace, tenant, submitted_at, status, status_message, "
    "summary, error_type, updated_at, finished_at, claimed_by, claim_expires_at"
)
INSERT_REQUEST = (
    f"INSERT INTO {REQUESTS} (request_id, operation, cluster, workspace, tenant, submitted_at, "
    "status, status_message, summary, error_type, updated_at, finished_at) VALUES (:request_id, "
    ":operation, :cluster, :workspace, :tenant, :submitted_at, :status, NULL, NULL, NULL, "
    ":now, :finished_at) ON CONFLICT (request_id) DO NOTHING"
)
GET_REQUEST = f"SELECT {REQUEST_COLUMNS} FROM {REQUESTS} WHERE request_id = :request_id"
# Only a pending row changes: the call that writes the final status is the only one told so.
UPDATE_REQUEST = (
    f"UPDATE {REQUESTS} SET status = :status, "
    "status_message = COALESCE(:status_message, status_message), "
    "summary = COALESCE(:summary, summary), error_type = COALESCE(:error_type, error_type), "
    "updated_at = :now, finished_at = :finished_at, "
    "claimed_by = CASE WHEN :final THEN NULL ELSE claimed_by END, "
    "claim_expires_at = CASE WHEN :final THEN NULL ELSE claim_expires_at END "
    "WHERE request_id = :request_id AND finished_at IS NULL"
)
LIST_PENDING = (
    f"SELECT {REQUEST_COLUMNS} FROM {REQUESTS} WHERE finished_at IS NULL "
    "AND (CAST(:operation AS TEXT) IS NULL OR operation = :operation) "
    "AND (CAST(:tenant AS TEXT) IS NULL OR tenant = :tenant) "
    "ORDER BY submitted_at, request_id LIMIT :limit"
)
_CLAIMABLE = (
    f"SELECT request_id FROM {REQUESTS} WHERE finished_at IS NULL AND (claimed_by IS NULL "
    "OR claim_expires_at <= :now OR claimed_by = :owner) ORDER BY updated_at, request_id "
    "LIMIT :limit"
)
# PostgreSQL: one statement; rows another transaction has locked are skipped, not waited for.
CLAIM_POSTGRES = (
    f"UPDATE {REQUESTS} SET claimed_by = :owner, claim_expires_at = :until "
    f"WHERE request_id IN ({_CLAIMABLE} FOR UPDATE SKIP LOCKED) RETURNING {REQUEST_COLUMNS}"
)
# SQLite: the same selection inside BEGIN IMMEDIATE (one writer at a time), then the update.
CLAIMABLE_SQLITE = _CLAIMABLE
RELEASE_CLAIMS = (
    f"UPDATE {REQUESTS} SET claimed_by = NULL, claim_expires_at = NULL "
    "WHERE claimed_by = :owner AND finished_at IS NULL"
)
PRUNE_REQUESTS = f"DELETE FROM {REQUESTS} WHERE finished_at IS NOT NULL AND finished_at < :before"


def claim_sqlite(count: int) -> tuple[str, str]:
    """The update and re-read of ``count`` selected ids (``:id0`` ... parameters)."""
    ids = ", ".join(f":id{i}" for i in range(count))
    update = (
        f"UPDATE {REQUESTS} SET claimed_by = :owner, claim_expires_at = :until "
        f"WHERE request_id IN ({ids})"
    )
    select = f"SELECT {REQUEST_COLUMNS} FROM {REQUESTS} WHERE request_id IN ({ids})"
    return update, select


# -- launch intents ---------------------------------------------------------------------------

INTENT_COLUMNS = (
    "intent_id, provider, account, name, labels, created_at, instance_id, launched_at, "
    "closed_at, outcome"
)
INSERT_INTENT = (
    f"INSERT INTO {INTENTS} ({INTENT_COLUMNS}) VALUES (:intent_id, :provider, :account, :name, "
    ":labels, :now, NULL, NULL, NULL, NULL)"
)
GET_INTENT = f"SELECT {INTENT_COLUMNS} FROM {INTENTS} WHERE intent_id = :intent_id"
# An instance id always lands: a create that answered after an orphan check closed the intent
# as never created means the instance exists after all, so the intent opens again.
COMPLETE_INTENT = (
    f"UPDATE {INTENTS} SET instance_id = :instance_id, launched_at = :now, "
    "closed_at = CASE WHEN outcome = :not_created THEN NULL ELSE closed_at END, "
    "outcome = CASE WHEN outcome = :not_created THEN NULL ELSE outcome END "
    "WHERE intent_id = :intent_id"
)
CLOSE_INTENT = (
    f"UPDATE {INTENTS} SET closed_at = :now, outcome = :outcome "
    "WHERE intent_id = :intent_id AND closed_at IS NULL"
)
CLOSE_INSTANCE = (
    f"UPDATE {INTENTS} SET closed_at = :now, outcome = :outcome "
    "WHERE provider = :provider AND instance_id = :instance_id AND closed_at IS NULL"
)
LIST_OPEN_INTENTS = (
    f"SELECT {INTENT_COLUMNS} FROM {INTENTS} WHERE closed_at IS NULL "
    "AND (CAST(:provider AS TEXT) IS NULL OR provider = :provider) "
    "AND (CAST(:account AS TEXT) IS NULL OR account = :account) "
    "AND (NOT :without_instance OR instance_id IS NULL) "
    "AND created_at <= :created_before ORDER BY created_at, intent_id"
)
PRUNE_INTENTS = f"DELETE FROM {INTENTS} WHERE closed_at IS NOT NULL AND closed_at < :before"

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def to_pyformat(sql: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s``."""
    if "%" in sql:
        raise LedgerError("internal: a ledger statement contains '%'")  # pragma: no cover
    return _PARAM.sub(r"%(\1)s", sql)


# -- rows -------------------------------------------------------------------------------------


def when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def seconds(value: datetime) -> float:
    if value.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware (UTC)")
    return value.timestamp()


def request_from_row(row: Sequence[Any]) -> RequestRecord:
    try:
        return RequestRecord(
            request_id=row[0],
            operation=row[1],
            cluster=row[2],
            workspace=row[3],
            tenant=row[4],
            submitted_at=_required(when(row[5])),
            status=row[6],
            status_message=row[7],
            summary=row[8],
            error_type=row[9],
            updated_at=_required(when(row[10])),
            finished_at=when(row[11]),
            claimed_by=row[12],
            claim_expires_at=when(row[13]),
        )
    except (TypeError, ValueError, OverflowError, IndexError) as exc:
        raise LedgerError(f"ledger: unreadable request row ({type(exc).__name__})") from exc


def intent_from_row(row: Sequence[Any]) -> LaunchIntent:
    try:
        labels = json.loads(row[4])
        if not isinstance(labels, dict):
            raise ValueError("labels is not an object")
        return LaunchIntent(
            intent_id=row[0],
            provider=row[1],
            account=row[2],
            name=row[3],
            labels=MappingProxyType({str(k): str(v) for k, v in labels.items()}),
            created_at=_required(when(row[5])),
            instance_id=row[6],
            launched_at=when(row[7]),
            closed_at=when(row[8]),
            outcome=IntentOutcome(row[9]) if row[9] is not None else None,
        )
    except (TypeError, ValueError, OverflowError, IndexError) as exc:
        raise LedgerError(f"ledger: unreadable intent row ({type(exc).__name__})") from exc


def labels_json(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


def _required(value: datetime | None) -> datetime:
    if value is None:
        raise ValueError("missing time")
    return value
