"""TensorDock launches with faults injected, sync and async (DESIGN rule 9; the same checks as
tests/providers/test_money_invariants.py runs on Lambda).

A TensorDock launch takes three steps: ``GET /locations`` (pick the offer), ``POST
/instances`` (billed from here on), ``GET /instances/{id}`` (read back). Each step is made to
fail, time out or be cancelled; the create is never replayed once it may have arrived, every
later failure says the VM may exist, and a failed read-back still returns the VM's id.
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
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from skypilot_client.retry import MAX_RETRY_AFTER
from tests.providers.timekeeping import FakeClock, attach

from . import documented as D
from .scenarios import PUBLIC_KEY

KEY = "SENTINEL-tensordock-fault-token-3a9e"
LAUNCH = LaunchRequest(gpu_type="RTX4090", name="money", ssh_public_key=PUBLIC_KEY)
NEW = D.NEW_IDS[0]
LOCATIONS = ("GET", "/locations")
CREATE = ("POST", "/instances")
READ_BACK = ("GET", "/instances/{id}")
DELETE = ("DELETE", "/instances/{id}")

Fault = Callable[[httpx.Request], httpx.Response]
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


class Faulty:
    """The documented organization, except on one route, where ``fault`` answers."""

    def __init__(self, route: tuple[str, str], fault: Fault, times: int = 1_000) -> None:
        self.documented = D.DocumentedTensorDock()
        self.route, self.fault, self.times = route, fault, times

    def __call__(self, request: httpx.Request) -> httpx.Response:
        route = (request.method, self.documented._route(request)[0])
        if route == self.route and self.times > 0:
            self.times -= 1
            request.read()
            if route == CREATE:
                self.documented(request)  # the VM is created before the fault
            else:
                self.documented.requests.append(request)
            return self.fault(request)
        return self.documented(request)

    def count(self, method: str, route: str) -> int:
        return self.documented.count(method, route)


def run(mode: str, handler: Any, method: str, *args: Any, clock: FakeClock | None = None) -> Any:
    clock = clock or FakeClock()
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        client: Any = create_provider("tensordock", api_key=KEY, transport=transport)
        with attach(client, clock, clock.sleep) as sync_client:
            return getattr(sync_client, method)(*args)

    async def main() -> Any:
        client = create_async_provider("tensordock", api_key=KEY, transport=transport)
        async with attach(client, clock, clock.asleep) as async_client:
            return await getattr(async_client, method)(*args)

    return asyncio.run(main())


def _raise(exc: Exception) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc

    return fault


# -- step 1: the offers -------------------------------------------------------------------------

OFFER_FAULTS: dict[str, tuple[Fault, type[ProviderError]]] = {
    "503": (lambda r: httpx.Response(503, text="unavailable"), ProviderServerError),
    "401": (lambda r: D.error(401, "Unauthorized", "Invalid token"), AuthenticationError),
    "junk": (lambda r: httpx.Response(200, content=b'{"data": {"loc'), UnexpectedResponseError),
    "read-timeout": (_raise(httpx.ReadTimeout("slow")), ProviderConnectionError),
}


@MODES
@pytest.mark.parametrize("fault", sorted(OFFER_FAULTS))
def test_a_failed_offer_lookup_creates_nothing(mode: str, fault: str) -> None:
    answer, expected = OFFER_FAULTS[fault]
    handler = Faulty(LOCATIONS, answer)
    with pytest.raises(expected) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert not caught.value.maybe_submitted
    assert handler.count(*CREATE) == 0


# -- step 2: the create -----------------------------------------------------------------------

CREATE_FAULTS: dict[str, tuple[Fault, type[ProviderError]]] = {
    "503": (lambda r: httpx.Response(503, text="unavailable"), ProviderServerError),
    "502": (lambda r: D.bad_gateway(), ProviderServerError),
    "520": (lambda r: httpx.Response(520, text="origin error"), ProviderServerError),
    "reset": (_raise(httpx.RemoteProtocolError("reset")), ProviderConnectionError),
    "read-timeout": (_raise(httpx.ReadTimeout("slow")), ProviderConnectionError),
    "junk-200": (lambda r: httpx.Response(200, content=b"<html>"), UnexpectedResponseError),
    "no-id": (lambda r: httpx.Response(200, json={"data": {}}), UnexpectedResponseError),
    "empty-id": (
        lambda r: httpx.Response(200, json={"data": {"id": "", "status": "running"}}),
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
    assert handler.count(*CREATE) == 1  # never replayed
    assert "list instances" in caught.value.message


REFUSALS: dict[str, tuple[Fault, type[ProviderError]]] = {
    "capacity": (
        lambda r: D.error(400, "Bad Request", "Not enough GPUs available at this location"),
        CapacityError,
    ),
    "balance": (
        lambda r: D.error(400, "Bad Request", "Insufficient balance: minimum balance is $1"),
        BillingError,
    ),
    "payment-required": (lambda r: httpx.Response(402, json={"error": "pay"}), BillingError),
    "invalid": (
        lambda r: D.error(422, "Unprocessable", "ram_gb must be even"),
        InvalidRequestError,
    ),
    "unknown-location": (lambda r: D.error(404, "Not Found", "Location"), InvalidRequestError),
    "auth": (lambda r: D.error(401, "Unauthorized", "Invalid token"), AuthenticationError),
    "429-for-a-day": (
        lambda r: httpx.Response(429, headers={"Retry-After": "86400"}),
        RateLimitError,
    ),
}


@MODES
@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refused_create_says_nothing_was_created(mode: str, refusal: str) -> None:
    answer, expected = REFUSALS[refusal]
    handler = Faulty(CREATE, answer)
    handler.documented._new_ids = ["never-used"]  # the documented create must not run
    with pytest.raises(expected) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert not caught.value.maybe_submitted
    assert handler.count(*CREATE) == 1


@MODES
def test_a_create_is_retried_only_when_it_never_left(mode: str) -> None:
    documented = D.DocumentedTensorDock()
    refusals = [httpx.ConnectError("connection refused")]

    def handler(request: httpx.Request) -> httpx.Response:
        if (request.method, documented._route(request)[0]) == CREATE and refusals:
            raise refusals.pop()
        return documented(request)

    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == NEW
    assert documented.count(*CREATE) == 1


# -- step 3: the read-back --------------------------------------------------------------------

READ_BACK_FAULTS: dict[str, Fault] = {
    "503": lambda r: httpx.Response(503, text="unavailable"),
    "html-404": lambda r: httpx.Response(404, text="<html>Not Found</html>"),
    "api-404": lambda r: D.error(404, "Not Found", "Instance not found"),  # not visible yet
    "429-for-a-day": lambda r: httpx.Response(429, headers={"Retry-After": "86400"}),
    "reset": _raise(httpx.RemoteProtocolError("peer closed connection")),
    "read-timeout": _raise(httpx.ReadTimeout("timed out")),
    "junk": lambda r: httpx.Response(200, content=b'{"id": 7'),
    "wrong-type": lambda r: httpx.Response(200, json={"id": NEW, "status": 5}),
}


@MODES
@pytest.mark.parametrize("fault", sorted(READ_BACK_FAULTS))
def test_a_failed_read_back_reports_the_created_vm(mode: str, fault: str) -> None:
    """The create succeeded; whatever the read-back says, the caller gets the VM's id
    (pending), never "nothing happened, launch again"."""
    handler = Faulty(READ_BACK, READ_BACK_FAULTS[fault])
    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == NEW
    assert instance.state is InstanceState.PENDING
    assert (instance.gpu_type, instance.region) == ("RTX4090", D.LOC_DALLAS)
    assert instance.hourly_price == pytest.approx(0.399)
    assert handler.count(*CREATE) == 1


# -- cancellation -------------------------------------------------------------------------------


def _cancel_while_on(route: tuple[str, str]) -> D.DocumentedTensorDock:
    """Launch (async) and cancel the call while its request to ``route`` hangs."""
    documented = D.DocumentedTensorDock()
    reached = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if (request.method, documented._route(request)[0]) == route:
            if route == CREATE:
                documented(request)  # created, but the answer never comes back
            reached.set()
            await asyncio.Event().wait()
        return documented(request)

    async def main() -> None:
        clock = FakeClock()
        client = create_async_provider(
            "tensordock", api_key=KEY, transport=httpx.MockTransport(handler)
        )
        async with attach(client, clock, clock.asleep):
            task = asyncio.create_task(client.launch_instance(LAUNCH))
            await reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(await client.list_instances()) == 6  # breaker and limiter usable

    asyncio.run(main())
    return documented


def test_a_launch_cancelled_during_the_read_back_names_its_vm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        documented = _cancel_while_on(READ_BACK)
    assert NEW in documented.instances
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert NEW in record.getMessage()
    assert getattr(record, "maybe_submitted", None) is True


def test_a_launch_cancelled_on_the_wire_is_logged_as_maybe_submitted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        _cancel_while_on(CREATE)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "may have reached TensorDock" in record.getMessage()
    assert "instance: unknown" in record.getMessage()


def test_a_launch_cancelled_before_the_create_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    documented = D.DocumentedTensorDock()
    reached = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/locations"):
            reached.set()
            await asyncio.Event().wait()
        return documented(request)

    async def main() -> None:
        client = create_async_provider(
            "tensordock", api_key=KEY, transport=httpx.MockTransport(handler)
        )
        async with client:
            task = asyncio.create_task(client.launch_instance(LAUNCH))
            await reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        asyncio.run(main())
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    assert documented.count(*CREATE) == 0


# -- delete: only the API's own answer means "already gone" --------------------------------------


@MODES
@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(404, text="<html><body>404 Not Found</body></html>"),
        lambda r: httpx.Response(404, json={"unrelated": "json"}),
        lambda r: httpx.Response(404, json={"message": "Not Found"}),  # an API gateway's
        lambda r: httpx.Response(404, json={"detail": "Not Found"}),  # a FastAPI proxy's
        lambda r: httpx.Response(404),
    ],
    ids=["proxy-html", "foreign-json", "gateway-message", "fastapi-detail", "empty"],
)
def test_delete_raises_on_a_404_without_proof(mode: str, answer: Fault) -> None:
    handler = Faulty(DELETE, answer)
    with pytest.raises(UnexpectedResponseError) as caught:
        run(mode, handler, "terminate_instance", D.ID_RUNNING)
    assert caught.value.status_code == 404
    assert not isinstance(caught.value, InstanceNotFoundError)


@MODES
def test_delete_is_idempotent_on_the_apis_own_not_found(mode: str) -> None:
    assert run(mode, D.DocumentedTensorDock(), "terminate_instance", D.ID_MISSING) is None


@MODES
def test_a_day_long_retry_after_is_raised_not_slept(mode: str) -> None:
    clock = FakeClock()
    handler = Faulty(
        ("GET", "/instances"), lambda r: httpx.Response(429, headers={"Retry-After": "86400"})
    )
    with pytest.raises(RateLimitError) as caught:
        run(mode, handler, "list_instances", clock=clock)
    assert caught.value.retry_after == 86400.0
    assert all(s <= MAX_RETRY_AFTER for s in clock.sleeps)


# -- refused before any request ------------------------------------------------------------------

BAD_REQUESTS: dict[str, tuple[dict[str, Any], type[ProviderError]]] = {
    "no-ssh-key": ({"ssh_public_key": None}, InvalidRequestError),
    "bad-ssh-key": ({"ssh_public_key": "not a key"}, InvalidRequestError),
    "key-names": ({"ssh_key_names": ["laptop"]}, UnsupportedFeatureError),
    "spot": ({"spot": True}, UnsupportedFeatureError),
    # labels travel in the name, so a name holding the encoding's marker cannot carry them
    "label-marker": ({"name": "x.gpl.y", "labels": {"team": "ml"}}, InvalidRequestError),
    "small-disk": ({"disk_gb": 50}, InvalidRequestError),
    "unknown-gpu-here": ({"gpu_type": "GH200"}, InvalidRequestError),
    "file-systems": ({"file_systems": ["data"]}, UnsupportedFeatureError),
    "cuda": ({"min_cuda_version": "12.4"}, UnsupportedFeatureError),
    "env-newline": ({"env": {"A": "x\ny"}}, InvalidRequestError),
}


@MODES
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_launches_are_refused_before_any_request(mode: str, case: str) -> None:
    changes, expected = BAD_REQUESTS[case]
    request = LAUNCH.model_copy(update=changes)
    documented = D.DocumentedTensorDock()
    with pytest.raises(expected):
        run(mode, documented, "launch_instance", request)
    assert documented.requests == []


@MODES
def test_a_region_no_location_has_is_refused_before_the_create(mode: str) -> None:
    documented = D.DocumentedTensorDock()
    request = LAUNCH.model_copy(update={"region": "Atlantis"})
    with pytest.raises(InvalidRequestError, match="no location named"):
        run(mode, documented, "launch_instance", request)
    assert documented.count(*CREATE) == 0
