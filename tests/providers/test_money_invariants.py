"""The money invariants of the shared core (DESIGN rule 9), with faults injected.

Driven through the Lambda client over Lambda's documented answers (tests/providers/
lambda_cloud/documented.py), because a launch there takes three steps (offers, launch, read
back): each later step is made to fail, time out or be cancelled, sync and async.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gpu_providers import (
    InstanceState,
    LaunchRequest,
    _core,
    create_async_provider,
    create_provider,
)
from gpu_providers._resilience import CircuitBreaker, CircuitState, RateLimiter
from gpu_providers.errors import (
    CircuitOpenError,
    InstanceNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
)
from skypilot_client.retry import MAX_RETRY_AFTER
from tests.providers.lambda_cloud import documented as D
from tests.providers.timekeeping import FakeClock, attach

KEY = "money-test-key"
LAUNCH = LaunchRequest(gpu_type="A10", name="money", ssh_key_names=[D.SSH_KEY_NAME])
LAUNCH_PATH = f"{D.API}/instance-operations/launch"
GET_LAUNCHED = f"{D.API}/instances/{D.ID_LAUNCHED}"
TERMINATE_PATH = f"{D.API}/instance-operations/terminate"

Fault = Callable[[httpx.Request], httpx.Response]


class Faulty:
    """Lambda's documented answers, except on one path, where ``fault`` answers."""

    def __init__(self, path: str, fault: Fault, times: int = 1_000) -> None:
        self.documented = D.DocumentedLambda()
        self.path, self.fault, self.times = path, fault, times
        self.sent: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.path)
        if request.url.path == self.path and self.times > 0:
            self.times -= 1
            request.read()
            if request.url.path == LAUNCH_PATH:
                self.documented(request)  # the instance is created before the fault
            return self.fault(request)
        return self.documented(request)

    def count(self, path: str) -> int:
        return self.sent.count(path)


def run(mode: str, handler: Any, method: str, *args: Any, clock: FakeClock | None = None) -> Any:
    """Call ``method`` on a fresh Lambda client (sync or async) over ``handler``."""
    clock = clock or FakeClock()
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        client: Any = create_provider("lambda", api_key=KEY, transport=transport)
        with attach(client, clock, clock.sleep) as sync_client:
            return getattr(sync_client, method)(*args)

    async def main() -> Any:
        client = create_async_provider("lambda", api_key=KEY, transport=transport)
        async with attach(client, clock, clock.asleep) as async_client:
            return await getattr(async_client, method)(*args)

    return asyncio.run(main())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def _raise(exc: Exception) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc

    return fault


READ_BACK_FAULTS = {
    "503": lambda r: httpx.Response(503, text="unavailable"),
    "500": lambda r: httpx.Response(500, json=D.error("global/internal-error", "boom")),
    "html-404": lambda r: httpx.Response(404, text="<html>Not Found</html>"),
    "429-for-a-day": lambda r: httpx.Response(429, headers={"Retry-After": "86400"}),
    "reset": _raise(httpx.RemoteProtocolError("peer closed connection")),
    "read-timeout": _raise(httpx.ReadTimeout("timed out")),
    "junk": lambda r: httpx.Response(200, content=b'{"data": {"id": 7'),
}


@MODES
@pytest.mark.parametrize("fault", sorted(READ_BACK_FAULTS))
def test_a_failed_read_back_reports_the_launched_instance(mode: str, fault: str) -> None:
    """The launch succeeded; whatever the read-back says, the caller learns the instance
    (pending, with its id), never "nothing happened, launch again"."""
    handler = Faulty(GET_LAUNCHED, READ_BACK_FAULTS[fault])
    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == D.ID_LAUNCHED
    assert instance.state is InstanceState.PENDING
    assert handler.count(LAUNCH_PATH) == 1


LAUNCH_FAULTS = {
    "503": (lambda r: httpx.Response(503, text="unavailable"), ProviderServerError),
    "502": (lambda r: httpx.Response(502, text="<html>bad gateway</html>"), ProviderServerError),
    "520": (lambda r: httpx.Response(520, text="origin error"), ProviderServerError),
    "reset": (_raise(httpx.RemoteProtocolError("reset")), ProviderConnectionError),
    "read-timeout": (_raise(httpx.ReadTimeout("slow")), ProviderConnectionError),
    "junk-200": (lambda r: httpx.Response(200, content=b"<html>"), UnexpectedResponseError),
    "no-ids": (lambda r: httpx.Response(200, json={"data": {}}), UnexpectedResponseError),
}


