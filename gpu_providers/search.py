"""One offer search across providers: ``search_offers`` (threads) and ``asearch_offers``
(tasks), the same logic for both.

Every provider is asked at once, each with its own deadline; the answer lists the offers
of those that answered, cheapest per GPU-hour first, and beside them the providers that
failed (and why) or were not asked (and why). Without an API key a provider is asked only
when its catalog is public (``ProviderFeature.PUBLIC_CATALOG``: RunPod); asked by name, a
provider without a key is a failure.

Answers are cached for a short time (``OfferCache``, 30 s by default) per account and
filter, and concurrent searches for the same account and filter share one request (single
flight). Every request still goes through the account's rate limiter (``_core``): a search
never spends more of an account's budget than its other calls would.

>>> from gpu_providers import GPUFilters
>>> from gpu_providers.search import search_offers
>>> found = search_offers(GPUFilters(gpu_types=["H100"], min_gpu_count=8))  # doctest: +SKIP
>>> found.offers[0].price_per_gpu_hour, found.failures                       # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._fanout import (
    Progress,
    ProviderFailure,
    SkippedProvider,
    Target,
    check_timeout,
    plan,
    run_async,
    run_sync,
)
from .errors import InvalidRequestError
from .types import GPUFilters, GPUOffer

__all__ = [
    "DEFAULT_CACHE",
    "OfferCache",
    "OfferSearch",
    "Progress",
    "ProviderFailure",
    "RankedOffer",
    "SkippedProvider",
    "asearch_offers",
    "price_paid_per_gpu_hour",
    "search_offers",
]

#: Seconds each provider gets by default.
DEFAULT_TIMEOUT = 20.0


class RankedOffer(BaseModel):
    """An offer with the price the user pays for it."""

    model_config = ConfigDict(frozen=True)

    offer: GPUOffer
    #: USD per GPU-hour, all components included (None when the provider lists no price).
    price_per_gpu_hour: float | None
    #: USD/hour of the whole offer by part: ``GPUOffer.price_breakdown`` where the provider
    #: prices parts, else ``{"compute": hourly_price}``.
    components: dict[str, float] = Field(default_factory=dict)


class OfferSearch(BaseModel):
    """What a search found: offers, and the providers that failed or were not asked."""

    model_config = ConfigDict(frozen=True)

    offers: list[RankedOffer]
    failures: list[ProviderFailure] = Field(default_factory=list)
    skipped: list[SkippedProvider] = Field(default_factory=list)
    #: The providers that answered.
    answered: list[str] = Field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Whether some provider that was asked failed."""
        return bool(self.failures)


def price_paid_per_gpu_hour(offer: GPUOffer) -> tuple[float | None, dict[str, float]]:
    """(USD per GPU-hour paid, parts of the offer's hourly price) for an offer.

    ``hourly_price`` already includes every part billed by the hour (``price_breakdown``
    lists them), so the price paid per GPU-hour is ``hourly_price / gpu_count``.
    """
    if offer.hourly_price is None:
        if offer.price_per_gpu is None:
            return None, {}
        hourly = offer.price_per_gpu * offer.gpu_count
    else:
        hourly = offer.hourly_price
    components = dict(offer.price_breakdown) if offer.price_breakdown else {"compute": hourly}
    return round(hourly / offer.gpu_count, 6), components


def rank(offers: Sequence[GPUOffer], filters: GPUFilters) -> list[RankedOffer]:
    """Offers cheapest per GPU-hour paid first (offers without a price last). Providers
    applied ``filters`` already (in their own terms: RunPod matches ``us-east`` as ``US``);
    here only the price limit is applied again, to the price paid, components included."""
    ranked = []
    for offer in offers:
        price, components = price_paid_per_gpu_hour(offer)
        limit = filters.max_price_per_gpu
        if limit is not None and (price is None or price > limit):
            continue
        ranked.append(RankedOffer(offer=offer, price_per_gpu_hour=price, components=components))
    ranked.sort(
        key=lambda r: (
            r.price_per_gpu_hour is None,
            r.price_per_gpu_hour or 0.0,
            r.offer.provider,
            r.offer.region or "",
            r.offer.offer_id,
            r.offer.spot,
        )
    )
    return ranked


def account_key(client: Any) -> Hashable:
    """Who a client asks as: provider, base URL and a digest of its key (never the key)."""
    from ._core import ProviderCore

    if isinstance(client, ProviderCore):
        return (*client.account_key, client._anonymous)
    return ("object", id(client))


