"""A durable ledger of submitted SkyPilot requests and provider launch intents.

Two back ends behind one interface (``Ledger``): ``SQLiteLedger`` (default, standard library,
one file in WAL mode) and ``PostgresLedger`` (psycopg 3, ``pip install 'skypilot-sdk[postgres]'``)
for fleets of processes. ``open_ledger(url)`` picks one from a URL or path. No secret is ever
stored: see docs/service.md.

>>> from skypilot_client.ledger import open_ledger
>>> with open_ledger("/tmp/ledger.sqlite3") as ledger:  # doctest: +SKIP
...     ledger.record_request("abc-123", "launch", cluster="train")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ._base import MAX_CLAIM, new_owner_id
from ._model import (
    FINAL_STATUSES,
    IntentOutcome,
    LaunchIntent,
    LedgerError,
    LedgerNotFoundError,
    LedgerUnavailableError,
    RequestRecord,
    SchemaVersionError,
)
from ._protocol import AsyncLedger, Ledger
from ._sql import LATEST_VERSION as SCHEMA_VERSION
from ._validate import account_fingerprint

if TYPE_CHECKING:
    from ._postgres import AsyncPostgresLedger, PostgresLedger
    from ._sqlite import SQLiteLedger

__all__ = [
    "FINAL_STATUSES",
    "MAX_CLAIM",
    "SCHEMA_VERSION",
    "AsyncLedger",
    "AsyncPostgresLedger",
    "IntentOutcome",
    "LaunchIntent",
    "Ledger",
    "LedgerError",
    "LedgerNotFoundError",
    "LedgerUnavailableError",
    "PostgresLedger",
    "RequestRecord",
    "SQLiteLedger",
    "SchemaVersionError",
    "account_fingerprint",
    "new_owner_id",
    "open_ledger",
]

#: Where ``open_ledger()`` finds the ledger when no URL is given.
LEDGER_URL_ENV = "SKYPILOT_LEDGER_URL"


def default_path() -> str:
    """``$XDG_STATE_HOME/skypilot-sdk/ledger.sqlite3`` (``~/.local/state`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join("~", ".local", "state")
    return os.path.expanduser(os.path.join(state, "skypilot-sdk", "ledger.sqlite3"))


def open_ledger(url: str | os.PathLike[str] | None = None, **options: Any) -> Ledger:
    """Open (and create or migrate) a ledger.

    ``url`` is a file path or ``sqlite:///path`` for SQLite, ``postgresql://...`` (or
    ``postgres://``) for PostgreSQL; None reads ``$SKYPILOT_LEDGER_URL``, then uses
    ``default_path()``. ``options`` go to the back end's constructor.
    """
    target = os.fspath(url) if url is not None else os.environ.get(LEDGER_URL_ENV)
    if not target:
        target = default_path()
    if target.startswith(("postgresql://", "postgres://")):
        from ._postgres import PostgresLedger

        return PostgresLedger(target, **options)
    if target.startswith("sqlite://"):
        target = target.removeprefix("sqlite://")
        if not target.startswith("/"):
            raise ConfigurationError(
                "a sqlite:// ledger URL needs an absolute path: sqlite:///path"
            )
    elif "://" in target:
        raise ConfigurationError("ledger URL: use a file path, sqlite:///path or postgresql://...")
    from ._sqlite import SQLiteLedger

    return SQLiteLedger(target, **options)


def __getattr__(name: str) -> object:
    if name == "SQLiteLedger":
        from ._sqlite import SQLiteLedger

        return SQLiteLedger
    if name in ("PostgresLedger", "AsyncPostgresLedger"):
        from . import _postgres

        return getattr(_postgres, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