@MODES
@pytest.mark.parametrize("fault", sorted(LAUNCH_FAULTS))
def test_a_launch_that_may_have_arrived_is_never_retryable(mode: str, fault: str) -> None:
    answer, expected = LAUNCH_FAULTS[fault]
    handler = Faulty(LAUNCH_PATH, answer)
    with pytest.raises(expected) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert caught.value.maybe_submitted
    assert not caught.value.is_retryable
    assert handler.count(LAUNCH_PATH) == 1  # never replayed
    assert "list instances" in caught.value.message


@MODES
def test_a_refused_launch_says_nothing_was_created(mode: str) -> None:
    handler = D.DocumentedLambda(launch_outcome="insufficient-capacity")
    with pytest.raises(ProviderError) as caught:
        run(mode, handler, "launch_instance", LAUNCH)
    assert not caught.value.maybe_submitted


@MODES
def test_a_launch_is_retried_only_when_it_never_left(mode: str) -> None:
    documented = D.DocumentedLambda()
    refusals = [httpx.ConnectError("connection refused")]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LAUNCH_PATH and refusals:
            raise refusals.pop()
        return documented(request)

    instance = run(mode, handler, "launch_instance", LAUNCH)
    assert instance.instance_id == D.ID_LAUNCHED
    assert documented.count("POST", "/instance-operations/launch") == 1


def _cancel_while_on(path: str, *, check_usable: bool = False) -> D.DocumentedLambda:
    """Launch (async) and cancel the call while its request to ``path`` hangs."""
    documented = D.DocumentedLambda()
    reached = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            reached.set()
            await asyncio.Event().wait()  # this request never comes back
        return documented(request)

    async def main() -> None:
        clock = FakeClock()
        client = create_async_provider(
            "lambda", api_key=KEY, transport=httpx.MockTransport(handler)
        )
        async with attach(client, clock, clock.asleep):
            task = asyncio.create_task(client.launch_instance(LAUNCH))
            await reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            if check_usable:
                assert len(await client.list_instances()) == 4  # breaker and limiter usable

    asyncio.run(main())
    return documented


def test_a_cancelled_launch_names_the_instance_it_may_leave(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The caller's own cancellation propagates; the log says what bills meanwhile."""
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        documented = _cancel_while_on(GET_LAUNCHED)  # the read-back hangs until cancelled
    assert D.ID_LAUNCHED in documented.instances
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert D.ID_LAUNCHED in record.getMessage()
    assert getattr(record, "maybe_submitted", None) is True


def test_a_launch_cancelled_on_the_wire_is_logged_as_maybe_submitted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        _cancel_while_on(LAUNCH_PATH, check_usable=True)  # the launch POST never comes back
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "may have reached Lambda Cloud" in record.getMessage()
    assert "instance: unknown" in record.getMessage()


# -- terminate: only the provider's proof means "already gone" ---------------------------------


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
def test_terminate_raises_on_a_404_without_proof(mode: str, answer: Fault) -> None:
    handler = Faulty(TERMINATE_PATH, answer)
    with pytest.raises(UnexpectedResponseError) as caught:
        run(mode, handler, "terminate_instance", D.ID_ACTIVE)
    assert caught.value.status_code == 404
    assert not isinstance(caught.value, InstanceNotFoundError)


@MODES
def test_terminate_is_idempotent_on_lambdas_own_not_found(mode: str) -> None:
    assert run(mode, D.DocumentedLambda(), "terminate_instance", D.ID_MISSING) is None


# -- Retry-After beyond the cap ------------------------------------------------------------------


@MODES
def test_a_day_long_retry_after_is_raised_not_slept(mode: str) -> None:
    clock = FakeClock()
    handler = D.DocumentedLambda(throttle=1, retry_after="86400")
    with pytest.raises(RateLimitError) as caught:
        run(mode, handler, "list_instances", clock=clock)
    assert caught.value.retry_after == 86400.0
    assert all(s <= MAX_RETRY_AFTER for s in clock.sleeps)
    assert len(handler.requests) == 1


def test_the_limiter_refuses_a_wait_beyond_the_cap_without_booking() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, clock=lambda: now[0], provider="p")
    limiter.on_rate_limited(86400.0)
    with pytest.raises(RateLimitError) as caught:
        limiter.reserve(max_wait=MAX_RETRY_AFTER)
    assert caught.value.retry_after == pytest.approx(86400.0)
    assert caught.value.provider == "p"
    now[0] = 86400.0
    assert limiter.reserve(max_wait=MAX_RETRY_AFTER) == 0.0  # nothing was booked meanwhile


# -- accounts: one budget per provider + key, shared by every client -----------------------------


