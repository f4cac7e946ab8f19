"""Effects: what a flow asks its client to do. Plain data, no I/O.

A flow is a generator that yields effects (``Call``, ``Wait``, ``Collect``) and receives their
results. ``SkyPilotClient`` performs them with blocking I/O, ``AsyncSkyPilotClient`` with
``await``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ._deadline import Deadline

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One HTTP exchange that answers JSON (retried per the policy)."""

    method: str
    path: str
    operation: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    #: A POST that makes the server do work: never replayed once it may have arrived.
    submits_work: bool = False
    #: Statuses handed back to the flow instead of raised (``/api/get`` answers 500 + record).
    pass_statuses: frozenset[int] = frozenset()
    #: Read timeout for this call; None = the client's timeout.
    read_timeout: float | None = None
    #: A server long poll: its read timeout is not an error to retry, the waiter re-polls.
    long_poll: bool = False
    cluster_name: str | None = None
    #: The public call's deadline: bounds this call's read timeout (streams included).
    deadline: Deadline | None = None
    #: This request's own credentials, redacted from its errors (besides the client's token).
    secrets: tuple[str, ...] = ()
    #: uploads: a raw body streamed instead of ``json`` (``resources.uploads.FileSlice``).
    content: httpx.SyncByteStream | httpx.AsyncByteStream | None = None
    #: download_logs: the answer is a file, not JSON (``Reply.content``; ``data`` is None).
    binary: bool = False


@dataclass(frozen=True)
class Reply:
    """A successful JSON response."""

    status_code: int
    data: Any
    request_id: str | None
    headers: Mapping[str, str]
    content: bytes = b""


@dataclass(frozen=True)
class Wait:
    """Wait (server long poll) until a request ends, at the latest by ``deadline``."""

    request_id: str
    deadline: Deadline
    operation: str
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collect:
    """Read a whole text stream (``POST /logs``), payload lines filtered, by the call's
    deadline."""

    call: Call


@dataclass(frozen=True)
class Collected:
    """What a ``Collect`` read: output lines and the request id of the stream."""

    lines: list[str]
    request_id: str | None


Effect = Call | Wait | Collect
Flow = Generator[Effect, Any, T]


__all__ = ["Call", "Collect", "Collected", "Effect", "Flow", "Reply", "Wait"]
