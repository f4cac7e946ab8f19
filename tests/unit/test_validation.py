"""Bad input is rejected with a clear error before any network call.

The ``httpx_mock`` fixture fails the test if the client sends anything unexpected, so every
case here proves that nothing reached the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from pytest_httpx import HTTPXMock

from skypilot_client import (
    EstimateCostRequest,
    ExecuteRequest,
    LaunchRequest,
    LogsRequest,
    SkyPilotClient,
    errors,
)

URL = "http://skypilot.invalid:46580"


@pytest.mark.parametrize(
    "name", ["", "1abc", "-abc", "abc-", "has space", "a/b", "émoji", "x" * 3 + "!", "9"]
)
def test_invalid_cluster_names(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid cluster name"):
        LaunchRequest(cluster_name=name, task="run: echo hi")


@pytest.mark.parametrize("name", ["a", "train-1", "Team_A.run-2", "x9"])
def test_valid_cluster_names(name: str) -> None:
    assert LaunchRequest(cluster_name=name, task="run: x").cluster_name == name


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_status("bad name"),
        lambda c: c.terminate("-x"),
        lambda c: c.stop(""),
        lambda c: c.start("1x"),
        lambda c: c.queue("a b"),
        lambda c: c.autostop("ok-name", -5),
        lambda c: c.terminate("ok", timeout=-1),
        lambda c: c.terminate("ok", timeout=0),
        lambda c: c.wait_for_request("abc", timeout=-3),
        lambda c: c.get_request("  "),
        lambda c: c.cancel_request(""),
        lambda c: c.list_requests(limit=0),
        lambda c: c.list_accelerators(quantity_filter=0),
        lambda c: c.launch(LaunchRequest(cluster_name="ok", task="run: [unclosed")),
        lambda c: c.launch(LaunchRequest(cluster_name="ok", task="- just\n- a list\n")),
        lambda c: c.launch(LaunchRequest(cluster_name="ok", task="a: 1\n---\nb: 2\n")),
        lambda c: c.launch(LaunchRequest(cluster_name="ok", task="resources: 5\n")),
        lambda c: c.launch(LaunchRequest(cluster_name="ok", task="run: x", down=True)),
        lambda c: c.estimate_cost(EstimateCostRequest(task="run: no resources\n")),
        lambda c: c.estimate_cost(EstimateCostRequest(task="resources:\n  accelerators: '?'\n")),
        lambda c: c.estimate_cost(
            EstimateCostRequest(task="num_nodes: 0\nresources:\n  accelerators: H100\n")
        ),
    ],
)
def test_rejected_before_any_request(
    call: Callable[[SkyPilotClient], Any], httpx_mock: HTTPXMock
) -> None:
    with SkyPilotClient(URL) as client, pytest.raises(errors.InvalidInputError):
        call(client)
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: ExecuteRequest(cluster_name="ok"),
        lambda: ExecuteRequest(cluster_name="ok", command="x", task="run: y"),
        lambda: ExecuteRequest(cluster_name="ok", command="   "),
        lambda: LogsRequest(cluster_name="ok", job_id=0),
        lambda: LogsRequest(cluster_name="ok", tail=-1),
        lambda: LaunchRequest(cluster_name="ok", task="run: x", idle_minutes_to_stop=-1),
        lambda: EstimateCostRequest(task="resources: {}", hours=0),
        lambda: EstimateCostRequest(task="resources: {}", hours=-2),
        lambda: LaunchRequest.model_validate({"cluster_name": "ok", "task": "x", "typo": 1}),
    ],
)
def test_request_models_validate_on_construction(build: Callable[[], Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        build()


def test_validation_errors_are_value_errors() -> None:
    with SkyPilotClient(URL) as client, pytest.raises(ValueError, match="invalid cluster name"):
        client.get_status("bad name")
