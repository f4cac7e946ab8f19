"""gpu_providers: GPU clouds behind one ``ProviderClient`` protocol.

>>> from gpu_providers import create_provider
>>> lam = create_provider("lambda", api_key="...")          # doctest: +SKIP
>>> offers = lam.list_available_gpus()                       # doctest: +SKIP
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded on first use: `import gpu_providers` stays cheap
    from . import errors, types
    from .factory import (
        ProviderEntry,
        available_providers,
        create_async_provider,
        create_provider,
    )
    from .protocol import AsyncProviderClient, ProviderClient
    from .types import (
        GPUFilters,
        GPUInstance,
        GPUOffer,
        InstanceState,
        InstanceStatus,
        LaunchRequest,
        NormalizedPricing,
        ProviderFeature,
        ProviderInfo,
        RateLimitInfo,
    )

_LAZY = {
    "errors": ".errors",
    "types": ".types",
    "ProviderEntry": ".factory",
    "available_providers": ".factory",
    "create_provider": ".factory",
    "create_async_provider": ".factory",
    "ProviderClient": ".protocol",
    "AsyncProviderClient": ".protocol",
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = module if name in ("errors", "types") else getattr(module, name)
    elif name in __all__:
        value = getattr(importlib.import_module(".types", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AsyncProviderClient",
    "GPUFilters",
    "GPUInstance",
    "GPUOffer",
    "InstanceState",
    "InstanceStatus",
    "LaunchRequest",
    "NormalizedPricing",
    "ProviderClient",
    "ProviderEntry",
    "ProviderFeature",
    "ProviderInfo",
    "RateLimitInfo",
    "available_providers",
    "create_async_provider",
    "create_provider",
    "errors",
    "types",
]
