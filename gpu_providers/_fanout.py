"""One question asked of several providers at once (used by ``search`` and ``orphans``).

The planning (which providers, which clients, what to skip and why) and the bookkeeping of
outcomes exist once, without I/O; ``run_sync`` (threads) and ``run_async`` (tasks) are the
two thin shells. Each provider gets the same deadline; one that misses it, or fails, becomes
a ``ProviderFailure`` beside the others' results, never an exception of the whole call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from .errors import (
    InvalidRequestError,
    MissingCredentialsError,
    MissingDependencyError,
    ProviderError,
    UnsupportedProviderError,
)
from .types import ProviderFeature

__all__ = ["Progress", "ProviderFailure", "SkippedProvider"]

logger = logging.getLogger("gpu_providers")
T = TypeVar("T")


class ProviderFailure(BaseModel):
    """A provider that was asked and did not answer usefully (the others still did)."""

    model_config = ConfigDict(frozen=True)

    provider: str
    #: What went wrong, for people (never contains a credential).
    reason: str
    #: The error's class name (``RateLimitError``, ``ProviderTimeoutError``, ...), or
    #: ``DeadlineExceeded`` when the provider did not answer in time.
    error: str
    #: Whether asking again later may help.
    retryable: bool


class SkippedProvider(BaseModel):
    """A provider that was not asked (no key and no public catalog, extra not installed)."""

    model_config = ConfigDict(frozen=True)

    provider: str
    reason: str


@dataclass(frozen=True)
class Progress:
    """What the fan-out reports while it runs (``on_progress``), from the caller's thread."""

    provider: str
    state: Literal["started", "done", "failed"]
    detail: str = ""


@dataclass
class Target:
    """One provider to ask: the client, and whether we created it (and so close it)."""

    name: str
    client: Any
    owned: bool
    anonymous: bool = False
    #: A task that still uses the client after this call gave up on it (a shared request
    #: another search waits for): an owned client is closed when it ends.
    busy: asyncio.Future[Any] | None = None


@dataclass
class Outcome(Generic[T]):
    """What one fan-out gathered."""

    results: list[tuple[Target, T]]
    failures: list[ProviderFailure]


def _public_catalog(name: str) -> bool:
    from .factory import _load, _lookup

    entry = _lookup(name)
    try:
        cls = _load(entry, entry.sync_class)
    except MissingDependencyError:
        return False
    return ProviderFeature.PUBLIC_CATALOG in getattr(cls, "features", ())


def plan(
    providers: Sequence[Any] | None,
    *,
    asynchronous: bool,
    keyless: bool,
    options: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[Target], list[SkippedProvider], list[ProviderFailure]]:
    """The clients to ask. ``providers`` holds names or client objects (None: every
    registered provider). A provider without a key is asked anonymously when ``keyless``
    and it declares ``ProviderFeature.PUBLIC_CATALOG``; otherwise it is skipped (when it was
    not named) or a failure (when it was). An unknown name raises
    ``UnsupportedProviderError`` before anything is sent."""
    from .factory import _lookup, available_providers, create_async_provider, create_provider

    make = create_async_provider if asynchronous else create_provider
    explicit = providers is not None
    wanted: Sequence[Any] = providers if providers is not None else available_providers()
    for item in wanted:
        if isinstance(item, str):
            _lookup(item)  # unknown names fail now, before any client exists
    targets: list[Target] = []
    skipped: list[SkippedProvider] = []
    failures: list[ProviderFailure] = []
    seen: dict[str, int] = {}

    def label(name: str) -> str:
        seen[name] = seen.get(name, 0) + 1
        return name if seen[name] == 1 else f"{name}#{seen[name]}"

    for item in wanted:
        if not isinstance(item, str):
            targets.append(Target(label(str(item.name)), item, owned=False))
            continue
        name = _lookup(item).name
        extra = dict((options or {}).get(name, {}))
        why: BaseException
        try:
            client = make(name, **extra)
            targets.append(Target(label(name), client, owned=True))
            continue
        except MissingCredentialsError as exc:
            why = exc
            if keyless and "api_key" not in extra and _public_catalog(name):
                try:
                    client = make(name, anonymous=True, **extra)
                except Exception as anonymous_failed:  # a plugin without anonymous=
                    why = anonymous_failed if isinstance(anonymous_failed, ProviderError) else exc
                else:
                    targets.append(Target(label(name), client, owned=True, anonymous=True))
                    continue
        except UnsupportedProviderError:
            raise
        except Exception as exc:  # a missing extra, or a plugin that cannot be created
            why = exc
        if explicit:
            failures.append(failure(name, why))
        else:
            reason = why.message if isinstance(why, ProviderError) else type(why).__name__
            skipped.append(SkippedProvider(provider=name, reason=reason))
    return targets, skipped, failures


def failure(provider: str, exc: BaseException) -> ProviderFailure:
    """A failure entry for an exception a provider call ended with."""
    if isinstance(exc, ProviderError):
        return ProviderFailure(
            provider=provider,
            reason=exc.message,
            error=type(exc).__name__,
            retryable=exc.is_retryable,
        )
    # Not ours (a plugin's bug): name the class only; its text may hold anything.
    logger.warning("provider %s failed with %s", provider, type(exc).__name__, exc_info=exc)
    return ProviderFailure(
        provider=provider,
        reason=f"unexpected {type(exc).__name__} (logged)",
        error=type(exc).__name__,
        retryable=False,
    )


