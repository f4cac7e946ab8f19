"""What the ledger stores and raises: records, statuses, errors (no I/O, no driver imports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from ..errors import SkyPilotError

__all__ = [
    "FINAL_STATUSES",
    "IntentOutcome",
    "LaunchIntent",
    "LedgerError",
    "LedgerNotFoundError",
    "LedgerUnavailableError",
    "RequestRecord",
    "SchemaVersionError",
]

#: Request statuses after which the ledger stops listing a request as pending: SkyPilot's
#: terminal ``RequestState`` values, and ``LOST`` for a request the server no longer knows
#: (its request database was reset), which would otherwise be polled forever.
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "LOST"})


class LedgerError(SkyPilotError):
    """A ledger operation failed (the database refused it or cannot be read)."""


class LedgerUnavailableError(LedgerError):
    """The database could not be reached or stayed locked past the busy timeout."""

    retryable = True


class SchemaVersionError(LedgerError):
    """The database holds a ledger schema this version of the SDK does not know."""


class LedgerNotFoundError(LedgerError, LookupError):
    """No ledger record has the given id."""


class IntentOutcome(str, Enum):
    """Why a launch intent was closed."""

    TERMINATED = "terminated"
    """The instance was terminated (or found already gone on the vendor's own proof)."""
    NOT_CREATED = "not_created"
    """The vendor proved no instance was created (a rejected create; an orphan check that
    found nothing by label or name)."""


@dataclass(frozen=True)
class RequestRecord:
    """One SkyPilot request as the ledger knows it.

    Attributes:
        request_id: The server's request id.
        operation: What was submitted (``launch``, ``down``, ``jobs.launch``, ...).
        cluster: The cluster the request is about, when there is one.
        workspace: The SkyPilot workspace it was submitted to, when set.
        tenant: The caller's own tenant label, when set.
        submitted_at: When the submission was recorded (UTC).
        status: Last known status: a SkyPilot ``RequestState`` value, or ``LOST``.
        status_message: The server's last status message, when it gave one.
        summary: Result or error summary (credential-looking text masked).
        error_type: The classified error class name, for failed requests.
        updated_at: When the status was last written (a check that changed nothing counts).
        finished_at: When a final status was written; None while pending.
        claimed_by: The monitor that holds this request, while its lease runs.
        claim_expires_at: When that lease ends.
    """

    request_id: str
    operation: str
    cluster: str | None
    workspace: str | None
    tenant: str | None
    submitted_at: datetime
    status: str
    status_message: str | None
    summary: str | None
    error_type: str | None
    updated_at: datetime
    finished_at: datetime | None
    claimed_by: str | None
    claim_expires_at: datetime | None

    @property
    def is_final(self) -> bool:
        """True once a final status (succeeded, failed, cancelled, lost) was recorded."""
        return self.finished_at is not None


@dataclass(frozen=True)
class LaunchIntent:
    """A provider launch written down before the create call (write-ahead).

    Attributes:
        intent_id: The ledger's id for this launch.
        provider: Provider name (``lambda``, ``runpod``, ...).
        account: Fingerprint of the account (``account_fingerprint``), never the key.
        name: The instance name we asked for.
        labels: Our labels on the instance (how orphan tools find it).
        created_at: When the intent was written (before the create call).
        instance_id: The vendor's instance id once the create call answered.
        launched_at: When the instance id was recorded.
        closed_at: When the intent was closed (terminated, or proven never created).
        outcome: Why it was closed.
    """

    intent_id: str
    provider: str
    account: str
    name: str | None
    labels: Mapping[str, str]
    created_at: datetime
    instance_id: str | None
    launched_at: datetime | None
    closed_at: datetime | None
    outcome: IntentOutcome | None

    @property
    def is_open(self) -> bool:
        """True until the intent is closed: the instance may exist and bill."""
        return self.closed_at is None
