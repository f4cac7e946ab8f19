"""What both back ends share: the parameters of every call, checked before any database work."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..errors import InvalidInputError
from . import _sql as sql
from . import _validate as check
from ._model import FINAL_STATUSES, IntentOutcome

#: Most requests one claim hands out (one status call of the monitor covers a batch).
MAX_CLAIM = 500
_NO_LIMIT = 1_000_000_000


def new_owner_id() -> str:
    """A monitor id unique to this process: ``host:pid:random``."""
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())[:64]
    return f"{host or 'host'}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LedgerCore:
    """Parameter building shared by the back ends (no I/O)."""

    def __init__(self, clock: Callable[[], float] | None) -> None:
        self._clock = clock or time.time

    def _now(self) -> float:
        return self._clock()

    def _record_params(
        self,
        request_id: str,
        operation: str,
        *,
        cluster: str | None,
        workspace: str | None,
        tenant: str | None,
        submitted_at: datetime | None,
        status: str,
    ) -> dict[str, Any]:
        status = check.status(status)
        now = self._now()
        return {
            "request_id": check.request_id(request_id),
            "operation": check.operation(operation),
            "cluster": check.name("cluster", cluster),
            "workspace": check.name("workspace", workspace),
            "tenant": check.name("tenant", tenant),
            "submitted_at": now if submitted_at is None else sql.seconds(submitted_at),
            "status": status,
            "now": now,
            # A request recorded after it already ended (a quick call) is not pending.
            "finished_at": now if status in FINAL_STATUSES else None,
        }

    def _update_params(
        self,
        request_id: str,
        status: str,
        *,
        status_message: str | None,
        summary: str | None,
        error_type: str | None,
    ) -> dict[str, Any]:
        status = check.status(status)
        now = self._now()
        final = status in FINAL_STATUSES
        return {
            "request_id": check.request_id(request_id),
            "status": status,
            "status_message": check.text("status_message", status_message),
            "summary": check.text("summary", summary),
            "error_type": check.error_type(error_type),
            "now": now,
            "final": final,
            "finished_at": now if final else None,
        }

    def _pending_params(
        self, *, limit: int | None, operation: str | None, tenant: str | None
    ) -> dict[str, Any]:
        if limit is not None and limit < 1:
            raise InvalidInputError(f"ledger: limit must be 1 or more; got {limit!r}")
        return {
            "limit": _NO_LIMIT if limit is None else limit,
            "operation": None if operation is None else check.operation(operation),
            "tenant": check.name("tenant", tenant),
        }

    def _claim_params(self, owner: str, *, limit: int, lease_seconds: float) -> dict[str, Any]:
        if not 1 <= limit <= MAX_CLAIM:
            raise InvalidInputError(f"ledger: claim limit must be 1 to {MAX_CLAIM}; got {limit!r}")
        lease = check.positive("lease_seconds", lease_seconds, maximum=86_400.0)
        now = self._now()
        return {"owner": check.owner(owner), "limit": limit, "now": now, "until": now + lease}

    def _intent_params(
        self,
        provider: str,
        account: str,
        *,
        name: str | None,
        labels: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        return {
            "intent_id": uuid.uuid4().hex,
            "provider": check.provider(provider),
            "account": check.account(account),
            "name": check.name("name", name),
            "labels": sql.labels_json(check.labels(labels)),
            "now": self._now(),
        }

    def _complete_params(self, intent_id: str, instance_id: str) -> dict[str, Any]:
        return {
            "intent_id": _intent_id(intent_id),
            "instance_id": check.name("instance_id", instance_id),
            "now": self._now(),
            "not_created": IntentOutcome.NOT_CREATED.value,
        }

    def _request_key(self, request_id: str) -> dict[str, Any]:
        return {"request_id": check.request_id(request_id)}

    def _intent_key(self, intent_id: str) -> dict[str, Any]:
        return {"intent_id": _intent_id(intent_id)}

    def _owner_params(self, owner: str) -> dict[str, Any]:
        return {"owner": check.owner(owner)}

    def _close_instance_params(
        self, provider: str, instance_id: str, outcome: IntentOutcome | str
    ) -> dict[str, Any]:
        return {
            **self._close_params(outcome),
            "provider": check.provider(provider),
            "instance_id": check.name("instance_id", instance_id),
        }

    def _close_params(self, outcome: IntentOutcome | str) -> dict[str, Any]:
        try:
            value = IntentOutcome(outcome).value
        except ValueError:
            raise InvalidInputError(
                f"ledger: outcome must be one of {[o.value for o in IntentOutcome]}"
            ) from None
        return {"now": self._now(), "outcome": value}

    def _open_intent_params(
        self,
        *,
        provider: str | None,
        account: str | None,
        without_instance: bool,
        older_than: timedelta | float | None,
    ) -> dict[str, Any]:
        age = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if age is not None and age < 0:
            raise InvalidInputError("ledger: older_than must not be negative")
        return {
            "provider": None if provider is None else check.provider(provider),
            "account": None if account is None else check.account(account),
            "without_instance": bool(without_instance),
            "created_before": self._now() - (age or 0.0),
        }

    def _prune_params(self, older_than: timedelta | float) -> dict[str, Any]:
        age = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        return {"before": self._now() - check.positive("older_than", float(age))}


def _intent_id(value: str) -> str:
    if not isinstance(value, str) or len(value) != 32 or not value.isalnum():
        raise InvalidInputError("ledger: intent_id must be an id from record_intent()")
    return value
