"""Resilience shared by every provider: rate limiting and a circuit breaker (no I/O here).

Both take an injected clock so tests drive time; the clients only sleep for the waits these
objects compute. Retries use the same tenacity policy as ``skypilot_client``. One limiter and
one breaker exist per account (``_core.shared_account``), shared by every client of it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

from .errors import CircuitOpenError, RateLimitError

__all__ = ["CircuitBreaker", "CircuitState", "RateLimiter"]

Clock = Callable[[], float]


class RateLimiter:
    """Client-side pacing: a general rate with a burst, plus minimum intervals per call kind.

    Uses the generic cell rate algorithm: ``reserve()`` books the next slot and says how long
    to wait before sending. On a 429 the rate halves and sending pauses for ``Retry-After``;
    each success recovers 10% of the documented rate (additive increase).
    """

    def __init__(
        self,
        requests_per_second: float | None,
        *,
        burst: int = 1,
        min_interval: dict[str, float] | None = None,
        clock: Clock = time.monotonic,
        provider: str | None = None,
    ) -> None:
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive (or None for no limit)")
        if burst < 1:
            raise ValueError("burst must be 1 or more")
        self._base_rate = requests_per_second
        self._rate = requests_per_second
        self._burst = burst
        self._min_interval = dict(min_interval or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._tat = 0.0  # theoretical arrival time of the next request
        self._last_by_kind: dict[str, float] = {}
        self._paused_until = 0.0
        self._provider = provider

    @property
    def current_rate(self) -> float | None:
        """Requests per second allowed now (lower than documented after 429s)."""
        return self._rate

    def reserve(self, kind: str = "default", *, max_wait: float | None = None) -> float:
        """Book a slot for a call of ``kind``; returns the seconds to wait before sending.

        When the wait would exceed ``max_wait`` (a provider's long ``Retry-After``), nothing
        is booked and ``RateLimitError`` says how long to wait instead.
        """
        with self._lock:
            now = self._clock()
            if max_wait is not None and self._paused_until - now > max_wait:
                raise RateLimitError(
                    "rate limited by the provider for longer than this client waits by itself",
                    provider=self._provider,
                    retry_after=self._paused_until - now,
                )
            start = max(now, self._paused_until)
            gap = self._min_interval.get(kind)
            last = self._last_by_kind.get(kind)
            if gap is not None and last is not None:
                start = max(start, last + gap)
            if self._rate is not None:
                # The general slot is booked after the per-kind delay, so a delayed launch
                # also pushes back the calls queued behind it.
                interval = 1.0 / self._rate
                tat = max(self._tat, start)
                start = max(start, tat - (self._burst - 1) * interval)
                self._tat = max(tat, start) + interval
            if gap is not None:
                self._last_by_kind[kind] = start
            return max(start - now, 0.0)

    def on_rate_limited(self, retry_after: float | None) -> None:
        """The provider answered 429: slow down and pause."""
        with self._lock:
            now = self._clock()
            if self._rate is not None:
                floor = self._base_rate / 16 if self._base_rate else self._rate
                self._rate = max(self._rate / 2, floor)
            pause = retry_after if retry_after is not None else 1.0
            self._paused_until = max(self._paused_until, now + pause)

    def on_success(self) -> None:
        """A call went through: recover part of the documented rate."""
        with self._lock:
            if self._rate is not None and self._base_rate is not None:
                self._rate = min(self._base_rate, self._rate + self._base_rate / 10)


class CircuitState(str, enum.Enum):
    """Circuit breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Fails fast after ``failure_threshold`` consecutive provider failures.

    Open for ``recovery_timeout`` seconds, then half-open: one trial call goes through; its
    success closes the circuit, its failure opens it again, and a trial that ends without an
    outcome (cancelled) is abandoned so the next call becomes the trial. Only provider-side
    failures count (5xx, connection errors, timeouts); a 404 or a bad request says the
    provider is healthy.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        clock: Clock = time.monotonic,
        provider: str | None = None,
    ) -> None:
        if failure_threshold < 1 or recovery_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_timeout > 0")
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self._provider = provider
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit past its timeout reads as half-open)."""
        with self._lock:
            if self._state == CircuitState.OPEN and self._timed_out():
                return CircuitState.HALF_OPEN
            return self._state

    def _timed_out(self) -> bool:
        return self._clock() >= self._opened_at + self.recovery_timeout

    def before_call(self) -> bool:
        """Raise ``CircuitOpenError`` instead of calling a provider that keeps failing.

        Returns True when this call is the half-open trial: its caller must then end it with
        ``record_success``, ``record_failure`` or ``abandon_trial``.
        """
        with self._lock:
            if self._state == CircuitState.CLOSED:
                return False
            if self._state == CircuitState.OPEN and self._timed_out():
                self._state = CircuitState.HALF_OPEN
                self._trial_in_flight = False
            if self._state == CircuitState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            remaining = max(self._opened_at + self.recovery_timeout - self._clock(), 0.0)
            raise CircuitOpenError(
                f"circuit open after {self._failures} consecutive failures; failing fast "
                f"for {remaining:.1f}s more",
                provider=self._provider,
                retry_after=remaining,
            )

    def abandon_trial(self) -> None:
        """The trial call ended without an outcome (cancelled): let the next call try."""
        with self._lock:
            self._trial_in_flight = False

    def record_success(self) -> None:
        """The provider answered (even with a client error): close the circuit."""
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> None:
        """The provider failed: count it, and open the circuit at the threshold."""
        with self._lock:
            self._failures += 1
            if self._state == CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()
                self._trial_in_flight = False
