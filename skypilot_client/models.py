"""Request and result models. Results tolerate fields a newer server adds.

The request models, credentials and progress events are defined in ``_request_models`` (so
importing ``LaunchRequest`` does not define every result model) and re-exported here.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from ._model_base import _Result
from ._request_models import (
    AWSCredentials,
    AzureCredentials,
    CloudCredentials,
    EstimateCostRequest,
    ExecuteRequest,
    GCPCredentials,
    LaunchPhase,
    LaunchRequest,
    LogsRequest,
    ProgressEvent,
)

__all__ = [
    "AWSCredentials",
    "AcceleratorOffer",
    "AzureCredentials",
    "CloudCheck",
    "CloudCredentials",
    "ClusterCost",
    "ClusterList",
    "ClusterState",
    "ClusterStatus",
    "CostEstimate",
    "EstimateCostRequest",
    "ExecuteRequest",
    "ExecuteResult",
    "GCPCredentials",
    "HealthStatus",
    "Job",
    "JobLogs",
    "JobState",
    "LaunchPhase",
    "LaunchRequest",
    "LaunchResult",
    "LogsRequest",
    "ProgressEvent",
    "RequestState",
    "RequestStatus",
    "SubmittedJob",
]

# ---------------------------------------------------------------------------- enums


class _TolerantEnum(str, enum.Enum):
    """A string enum that maps values a newer server invents to ``UNKNOWN``."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        return cls.__members__.get("UNKNOWN")


class RequestState(_TolerantEnum):
    """Lifecycle of a server request."""

    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True once the request has finished (succeeded, failed or cancelled)."""
        return self in (RequestState.SUCCEEDED, RequestState.FAILED, RequestState.CANCELLED)


class ClusterState(_TolerantEnum):
    """Status of a cluster."""

    INIT = "INIT"
    UP = "UP"
    STOPPED = "STOPPED"
    AUTOSTOPPING = "AUTOSTOPPING"
    UNKNOWN = "UNKNOWN"


class JobState(_TolerantEnum):
    """Status of a job on a cluster."""

    INIT = "INIT"
    PENDING = "PENDING"
    SETTING_UP = "SETTING_UP"
    RUNNING = "RUNNING"
    FAILED_DRIVER = "FAILED_DRIVER"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True once the job has ended."""
        return self not in (
            JobState.INIT,
            JobState.PENDING,
            JobState.SETTING_UP,
            JobState.RUNNING,
            JobState.UNKNOWN,
        )


# ---------------------------------------------------------------------------- results


def _epoch_to_datetime(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc) if value > 0 else None
    return value


class UserInfo(_Result):
    """The authenticated user as the server reports it (password hashes are dropped)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str | None = None
    name: str | None = None
    user_type: str | None = None


class HealthStatus(_Result):
    """``GET /api/health``."""

    status: str
    api_version: int | None = None
    version: str | None = None
    version_on_disk: str | None = None
    commit: str | None = None
    basic_auth_enabled: bool | None = None
    service_account_token_enabled: bool | None = None
    user: UserInfo | None = None
    latest_version: str | None = None

    @property
    def is_healthy(self) -> bool:
        """True when the server says ``healthy``."""
        return self.status == "healthy"


class RequestStatus(_Result):
    """A server request record (pickled fields dropped)."""

    request_id: str
    name: str
    status: RequestState
    created_at: datetime | None = None
    finished_at: datetime | None = None
    user_id: str | None = None
    user_name: str | None = None
    cluster_name: str | None = None
    status_msg: str | None = None
    schedule_type: str | None = None
    should_retry: bool | None = None
    return_value: Any = Field(
        default=None, description="Decoded result of a finished request (pickles removed)"
    )

    _times = field_validator("created_at", "finished_at", mode="before")(_epoch_to_datetime)

    @field_validator("name", mode="before")
    @classmethod
    def _readable_name(cls, value: Any) -> Any:
        return value if isinstance(value, str) else str(value)


class ClusterStatus(_Result):
    """One cluster from ``/status`` (handle and SSH credentials are never kept)."""

    name: str
    status: ClusterState
    launched_at: datetime | None = None
    last_use: str | None = None
    autostop: int = -1
    to_down: bool = False
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    nodes: int | None = None
    cpus: str | None = None
    memory: str | None = None
    accelerators: str | None = None
    resources_str: str | None = None
    resources_str_full: str | None = None
    user_hash: str | None = None
    user_name: str | None = None
    workspace: str | None = None
    cluster_hash: str | None = None
    labels: dict[str, Any] | None = None

    _launched = field_validator("launched_at", mode="before")(_epoch_to_datetime)

    @field_validator("cpus", "memory", "accelerators", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @property
    def autostop_minutes(self) -> int | None:
        """Idle minutes before autostop, or None when autostop is off."""
        return None if self.autostop < 0 else self.autostop


class ClusterList(_Result):
    """All clusters visible to the caller."""

    clusters: list[ClusterStatus]

    @property
    def total(self) -> int:
        """Number of clusters."""
        return len(self.clusters)


class Job(_Result):
    """One job from a cluster's queue."""

    job_id: int
    job_name: str | None = None
    username: str | None = None
    user_hash: str | None = None
    submitted_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    resources: str | None = None
    status: JobState
    log_path: str | None = None

    _times = field_validator("submitted_at", "start_at", "end_at", mode="before")(
        _epoch_to_datetime
    )


