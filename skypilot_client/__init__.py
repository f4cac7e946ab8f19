"""skypilot_client: a typed sync + async client for the SkyPilot API server.

>>> from skypilot_client import SkyPilotClient
>>> with SkyPilotClient() as client:          # doctest: +SKIP
...     print(client.health().version)
"""

from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:  # names below load on first use: `import skypilot_client` stays cheap
    from . import errors
    from ._async_client import AsyncSkyPilotClient
    from ._base_client import RequestMetrics
    from ._client import SkyPilotClient
    from ._constants import API_VERSION, SERVER_VERSION
    from ._handles import AsyncRequestHandle, RequestHandle
    from .errors import SkyPilotError
    from .models import (
        AcceleratorOffer,
        AWSCredentials,
        AzureCredentials,
        CloudCheck,
        CloudCredentials,
        ClusterCost,
        ClusterList,
        ClusterState,
        ClusterStatus,
        CostEstimate,
        EstimateCostRequest,
        ExecuteRequest,
        ExecuteResult,
        GCPCredentials,
        HealthStatus,
        Job,
        JobLogs,
        JobState,
        LaunchPhase,
        LaunchRequest,
        LaunchResult,
        LogsRequest,
        ProgressEvent,
        RequestState,
        RequestStatus,
        SubmittedJob,
    )
    from .models_managed_jobs import ManagedJob, ManagedJobLogs, ManagedJobStatus


_LAZY = {
    "errors": ".errors",
    "SkyPilotError": ".errors",
    "SkyPilotClient": "._client",
    "AsyncSkyPilotClient": "._async_client",
    "RequestHandle": "._handles",
    "RequestMetrics": "._base_client",
    "AsyncRequestHandle": "._handles",
    "API_VERSION": "._constants",
    "SERVER_VERSION": "._constants",
    # what a request needs, without every result model (`.models` re-exports these too)
    "AWSCredentials": "._request_models",
    "AzureCredentials": "._request_models",
    "CloudCredentials": "._request_models",
    "EstimateCostRequest": "._request_models",
    "ExecuteRequest": "._request_models",
    "GCPCredentials": "._request_models",
    "LaunchPhase": "._request_models",
    "LaunchRequest": "._request_models",
    "LogsRequest": "._request_models",
    "ProgressEvent": "._request_models",
    "ManagedJob": ".models_managed_jobs",
    "ManagedJobLogs": ".models_managed_jobs",
    "ManagedJobStatus": ".models_managed_jobs",
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = module if name == "errors" else getattr(module, name)
    elif name in __all__:
        value = getattr(importlib.import_module(".models", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "API_VERSION",
    "SERVER_VERSION",
    "AWSCredentials",
    "AcceleratorOffer",
    "AsyncRequestHandle",
    "AsyncSkyPilotClient",
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
    "ManagedJob",
    "ManagedJobLogs",
    "ManagedJobStatus",
    "ProgressEvent",
    "RequestHandle",
    "RequestMetrics",
    "RequestState",
    "RequestStatus",
    "SkyPilotClient",
    "SkyPilotError",
    "SubmittedJob",
    "__version__",
    "errors",
]
