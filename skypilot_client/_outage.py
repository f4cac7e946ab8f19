"""Riding out a server outage while waiting for a request (sans-IO).

Waiting is a read: polling ``/api/get`` again cannot do any harm, so a wait keeps polling
through connection failures, 502/503/504 and 429 until its own deadline, with capped
exponential backoff, instead of giving up after ``max_retries``. Each outage is logged
once: a WARNING when it starts, an INFO when the server answers again. Submissions keep
their stricter rules (``retry.py``): they are never replayed once they may have arrived.
"""

from __future__ import annotations

import logging
import random
import time

from . import _constants as constants
from ._deadline import Deadline
from .errors import APITimeoutError, SkyPilotError
from .retry import RetryPolicy

logger = logging.getLogger("skypilot_client")


class OutageTracker:
    """One wait's view of the server's availability: backoff delays and the two log lines."""

    def __init__(self, policy: RetryPolicy, *, operation: str, request_id: str) -> None:
        # The server may come back any moment: never sleep longer than the cap between polls.
        cap = min(policy.max_delay, constants.OUTAGE_MAX_POLL_DELAY)
        self._policy = RetryPolicy(
            max_retries=policy.max_retries,
            initial_delay=min(policy.initial_delay, cap),
            max_delay=cap,
            max_retry_after=policy.max_retry_after,
        )
        self.operation = operation
        self.request_id = request_id
        self.started: float | None = None  # monotonic time the current outage began
        self.failures = 0  # failed polls in the current outage
        self.last_error: SkyPilotError | None = None

    @property
    def attempt(self) -> int:
        """Attempt number of the next poll (for metrics)."""
        return self.failures + 1

    def failed(self, error: SkyPilotError, deadline: Deadline) -> float | None:
        """A poll failed: seconds to sleep before polling again, or None to raise ``error``.

        A long poll that ran out of read time is no outage (the server held it): poll again
        at once. Errors retrying cannot fix (404, 401, a failed request, ...) are raised.
        """
        if isinstance(error, APITimeoutError) and not error.is_retryable:
            self.recovered()
            return 0.0
        if not self._policy.should_retry(error):
            return None
        self.failures += 1
        self.last_error = error
        if self.started is None:
            self.started = time.monotonic()
            logger.warning(
                "%s: the SkyPilot API server is unreachable while waiting for request %s "
                "(%s); polling again until the wait's deadline (%.0f s left)",
                self.operation,
                self.request_id,
                type(error).__name__,
                max(deadline.remaining(), 0.0),
                extra={
                    "operation": self.operation,
                    "request_id": self.request_id,
                    "error": type(error).__name__,
                },
            )
        retry_after = error.retry_after if isinstance(error.retry_after, (int, float)) else None
        delay = self._policy.delay(self.failures, retry_after, random.random())  # noqa: S311
        return max(min(delay, deadline.remaining()), 0.0)

    def recovered(self) -> None:
        """The server answered: log the end of an outage, if there was one."""
        if self.started is None:
            return
        logger.info(
            "%s: the SkyPilot API server answers again after %.1f s (%d failed polls); "
            "resumed waiting for request %s",
            self.operation,
            time.monotonic() - self.started,
            self.failures,
            self.request_id,
            extra={"operation": self.operation, "request_id": self.request_id},
        )
        self.started = None
        self.failures = 0
        self.last_error = None

    def outage_seconds(self) -> float | None:
        """How long the current outage has lasted (None when the server is answering)."""
        return None if self.started is None else time.monotonic() - self.started


__all__ = ["OutageTracker"]
