"""skypilot_client: a typed sync + async client for the SkyPilot API server.

>>> from skypilot_client import SkyPilotClient
>>> with SkyPilotClient() as client:          # doctest: +SKIP
...     print(client.health().version)
"""

from . import errors
from ._async_client import AsyncSkyPilotClient
from ._client import SkyPilotClient
from ._constants import API_VERSION, SERVER_VERSION
from ._handles import AsyncRequestHandle, RequestHandle
from ._version import __version__
from .errors import SkyPilotError
from .models import (
    AcceleratorOffer,
    AWSCredentials,
    AzureCredentials,
    CloudCredentials,
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
)

__all__ = [
    "API_VERSION",
    "SERVER_VERSION",
    "AWSCredentials",
    "AcceleratorOffer",
    "AsyncRequestHandle",
    "AsyncSkyPilotClient",
    "AzureCredentials",
    "CloudCredentials",
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
    "RequestHandle",
    "RequestState",
    "RequestStatus",
    "SkyPilotClient",
    "SkyPilotError",
    "__version__",
    "errors",
]
