"""Launch progress from the request status and the spinner text of its log. No I/O."""

from __future__ import annotations

import re

from ._protocol import LogLine, SpinnerUpdate, StreamEvent
from .models import LaunchPhase, ProgressEvent, RequestState

# (pattern in spinner text or log line, phase, percent); first match wins, order = later first.
_RULES: list[tuple[re.Pattern[str], LaunchPhase, int]] = [
    (
        re.compile(r"job submitted|running task|job .*(started|running)", re.I),
        LaunchPhase.RUNNING,
        90,
    ),
    (
        re.compile(r"running setup|setting up|syncing|installing|mounting", re.I),
        LaunchPhase.SETTING_UP,
        75,
    ),
    (
        re.compile(
            r"cluster launched|instance(s)? (is |are )?(up|ready)|provisioning complete", re.I
        ),
        LaunchPhase.INSTANCE_READY,
        60,
    ),
    (
        re.compile(r"launching|provisioning|creating|starting instance", re.I),
        LaunchPhase.PROVISIONING,
        30,
    ),
    (
        re.compile(r"optimizing|checking infra|considered resources", re.I),
        LaunchPhase.PROVISIONING,
        15,
    ),
    (re.compile(r"waiting for .* to be scheduled", re.I), LaunchPhase.QUEUED, 5),
]


class ProgressTracker:
    """Turns request states and stream events into monotonic ``ProgressEvent``s."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._percent = -1

    def _event(self, phase: LaunchPhase, percent: int, message: str) -> ProgressEvent | None:
        if percent <= self._percent:
            return None
        self._percent = percent
        return ProgressEvent(
            phase=phase, percent=percent, message=message, request_id=self.request_id
        )

    def on_state(self, state: RequestState, message: str = "") -> ProgressEvent | None:
        """An event for a request state change, if it moves progress forward."""
        if state in (RequestState.PENDING, RequestState.WAITING):
            return self._event(LaunchPhase.QUEUED, 1, message or "queued on the server")
        if state == RequestState.RUNNING:
            return self._event(LaunchPhase.PROVISIONING, 10, message or "running")
        if state == RequestState.SUCCEEDED:
            return self._event(LaunchPhase.SUCCEEDED, 100, message or "succeeded")
        if state in (RequestState.FAILED, RequestState.CANCELLED):
            self._percent = -1  # a failure is always reported
            return self._event(LaunchPhase.FAILED, 100, message or state.value.lower())
        return None

    def on_stream(self, event: StreamEvent) -> ProgressEvent | None:
        """An event for a spinner update or log line, if it moves progress forward."""
        text = event.text if isinstance(event, (SpinnerUpdate, LogLine)) else ""
        if not text.strip():
            return None
        for pattern, phase, percent in _RULES:
            if pattern.search(text):
                return self._event(phase, percent, text.strip())
        return None
