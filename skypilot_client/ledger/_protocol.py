"""The ledger interface both back ends implement."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

if sys.version_info >= (3, 11):
    from typing import Self
else:
    from typing_extensions import Self

from ._model import IntentOutcome, LaunchIntent, RequestRecord


@runtime_checkable
class Ledger(Protocol):
    """A durable record of submitted SkyPilot requests and provider launch intents.

    Every method is synchronous and thread-safe, and commits before it returns. Bad input
    raises ``InvalidInputError`` (a ``ValueError``) before any database work; database
    failures raise ``LedgerError`` (``LedgerUnavailableError`` when retrying may help).
    """

    @property
    def schema_version(self) -> int:
        """The schema version of the database."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    # -- SkyPilot requests ------------------------------------------------------------------

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
        ...

    def update_request(
        self,
        request_id: str,
        status: str,
        *,
        status_message: str | None = None,
        summary: str | None = None,
        error_type: str | None = None,
    ) -> bool:
        """Write the last known status of a pending request; a final status
        (``FINAL_STATUSES``) ends it. True when the request was pending (this call changed
        it): of several writers of a final status, exactly one gets True."""
        ...

    def get_request(self, request_id: str) -> RequestRecord | None:
        """The record of one request, or None."""
        ...

    def list_pending(
        self, *, limit: int | None = None, operation: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        """Requests without a final status, oldest submission first."""
        ...

    def claim_pending(
        self, owner: str, *, limit: int = 100, lease_seconds: float = 60.0
    ) -> list[RequestRecord]:
        """Claim up to ``limit`` pending requests for monitor ``owner`` until the lease ends:
        unclaimed ones, expired claims, and ``owner``'s own (renewed)."""
        ...

    def release_claims(self, owner: str) -> int:
        """Give back the pending requests ``owner`` holds; returns how many."""
        ...

    # -- provider launch intents ------------------------------------------------------------

    def record_intent(
        self,
        provider: str,
        account: str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> LaunchIntent:
        """Write down a launch before the create call; ``account`` from
        ``account_fingerprint``."""
        ...

    def complete_intent(self, intent_id: str, instance_id: str) -> LaunchIntent:
        """Record the instance id the create call returned (reopens an intent an orphan check
        had closed as never created). Unknown id: ``LedgerNotFoundError``."""
        ...

    def close_intent(
        self, intent_id: str, outcome: IntentOutcome | str = IntentOutcome.TERMINATED
    ) -> bool:
        """Close one intent; False when it was unknown or already closed."""
        ...

    def close_instance(
        self,
        provider: str,
        instance_id: str,
        outcome: IntentOutcome | str = IntentOutcome.TERMINATED,
    ) -> int:
        """Close the open intents of an instance (on terminate); returns how many."""
        ...

    def get_intent(self, intent_id: str) -> LaunchIntent | None:
        """One intent, or None."""
        ...

    def list_open_intents(
        self,
        *,
        provider: str | None = None,
        account: str | None = None,
        without_instance: bool = False,
        older_than: timedelta | float | None = None,
    ) -> list[LaunchIntent]:
        """Intents not closed yet, oldest first; ``without_instance`` keeps those whose create
        call never answered, ``older_than`` skips launches still in progress."""
        ...

    def prune(self, older_than: timedelta | float) -> int:
        """Delete final requests and closed intents older than ``older_than``."""
        ...


@runtime_checkable
class AsyncLedger(Protocol):
    """``Ledger`` with awaitable methods (``AsyncPostgresLedger``); ``schema_version`` is a
    coroutine method here. SQLite has no asynchronous driver in the standard library: an
    asyncio service uses a ``SQLiteLedger`` from its own thread (its calls take about 0.5 ms)."""

    async def schema_version(self) -> int:
        """The schema version of the database."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

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
        ...

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
        ...

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """See ``Ledger.get_request``."""
        ...

    async def list_pending(
        self, *, limit: int | None = None, operation: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        """See ``Ledger.list_pending``."""
        ...

    async def claim_pending(
        self, owner: str, *, limit: int = 100, lease_seconds: float = 60.0
    ) -> list[RequestRecord]:
        """See ``Ledger.claim_pending``."""
        ...

    async def release_claims(self, owner: str) -> int:
        """See ``Ledger.release_claims``."""
        ...

    async def record_intent(
        self,
        provider: str,
        account: str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> LaunchIntent:
        """See ``Ledger.record_intent``."""
        ...

    async def complete_intent(self, intent_id: str, instance_id: str) -> LaunchIntent:
        """See ``Ledger.complete_intent``."""
        ...

    async def close_intent(
        self, intent_id: str, outcome: IntentOutcome | str = IntentOutcome.TERMINATED
    ) -> bool:
        """See ``Ledger.close_intent``."""
        ...

    async def close_instance(
        self,
        provider: str,
        instance_id: str,
        outcome: IntentOutcome | str = IntentOutcome.TERMINATED,
    ) -> int:
        """See ``Ledger.close_instance``."""
        ...

    async def get_intent(self, intent_id: str) -> LaunchIntent | None:
        """See ``Ledger.get_intent``."""
        ...

    async def list_open_intents(
        self,
        *,
        provider: str | None = None,
        account: str | None = None,
        without_instance: bool = False,
        older_than: timedelta | float | None = None,
    ) -> list[LaunchIntent]:
        """See ``Ledger.list_open_intents``."""
        ...

    async def prune(self, older_than: timedelta | float) -> int:
        """See ``Ledger.prune``."""
        ...
