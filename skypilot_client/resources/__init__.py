"""Every flow of the client, one file per resource, over the shared core in
``_base_client.py``.

``clusters.py`` (launch, status, stop/start/terminate, autostop, cost), ``jobs.py`` (jobs on
a cluster: execute, logs, job status, queue) and ``requests.py`` (server requests: get, list,
wait, cancel, stream); ``managed_jobs.py`` (``client.jobs``: managed jobs, run by its own
``ManagedJobs``/``AsyncManagedJobs``). ``ResourceFlows`` puts the others together;
``SkyPilotClient`` and ``AsyncSkyPilotClient`` run its flows with their own I/O.
"""

from __future__ import annotations

from .._base_client import HttpClientT
from .clusters import ClusterFlows
from .jobs import JobFlows
from .requests import RequestFlows


class ResourceFlows(ClusterFlows[HttpClientT], RequestFlows[HttpClientT]):
    """All flows (clusters, cluster jobs, requests) over the shared core."""


__all__ = ["ClusterFlows", "JobFlows", "RequestFlows", "ResourceFlows"]
