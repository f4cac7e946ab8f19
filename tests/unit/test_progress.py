"""Launch progress from request states and spinner text."""

from __future__ import annotations

from skypilot_client import LaunchPhase, RequestState
from skypilot_client._progress import ProgressTracker
from skypilot_client._protocol import LogLine, SpinnerUpdate


def test_phases_move_forward_only() -> None:
    tracker = ProgressTracker("r1")
    steps = [
        tracker.on_state(RequestState.PENDING),
        tracker.on_stream(
            SpinnerUpdate("rich_update", "Waiting for 'sky.launch' request to be scheduled: r1")
        ),
        tracker.on_stream(SpinnerUpdate("rich_init", "Optimizing")),
        tracker.on_stream(SpinnerUpdate("rich_update", "Launching")),
        tracker.on_stream(LogLine("✓ Cluster launched: c1.")),
        tracker.on_stream(SpinnerUpdate("rich_update", "Optimizing")),  # backwards: ignored
        tracker.on_stream(LogLine("⚙︎ Running setup on 1 node.")),
        tracker.on_stream(LogLine("⚙︎ Job submitted, ID: 1")),
        tracker.on_stream(LogLine("plain output")),
        tracker.on_state(RequestState.SUCCEEDED),
    ]
    events = [e for e in steps if e is not None]
    assert [e.phase for e in events] == [
        LaunchPhase.QUEUED,
        LaunchPhase.QUEUED,
        LaunchPhase.PROVISIONING,
        LaunchPhase.PROVISIONING,
        LaunchPhase.INSTANCE_READY,
        LaunchPhase.SETTING_UP,
        LaunchPhase.RUNNING,
        LaunchPhase.SUCCEEDED,
    ]
    assert [e.percent for e in events] == [1, 5, 15, 30, 60, 75, 90, 100]
    assert all(e.request_id == "r1" for e in events)


def test_failure_is_always_reported() -> None:
    tracker = ProgressTracker("r2")
    tracker.on_stream(LogLine("Job submitted, ID: 4"))
    event = tracker.on_state(RequestState.FAILED)
    assert event is not None and event.phase == LaunchPhase.FAILED and event.percent == 100
    cancelled = ProgressTracker("r3").on_state(RequestState.CANCELLED)
    assert cancelled is not None and cancelled.phase == LaunchPhase.FAILED