class LaunchResult(_Result):
    """A finished launch: the job the task was submitted as (None for a dry run)."""

    request_id: str
    cluster_name: str
    job_id: int | None = None
    dryrun: bool = False
    exit_code: int | None = Field(
        default=None, description="Exit code of the task's job when launched with detach=False"
    )
    output: str | None = None


class ExecuteResult(_Result):
    """The outcome of ``execute``: job id, exit code and the job's output."""

    request_id: str
    cluster_name: str
    job_id: int
    exit_code: int | None = Field(description="None when the server did not report it")
    output: str
    job_status: JobState | None = None

    @property
    def succeeded(self) -> bool | None:
        """True when the job exited with code 0; None when the exit code is unknown."""
        return None if self.exit_code is None else self.exit_code == 0


class JobLogs(_Result):
    """A job's log and the exit code the server reported for it."""

    request_id: str
    cluster_name: str
    job_id: int | None
    output: str
    exit_code: int | None = Field(description="None when the server did not report it")


class SubmittedJob(_Result):
    """A job submitted to a cluster by ``submit`` (not waited for)."""

    request_id: str
    cluster_name: str
    job_id: int


class ClusterCost(_Result):
    """One cluster's row of ``cost_report`` (torn-down clusters included).

    ``total_cost`` (USD) and ``duration`` (seconds up) are the server's estimates from its
    own records; ``None`` when the server did not report them. ``status`` is ``None`` for a
    cluster that no longer exists. The server's pickled ``resources`` object is not kept.
    """

    name: str
    status: ClusterState | None = None
    launched_at: datetime | None = None
    duration: float | None = None
    total_cost: float | None = None
    num_nodes: int | None = None
    cloud: str | None = None
    region: str | None = None
    cpus: str | None = None
    memory: str | None = None
    accelerators: str | None = None
    resources_str: str | None = None
    resources_str_full: str | None = None
    last_use: str | None = None
    cluster_hash: str | None = None
    user_hash: str | None = None
    user_name: str | None = None
    workspace: str | None = None
    usage_intervals: list[tuple[int, int | None]] | None = None

    _launched = field_validator("launched_at", mode="before")(_epoch_to_datetime)

    @model_validator(mode="before")
    @classmethod
    def _drop_resources(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k != "resources"}  # a base64 pickle
        return data

    @field_validator("cpus", "memory", "accelerators", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)


class CloudCheck(_Result):
    """What ``check`` found: the enabled clouds of each workspace and their capabilities.

    ``enabled`` maps workspace -> cloud name (as the server spells it, e.g. ``Hyperbolic``) ->
    capabilities (``compute``, ``storage``). ``disabled`` maps each cloud the check found
    disabled to the server's reason, read from ``report`` (the server's human-readable check
    log, the only place the server gives reasons).
    """

    enabled: dict[str, dict[str, list[str]]]
    disabled: dict[str, str] = Field(default_factory=dict)
    report: str = ""

    def clouds(self, workspace: str = "default") -> list[str]:
        """Names of the clouds enabled in ``workspace`` (empty if none or unknown)."""
        return sorted(self.enabled.get(workspace, {}))


class AcceleratorOffer(_Result):
    """One row of ``/list_accelerators``: an instance type carrying an accelerator."""

    accelerator: str
    cloud: str
    instance_type: str
    accelerator_count: float
    cpu_count: float | None = None
    device_memory_gib: float | None = None
    memory_gib: float | None = None
    price: float | None = None
    spot_price: float | None = None
    region: str | None = None


class CostEstimate(_Result):
    """The cheapest matching offer for a task, priced for ``hours``.

    ``cost_per_hour`` covers all nodes; ``estimated_cost = cost_per_hour * hours``.
    """

    estimated_cost: float
    cost_per_hour: float
    hours: float
    currency: str = "USD"
    cloud: str
    region: str | None
    instance_type: str
    accelerator: str | None
    accelerator_count: float | None
    num_nodes: int
    spot: bool
