"""Single flight for identical read-only calls, and the optional short read cache.

Many callers asking the same question at once (200 tasks polling ``list_clusters()``) share
one server round trip: the first caller runs the call, the others wait for its answer. The
key holds everything the answer depends on: server, operation, arguments, credentials
(a digest, never the token) and workspace, so tenants never share an answer. Only read
methods use this; a work submission never does.

``SingleFlight`` serves threads (sync client), ``AsyncSingleFlight`` tasks (async client);
the key, the cache and the copying rules are shared. Cancelling one async waiter never
cancels the shared call: the others still get its answer. An error reaches every waiter
(each its own copy, so tracebacks do not mix).
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import _constants as constants

T = TypeVar("T")
FlightKey = tuple[Hashable, ...]


def freeze(value: Any) -> Hashable:
    """A hashable form of call arguments (lists and dicts become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(freeze(v) for v in value))  # type: ignore[type-var]
    return value  # type: ignore[no-any-return]


def copy_result(value: T) -> T:
    """What one waiter receives: results are frozen models, but their containers are not."""
    if isinstance(value, list):
        return list(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return dict(value)  # type: ignore[return-value]
    return value


def copy_error(error: Exception) -> Exception:
    """A waiter's own copy of the shared call's error (same class, message and fields)."""
    try:
        clone = copy.copy(error)
    except Exception:  # an exception class that cannot be rebuilt: share the original
        return error
    clone.__cause__ = error.__cause__
    return clone


class ReadCache:
    """Successful answers kept for a short time (off unless a client sets a TTL)."""

    def __init__(self, max_entries: int = constants.READ_CACHE_MAX_ENTRIES) -> None:
        self._max = max_entries
        self._items: OrderedDict[FlightKey, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: FlightKey, ttl: float | None) -> tuple[bool, Any]:
        """``(True, answer)`` when one younger than ``ttl`` seconds is kept."""
        if not ttl:
            return False, None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False, None
            stored, value = item
            if time.monotonic() - stored > ttl:
                return False, None
            return True, value

    def put(self, key: FlightKey, value: Any) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class SingleFlight:
    """Single flight across threads (the sync client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[FlightKey, _Flight] = {}
        self.cache = ReadCache()
        #: Calls that joined one already in flight instead of asking the server.
        self.joined = 0

    def run(self, key: FlightKey, call: Callable[[], T], *, ttl: float | None = None) -> T:
        """``call()``'s answer, shared with every identical call in flight."""
        hit, cached = self.cache.get(key, ttl)
        if hit:
            return copy_result(cached)  # type: ignore[no-any-return]
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                self.joined += 1
        if leader:
            try:
                flight.result = call()
            except BaseException as exc:
                flight.error = exc
                raise
            else:
                if ttl:
                    self.cache.put(key, flight.result)
                return flight.result  # type: ignore[no-any-return]
            finally:
                with self._lock:
                    self._flights.pop(key, None)
                flight.done.set()
        flight.done.wait()
        if flight.error is None:
            return copy_result(flight.result)  # type: ignore[no-any-return]
        if not isinstance(flight.error, Exception):
            return call()  # the leader was interrupted (KeyboardInterrupt, ...): ask yourself
        error = copy_error(flight.error)
        raise error from flight.error.__cause__


class AsyncSingleFlight:
    """Single flight across tasks of one event loop (the async client)."""

    def __init__(self) -> None:
        self._tasks: dict[FlightKey, asyncio.Future[Any]] = {}
        self.cache = ReadCache()
        #: Calls that joined one already in flight instead of asking the server.
        self.joined = 0

    async def run(
        self, key: FlightKey, call: Callable[[], Awaitable[T]], *, ttl: float | None = None
    ) -> T:
        """``await call()``'s answer, shared with every identical call in flight."""
        hit, cached = self.cache.get(key, ttl)
        if hit:
            return copy_result(cached)  # type: ignore[no-any-return]
        task = self._tasks.get(key)
        first = task is None
        if task is None:
            task = asyncio.ensure_future(call())
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._finished(key, t, ttl))
        else:
            self.joined += 1
        try:
            # shield: cancelling this waiter must not cancel the call the others wait for.
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if first:
                raise
            error = copy_error(exc)
            raise error from exc.__cause__
        return result if first else copy_result(result)  # type: ignore[no-any-return]

    def _finished(self, key: FlightKey, task: asyncio.Future[Any], ttl: float | None) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if task.cancelled():
            return
        error = task.exception()  # retrieved: no "never retrieved" warning if all left
        if error is None and ttl:
            self.cache.put(key, task.result())


__all__ = ["AsyncSingleFlight", "ReadCache", "SingleFlight", "copy_error", "copy_result", "freeze"]
