"""Offer search across providers, sync and async: the documented responders of every
provider (RunPod on both backends), plus in-process fakes (``tests/providers/loopback.py``)
for deadlines, price components and the cache."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpu_providers import GPUFilters, _core
from gpu_providers.errors import (
    InvalidRequestError,
    ProviderServerError,
    UnsupportedProviderError,
)
from gpu_providers.lambda_cloud import AsyncLambdaProvider, LambdaProvider
from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider
from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider
from gpu_providers.search import (
    OfferCache,
    OfferSearch,
    asearch_offers,
    price_paid_per_gpu_hour,
    search_offers,
)
from gpu_providers.tensordock import AsyncTensorDockProvider, TensorDockProvider
from gpu_providers.vastai import AsyncVastAIProvider, VastAIProvider
from tests.providers.cassettes import provider_vcr
from tests.providers.lambda_cloud import documented as LD
from tests.providers.lambda_cloud.scenarios import RECORDING_KEY as LAMBDA_RECORDING
from tests.providers.loopback import AsyncFakeOffersProvider, FakeOffersProvider, offer
from tests.providers.paperspace import documented as PD
from tests.providers.runpod import documented as RD
from tests.providers.runpod import documented_rest as RRD
from tests.providers.runpod.scenarios import RECORDING_KEY as RUNPOD_RECORDING
from tests.providers.tensordock import documented as TD
from tests.providers.test_labels import _keyless_runpod
from tests.providers.vastai import documented as VD

KEY = "SENTINEL-search-test-key-41cd"
KINDS = ["sync", "async"]
KEY_VARS = (
    "LAMBDA_API_KEY",
    "PAPERSPACE_API_KEY",
    "RUNPOD_API_KEY",
    "TENSORDOCK_API_TOKEN",
    "VAST_API_KEY",
)
#: The providers a search of ``_clients`` hears from, in order (the second RunPod client is
#: the REST v2 backend: one provider name twice is told apart as ``runpod#2``).
EVERY = ["lambda", "paperspace", "runpod", "runpod#2", "tensordock", "vastai"]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def _clients(kind: str, lambda_key: str = KEY) -> list[Any]:
    lam = LD.transport()
    pap = PD.DocumentedPaperspace().transport()
    run = RD.DocumentedRunPod().transport()
    rest = RRD.DocumentedRunPodRest().transport()
    tdk = TD.DocumentedTensorDock().transport()
    vast = httpx.MockTransport(VD.DocumentedVast())
    if kind == "sync":
        return [
            LambdaProvider(api_key=lambda_key, transport=lam),
            PaperspaceProvider(api_key=KEY, transport=pap),
            RunPodProvider(api_key=KEY, transport=run),
            RunPodProvider(api="rest", api_key=KEY, transport=rest),
            TensorDockProvider(api_key=KEY, transport=tdk),
            VastAIProvider(api_key=KEY, transport=vast),
        ]
    return [
        AsyncLambdaProvider(api_key=lambda_key, transport=lam),
        AsyncPaperspaceProvider(api_key=KEY, transport=pap),
        AsyncRunPodProvider(api_key=KEY, transport=run),
        AsyncRunPodProvider(api="rest", api_key=KEY, transport=rest),
        AsyncTensorDockProvider(api_key=KEY, transport=tdk),
        AsyncVastAIProvider(api_key=KEY, transport=vast),
    ]


def _search(kind: str, filters: GPUFilters | None, providers: Any, **options: Any) -> OfferSearch:
    options.setdefault("cache", OfferCache())
    if kind == "sync":
        return search_offers(filters, providers, **options)
    return asyncio.run(asearch_offers(filters, providers, **options))


@pytest.mark.parametrize("kind", KINDS)
def test_every_provider_answers_cheapest_per_gpu_hour_first(kind: str) -> None:
    found = _search(kind, GPUFilters(gpu_types=["H100"]), _clients(kind))
    assert found.answered == EVERY
    assert found.failures == [] and not found.partial
    assert {r.offer.provider for r in found.offers} == {
        "lambda", "paperspace", "runpod", "tensordock", "vastai"
    }  # fmt: skip
    prices = [r.price_per_gpu_hour for r in found.offers]
    priced = [p for p in prices if p is not None]
    assert priced == sorted(priced) and priced
    # Paperspace publishes no prices: its offers come last, unpriced.
    assert prices[len(priced) :] == [None] * (len(prices) - len(priced))
    assert all(r.offer.provider == "paperspace" for r in found.offers[len(priced) :])
    for ranked in found.offers[: len(priced)]:
        o = ranked.offer
        if o.provider in ("tensordock", "vastai"):  # priced from parts
            parts = {
                "tensordock": {"gpu", "vcpu", "ram", "storage"},
                "vastai": {"compute", "storage"},
            }
            assert ranked.components == o.price_breakdown
            assert set(ranked.components) == parts[o.provider]
            assert sum(ranked.components.values()) == pytest.approx(o.hourly_price)
        else:
            assert ranked.components == {"compute": o.hourly_price}


@pytest.mark.parametrize("kind", KINDS)
def test_sync_and_async_find_the_same_offers(kind: str) -> None:
    wanted = GPUFilters(gpu_types=["H100", "A100-80GB"], max_price_per_gpu=3.0)
    assert _search(kind, wanted, _clients(kind)) == _search("sync", wanted, _clients("sync"))


@pytest.mark.parametrize("kind", KINDS)
def test_one_provider_failing_is_reported_beside_the_others(kind: str) -> None:
    found = _search(kind, GPUFilters(gpu_types=["H100"]), _clients(kind, LD.REVOKED_KEY))
    assert found.partial
    assert [(f.provider, f.error, f.retryable) for f in found.failures] == [
        ("lambda", "AuthenticationError", False)
    ]
    assert found.answered == EVERY[1:]
    assert found.offers and all(r.offer.provider != "lambda" for r in found.offers)
    assert KEY not in found.model_dump_json() and LD.REVOKED_KEY not in found.model_dump_json()


def test_the_price_paid_includes_every_part_of_the_hourly_price() -> None:
    # A marketplace offer: a cheap GPU part, but storage billed by the hour on top of it;
    # hourly_price is the whole, price_breakdown the parts.
    cheap_gpu = offer("market", 1.9, count=2, price_breakdown={"compute": 3.0, "storage": 0.8})
    plain = offer("cloud", 1.8, count=2)
    price, components = price_paid_per_gpu_hour(cheap_gpu)
    assert (price, components) == (1.9, {"compute": 3.0, "storage": 0.8})
    assert price_paid_per_gpu_hour(plain) == (1.8, {"compute": 3.6})
    fakes = [FakeOffersProvider("market", [cheap_gpu]), FakeOffersProvider("cloud", [plain])]
    found = search_offers(GPUFilters(), fakes, cache=OfferCache())
    assert [(r.offer.provider, r.price_per_gpu_hour) for r in found.offers] == [
        ("cloud", 1.8),
        ("market", 1.9),
    ]
    # The price limit applies to what is paid, not to the GPU part alone.
    capped = search_offers(GPUFilters(max_price_per_gpu=1.85), fakes, cache=OfferCache())
    assert [r.offer.provider for r in capped.offers] == ["cloud"]


def test_a_slow_provider_misses_its_deadline_and_the_search_returns_sync() -> None:
    slow = FakeOffersProvider("slow", [offer("slow", 1.0)], delay=2.0)
    fast = FakeOffersProvider("fast", [offer("fast", 2.0)])
    started = time.monotonic()
    found = search_offers(None, [slow, fast], timeout=0.3, cache=OfferCache())
    assert time.monotonic() - started < 1.5
    assert [(f.provider, f.error, f.retryable) for f in found.failures] == [
        ("slow", "DeadlineExceeded", True)
    ]
    assert [r.offer.provider for r in found.offers] == ["fast"]


def test_a_slow_provider_misses_its_deadline_and_is_cancelled_async() -> None:
    slow = AsyncFakeOffersProvider("slow", [offer("slow", 1.0)], delay=5.0)
    fast = AsyncFakeOffersProvider("fast", [offer("fast", 2.0)])

    async def main() -> OfferSearch:
        return await asearch_offers(None, [slow, fast], timeout=0.2, cache=OfferCache())

    started = time.monotonic()
    found = asyncio.run(main())
    assert time.monotonic() - started < 1.5
    assert [f.error for f in found.failures] == ["DeadlineExceeded"]
    assert slow.cancelled == 1  # the request was cancelled, not left running
    assert [r.offer.provider for r in found.offers] == ["fast"]


def test_an_unexpected_exception_of_a_plugin_is_a_failure_without_its_text() -> None:
    class Broken(FakeOffersProvider):
        def list_available_gpus(self, filters: GPUFilters | None = None) -> Any:
            raise RuntimeError("secret-ish detail")

    found = search_offers(None, [Broken("broken", [])], cache=OfferCache())
    assert found.failures[0].error == "RuntimeError"
    assert "secret-ish" not in found.failures[0].reason


# -- which providers are asked ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_without_keys_only_the_public_catalogs_are_asked(kind: str) -> None:
    vast = VD.DocumentedVast()  # answers the offer search only without a key
    options = {
        "runpod": {"transport": httpx.MockTransport(_keyless_runpod)},
        "vastai": {"transport": httpx.MockTransport(vast)},
    }
    wanted = GPUFilters(gpu_types=["H100"], verified_only=False)
    found = _search(kind, wanted, None, provider_options=options)
    assert found.answered == ["runpod", "vastai"]
    assert [s.provider for s in found.skipped] == ["lambda", "paperspace", "tensordock"]
    assert all("API key" in s.reason for s in found.skipped)
    assert found.failures == [] and {r.offer.provider for r in found.offers} == set(found.answered)
    assert vast.requests and all("authorization" not in r.headers for r in vast.requests)


@pytest.mark.parametrize("kind", KINDS)
def test_without_keys_runpod_on_rest_is_skipped_its_catalog_wants_a_key(kind: str) -> None:
    responder = RRD.DocumentedRunPodRest()
    options = {
        "runpod": {"api": "rest", "transport": responder.transport()},
        "vastai": {"transport": httpx.MockTransport(VD.DocumentedVast())},
    }
    found = _search(kind, None, None, provider_options=options)
    assert found.answered == ["vastai"] and found.failures == []
    assert "runpod" in [s.provider for s in found.skipped]
    assert responder.requests == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_asked_by_name_without_a_key_is_a_failure(kind: str) -> None:
    found = _search(kind, None, ["lambda"])
    assert [(f.provider, f.error) for f in found.failures] == [
        ("lambda", "MissingCredentialsError")
    ]
    assert found.offers == [] and found.skipped == []


@pytest.mark.parametrize("kind", KINDS)
def test_keys_from_the_environment_are_used(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    options = {"lambda": {"transport": LD.transport()}}
    found = _search(kind, GPUFilters(gpu_types=["A10"]), ["lambdalabs"], provider_options=options)
    assert found.answered == ["lambda"] and found.offers


def test_bad_input_fails_before_anything_is_sent() -> None:
    fake = FakeOffersProvider("fake", [])
    with pytest.raises(UnsupportedProviderError, match="coreweave"):
        search_offers(None, [fake, "coreweave"])
    with pytest.raises(InvalidRequestError, match="timeout"):
        search_offers(None, [fake], timeout=0)
    with pytest.raises(InvalidRequestError, match="GPUFilters"):
        search_offers({"gpu_types": ["H100"]}, [fake])  # type: ignore[arg-type]
    assert fake.calls == 0


def test_a_search_spends_the_budget_of_the_account_it_shares() -> None:
    transport = LD.transport()
    mine = LambdaProvider(api_key=KEY, transport=transport)
    options = {"lambda": {"api_key": KEY, "transport": transport}}
    search_offers(None, ["lambda"], provider_options=options, cache=OfferCache(ttl=0))
    accounts = [k for k in _core._accounts if k[0] == "lambda"]
    assert len(accounts) == 1  # the search's client and ours: one limiter, one breaker
    assert mine._account is _core._accounts[accounts[0]]


# -- the cache -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_reused_for_the_ttl_and_failures_never() -> None:
    clock = Clock()
    cache = OfferCache(ttl=30, clock=clock)
    fake = FakeOffersProvider("fake", [offer("fake", 1.0)])
    for _ in range(3):
        search_offers(None, [fake], cache=cache)
    assert fake.calls == 1
    search_offers(GPUFilters(gpu_types=["A100"]), [fake], cache=cache)  # another filter
    assert fake.calls == 2
    clock.now += 31
    search_offers(None, [fake], cache=cache)
    assert fake.calls == 3

    failing = FakeOffersProvider("down", [], error=ProviderServerError("502", provider="down"))
    for _ in range(2):
        assert search_offers(None, [failing], cache=cache).partial
    assert failing.calls == 2


def test_accounts_do_not_share_cached_answers() -> None:
    cache = OfferCache()
    one = LambdaProvider(api_key="SENTINEL-key-one-aaaa", transport=LD.transport())
    two = LambdaProvider(api_key="SENTINEL-key-two-bbbb", transport=LD.transport())
    search_offers(None, [one], cache=cache)
    search_offers(None, [two], cache=cache)
    search_offers(None, [one], cache=cache)
    assert cache.fetches == 2


def test_concurrent_sync_searches_share_one_request() -> None:
    cache = OfferCache()
    fake = FakeOffersProvider("fake", [offer("fake", 1.0)], delay=0.3)
    results: list[OfferSearch] = []
    threads = [
        threading.Thread(target=lambda: results.append(search_offers(None, [fake], cache=cache)))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.calls == 1
    assert len(results) == 5 and all(len(r.offers) == 1 for r in results)


def test_concurrent_async_searches_share_one_request() -> None:
    cache = OfferCache()
    fake = AsyncFakeOffersProvider("fake", [offer("fake", 1.0)], delay=0.1)

    async def main() -> list[OfferSearch]:
        return list(
            await asyncio.gather(*(asearch_offers(None, [fake], cache=cache) for _ in range(5)))
        )

    results = asyncio.run(main())
    assert fake.calls == 1
    assert all(len(r.offers) == 1 for r in results)


def test_a_request_some_search_still_waits_for_is_not_cancelled() -> None:
    cache = OfferCache()
    fake = AsyncFakeOffersProvider("fake", [offer("fake", 1.0)], delay=0.4)

    async def main() -> tuple[OfferSearch, OfferSearch]:
        patient = asyncio.ensure_future(asearch_offers(None, [fake], timeout=5, cache=cache))
        await asyncio.sleep(0)
        hasty = await asearch_offers(None, [fake], timeout=0.1, cache=cache)
        return hasty, await patient

    hasty, patient = asyncio.run(main())
    assert hasty.failures[0].error == "DeadlineExceeded"
    assert len(patient.offers) == 1 and fake.calls == 1 and fake.cancelled == 0


# -- the recorded cassettes (cassettes/<api>/, replayed offline) ------------------------------


def _replay(kind: str, api: str, cassette: str, clients: Any, filters: GPUFilters) -> OfferSearch:
    with provider_vcr(api, "none").use_cassette(cassette):
        return _search(kind, filters, clients)


@pytest.mark.parametrize("kind", KINDS)
def test_search_replays_the_recorded_offers(kind: str) -> None:
    lam = (LambdaProvider if kind == "sync" else AsyncLambdaProvider)(api_key=LAMBDA_RECORDING)
    lambda_found = _replay(kind, "lambda", "instance_types.yaml", [lam], GPUFilters())
    direct = LambdaProvider(api_key=LAMBDA_RECORDING)
    with provider_vcr("lambda", "none").use_cassette("instance_types.yaml"):
        expected = direct.list_available_gpus()
    assert lambda_found.answered == ["lambda"] and lambda_found.failures == []

    def key(o: Any) -> str:
        return str(o.model_dump_json())

    assert sorted(map(key, (r.offer for r in lambda_found.offers))) == sorted(map(key, expected))
    assert expected

    rp = (RunPodProvider if kind == "sync" else AsyncRunPodProvider)(api_key=RUNPOD_RECORDING)
    spot = GPUFilters(min_gpu_count=2, spot=True)
    runpod_found = _replay(kind, "runpod", "offers.yaml", [rp], spot)
    assert runpod_found.answered == ["runpod"] and runpod_found.offers
    assert all(r.offer.spot and r.offer.gpu_count == 2 for r in runpod_found.offers)
    prices = [r.price_per_gpu_hour or 0.0 for r in runpod_found.offers]
    assert prices == sorted(prices) and all(prices)


@pytest.mark.parametrize("kind", KINDS)
def test_a_recorded_refusal_is_a_failure_beside_nothing(kind: str) -> None:
    lam = (LambdaProvider if kind == "sync" else AsyncLambdaProvider)(api_key=LD.REVOKED_KEY)
    found = _replay(kind, "lambda", "invalid_api_key.yaml", [lam], GPUFilters())
    assert [(f.provider, f.error) for f in found.failures] == [("lambda", "AuthenticationError")]
    assert found.offers == []


def test_a_search_that_gives_up_keeps_its_client_open_for_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two async searches by name (clients the searches create and close) share one request
    # of the documented Lambda, answered after 0.3 s; the first gives up after 0.1 s. Its
    # client runs the shared request: it must not be closed before the answer.
    account = LD.DocumentedLambda()
    events: list[str] = []
    close = AsyncLambdaProvider.aclose

    async def recorded_close(self: AsyncLambdaProvider) -> None:
        events.append("closed")
        await close(self)

    monkeypatch.setattr(AsyncLambdaProvider, "aclose", recorded_close)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)
        events.append("answered")
        return account(request)

    options = {"lambda": {"api_key": KEY, "transport": httpx.MockTransport(slow)}}
    cache = OfferCache()

    async def main() -> tuple[OfferSearch, OfferSearch]:
        hasty = asyncio.ensure_future(
            asearch_offers(None, ["lambda"], timeout=0.1, cache=cache, provider_options=options)
        )
        await asyncio.sleep(0)  # the hasty search starts the request
        patient = await asearch_offers(
            None, ["lambda"], timeout=5, cache=cache, provider_options=options
        )
        return await hasty, patient

    hasty, patient = asyncio.run(main())
    assert [f.error for f in hasty.failures] == ["DeadlineExceeded"]
    assert patient.failures == [] and patient.offers
    assert cache.fetches == 1 and len(account.requests) == 1
    assert events == ["answered", "closed", "closed"]


@pytest.mark.parametrize("kind", KINDS)
def test_regions_are_matched_in_each_providers_terms(kind: str) -> None:
    # RunPod answers us-east with offers in country US: the search keeps them.
    runpods = [c for c in _clients(kind) if c.name == "runpod"]  # both backends
    found = _search(kind, GPUFilters(gpu_types=["H100"], regions=["us-east"]), runpods)
    assert found.answered == ["runpod", "runpod#2"]
    assert found.offers and {r.offer.region for r in found.offers} == {"US"}
