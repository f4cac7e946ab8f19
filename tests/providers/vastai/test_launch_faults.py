"""Money invariants of Vast.ai launches (DESIGN rule 9), with faults injected, sync and async.

A Vast.ai launch has three steps: offer search, create (``PUT /asks/{offer}/``), read back
(``GET /instances/{id}/``). Each later step is made to fail, time out or be cancelled over the
documented answers (documented.py): what may have been rented is never reported as "nothing
happened", and "already gone" needs Vast.ai's own answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gpu_providers import InstanceState, LaunchRequest, create_async_provider, create_provider
from gpu_providers.errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
)
from tests.providers.timekeeping import FakeClock, attach

from . import documented as D

KEY = "SENTINEL-vastai-money-key-93d0"
LAUNCH = LaunchRequest(gpu_type="RTX4090", name="money")
SEARCH = "/api/v0/bundles/"
CREATE = f"/api/v0/asks/{D.OFFER_4090}/"
READ_BACK = f"/api/v0/instances/{D.ID_LAUNCHED}/"
MODES = pytest.mark.parametrize("mode", ["sync", "async"])

Fault = Callable[[httpx.Request], httpx.Response]


class Faulty:
    """Vast.ai's documented answers, except on one path, where ``fault`` answers."""

    def __init__(self, path: str, fault: Fault, *, method: str | None = None) -> None:
        self.documented = D.DocumentedVast()
        self.path, self.fault, self.method = path, fault, method
        self.sent: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        hit = request.url.path == self.path and self.method in (None, request.method)
        if hit:
            request.read()
            if request.url.path == CREATE:
                self.documented(request)  # the instance is rented before the fault
            return self.fault(request)
        return self.documented(request)

    def count(self, method: str, path: str) -> int:
        return self.sent.count((method, path))


def run(mode: str, handler: Any, method: str, *args: Any, **options: Any) -> Any:
    """Call ``method`` on a fresh Vast.ai client (sync or async) over ``handler``."""
    clock = FakeClock()
    options = {"api_key": KEY, "transport": httpx.MockTransport(handler), **options}
    if mode == "sync":
        with attach(create_provider("vastai", **options), clock, clock.sleep) as client:
            return getattr(client, method)(*args)

    async def main() -> Any:
        client = create_async_provider("vastai", **options)
        async with attach(client, clock, clock.asleep) as async_client:
            return await getattr(async_client, method)(*args)

    return asyncio.run(main())


def _raise(exc: Exception) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc

    return fault


# -- the read back fails: the rented instance is still reported ---------------------------------

READ_BACK_FAULTS: dict[str, Fault] = {
    "503": lambda r: httpx.Response(503, text="unavailable"),
    "html-404": lambda r: httpx.Response(404, text="<html>Not Found</html>"),
    "429-text": lambda r: httpx.Response(429, text="API requests too frequent"),
    "reset": _raise(httpx.RemoteProtocolError("peer closed connection")),
    "read-timeout": _raise(httpx.ReadTimeout("timed out")),
    "junk": lambda r: httpx.Response(200, content=b'{"instances": {"id": 7'),
    "not-visible-yet": lambda r: httpx.Response(200, json={"instances": None}),
}


@MODES
@pytest.mark.parametrize("fault", sorted(READ_BACK_FAULTS))
def test_a_failed_read_back_reports_the_rented_instance(mode: str, fault: str) -> None:
    handler = Faulty(READ_BACK, READ_BACK_FAULTS[fault])
    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == D.ID_LAUNCHED
    assert instance.state is InstanceState.PENDING
    assert (instance.gpu_type, instance.region, instance.hourly_price) == (
        "RTX4090",
        "NO",
        0.352083,
    )
    assert handler.count("PUT", CREATE) == 1


# -- the create may have arrived: never retryable, never replayed --------------------------------

CREATE_FAULTS: dict[str, tuple[Fault, type[ProviderError]]] = {
    "503": (lambda r: httpx.Response(503, text="unavailable"), ProviderServerError),
    "502": (lambda r: httpx.Response(502, text="<html>bad gateway</html>"), ProviderServerError),
    "reset": (_raise(httpx.RemoteProtocolError("reset")), ProviderConnectionError),
    "read-timeout": (_raise(httpx.ReadTimeout("slow")), ProviderConnectionError),
    "junk-200": (lambda r: httpx.Response(200, content=b"<html>"), UnexpectedResponseError),
    "no-contract": (lambda r: httpx.Response(200, json={"success": True}), UnexpectedResponseError),
    "success-false": (
        lambda r: httpx.Response(200, json={"success": False, "msg": "?"}),
        UnexpectedResponseError,
    ),
}


