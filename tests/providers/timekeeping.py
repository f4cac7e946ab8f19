"""Fake time for provider clients: the clients' constructor has no test seams, so tests
attach a clock to a client they made (its own unshared account state, on that clock)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from gpu_providers._core import Account, BreakerSpec

C = TypeVar("C")


class AttachedClock:
    """A ``gpu_providers._core.Clock`` made of a time function and a sleep function."""

    def __init__(self, now: Callable[[], float], sleep: Callable[[float], Any]) -> None:
        self._now = now
        self._sleep = sleep

    def monotonic(self) -> float:
        return self._now()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        result = self._sleep(seconds)
        if inspect.isawaitable(result):
            await result


class FakeClock:
    """Monotonic time that moves only when the client sleeps; every sleep is recorded.

    Call it for the time; ``sleep``/``asleep`` for ``attach``.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class NoSleepClock:
    """Real monotonic time, sleeps that return at once (the default in provider tests)."""

    def __init__(self) -> None:
        import time

        self._monotonic = time.monotonic

    def monotonic(self) -> float:
        return self._monotonic()

    def sleep(self, seconds: float) -> None:
        return None

    async def asleep(self, seconds: float) -> None:
        return None


def attach(
    client: C,
    now: Callable[[], float],
    sleep: Callable[[float], Any],
    breaker: BreakerSpec | None = None,
) -> C:
    """Run ``client`` on fake time, with its own limiter and breaker on that time."""
    clock = AttachedClock(now, sleep)
    core: Any = client
    core._clock = clock
    core._account = Account.new(core.name, core.rate_limit, breaker or core.breaker, clock)
    return client


def isolated(client: C) -> C:
    """``client`` with limiter and breaker of its own (no sleeping): for tests that make many
    clients of one account and must not see each other's breaker state."""
    clock = NoSleepClock()
    return attach(client, clock.monotonic, clock.sleep)