def test_clients_of_one_account_share_limiter_and_breaker() -> None:
    first = create_provider("lambda", api_key="key-a")
    second = create_async_provider("lambda", api_key="key-a")
    other = create_provider("lambda", api_key="key-b")
    elsewhere = create_provider("lambda", api_key="key-a", base_url="http://proxy.test")
    clients: list[Any] = [first, second, other, elsewhere]
    accounts = [c._account for c in clients]
    assert accounts[0] is accounts[1]
    assert accounts[0] is not accounts[2]
    assert accounts[0] is not accounts[3]
    assert "key-a" not in repr(_core._accounts)  # held as digests


def test_a_throttled_client_slows_its_siblings() -> None:
    handler = D.DocumentedLambda(throttle=1, retry_after="7")
    first = create_provider("lambda", api_key=KEY, transport=httpx.MockTransport(handler))
    second = create_async_provider("lambda", api_key=KEY, transport=httpx.MockTransport(handler))
    documented = second.get_rate_limits().requests_per_second
    with first:
        first.list_instances()  # a 429, then the retry
    slowed = second.get_rate_limits().current_requests_per_second
    assert documented is not None and slowed is not None and slowed < documented


def test_the_wire_client_is_created_once_under_concurrency() -> None:
    client = create_provider("lambda", api_key=KEY, transport=D.transport())
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def grab() -> None:
        barrier.wait()
        seen.append(client._api())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(api) for api in seen}) == 1
    client.close()


# -- the breaker always learns the outcome of its trial ------------------------------------------


def test_a_cancelled_trial_lets_the_next_call_try() -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            if not release.is_set():
                await asyncio.Event().wait()
            return D.DocumentedLambda()(request)

        clock = FakeClock()
        client: Any = create_async_provider(
            "lambda", api_key=KEY, transport=httpx.MockTransport(handler)
        )
        async with attach(client, clock, clock.asleep):
            breaker = client._account.breaker
            for _ in range(breaker.failure_threshold):
                breaker.record_failure()
            clock.now += breaker.recovery_timeout  # half-open: the next call is the trial
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.list_instances(), timeout=0.05)
            release.set()
            assert len(await client.list_instances()) == 4  # not stuck open
            assert breaker.state is CircuitState.CLOSED

    asyncio.run(main())


def test_a_foreign_exception_in_the_trial_reopens_the_circuit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug in a transport")

    clock = FakeClock()
    transport = httpx.MockTransport(handler)
    # No retries: the trial's own error (a retry would fail fast on the reopened circuit).
    client: Any = create_provider("lambda", api_key=KEY, transport=transport, max_retries=0)
    with attach(client, clock, clock.sleep):
        breaker = client._account.breaker
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()
        clock.now += breaker.recovery_timeout
        with pytest.raises(ProviderConnectionError) as caught:  # ours, the bug chained
            client.list_instances()
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            client.list_instances()


class BreakerMachine(RuleBasedStateMachine):
    """Random interleavings of calls, outcomes and time: the breaker never sticks open."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=10.0, clock=self.clock)
        self.in_flight: list[bool] = []  # trial flags of calls let through, not yet ended

    def clock(self) -> float:
        return self.now

    @rule()
    def call(self) -> None:
        with contextlib.suppress(CircuitOpenError):
            self.in_flight.append(self.breaker.before_call())

    @rule(
        index=st.integers(min_value=0, max_value=5),
        outcome=st.sampled_from(["success", "failure", "cancelled", "foreign"]),
    )
    def end_a_call(self, index: int, outcome: str) -> None:
        if not self.in_flight:
            return
        trial = self.in_flight.pop(index % len(self.in_flight))
        # What the drivers do (_core: _record_outcome / _record_foreign).
        if outcome == "success":
            self.breaker.record_success()
        elif outcome in ("failure", "foreign"):
            self.breaker.record_failure()
        elif trial:
            self.breaker.abandon_trial()

    @rule(seconds=st.floats(min_value=0, max_value=15))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def never_stuck(self) -> None:
        # Stuck = a trial is booked that no call in flight will ever end.
        if self.breaker._trial_in_flight:
            assert any(self.in_flight), "the half-open trial was lost"
        if not self.in_flight:
            self.now += self.breaker.recovery_timeout
            try:
                probe = self.breaker.before_call()
            except CircuitOpenError as exc:
                raise AssertionError("idle past the recovery time, yet failing fast") from exc
            self.in_flight.append(probe)  # the probe is a real call; a later rule ends it


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30)
test_breaker_never_sticks = BreakerMachine.TestCase
