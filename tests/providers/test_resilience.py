"""Rate limiter and circuit breaker, driven by an injected clock."""

from __future__ import annotations

import pytest

from gpu_providers._resilience import CircuitBreaker, CircuitState, RateLimiter
from gpu_providers.errors import CircuitOpenError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _state(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state  # read through a call: mypy must not narrow a changing property


def test_rate_limiter_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    clock.advance(10)
    assert limiter.reserve() == 0.0


def test_rate_limiter_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=3, clock=clock)
    assert [limiter.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_launch_interval_on_top_of_the_general_rate() -> None:
    # Lambda: about 1 request/s in general, one launch per 12 s (FACTS.md)
    clock = FakeClock()
    limiter = RateLimiter(1.0, min_interval={"launch": 12.0}, clock=clock)
    assert limiter.reserve("launch") == 0.0
    assert limiter.reserve("default") == 1.0
    assert limiter.reserve("launch") == 12.0
    clock.advance(12.0)
    assert limiter.reserve("launch") == 12.0  # the booked slot was at +12, next at +24


def test_rate_limiter_backs_off_on_429_and_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock=clock)
    limiter.on_rate_limited(retry_after=5.0)
    assert limiter.current_rate == 2.0
    assert limiter.reserve() == 5.0  # paused for Retry-After
    limiter.on_rate_limited(retry_after=None)
    limiter.on_rate_limited(retry_after=None)
    limiter.on_rate_limited(retry_after=None)
    limiter.on_rate_limited(retry_after=None)
    assert limiter.current_rate == 0.25  # floor: 1/16 of the documented rate
    for _ in range(100):
        limiter.on_success()
    assert limiter.current_rate == 4.0  # never above the documented rate


def test_unlimited_limiter_never_waits() -> None:
    limiter = RateLimiter(None)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_rate_limiter_rejects_bad_rates(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(bad)


def test_circuit_opens_after_threshold_and_half_opens_after_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=30, clock=clock, provider="x")
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert _state(breaker) == CircuitState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert _state(breaker) == CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.retry_after == 30
    assert info.value.provider == "x"
    clock.advance(30)
    assert _state(breaker) == CircuitState.HALF_OPEN
    breaker.before_call()  # the single trial call
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # a second call while the trial runs fails fast
    breaker.record_failure()
    assert _state(breaker) == CircuitState.OPEN  # trial failed: open again
    clock.advance(30)
    breaker.before_call()
    breaker.record_success()
    assert _state(breaker) == CircuitState.CLOSED
    breaker.before_call()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert _state(breaker) == CircuitState.CLOSED