@MODES
@pytest.mark.parametrize("fault", sorted(CREATE_FAULTS))
def test_a_create_that_may_have_arrived_is_never_retryable(mode: str, fault: str) -> None:
    answer, expected = CREATE_FAULTS[fault]
    handler = Faulty(CREATE, answer)
    with pytest.raises(expected) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert caught.value.maybe_submitted
    assert not caught.value.is_retryable
    assert handler.count("PUT", CREATE) == 1  # never replayed
    assert "list instances" in caught.value.message


REFUSALS: dict[str, tuple[D.LaunchOutcome, type[ProviderError]]] = {
    "offer-gone-404": ("gone-404", CapacityError),
    "offer-gone-410": ("gone-410", CapacityError),
    "unauthorized": ("unauthorized", AuthenticationError),
    "no-credit": ("no-credit", BillingError),
}


@MODES
@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refused_create_says_nothing_was_rented(mode: str, refusal: str) -> None:
    outcome, expected = REFUSALS[refusal]
    handler = D.DocumentedVast(launch_outcome=outcome)
    with pytest.raises(expected) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert not caught.value.maybe_submitted
    assert caught.value.instance_id is None
    assert D.ID_LAUNCHED not in handler.instances


@MODES
def test_a_refusal_that_still_rented_destroys_what_it_made(mode: str) -> None:
    handler = D.DocumentedVast(launch_outcome="created-stopped")
    with pytest.raises(InvalidRequestError) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert (caught.value.maybe_submitted, caught.value.instance_id) == (True, D.ID_LAUNCHED)
    assert caught.value.message.endswith("it was destroyed")
    assert D.ID_LAUNCHED not in handler.instances


@MODES
def test_a_200_without_success_that_names_an_instance_destroys_it(mode: str) -> None:
    answer = {"success": False, "new_contract": int(D.ID_LAUNCHED), "msg": "not started"}
    handler = Faulty(CREATE, lambda r: httpx.Response(200, json=answer))
    with pytest.raises(UnexpectedResponseError) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert (caught.value.maybe_submitted, caught.value.instance_id) == (True, D.ID_LAUNCHED)
    assert caught.value.message.endswith("it was destroyed")
    assert handler.count("DELETE", READ_BACK) == 1
    assert D.ID_LAUNCHED not in handler.documented.instances


@MODES
def test_when_that_destroy_fails_too_the_error_says_so(mode: str) -> None:
    handler = Faulty(READ_BACK, lambda r: httpx.Response(503, text="down"), method="DELETE")
    handler.documented.launch_outcome = "created-stopped"
    with pytest.raises(InvalidRequestError) as caught:
        run(mode, handler, "launch_instance", LAUNCH, max_retries=0)
    assert (caught.value.maybe_submitted, caught.value.instance_id) == (True, D.ID_LAUNCHED)
    assert "destroying it failed (ProviderServerError)" in caught.value.message
    assert D.ID_LAUNCHED in handler.documented.instances  # it still exists: the error names it


@MODES
def test_a_create_is_retried_only_when_it_never_left(mode: str) -> None:
    documented = D.DocumentedVast()
    refusals = [httpx.ConnectError("connection refused")]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == CREATE and refusals:
            raise refusals.pop()
        return documented(request)

    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == D.ID_LAUNCHED
    assert documented.count("PUT", CREATE) == 1


@MODES
def test_a_429_on_create_is_retried_it_rented_nothing(mode: str) -> None:
    documented = D.DocumentedVast()
    throttled = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == CREATE and throttled:
            throttled.pop()
            return httpx.Response(429, json={"detail": "API requests too frequent"})
        return documented(request)

    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == D.ID_LAUNCHED
    assert documented.count("PUT", CREATE) == 1


@MODES
def test_a_failed_search_rents_nothing(mode: str) -> None:
    handler = Faulty(SEARCH, lambda r: httpx.Response(503, text="unavailable"))
    with pytest.raises(ProviderServerError) as caught:
        run(mode, handler, "launch_instance", LAUNCH, max_retries=1)
    assert not caught.value.maybe_submitted
    assert caught.value.is_retryable
    assert handler.count("PUT", CREATE) == 0


