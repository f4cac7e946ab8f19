"""The one interface every provider implements, sync and async."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

from .types import (
    GPUFilters,
    GPUInstance,
    GPUOffer,
    InstanceStatus,
    LaunchRequest,
    NormalizedPricing,
    ProviderFeature,
    ProviderInfo,
    RateLimitInfo,
)

__all__ = ["AsyncProviderClient", "ProviderClient"]


@runtime_checkable
class ProviderClient(Protocol):
    """A GPU cloud, with blocking calls. Results are ``gpu_providers.types`` models; failures
    are ``gpu_providers.errors`` classes."""

    name: str

    def launch_instance(self, request: LaunchRequest) -> GPUInstance:
        """Launch one instance; never replayed once the request may have reached the cloud."""
        ...

    def terminate_instance(self, instance_id: str) -> None:
        """Terminate an instance; already gone (on the provider's own proof) is success."""
        ...

    def get_instance_status(self, instance_id: str) -> InstanceStatus:
        """Where the instance is in its lifecycle (``InstanceNotFoundError`` if unknown)."""
        ...

    def wait_until_ready(self, instance_id: str, timeout: float = 600.0) -> InstanceStatus:
        """Poll with backoff until the instance is usable (address and SSH port known).

        ``WaitTimeoutError`` when ``timeout`` passes first; ``InstanceNotReadyError`` when it
        reaches a state it will not leave by itself.
        """
        ...

    def list_instances(
        self, name_prefix: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[GPUInstance]:
        """Instances of this account, optionally only those whose name starts with a prefix
        and that carry every ``key=value`` of ``labels`` (``gpu_providers.labels``)."""
        ...

    def list_available_gpus(self, filters: GPUFilters | None = None) -> list[GPUOffer]:
        """Offers you can launch, cheapest first."""
        ...

    def get_normalized_pricing(self, gpu_type: str, region: str | None = None) -> NormalizedPricing:
        """Per-GPU-hour prices of a GPU type (on-demand and spot where offered)."""
        ...

    def get_provider_info(self) -> ProviderInfo:
        """Static facts about the provider (no network call)."""
        ...

    def get_rate_limits(self) -> RateLimitInfo:
        """Documented limits and the rate this client currently allows."""
        ...

    def translate_gpu_type(self, standard: str) -> str:
        """The provider's name for a canonical GPU type."""
        ...

    def translate_region(self, standard: str) -> str:
        """The provider's region code for a generic (``us-east``) or provider region."""
        ...

    def supports_feature(self, feature: ProviderFeature) -> bool:
        """Whether the provider can do ``feature``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class AsyncProviderClient(Protocol):
    """The async twin of ``ProviderClient``: the same methods, awaitable where they do I/O."""

    name: str

    async def launch_instance(self, request: LaunchRequest) -> GPUInstance:
        """See ``ProviderClient.launch_instance``."""
        ...

    async def terminate_instance(self, instance_id: str) -> None:
        """See ``ProviderClient.terminate_instance``."""
        ...

    async def wait_until_ready(self, instance_id: str, timeout: float = 600.0) -> InstanceStatus:
        """The async twin of ``ProviderClient.wait_until_ready`` (cancellable)."""
        ...

    async def get_instance_status(self, instance_id: str) -> InstanceStatus:
        """See ``ProviderClient.get_instance_status``."""
        ...

    async def list_instances(
        self, name_prefix: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[GPUInstance]:
        """See ``ProviderClient.list_instances``."""
        ...

    async def list_available_gpus(self, filters: GPUFilters | None = None) -> list[GPUOffer]:
        """See ``ProviderClient.list_available_gpus``."""
        ...

    async def get_normalized_pricing(
        self, gpu_type: str, region: str | None = None
    ) -> NormalizedPricing:
        """See ``ProviderClient.get_normalized_pricing``."""
        ...

    def get_provider_info(self) -> ProviderInfo:
        """See ``ProviderClient.get_provider_info``."""
        ...

    def get_rate_limits(self) -> RateLimitInfo:
        """See ``ProviderClient.get_rate_limits``."""
        ...

    def translate_gpu_type(self, standard: str) -> str:
        """See ``ProviderClient.translate_gpu_type``."""
        ...

    def translate_region(self, standard: str) -> str:
        """See ``ProviderClient.translate_region``."""
        ...

    def supports_feature(self, feature: ProviderFeature) -> bool:
        """See ``ProviderClient.supports_feature``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...
