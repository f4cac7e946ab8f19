"""A background monitor of the requests recorded in a ledger (see docs/service.md).

``RequestMonitor`` (a thread) and ``AsyncRequestMonitor`` (an asyncio task) claim the pending
requests of a ``skypilot_client.ledger`` ledger, ask the server about them in batches (one
``GET /api/status`` names many request ids and asks only for the fields it reads), write what
they learn back to the ledger and emit typed events: ``RequestRunning``,
``RequestSucceeded``, ``RequestFailed`` (with the classified error), ``RequestCancelled``,
``RequestLost``. A final event is emitted by the one monitor whose ledger write ended the
request, so several monitors (processes) on one PostgreSQL ledger never emit it twice.

Both monitors share one core (``_MonitorCore``: batches, calls, decisions); they differ only in
how they sleep, call the ledger and run the client's flows.

>>> from skypilot_client import SkyPilotClient
>>> from skypilot_client.ledger import open_ledger
>>> from skypilot_client.monitor import RequestMonitor
>>> with SkyPilotClient() as client, open_ledger() as ledger:  # doctest: +SKIP
...     with RequestMonitor(client, ledger, on_event=print):
...         ...
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue
import random
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._effects import Call, Flow
from ._protocol import expect_dict, expect_list, outcome_of_get
from .errors import InvalidInputError, SkyPilotError

if TYPE_CHECKING:
    from ._async_client import AsyncSkyPilotClient
    from ._client import SkyPilotClient
    from .ledger import AsyncLedger, Ledger, RequestRecord

__all__ = [
    "AsyncRequestMonitor",
    "RequestCancelled",
    "RequestEvent",
    "RequestFailed",
    "RequestLost",
    "RequestMonitor",
    "RequestRunning",
    "RequestSucceeded",
]

logger = logging.getLogger("skypilot_client.monitor")
logger.addHandler(logging.NullHandler())

#: Query-string budget of one ``/api/status`` call. Servers and proxies commonly refuse
#: request lines over 8 KiB (nginx's default buffer, uvicorn/h11's limit); stay well below.
MAX_QUERY_BYTES = 6_000
#: Fields the monitor reads; the server fills the others with placeholders, so ask for few.
STATUS_FIELDS = ("request_id", "status", "status_msg")
_FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
_QUEUED_EVENTS = 10_000
_STATUS_RE = re.compile(r"[A-Z][A-Z_]{0,31}")


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestEvent:
    """Something the monitor learned about a recorded request.

    Attributes:
        request_id: The server's request id.
        operation: What was submitted (``launch``, ``down``, ...).
        cluster: The cluster it is about, when recorded.
        workspace: The workspace it was submitted to, when recorded.
        tenant: Your tenant label, when recorded.
        status: The status now recorded in the ledger.
        status_message: The server's status message, when it gave one.
    """

    request_id: str
    operation: str
    cluster: str | None
    workspace: str | None
    tenant: str | None
    status: str
    status_message: str | None

    @property
    def is_final(self) -> bool:
        """True for the final events (succeeded, failed, cancelled, lost)."""
        return not isinstance(self, RequestRunning)


@dataclass(frozen=True)
class RequestRunning(RequestEvent):
    """Still pending or running; emitted when its status or status message changed."""


@dataclass(frozen=True)
class RequestSucceeded(RequestEvent):
    """The request succeeded (emitted once per request)."""


@dataclass(frozen=True)
class RequestFailed(RequestEvent):
    """The request failed (emitted once); ``error`` is the classified error the client would
    raise for it (``ResourcesUnavailableError``, ...), None when the server no longer had the
    error record."""

    error: SkyPilotError | None = None


@dataclass(frozen=True)
class RequestCancelled(RequestEvent):
    """The request was cancelled (emitted once)."""


@dataclass(frozen=True)
class RequestLost(RequestEvent):
    """The server no longer knows the request (its request database was reset or pruned):
    its outcome cannot be learned (emitted once). Check the cluster itself."""


EventCallback = Callable[[RequestEvent], object]


# -- the shared core (no I/O) -----------------------------------------------------------------


@dataclass(frozen=True)
class _Decision:
    """What one check found for one claimed request."""

    record: RequestRecord
    status: str
    status_message: str | None = None
    error: SkyPilotError | None = None
    seen: bool = True

    @property
    def final(self) -> bool:
        return self.status in _FINAL or self.status == "LOST"

    def update_args(self) -> dict[str, Any]:
        error = self.error
        summary = error.message if error is not None else None
        if self.status == "LOST":
            summary = "the server no longer knows this request"
        return {
            "status_message": self.status_message,
            "summary": summary,
            "error_type": type(error).__name__ if error is not None else None,
        }

    def event(self) -> RequestEvent | None:
        """The event for this decision (after the ledger accepted the write)."""
        cls: type[RequestEvent] | None = {
            "SUCCEEDED": RequestSucceeded,
            "FAILED": RequestFailed,
            "CANCELLED": RequestCancelled,
            "LOST": RequestLost,
        }.get(self.status)
        r = self.record
        message = self.status_message if self.status_message is not None else r.status_message
        fields: dict[str, Any] = {
            "request_id": r.request_id,
            "operation": r.operation,
            "cluster": r.cluster,
            "workspace": r.workspace,
            "tenant": r.tenant,
            "status": self.status,
            "status_message": message,
        }
        if cls is RequestFailed:
            return RequestFailed(**fields, error=self.error)
        if cls is not None:
            return cls(**fields)
        if self.seen and (self.status != r.status or message != r.status_message):
            return RequestRunning(**fields)
        return None


class _MonitorCore:
    """Settings, batching, the ``/api/status`` and ``/api/get`` flows and the decisions."""

    def __init__(
        self,
        *,
        owner: str | None,
        interval: float,
        lease_seconds: float | None,
        claim_limit: int,
        max_query_bytes: int,
        lost_after: int,
        max_backoff: float,
        on_event: EventCallback | Sequence[EventCallback] | None,
    ) -> None:
        from .ledger import MAX_CLAIM, new_owner_id

        if not isinstance(interval, (int, float)) or interval <= 0:
            raise InvalidInputError("interval must be a positive number of seconds")
        lease = lease_seconds if lease_seconds is not None else max(60.0, 4 * interval)
        if lease <= interval:
            raise InvalidInputError(
                "lease_seconds must be longer than interval: a claim must outlive one cycle"
            )
        if not 1 <= claim_limit <= MAX_CLAIM:
            raise InvalidInputError(f"claim_limit must be 1 to {MAX_CLAIM}")
        if max_query_bytes < 200:
            raise InvalidInputError("max_query_bytes must leave room for at least one id")
        if lost_after < 1:
            raise InvalidInputError("lost_after must be 1 or more")
        if max_backoff < interval:
            raise InvalidInputError("max_backoff must be at least interval")
        self.owner = owner or new_owner_id()
        self.interval = float(interval)
        self.lease = float(lease)
        self.claim_limit = claim_limit
        self.max_query_bytes = max_query_bytes
        self.lost_after = lost_after
        self.max_backoff = float(max_backoff)
        if on_event is None:
            self.callbacks: list[EventCallback] = []
        elif callable(on_event):
            self.callbacks = [on_event]
        else:
            self.callbacks = list(on_event)
        self.misses: dict[str, int] = {}
        self.failures = 0  # consecutive cycles the server could not be reached
        #: HTTP calls made by the last cycle (benchmarks and tests read it).
        self.last_cycle_calls = 0

    # batching

    def batches(self, records: Sequence[RequestRecord]) -> list[list[RequestRecord]]:
        """Split into batches whose ``/api/status`` query stays within the byte budget."""
        fixed = len("all_status=true") + sum(len(f"&fields={f}") for f in STATUS_FIELDS)
        out: list[list[RequestRecord]] = []
        batch: list[RequestRecord] = []
        size = fixed
        for record in records:
            cost = len("&request_ids=") + len(quote(record.request_id, safe=""))
            if batch and size + cost > self.max_query_bytes:
                out.append(batch)
                batch, size = [], fixed
            batch.append(record)
            size += cost
        if batch:
            out.append(batch)
        return out

    # flows (run by the client's driver: retries, errors, metrics hooks all apply)

    def flow_batch(self, batch: Sequence[RequestRecord]) -> Flow[list[_Decision]]:
        """One ``/api/status`` call for the batch, plus one ``/api/get`` per failed request
        (only that answer carries the error)."""
        reply = yield Call(
            "GET",
            "/api/status",
            "monitor",
            params={
                "request_ids": [r.request_id for r in batch],
                "all_status": "true",
                "fields": list(STATUS_FIELDS),
            },
        )
        items = expect_list(reply.data, operation="monitor", where="/api/status answer")
        found: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(items):
            item = expect_dict(item, operation="monitor", where=f"/api/status[{i}]")
            rid = item.get("request_id")
            if isinstance(rid, str):
                found[rid] = item
        decisions: list[_Decision] = []
        for record in batch:
            item = found.get(record.request_id)
            if item is None:
                decisions.append(self._missing(record))
                continue
            self.misses.pop(record.request_id, None)
            status = str(item.get("status") or "UNKNOWN").upper()
            if not _STATUS_RE.fullmatch(status):  # never written to the ledger as is
                status = "UNKNOWN"
            message = item.get("status_msg")
            message = message if isinstance(message, str) and message else None
            if status == "FAILED":
                error = yield from self._flow_error(record.request_id)
                decisions.append(_Decision(record, status, message, error))
            elif status in _FINAL:
                decisions.append(_Decision(record, status, message))
            else:  # in flight (or a state this client does not know: not final either)
                decisions.append(_Decision(record, status, message))
        return decisions

    def _missing(self, record: RequestRecord) -> _Decision:
        misses = self.misses.get(record.request_id, 0) + 1
        if misses >= self.lost_after:
            self.misses.pop(record.request_id, None)
            return _Decision(record, "LOST", seen=False)
        self.misses[record.request_id] = misses
        return _Decision(record, record.status, seen=False)

    def _flow_error(self, request_id: str) -> Flow[SkyPilotError | None]:
        reply = yield Call(
            "GET",
            "/api/get",
            "monitor",
            params={"request_id": request_id},
            pass_statuses=frozenset({404, 500}),
        )
        if reply.status_code == 404:
            return None  # pruned between the two calls: failed, error unknown
        from ._redact import Redactor

        try:
            outcome_of_get(
                reply.status_code,
                reply.headers,
                reply.content,
                request_id=request_id,
                redactor=Redactor([]),  # the server redacts; our token never is in a body
                operation="monitor",
            )
        except SkyPilotError as error:
            return error
        return None

    # outcomes

    def plan_wait(self, unreachable: bool) -> float:
        """Seconds until the next cycle: the interval, or a growing, jittered backoff while
        the server (or the ledger) cannot be reached."""
        if not unreachable:
            self.failures = 0
            return self.interval
        self.failures += 1
        delay = min(self.max_backoff, self.interval * float(2 ** min(self.failures, 16)))
        jitter: float = random.uniform(0.8, 1.0)  # noqa: S311 (jitter, not a secret)
        return delay * jitter

    def emit(self, event: RequestEvent) -> None:
        for callback in self.callbacks:
            try:
                callback(event)
            except Exception:  # a broken callback must not stop the monitor
                logger.exception("a request monitor callback raised")


def _log_cycle_error(error: BaseException) -> None:
    logger.warning(
        "request monitor: cycle failed (%s: %s); backing off",
        type(error).__name__,
        error,
    )


# -- the blocking monitor (a thread) ----------------------------------------------------------


class RequestMonitor:
    """Watches the pending requests of a ledger from a background thread.

    Args:
        client: The ``SkyPilotClient`` to ask (its retries, timeout and hooks apply).
        ledger: A ``skypilot_client.ledger`` ledger (SQLite or PostgreSQL).
        on_event: A callback (or several) called with each ``RequestEvent``, from the monitor
            thread; keep it short, it delays the next check.
        interval: Seconds between cycles (default 30).
        owner: This monitor's claim owner (default ``new_owner_id()``). A service restarting
            under a stable name (its pod name) takes its old claims back at once.
        lease_seconds: How long claims last without renewal (default ``max(60, 4 *
            interval)``); a crashed monitor's requests are picked up after it.
        claim_limit: Requests claimed per cycle (at most ``MAX_CLAIM``; the least recently
            checked first, so more pending requests than this are checked in turn).
        max_query_bytes: Query budget of one ``/api/status`` call (sets the batch size).
        lost_after: Consecutive checks in which the server does not know a request before
            it is recorded ``LOST``.
        max_backoff: Longest wait between cycles while the server cannot be reached.
    """

    def __init__(
        self,
        client: SkyPilotClient,
        ledger: Ledger,
        *,
        on_event: EventCallback | Sequence[EventCallback] | None = None,
        interval: float = 30.0,
        owner: str | None = None,
        lease_seconds: float | None = None,
        claim_limit: int = 500,
        max_query_bytes: int = MAX_QUERY_BYTES,
        lost_after: int = 2,
        max_backoff: float = 300.0,
    ) -> None:
        if inspect.iscoroutinefunction(getattr(ledger, "claim_pending", None)):
            raise InvalidInputError("RequestMonitor needs a synchronous ledger")
        self._client = client
        self._ledger = ledger
        self._core = _MonitorCore(
            owner=owner,
            interval=interval,
            lease_seconds=lease_seconds,
            claim_limit=claim_limit,
            max_query_bytes=max_query_bytes,
            lost_after=lost_after,
            max_backoff=max_backoff,
            on_event=on_event,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Buffered from the start, so events() misses nothing emitted before it is called;
        # bounded, so a monitor nobody iterates does not grow without end.
        self._queue: queue.Queue[RequestEvent | None] = queue.Queue(maxsize=_QUEUED_EVENTS)

    @property
    def owner(self) -> str:
        """The claim owner id of this monitor."""
        return self._core.owner

    @property
    def last_cycle_calls(self) -> int:
        """HTTP calls the last cycle made (``/api/status`` batches and ``/api/get`` lookups)."""
        return self._core.last_cycle_calls

    def check_once(self) -> list[RequestEvent]:
        """Run one cycle now, in this thread; returns the events it emitted. Raises what
        stopped the cycle (server or ledger unreachable)."""
        core, ledger = self._core, self._ledger
        claimed = ledger.claim_pending(core.owner, limit=core.claim_limit, lease_seconds=core.lease)
        core.last_cycle_calls = 0
        events: list[RequestEvent] = []
        for batch in core.batches(claimed):
            decisions = self._client._run(core.flow_batch(batch))
            core.last_cycle_calls += 1 + sum(1 for d in decisions if d.status == "FAILED")
            for decision in decisions:
                changed = ledger.update_request(
                    decision.record.request_id, decision.status, **decision.update_args()
                )
                event = decision.event() if changed else None
                if event is not None:
                    events.append(event)
                    self._emit(event)
        return events

    def _emit(self, event: RequestEvent) -> None:
        self._core.emit(event)
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:  # nobody reads events(): keep the newest
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
                wait = self._core.plan_wait(False)
            except Exception as error:  # keep watching: the next cycle may succeed
                _log_cycle_error(error)
                wait = self._core.plan_wait(True)
            self._stop.wait(wait)

    def start(self) -> RequestMonitor:
        """Start the background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the monitor was already started")
        self._thread = threading.Thread(target=self._loop, name="skypilot-request-monitor")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread (after the cycle in progress) and give back its claims."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._ledger.release_claims(self._core.owner)
        except SkyPilotError as error:  # the claims then expire by themselves
            logger.warning("request monitor: could not release claims (%s)", error)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def events(self, timeout: float | None = None) -> Iterator[RequestEvent]:
        """Iterate over the emitted events (buffered since the monitor was created, the
        newest ``10_000`` kept), until the monitor stops or no event came for ``timeout``
        seconds. One reader: each event is yielded once."""
        while True:
            try:
                event = self._queue.get(timeout=timeout)
            except queue.Empty:
                return
            if event is None:
                return
            yield event

    def __enter__(self) -> RequestMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the asyncio monitor (a task) -------------------------------------------------------------


