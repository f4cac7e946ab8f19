"""Which requests this client submitted, so a request the server forgot can be named.

A SkyPilot server clears its request database when it starts: every request submitted
before a restart then answers 404, exactly like an id that never existed. Remembering what
we submitted tells the two apart (``RequestLostError`` vs. ``NotFoundError``).

``SubmittedRequests`` is the in-process record, bounded and thread-safe, owned by a client
and shared by its ``with_options`` copies. Anything with the ``RequestRecord`` protocol
(e.g. a persistent ledger) can take its place. No I/O here, and no secrets are stored.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

#: How many submitted requests a client remembers (the oldest are forgotten first).
DEFAULT_CAPACITY = 4096
# Request ids are UUIDs; a shorter prefix could match by chance.
_MIN_PREFIX = 8


@dataclass(frozen=True)
class SubmittedRequest:
    """One request this client submitted."""

    request_id: str
    operation: str
    cluster_name: str | None
    #: The request makes the server do work (launch, exec, start, stop, down, autostop).
    submits_work: bool
    submitted_at: float  # time.time()


class RequestRecord(Protocol):
    """Where submitted requests are recorded and looked up (in-process, or a ledger)."""

    def record(self, request: SubmittedRequest) -> None: ...

    def lookup(self, request_id: str) -> SubmittedRequest | None: ...


class SubmittedRequests:
    """The last ``capacity`` requests submitted in this process (thread-safe)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, SubmittedRequest] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, request: SubmittedRequest) -> None:
        """Remember ``request`` (the oldest one is forgotten when full)."""
        with self._lock:
            self._items[request.request_id] = request
            self._items.move_to_end(request.request_id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def lookup(self, request_id: str) -> SubmittedRequest | None:
        """The request with this id, or with this unique id prefix (as the server allows)."""
        with self._lock:
            found = self._items.get(request_id)
            if found is not None or len(request_id) < _MIN_PREFIX:
                return found
            matches = [r for rid, r in self._items.items() if rid.startswith(request_id)]
        return matches[0] if len(matches) == 1 else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def submitted_now(
    request_id: str, operation: str, cluster_name: str | None, submits_work: bool
) -> SubmittedRequest:
    """A record of a request submitted just now."""
    return SubmittedRequest(request_id, operation, cluster_name, submits_work, time.time())


__all__ = ["RequestRecord", "SubmittedRequest", "SubmittedRequests", "submitted_now"]
