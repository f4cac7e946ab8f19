"""Code layout rules that keep the client small: handles over a protocol, flows by resource."""

from __future__ import annotations

import subprocess
import sys

from skypilot_client import AsyncSkyPilotClient, SkyPilotClient
from skypilot_client.resources import ClusterFlows, JobFlows, RequestFlows


def test_handles_do_not_import_the_clients() -> None:
    code = (
        "import sys, skypilot_client._handles; "
        "print(sorted(m for m in sys.modules if m in "
        "('skypilot_client._client', 'skypilot_client._async_client', "
        "'skypilot_client._base_client', 'skypilot_client.resources')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_both_clients_run_the_same_flows_by_resource() -> None:
    for client in (SkyPilotClient, AsyncSkyPilotClient):
        for resource in (ClusterFlows, JobFlows, RequestFlows):
            assert issubclass(client, resource)
    assert "_flow_launch_result" in vars(ClusterFlows)
    assert "_flow_execute" in vars(JobFlows)
    assert "_flow_wait_for_request" in vars(RequestFlows)