class AsyncRequestMonitor:
    """``RequestMonitor`` as an asyncio task, for ``AsyncSkyPilotClient``.

    ``ledger`` is an ``AsyncPostgresLedger`` (awaited) or a synchronous ledger: SQLite has no
    asynchronous driver, so a ``SQLiteLedger`` (or ``PostgresLedger``) is called from one
    thread of the monitor's own, never on the event loop. Callbacks run on the event loop;
    ``async for event in monitor.events()`` reads the same events. Arguments as for
    ``RequestMonitor``.
    """

    def __init__(
        self,
        client: AsyncSkyPilotClient,
        ledger: Ledger | AsyncLedger,
        *,
        on_event: EventCallback | Sequence[EventCallback] | None = None,
        interval: float = 30.0,
        owner: str | None = None,
        lease_seconds: float | None = None,
        claim_limit: int = 500,
        max_query_bytes: int = MAX_QUERY_BYTES,
        lost_after: int = 2,
        max_backoff: float = 300.0,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._async_ledger = inspect.iscoroutinefunction(getattr(ledger, "claim_pending", None))
        self._core = _MonitorCore(
            owner=owner,
            interval=interval,
            lease_seconds=lease_seconds,
            claim_limit=claim_limit,
            max_query_bytes=max_query_bytes,
            lost_after=lost_after,
            max_backoff=max_backoff,
            on_event=on_event,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._queues: list[asyncio.Queue[RequestEvent | None]] = []

    @property
    def owner(self) -> str:
        """The claim owner id of this monitor."""
        return self._core.owner

    @property
    def last_cycle_calls(self) -> int:
        """HTTP calls the last cycle made."""
        return self._core.last_cycle_calls

    async def _ledger_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._ledger, name)
        if self._async_ledger:
            return await method(*args, **kwargs)
        if self._executor is None:  # one thread: the ledger's calls stay ordered
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="skypilot-ledger")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: method(*args, **kwargs))

    async def check_once(self) -> list[RequestEvent]:
        """Run one cycle now; returns the events it emitted."""
        core = self._core
        claimed = await self._ledger_call(
            "claim_pending", core.owner, limit=core.claim_limit, lease_seconds=core.lease
        )
        core.last_cycle_calls = 0
        events: list[RequestEvent] = []
        for batch in core.batches(claimed):
            decisions = await self._client._run(core.flow_batch(batch))
            core.last_cycle_calls += 1 + sum(1 for d in decisions if d.status == "FAILED")
            for decision in decisions:
                changed = await self._ledger_call(
                    "update_request",
                    decision.record.request_id,
                    decision.status,
                    **decision.update_args(),
                )
                event = decision.event() if changed else None
                if event is not None:
                    events.append(event)
                    core.emit(event)
                    for q in self._queues:
                        q.put_nowait(event)
        return events

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_once()
                wait = self._core.plan_wait(False)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _log_cycle_error(error)
                wait = self._core.plan_wait(True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    def start(self) -> AsyncRequestMonitor:
        """Start the task on the running event loop (once)."""
        if self._task is not None:
            raise RuntimeError("the monitor was already started")
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        """Cancel the task and give back its claims."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._ledger_call("release_claims", self._core.owner)
        except SkyPilotError as error:
            logger.warning("request monitor: could not release claims (%s)", error)
        for q in self._queues:
            q.put_nowait(None)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def events(self) -> AsyncIterator[RequestEvent]:
        """Iterate over the events emitted from now on, until the monitor stops."""
        q: asyncio.Queue[RequestEvent | None] = asyncio.Queue()
        self._queues.append(q)
        try:
            while (event := await q.get()) is not None:
                yield event
        finally:
            self._queues.remove(q)

    async def __aenter__(self) -> AsyncRequestMonitor:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
