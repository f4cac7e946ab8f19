"""Every flow of the client, one file per resource, over the shared core in
``_base_client.py``.

``clusters.py`` (launch, status, stop/start/terminate, autostop, cost, endpoints),
``jobs.py`` (jobs on a cluster: execute/submit, logs, job status, cancel, queue,
download_logs), ``facts.py`` (``check``, ``cost_report``), ``requests.py`` (server requests:
get, list, wait, cancel, stream), ``managed_jobs.py`` (``client.jobs``: managed jobs, run by
its own ``ManagedJobs``/``AsyncManagedJobs``) and ``uploads.py`` (a task's local files, sent
before launch, exec and managed-job launch; imported on first use). ``ResourceFlows`` puts
the others together;
``SkyPilotClient`` and ``AsyncSkyPilotClient`` run its flows with their own I/O.
"""

from __future__ import annotations

from .._base_client import HttpClientT
from .clusters import ClusterFlows
from .facts import FactFlows
from .jobs import JobFlows
from .requests import RequestFlows


class ResourceFlows(ClusterFlows[HttpClientT], FactFlows[HttpClientT], RequestFlows[HttpClientT]):
    """All flows (clusters, cluster jobs, facts, requests) over the shared core."""


__all__ = ["ClusterFlows", "FactFlows", "JobFlows", "RequestFlows", "ResourceFlows"]