class OfferCache:
    """A short TTL cache of provider answers with single flight, for sync and async
    searches alike (one store; failures are never cached).

    Args:
        ttl: Seconds an answer is reused (0 disables reuse; single flight stays).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, ttl: float = 30.0, *, clock: Callable[[], float] = time.monotonic):
        if ttl < 0:
            raise ValueError("ttl must be 0 or more")
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, list[GPUOffer]]] = {}
        self._threads: dict[Hashable, concurrent.futures.Future[list[GPUOffer]]] = {}
        self._tasks: dict[tuple[Hashable, int], asyncio.Task[list[GPUOffer]]] = {}
        self._waiters: dict[tuple[Hashable, int], int] = {}
        #: Requests actually sent to providers (not answered from the cache or a flight).
        self.fetches = 0

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._entries.clear()

    def _fresh(self, key: Hashable) -> list[GPUOffer] | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        return None

    def _store(self, key: Hashable, value: list[GPUOffer]) -> None:
        if self.ttl > 0:
            with self._lock:
                self._entries[key] = (self._clock() + self.ttl, value)

    def get(self, key: Hashable, fetch: Callable[[], list[GPUOffer]]) -> list[GPUOffer]:
        """The cached answer, the answer of a flight in progress, or ``fetch()``."""
        with self._lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached
            flight = self._threads.get(key)
            leader = flight is None
            if flight is None:
                flight = self._threads[key] = concurrent.futures.Future()
                self.fetches += 1
        if not leader:
            return flight.result()
        try:
            value = fetch()
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            self._store(key, value)
            flight.set_result(value)
            return value
        finally:
            with self._lock:
                self._threads.pop(key, None)

    async def aget(
        self,
        key: Hashable,
        fetch: Callable[[], Awaitable[list[GPUOffer]]],
        *,
        on_flight: Callable[[asyncio.Task[list[GPUOffer]]], None] | None = None,
    ) -> list[GPUOffer]:
        """The async twin of ``get``. The request runs as its own task (``on_flight`` is
        told which); when every search waiting for it has given up (deadline,
        cancellation), it is cancelled."""
        loop_key = (key, id(asyncio.get_running_loop()))
        with self._lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached
            task = self._tasks.get(loop_key)
            if task is None:
                task = self._tasks[loop_key] = asyncio.ensure_future(self._flight(key, fetch))
                self.fetches += 1
                if on_flight is not None:  # this search's client runs it
                    on_flight(task)
            self._waiters[loop_key] = self._waiters.get(loop_key, 0) + 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with self._lock:
                alone = self._waiters.get(loop_key, 0) <= 1
            if alone and not task.done():
                task.cancel()
                await asyncio.wait([task])
            raise
        finally:
            with self._lock:
                left = self._waiters.get(loop_key, 1) - 1
                if left:
                    self._waiters[loop_key] = left
                else:
                    self._waiters.pop(loop_key, None)
                    if self._tasks.get(loop_key) is task and task.done():
                        self._tasks.pop(loop_key, None)

    async def _flight(
        self, key: Hashable, fetch: Callable[[], Awaitable[list[GPUOffer]]]
    ) -> list[GPUOffer]:
        try:
            value = await fetch()
            self._store(key, value)
            return value
        finally:
            with self._lock:
                for loop_key in [k for k in self._tasks if k[0] == key]:
                    if self._tasks[loop_key] is asyncio.current_task():
                        self._tasks.pop(loop_key)


#: The cache searches use unless given another.
DEFAULT_CACHE = OfferCache()


def _filters(filters: GPUFilters | None) -> GPUFilters:
    if filters is None:
        return GPUFilters()
    if not isinstance(filters, GPUFilters):
        raise InvalidRequestError("filters must be a GPUFilters")
    return filters


def _result(
    found: list[tuple[Target, list[GPUOffer]]],
    failures: list[ProviderFailure],
    skipped: list[SkippedProvider],
    filters: GPUFilters,
) -> OfferSearch:
    offers = [offer for _, answer in found for offer in answer]
    return OfferSearch(
        offers=rank(offers, filters),
        failures=sorted(failures, key=lambda f: f.provider),
        skipped=sorted(skipped, key=lambda s: s.provider),
        answered=sorted(target.name for target, _ in found),
    )


def search_offers(
    filters: GPUFilters | None = None,
    providers: Sequence[Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    cache: OfferCache | None = None,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> OfferSearch:
    """Offers of every provider, cheapest per GPU-hour paid first (blocking; one thread per
    provider, no event loop).

    Args:
        filters: What to look for (None: everything).
        providers: Provider names or ``ProviderClient`` objects (None: every registered
            provider with a key, and the public catalogs of the others).
        timeout: Seconds each provider gets; one that takes longer is a failure
            (``DeadlineExceeded``) and the search returns without it.
        cache: Where answers are cached (default ``DEFAULT_CACHE``).
        provider_options: Options for the clients the search creates, by provider name
            (``{"lambda": {"api_key": ...}}``).
        on_progress: Called in the caller's thread as providers start and finish.

    Raises ``UnsupportedProviderError`` for an unknown provider name and
    ``InvalidRequestError`` (a ``ValueError``) for a bad timeout or filters, before anything
    is sent; provider failures never raise.
    """
    wanted = _filters(filters)
    deadline = check_timeout(timeout)
    store = DEFAULT_CACHE if cache is None else cache
    targets, skipped, failures = plan(
        providers, asynchronous=False, keyless=True, options=provider_options
    )

    def ask(target: Target) -> list[GPUOffer]:
        key = (account_key(target.client), wanted.model_dump_json())
        return store.get(key, lambda: target.client.list_available_gpus(wanted))

    outcome = run_sync(targets, ask, timeout=deadline, on_progress=on_progress)
    return _result(outcome.results, failures + outcome.failures, skipped, wanted)


async def asearch_offers(
    filters: GPUFilters | None = None,
    providers: Sequence[Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    cache: OfferCache | None = None,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> OfferSearch:
    """The async twin of ``search_offers`` (one task per provider; ``providers`` may hold
    ``AsyncProviderClient`` objects). A provider past its deadline is cancelled."""
    wanted = _filters(filters)
    deadline = check_timeout(timeout)
    store = DEFAULT_CACHE if cache is None else cache
    targets, skipped, failures = plan(
        providers, asynchronous=True, keyless=True, options=provider_options
    )

    async def ask(target: Target) -> list[GPUOffer]:
        key = (account_key(target.client), wanted.model_dump_json())

        def running(task: asyncio.Task[Any]) -> None:
            target.busy = task  # another search may still wait for it: close after

        return await store.aget(
            key, lambda: target.client.list_available_gpus(wanted), on_flight=running
        )

    outcome = await run_async(targets, ask, timeout=deadline, on_progress=on_progress)
    return _result(outcome.results, failures + outcome.failures, skipped, wanted)