@MODES
def test_throttling_without_retry_after_backs_off_then_gives_up(mode: str) -> None:
    handler = Faulty(SEARCH, lambda r: httpx.Response(429, text="API requests too frequent"))
    with pytest.raises(RateLimitError) as caught:
        run(mode, handler, "list_available_gpus", None, max_retries=2)
    assert caught.value.retry_after is None  # Vast.ai sends none (FACTS.md)
    assert handler.count("POST", SEARCH) == 3


# -- cancellation -------------------------------------------------------------------------------


def _cancel_while_on(path: str) -> D.DocumentedVast:
    """Launch (async) and cancel the call while its request to ``path`` hangs."""
    documented = D.DocumentedVast()
    reached = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            if path == CREATE:
                documented(request)  # rented, then the answer never comes back
            reached.set()
            await asyncio.Event().wait()
        return documented(request)

    async def main() -> None:
        clock = FakeClock()
        client = create_async_provider(
            "vastai", api_key=KEY, transport=httpx.MockTransport(handler)
        )
        async with attach(client, clock, clock.asleep):
            task = asyncio.create_task(client.launch_instance(LAUNCH))
            await reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(await client.list_instances()) == 7  # limiter and breaker usable

    asyncio.run(main())
    return documented


def test_a_cancelled_read_back_names_the_instance(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        _cancel_while_on(READ_BACK)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert D.ID_LAUNCHED in record.getMessage()
    assert getattr(record, "maybe_submitted", None) is True


def test_a_create_cancelled_on_the_wire_is_logged_as_maybe_rented(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        _cancel_while_on(CREATE)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "may have reached Vast.ai" in record.getMessage()
    assert "instance: unknown" in record.getMessage()


# -- destroy: only Vast.ai's own answer means "already gone" ------------------------------------


@MODES
@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(404, text="<html><body>404 Not Found</body></html>"),
        lambda r: httpx.Response(404, json={"detail": "Not Found"}),
        lambda r: httpx.Response(404),
    ],
    ids=["proxy-html", "foreign-json", "empty"],
)
def test_destroy_raises_on_a_404_without_proof(mode: str, answer: Fault) -> None:
    handler = Faulty(f"/api/v0/instances/{D.ID_RUNNING}/", answer, method="DELETE")
    with pytest.raises(UnexpectedResponseError) as caught:
        run(mode, handler, "terminate_instance", D.ID_RUNNING)
    assert caught.value.status_code == 404


@MODES
@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(404, json=D.NOT_FOUND),
        lambda r: httpx.Response(200, json=D.NO_SUCH_INSTANCE),
        lambda r: httpx.Response(400, json=D.NO_SUCH_INSTANCE),
    ],
    ids=["404-not_found", "200-no_such_instance", "400-no_such_instance"],
)
def test_destroy_is_idempotent_on_vastais_own_answer(mode: str, answer: Fault) -> None:
    handler = Faulty(f"/api/v0/instances/{D.ID_MISSING}/", answer, method="DELETE")
    assert run(mode, handler, "terminate_instance", D.ID_MISSING) is None


@MODES
def test_a_destroy_answer_without_success_is_not_done(mode: str) -> None:
    handler = Faulty(
        f"/api/v0/instances/{D.ID_RUNNING}/",
        lambda r: httpx.Response(200, json={"msg": "queued"}),
        method="DELETE",
    )
    with pytest.raises(UnexpectedResponseError):
        run(mode, handler, "terminate_instance", D.ID_RUNNING)


@MODES
@pytest.mark.parametrize(
    "instance",
    [
        {"id": 1, "actual_status": "running"},
        {"id": "x"},
        {"id": int(D.ID_LAUNCHED), "num_gpus": []},
    ],
    ids=["another-id", "id-not-a-number", "unreadable-field"],
)
def test_a_read_back_about_something_else_still_reports_the_rental(
    mode: str, instance: dict[str, Any]
) -> None:
    handler = Faulty(READ_BACK, lambda r: httpx.Response(200, json={"instances": instance}))
    launched = run(mode, handler, "launch_instance", LAUNCH)
    assert (launched.instance_id, launched.state) == (D.ID_LAUNCHED, InstanceState.PENDING)
