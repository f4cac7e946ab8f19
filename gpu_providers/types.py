"""Normalized types that cross the ``ProviderClient`` protocol (the same for every cloud).

Prices are USD per hour. GPU names are SkyPilot's accelerator names (``H100``, ``A100-80GB``,
...), so ``gpu_providers`` and ``skypilot_client`` speak one vocabulary.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .gpus import canonical_gpu_name
from .labels import check_labels

__all__ = [
    "GPUFilters",
    "GPUInstance",
    "GPUOffer",
    "InstanceState",
    "InstanceStatus",
    "LaunchRequest",
    "NormalizedPricing",
    "ProviderFeature",
    "ProviderInfo",
    "RateLimitInfo",
]


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class InstanceState(str, enum.Enum):
    """Lifecycle state of an instance, the same for every provider."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    #: Spot/interruptible capacity taken back by the provider.
    PREEMPTED = "preempted"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """The instance will not become ready from here without a call of yours."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {
        InstanceState.STOPPED,
        InstanceState.TERMINATING,
        InstanceState.TERMINATED,
        InstanceState.PREEMPTED,
        InstanceState.FAILED,
    }
)


class ProviderFeature(str, enum.Enum):
    """Capabilities a provider may or may not have (see ``supports_feature``)."""

    SPOT_INSTANCES = "spot_instances"
    STOP_START = "stop_start"
    RESTART = "restart"
    INSTANCE_TAGS = "instance_tags"
    SSH_KEY_MANAGEMENT = "ssh_key_management"
    FILE_SYSTEMS = "file_systems"
    IDLE_DETECTION = "idle_detection"
    CUSTOM_IMAGES = "custom_images"
    PRICES_BEFORE_LAUNCH = "prices_before_launch"
    CAPACITY_BY_REGION = "capacity_by_region"
    #: ``LaunchRequest.startup_script`` runs on the instance at boot.
    STARTUP_SCRIPT = "startup_script"
    #: ``LaunchRequest.env`` reaches the instance's environment.
    ENVIRONMENT = "environment"
    #: ``LaunchRequest.ssh_public_key`` is installed on the instance.
    SSH_PUBLIC_KEY = "ssh_public_key"
    # -- labels and offer search (issue 9) --
    #: ``LaunchRequest.labels`` is honoured (vendor tags or the instance name, see
    #: ``gpu_providers.labels``) and ``list_instances(labels=...)`` finds them again.
    LABELS = "labels"
    #: ``list_available_gpus`` works without an API key (the provider's public catalog).
    PUBLIC_CATALOG = "public_catalog"


class GPUOffer(_Model):
    """Something you can launch now (or could, when ``available`` is False)."""

    provider: str
    offer_id: str = Field(description="Provider's id for this offer (instance type, GPU id)")
    gpu_type: str = Field(description="Canonical (SkyPilot) GPU name")
    provider_gpu_type: str = Field(description="The provider's own name for the GPU/type")
    gpu_count: int = Field(ge=1)
    gpu_memory_gb: float | None = None
    vcpus: float | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    region: str | None = None
    hourly_price: float | None = Field(default=None, description="USD/hour for the whole offer")
    price_per_gpu: float | None = Field(default=None, description="USD/hour for one GPU")
    spot: bool = False
    available: bool = True
    currency: str = "USD"
    price_source: str | None = Field(
        default=None, description="Where the price comes from (the API field or document)"
    )
    # One rule for every provider: hourly_price is everything billed by the hour for the offer
    # as listed; where a provider prices parts (a marketplace's storage, TensorDock's vCPU and
    # RAM), they are listed here and add up to hourly_price.
    price_breakdown: dict[str, float] | None = Field(
        default=None,
        description="USD/hour per part of hourly_price where the provider prices parts "
        "(e.g. TensorDock: gpu, vcpu, ram, storage); None where it states one price",
    )
    # Marketplaces (Vast.ai) describe the host and bill bandwidth by use; None elsewhere.
    upload_price_per_gb: float | None = Field(
        default=None, description="USD per GB sent out (billed by use, not in hourly_price)"
    )
    download_price_per_gb: float | None = Field(
        default=None, description="USD per GB received (billed by use, not in hourly_price)"
    )
    reliability: float | None = Field(
        default=None, ge=0, le=1, description="Host reliability score (0..1), where published"
    )
    verified: bool | None = Field(
        default=None, description="The marketplace verified the host (None: no such notion)"
    )


class GPUInstance(_Model):
    """A running (or recently running) instance."""

    provider: str
    instance_id: str
    name: str | None = None
    state: InstanceState
    provider_state: str | None = Field(default=None, description="The provider's raw status")
    gpu_type: str | None = None
    gpu_count: int | None = None
    region: str | None = None
    hourly_price: float | None = None
    public_ip: str | None = None
    ssh_port: int | None = None
    spot: bool = False
    created_at: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class InstanceStatus(_Model):
    """Where an instance is in its lifecycle, and whether it can be used."""

    instance_id: str
    state: InstanceState
    provider_state: str | None = None
    ready: bool = Field(default=False, description="Reachable and ready for work")
    public_ip: str | None = None
    ssh_port: int | None = None
    message: str | None = None


class LaunchRequest(_Model):
    """What to launch, in provider-neutral terms (checked before any network call).

    Attributes:
        gpu_type: Canonical GPU name (``H100``, ``A100-80GB``, ``RTX4090``, ...).
        gpu_count: Number of GPUs.
        region: Provider region, or a generic one (``us-east``); None lets the client pick
            a region with capacity.
        image: Container/OS image, when the provider takes one.
        name: Instance name (also used by ``list_instances(name_prefix=...)``).
        ssh_key_names: Names of SSH keys registered with the provider.
        ssh_public_key: A public key to install, for providers that take one directly.
        labels: ``key=value`` labels (rules in ``gpu_providers.labels``): vendor tags where
            the provider has them, else encoded in the instance name; read back in
            ``GPUInstance.labels`` and matched by ``list_instances(labels=...)``.
        spot: Ask for interruptible (spot) capacity.
        bid_price: Max USD/hour per GPU for spot capacity (providers with bidding).
        disk_gb: Boot/container disk size.
        file_systems: Names of persistent file systems to attach (Lambda).
        startup_script: A shell script the instance runs once at boot (Lambda cloud-init
            ``user_data``, a Paperspace startup script, RunPod's container start command).
        env: Environment variables for the instance/container (names like ``MY_VAR``).
        min_cuda_version: Lowest CUDA version the host driver must support (``"12.4"``);
            where a provider can filter hosts by it. None takes the provider's default.
    """

    gpu_type: str
    gpu_count: int = Field(default=1, ge=1, le=64)
    region: str | None = None
    image: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)
    ssh_key_names: list[str] = Field(default_factory=list)
    ssh_public_key: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    spot: bool = False
    bid_price: float | None = Field(default=None, gt=0)
    disk_gb: int | None = Field(default=None, gt=0)
    file_systems: list[str] = Field(default_factory=list)
    # Scripts and environments often carry tokens: kept out of repr (and so out of logs).
    startup_script: str | None = Field(default=None, min_length=1, max_length=1_000_000, repr=False)
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    min_cuda_version: str | None = Field(default=None, pattern=r"^\d+\.\d+$")

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"env name {name!r} must be letters, digits and '_' and not start with a digit"
                )
        return value

    @field_validator("gpu_type")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_gpu_name(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("image must not be empty (leave it unset for the default)")
        return value

    @model_validator(mode="after")
    def _bid_needs_spot(self) -> LaunchRequest:
        if self.bid_price is not None and not self.spot:
            raise ValueError("bid_price is only meaningful with spot=True")
        return self


class GPUFilters(_Model):
    """Filters for ``list_available_gpus`` (all optional)."""

    gpu_types: list[str] | None = None
    min_gpu_count: int = Field(default=1, ge=1)
    max_gpu_count: int | None = Field(default=None, ge=1)
    regions: list[str] | None = None
    max_price_per_gpu: float | None = Field(default=None, gt=0)
    min_gpu_memory_gb: float | None = Field(default=None, gt=0)
    spot: bool | None = Field(default=None, description="None = both on-demand and spot")
    available_only: bool = True
    #: Marketplaces (Vast.ai): lowest host reliability (0..1); offers of providers that
    #: publish no reliability are not filtered by it.
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    #: Marketplaces: True = verified hosts only, False = any host, None = the provider's
    #: default (Vast.ai: verified only, as its CLI).
    verified_only: bool | None = None

    @field_validator("gpu_types")
    @classmethod
    def _canonical(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [canonical_gpu_name(v) for v in value]

    def matches(self, offer: GPUOffer) -> bool:
        """Whether ``offer`` passes these filters."""
        checks = (
            self.gpu_types is None or offer.gpu_type in self.gpu_types,
            offer.gpu_count >= self.min_gpu_count,
            self.max_gpu_count is None or offer.gpu_count <= self.max_gpu_count,
            self.regions is None or offer.region in self.regions,
            self.max_price_per_gpu is None
            or (offer.price_per_gpu is not None and offer.price_per_gpu <= self.max_price_per_gpu),
            self.min_gpu_memory_gb is None
            or (offer.gpu_memory_gb is not None and offer.gpu_memory_gb >= self.min_gpu_memory_gb),
            self.spot is None or offer.spot == self.spot,
            not self.available_only or offer.available,
            self.min_reliability is None
            or offer.reliability is None
            or offer.reliability >= self.min_reliability,
            self.verified_only is not True or offer.verified is not False,
        )
        return all(checks)


class NormalizedPricing(_Model):
    """A GPU type's prices at one provider, per GPU-hour in USD."""

    provider: str
    gpu_type: str
    region: str | None = None
    on_demand_per_gpu_hour: float | None = None
    spot_per_gpu_hour: float | None = None
    currency: str = "USD"
    offers: list[GPUOffer] = Field(default_factory=list)


class ProviderInfo(_Model):
    """What a provider is and what it can do."""

    name: str
    display_name: str
    api_base_url: str
    docs_url: str | None = None
    features: list[ProviderFeature] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RateLimitInfo(_Model):
    """The provider's documented limits, and what this client enforces."""

    requests_per_second: float | None = None
    launch_min_interval_seconds: float | None = None
    burst: int = 1
    documented: bool = False
    source: str = ""
    current_requests_per_second: float | None = Field(
        default=None, description="Rate after adaptive backoff on 429s"
    )
