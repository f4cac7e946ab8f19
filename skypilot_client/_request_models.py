"""Models callers build (requests, cloud credentials) and the progress events they receive.

They live apart from the result models so that ``from skypilot_client import LaunchRequest``
defines only these; ``skypilot_client.models`` re-exports them (one class, two names).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from ._constants import CLUSTER_NAME_RE
from ._model_base import _Input, _Result

__all__ = [
    "AWSCredentials",
    "AzureCredentials",
    "CloudCredentials",
    "EstimateCostRequest",
    "ExecuteRequest",
    "GCPCredentials",
    "LaunchPhase",
    "LaunchRequest",
    "LogsRequest",
    "ProgressEvent",
]


def _validate_cluster_name(value: str) -> str:
    if not CLUSTER_NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid cluster name {value!r}: SkyPilot names start with a letter, end with a "
            "letter or digit, and contain only letters, digits, '-', '_' and '.'"
        )
    return value


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


# ---------------------------------------------------------------------------- progress


class ProgressEvent(_Result):
    """A step of a launch's progress (see ``RequestHandle.progress``)."""

    phase: LaunchPhase
    percent: int = Field(ge=0, le=100)
    message: str = ""
    request_id: str
