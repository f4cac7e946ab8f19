"""Request and result models. Results tolerate fields a newer server adds."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

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

from ._constants import CLUSTER_NAME_RE

# Keys whose values are base64 Python pickles or secrets: never kept on our models.
_OPAQUE_KEYS = ("handle", "credentials", "entrypoint", "request_body", "error", "pid")


class _Result(BaseModel):
    """Base of result models: extra server fields are kept, pickles/secrets dropped."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_opaque(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _OPAQUE_KEYS}
        return data


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _validate_cluster_name(value: str) -> str:
    if not CLUSTER_NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid cluster name {value!r}: SkyPilot names start with a letter, end with a "
            "letter or digit, and contain only letters, digits, '-', '_' and '.'"
        )
    return value


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


class LaunchPhase(str, enum.Enum):
    """Phases a launch goes through, in order."""

    #: Local workdir/file_mounts being zipped and sent (before the request exists; its
    #: events count percent of the upload and carry an empty request id).
    UPLOADING = "uploading"
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    INSTANCE_READY = "instance_ready"
    SETTING_UP = "setting_up"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# ---------------------------------------------------------------------------- credentials


class AWSCredentials(_Input):
    """AWS credentials forwarded to the server for one request."""

    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None
    region: str | None = None

    def __init__(
        self,
        *,
        access_key_id: str | SecretStr,
        secret_access_key: str | SecretStr,
        session_token: str | SecretStr | None = None,
        region: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": session_token,
            "region": region,
        }
        super().__init__(**fields)


class GCPCredentials(_Input):
    """GCP credentials: a service-account key file path *on the server* and a project."""

    application_credentials_path: str
    project_id: str | None = None


class AzureCredentials(_Input):
    """Azure service-principal credentials."""

    client_id: str
    client_secret: SecretStr
    tenant_id: str
    subscription_id: str | None = None

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | SecretStr,
        tenant_id: str,
        subscription_id: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": client_secret,
            "tenant_id": tenant_id,
            "subscription_id": subscription_id,
        }
        super().__init__(**fields)


class CloudCredentials(_Input):
    """Per-request cloud credentials; they travel in the request's ``env_vars``.

    The server applies a request's environment while it runs that request, so one server
    can act for several tenants. Values are redacted from reprs, logs and errors.
    """

    aws: AWSCredentials | None = None
    gcp: GCPCredentials | None = None
    azure: AzureCredentials | None = None
    extra_env: dict[str, SecretStr] = Field(default_factory=dict)

    def __init__(
        self,
        *,
        aws: AWSCredentials | None = None,
        gcp: GCPCredentials | None = None,
        azure: AzureCredentials | None = None,
        extra_env: dict[str, str] | dict[str, SecretStr] | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "aws": aws,
            "gcp": gcp,
            "azure": azure,
            "extra_env": extra_env or {},
        }
        super().__init__(**fields)

    def to_env_vars(self) -> dict[str, str]:
        """The environment variables the cloud SDKs on the server read."""
        env: dict[str, str] = {}
        if self.aws:
            env["AWS_ACCESS_KEY_ID"] = self.aws.access_key_id.get_secret_value()
            env["AWS_SECRET_ACCESS_KEY"] = self.aws.secret_access_key.get_secret_value()
            if self.aws.session_token:
                env["AWS_SESSION_TOKEN"] = self.aws.session_token.get_secret_value()
            if self.aws.region:
                env["AWS_DEFAULT_REGION"] = self.aws.region
        if self.gcp:
            env["GOOGLE_APPLICATION_CREDENTIALS"] = self.gcp.application_credentials_path
            if self.gcp.project_id:
                env["GOOGLE_CLOUD_PROJECT"] = self.gcp.project_id
        if self.azure:
            env["AZURE_CLIENT_ID"] = self.azure.client_id
            env["AZURE_CLIENT_SECRET"] = self.azure.client_secret.get_secret_value()
            env["AZURE_TENANT_ID"] = self.azure.tenant_id
            if self.azure.subscription_id:
                env["AZURE_SUBSCRIPTION_ID"] = self.azure.subscription_id
        env.update({k: v.get_secret_value() for k, v in self.extra_env.items()})
        return env

    def secret_values(self) -> list[str]:
        """Every value that must never appear in a log, error or cassette."""
        secrets = [
            s.get_secret_value()
            for s in (
                self.aws and self.aws.access_key_id,
                self.aws and self.aws.secret_access_key,
                self.aws and self.aws.session_token,
                self.azure and self.azure.client_secret,
                *self.extra_env.values(),
            )
            if isinstance(s, SecretStr)
        ]
        return [s for s in secrets if s]