def deadline_failure(provider: str, timeout: float) -> ProviderFailure:
    """The failure of a provider that did not answer within ``timeout`` seconds."""
    return ProviderFailure(
        provider=provider,
        reason=f"no answer within {timeout:g}s",
        error="DeadlineExceeded",
        retryable=True,
    )


def check_timeout(timeout: float) -> float:
    """The per-provider deadline, checked (``InvalidRequestError``, a ``ValueError``)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidRequestError("timeout must be a positive number of seconds")
    return float(timeout)


def _notify(on_progress: Callable[[Progress], None] | None, event: Progress) -> None:
    if on_progress is not None:
        on_progress(event)


# -- the sync shell: threads ----------------------------------------------------------------


def run_sync(
    targets: list[Target],
    call: Callable[[Target], T],
    *,
    timeout: float,
    on_progress: Callable[[Progress], None] | None = None,
) -> Outcome[T]:
    """``call`` for every target in its own thread; each gets ``timeout`` seconds."""
    outcome: Outcome[T] = Outcome([], [])
    if not targets:
        return outcome
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=len(targets), thread_name_prefix="gpu-providers"
    )
    futures: dict[concurrent.futures.Future[T], Target] = {}
    try:
        for target in targets:
            futures[pool.submit(call, target)] = target
            _notify(on_progress, Progress(target.name, "started"))
        try:
            for future in concurrent.futures.as_completed(futures, timeout=timeout):
                target = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    outcome.failures.append(failure(target.name, exc))
                    _notify(on_progress, Progress(target.name, "failed", type(exc).__name__))
                else:
                    outcome.results.append((target, result))
                    _notify(on_progress, Progress(target.name, "done"))
        except concurrent.futures.TimeoutError:
            pass
        for future, target in futures.items():
            if not future.done():
                outcome.failures.append(deadline_failure(target.name, timeout))
                _notify(on_progress, Progress(target.name, "failed", "deadline"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for future, target in futures.items():
            if target.owned:  # a late call keeps its client until it ends
                future.add_done_callback(_closer(target.client))
        for target in targets:
            if target.owned and not any(t is target for t in futures.values()):
                _close_quietly(target.client)
    return outcome


def _closer(client: Any) -> Callable[[Any], None]:
    return lambda _: _close_quietly(client)


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # closing must not replace what the caller gets
        logger.debug("closing %s failed", type(client).__name__, exc_info=True)


def close_all(targets: list[Target]) -> None:
    """Close the clients we created (sync)."""
    for target in targets:
        if target.owned:
            _close_quietly(target.client)


# -- the async shell: tasks -----------------------------------------------------------------


async def run_async(
    targets: list[Target],
    call: Callable[[Target], Awaitable[T]],
    *,
    timeout: float,
    on_progress: Callable[[Progress], None] | None = None,
) -> Outcome[T]:
    """``call`` for every target as its own task; each gets ``timeout`` seconds. Tasks that
    miss the deadline are cancelled (the core keeps limiter and breaker consistent)."""
    outcome: Outcome[T] = Outcome([], [])
    tasks: dict[asyncio.Task[T], Target] = {}
    try:
        for target in targets:
            tasks[asyncio.ensure_future(call(target))] = target
            _notify(on_progress, Progress(target.name, "started"))
        pending: set[asyncio.Task[T]] = set(tasks)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                target = tasks[task]
                exc = task.exception()
                if exc is not None:
                    outcome.failures.append(failure(target.name, exc))
                    _notify(on_progress, Progress(target.name, "failed", type(exc).__name__))
                else:
                    outcome.results.append((target, task.result()))
                    _notify(on_progress, Progress(target.name, "done"))
        for task in pending:
            task.cancel()
            outcome.failures.append(deadline_failure(tasks[task].name, timeout))
            _notify(on_progress, Progress(tasks[task].name, "failed", "deadline"))
        if pending:
            await asyncio.wait(pending)  # let cancellation run its cleanup
    finally:
        for task in tasks:
            if not task.done():  # we were cancelled ourselves
                task.cancel()
        await aclose_all(targets)
    return outcome


async def aclose_all(targets: list[Target]) -> None:
    """Close the clients we created (async)."""
    for target in targets:
        if not target.owned:
            continue
        if target.busy is not None and not target.busy.done():
            target.busy.add_done_callback(_aclose_later(target.client))
            continue
        await _aclose_quietly(target.client)


#: Late closes in flight (a reference, so they are not garbage-collected midway).
_closing: set[asyncio.Future[None]] = set()


def _aclose_later(client: Any) -> Callable[[Any], None]:
    def close(_: Any) -> None:
        task = asyncio.ensure_future(_aclose_quietly(client))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    return close


async def _aclose_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:  # closing must not replace what the caller gets
        logger.debug("closing %s failed", type(client).__name__, exc_info=True)
