"""The one retry policy of both packages (``skypilot_client`` and ``gpu_providers``), compiled
into tenacity ``Retrying``/``AsyncRetrying``.

Which errors are retried is decided by the error itself (``is_retryable``): a work submission
that may have reached the server is marked ``maybe_submitted`` where it is classified, so it is
never replayed here. A ``Retry-After`` longer than ``MAX_RETRY_AFTER`` is never slept through:
the rate-limit error is raised with its ``retry_after`` for the caller to decide.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from . import _constants as constants

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy", "parse_retry_after"]

#: The longest ``Retry-After`` (seconds) either package waits out by itself.
MAX_RETRY_AFTER = constants.MAX_RETRY_AFTER

if TYPE_CHECKING:  # tenacity (and the asyncio it imports) loads on the first call
    import tenacity


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := _finite(lowered.get("retry-after-ms"))) is not None:
        return max(ms / 1000.0, 0.0)
    value = lowered.get("retry-after")
    if value is None:
        return None
    if (seconds := _finite(value)) is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # asctime dates carry no zone; HTTP dates are UTC (RFC 9110)
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


def _finite(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter that honours Retry-After up to a cap."""

    max_retries: int = constants.DEFAULT_MAX_RETRIES
    initial_delay: float = constants.DEFAULT_RETRY_DELAY
    max_delay: float = constants.DEFAULT_RETRY_MAX_DELAY
    max_retry_after: float = constants.MAX_RETRY_AFTER
    jitter: float = 0.25
    logger_name: str = "skypilot_client"

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Seconds before retry number ``attempt`` (1-based); ``rand`` is in [0, 1).

        A ``retry_after`` above the cap is never slept (``should_retry`` refuses it); here it
        falls back to backoff so the value stays bounded whatever the caller passes.
        """
        if retry_after is not None and retry_after <= self.max_retry_after:
            return retry_after
        # The exponent is capped so a huge max_retries cannot overflow a float.
        base = min(self.initial_delay * 2.0 ** min(attempt - 1, 64), self.max_delay)
        return base * (1.0 - self.jitter * rand)

    def should_retry(self, exc: BaseException) -> bool:
        """Retry only errors that say retrying can help (``is_retryable``) and whose
        ``retry_after`` is within the cap (a longer wait is the caller's decision).

        Duck-typed so ``gpu_providers`` errors share this policy with ours.
        """
        if not getattr(exc, "is_retryable", False):
            return False
        retry_after = getattr(exc, "retry_after", None)
        return not (isinstance(retry_after, (int, float)) and retry_after > self.max_retry_after)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if not isinstance(retry_after, (int, float)):
            retry_after = None
        return self.delay(state.attempt_number, retry_after, random.random())  # noqa: S311

    def _log(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logging.getLogger(self.logger_name).info(
            "retrying after %s (attempt %d of %d)",
            type(exc).__name__,
            state.attempt_number,
            self.max_retries + 1,
            extra={"attempt": state.attempt_number, "error": type(exc).__name__},
        )

    def _kwargs(self) -> dict[str, object]:
        import tenacity

        return {
            "stop": tenacity.stop_after_attempt(self.max_retries + 1),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self.should_retry),
            "before_sleep": self._log,
            "reraise": True,
        }

    def sync(self, sleep: Callable[[float], None] = time.sleep) -> tenacity.Retrying:
        """A tenacity controller for the sync client."""
        import tenacity

        return tenacity.Retrying(sleep=sleep, **self._kwargs())  # type: ignore[arg-type]

    def asynchronous(
        self, sleep: Callable[[float], Awaitable[None]] | None = None
    ) -> tenacity.AsyncRetrying:
        """A tenacity controller for the async client."""
        import tenacity

        if sleep is None:
            return tenacity.AsyncRetrying(**self._kwargs())  # type: ignore[arg-type]
        return tenacity.AsyncRetrying(sleep=sleep, **self._kwargs())  # type: ignore[arg-type]