# ---------------------------------------------------------------------------- requests


class LaunchRequest(_Input):
    """What to launch: a cluster name and a SkyPilot task (YAML text or a mapping).

    Attributes:
        cluster_name: SkyPilot cluster name (checked locally before anything is sent).
        task: The task as YAML text or an already-parsed mapping.
        retry_until_up: Keep retrying provisioning until resources are available.
        detach: When False, ``result()`` also waits for the task's job to finish and
            reports its exit code (like ``sky launch`` without ``--detach-run``).
        idle_minutes_to_stop: Autostop after this many idle minutes (``None`` = off).
        down: With ``idle_minutes_to_stop``, tear the cluster down instead of stopping it.
        dryrun: Only plan the launch; nothing is provisioned.
        envs: Task environment variables (merged over the task's own ``envs``).
        credentials: Cloud credentials for this request only.
        on_upload_progress: Called with ``ProgressEvent``s (phase ``uploading``) while the
            task's local ``workdir``/``file_mounts`` are uploaded, before submission.
    """

    cluster_name: str
    task: str | dict[str, Any]
    retry_until_up: bool = False
    detach: bool = True
    idle_minutes_to_stop: int | None = Field(default=None, ge=0)
    down: bool = False
    dryrun: bool = False
    envs: dict[str, str] = Field(default_factory=dict)
    credentials: CloudCredentials | None = None
    on_upload_progress: Callable[[ProgressEvent], object] | None = None  # uploads

    _check_name = field_validator("cluster_name")(_validate_cluster_name)


class ExecuteRequest(_Input):
    """Run a command (or a task) on an existing cluster and collect its output.

    Give either ``command`` (a shell command) or ``task`` (YAML text or mapping). A task's
    local ``workdir`` is uploaded first (``on_upload_progress`` sees it; file mounts are
    not synced by an exec).
    """

    cluster_name: str
    command: str | None = None
    task: str | dict[str, Any] | None = None
    envs: dict[str, str] = Field(default_factory=dict)
    credentials: CloudCredentials | None = None
    on_upload_progress: Callable[[ProgressEvent], object] | None = None  # uploads

    _check_name = field_validator("cluster_name")(_validate_cluster_name)

    @model_validator(mode="after")
    def _one_of(self) -> ExecuteRequest:
        if (self.command is None) == (self.task is None):
            raise ValueError("give exactly one of command= or task=")
        if self.command is not None and not self.command.strip():
            raise ValueError("command must not be empty")
        return self


class LogsRequest(_Input):
    """Which job's logs to read: ``job_id=None`` is the cluster's latest job."""

    cluster_name: str
    job_id: int | None = Field(default=None, ge=1)
    follow: bool = True
    tail: int = Field(default=0, ge=0)

    _check_name = field_validator("cluster_name")(_validate_cluster_name)


class EstimateCostRequest(_Input):
    """Price a task before launching it.

    The task's ``resources`` (accelerators, infra/cloud, region, instance type, use_spot) and
    ``num_nodes`` are read from the YAML; ``spot=True`` prices spot capacity regardless.
    """

    task: str | dict[str, Any]
    hours: float = Field(default=1.0, gt=0)
    spot: bool | None = None


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


class ProgressEvent(_Result):
    """A step of a launch's progress (see ``RequestHandle.progress``)."""

    phase: LaunchPhase
    percent: int = Field(ge=0, le=100)
    message: str = ""
    request_id: str
