"""Models of managed jobs (``client.jobs``): statuses, queue records, logs.

They follow the server's own types of SkyPilot 0.14.1: ``ManagedJobStatus`` in
``sky/jobs/state.py`` and ``ManagedJobRecord`` in ``sky/schemas/api/responses.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, field_validator

from ._model_base import _Result
from .models import _epoch_to_datetime, _TolerantEnum

__all__ = ["ManagedJob", "ManagedJobLogs", "ManagedJobStatus"]


class ManagedJobStatus(_TolerantEnum):
    """Status of a managed job (every value of SkyPilot 0.14.1; a newer one is ``UNKNOWN``)."""

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"  # deprecated by the server, still readable in old records
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    WINDING_DOWN = "WINDING_DOWN"
    RECOVERING = "RECOVERING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    FAILED_PRECHECKS = "FAILED_PRECHECKS"
    FAILED_NO_RESOURCE = "FAILED_NO_RESOURCE"
    FAILED_CONTROLLER = "FAILED_CONTROLLER"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True once the job has ended (succeeded, failed in any way, or cancelled)."""
        return self in _TERMINAL

    @property
    def is_failed(self) -> bool:
        """True for the failure statuses (``FAILED``, ``FAILED_SETUP``, ...)."""
        return self in _FAILED


_FAILED = frozenset(
    {
        ManagedJobStatus.FAILED,
        ManagedJobStatus.FAILED_SETUP,
        ManagedJobStatus.FAILED_PRECHECKS,
        ManagedJobStatus.FAILED_NO_RESOURCE,
        ManagedJobStatus.FAILED_CONTROLLER,
    }
)
_TERMINAL = _FAILED | {ManagedJobStatus.SUCCEEDED, ManagedJobStatus.CANCELLED}


class ManagedJob(_Result):
    """One record of the managed-job queue (a task of a managed job).

    Attributes:
        job_id: The managed job's id.
        task_id: The task's index within the job (0 for a single-task job).
        name: The job's name (``job_name`` on the wire).
        task_name: The task's name.
        status: The task's status; ``None`` when the server did not report one.
        resources: Requested resources as the server prints them, e.g. ``1x[CPU:2]``.
        infra: Where it runs (cloud/region), once placed.
        submitted_at, start_at, end_at: Times (UTC), ``None`` when not reached.
        duration: Seconds the job has run (``job_duration`` on the wire).
        recovery_count: How often it was recovered after a preemption.
        failure_reason: Why it failed, when it did.
        user_name, workspace: Who submitted it, and where.
    """

    job_id: int
    task_id: int | None = None
    name: str | None = Field(default=None, validation_alias=AliasChoices("job_name", "name"))
    task_name: str | None = None
    status: ManagedJobStatus | None = None
    resources: str | None = None
    infra: str | None = None
    cloud: str | None = None
    region: str | None = None
    submitted_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    duration: float | None = Field(
        default=None, validation_alias=AliasChoices("job_duration", "duration")
    )
    recovery_count: int | None = None
    failure_reason: str | None = None
    details: str | None = None
    schedule_state: str | None = None
    user_name: str | None = None
    user_hash: str | None = None
    workspace: str | None = None

    _times = field_validator("submitted_at", "start_at", "end_at", mode="before")(
        _epoch_to_datetime
    )

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        # An unknown new status string is UNKNOWN (the enum's rule); a non-string is malformed.
        if value is not None and not isinstance(value, str):
            raise ValueError(f"expected a status string, got {type(value).__name__}")
        return value


class ManagedJobLogs(_Result):
    """A managed job's log (or its controller's) and the exit code the server reported."""

    request_id: str
    job_id: int | None = None
    name: str | None = None
    controller: bool = False
    output: str
    exit_code: int | None = Field(
        default=None, description="None when the server did not report it (e.g. follow=False)"
    )
