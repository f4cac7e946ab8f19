"""One deadline per public call, shared by every wait, stream and poll the call makes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import InvalidInputError

# A timeout that fires this close to the deadline is the deadline (timers are not exact).
GRACE = 0.05


@dataclass(frozen=True)
class Deadline:
    """When a call must be done by (``time.monotonic()`` clock) and the budget it was given."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def passed(self, grace: float = 0.0) -> bool:
        """True once fewer than ``grace`` seconds are left."""
        return self.remaining() <= grace


def wait_seconds(timeout: float | None, default: float, name: str = "timeout") -> float:
    """A caller's wait timeout checked (positive seconds), or ``default`` when None."""
    if timeout is None:
        return default
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidInputError(f"{name} must be a positive number of seconds, got {timeout!r}")
    return float(timeout)
