"""RunPod REST v2 mapping (no I/O): error classification from RFC 9457 problem bodies, pod
statuses, the SSH endpoint, catalog offers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from gpu_providers.errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
)
from gpu_providers.runpod.rest import _mapping as M
from gpu_providers.runpod.rest._generated.models import GpuType, Pod
from gpu_providers.types import InstanceState

from . import documented as G
from . import documented_rest as R


def problem(status: int, title: str = "Title", detail: str = "detail") -> dict[str, Any]:
    return {"title": title, "status": status, "detail": detail}


@pytest.mark.parametrize(
    ("status", "body", "operation", "expected"),
    [
        (401, problem(401, "Unauthorized", "missing bearer token"), "list", AuthenticationError),
        (401, "Unauthorized", "list_pods", AuthenticationError),  # no problem body: still 401
        (403, problem(403, "Forbidden", "access denied"), "launch", AuthenticationError),
        (402, problem(402, "Payment Required"), "launch", BillingError),
        (429, problem(429, "Too Many Requests"), "get_instance", RateLimitError),
        (404, problem(404, "Not Found", "resource not found"), "terminate", InstanceNotFoundError),
        (404, problem(404, "Not Found"), "terminate", InstanceNotFoundError),
        (404, problem(404, "Not Found"), "list_gpu_types", InvalidRequestError),
        (404, "<html>404</html>", "terminate", UnexpectedResponseError),  # no proof
        (404, problem(500, "Oops"), "terminate", UnexpectedResponseError),  # status mismatch
        (400, problem(400, "Bad Request", "could not be placed"), "launch", CapacityError),
        (400, problem(400, "Bad Request", "gpu and cpu are mutually exclusive"), "launch",
         InvalidRequestError),
        (400, problem(400, "Bad Request"), "stop", InvalidRequestError),
        (409, problem(409, "Conflict"), "stop", InvalidRequestError),
        (422, problem(422, "Unprocessable Entity") | {"errors": ["name: required"]}, "launch",
         InvalidRequestError),
        (500, problem(500, "Internal Server Error"), "get_instance", ProviderServerError),
        (502, "<html>bad gateway</html>", "get_instance", ProviderServerError),
    ],
)  # fmt: skip
def test_classify(status: int, body: Any, operation: str, expected: type[ProviderError]) -> None:
    error = M.classify(status, body, operation)
    assert type(error) is expected
    assert error.status_code == status and error.provider == "runpod"
    if isinstance(body, dict):
        assert error.code == body["title"] and body["detail"] in str(error)


def test_validation_errors_are_listed() -> None:
    body = problem(422, "Unprocessable Entity", "Request validation failed.")
    body["errors"] = ["gpu.count: must be >= 1", "name: required"]
    assert "gpu.count: must be >= 1; name: required" in str(M.classify(422, body, "launch"))


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("PROVISIONING", InstanceState.PENDING),
        ("STARTING", InstanceState.PENDING),
        ("EXITED", InstanceState.STOPPED),
        ("ERROR", InstanceState.FAILED),
        ("TERMINATED", InstanceState.TERMINATED),
        ("HIBERNATING", InstanceState.UNKNOWN),  # a status added later (spec D1): unknown
    ],
)
def test_pod_states(status: str, state: InstanceState) -> None:
    pod = Pod.from_dict(R.pod("p1", "n", status, G.H100, price=1.0))
    assert M.status_from_pod(pod).state == state
    assert M.instance_from_pod(pod).state == state
    assert not M.status_from_pod(pod).ready


def test_ready_needs_the_ssh_port_on_a_public_ip() -> None:
    running = R.pod("p1", "n", "RUNNING", G.H100, price=1.0, ssh_port=2222)
    status = M.status_from_pod(Pod.from_dict(running))
    assert (status.ready, status.public_ip, status.ssh_port) == (True, R.POD_PUBLIC_IP, 2222)
    up_without_ssh = dict(running, runtime=R.runtime(None), ssh=R.ssh("p1", None))
    status = M.status_from_pod(Pod.from_dict(up_without_ssh))
    assert (status.state, status.ready) == (InstanceState.RUNNING, False)
    # No runtime port for 22, but ssh.direct says where: that is the endpoint.
    direct_only = dict(running, runtime=R.runtime(None), ssh=R.ssh("p1", 3333))
    status = M.status_from_pod(Pod.from_dict(direct_only))
    assert (status.ready, status.ssh_port) == (True, 3333)


def test_instance_fields() -> None:
    pod = Pod.from_dict(
        R.pod("p1", "sky-1", "RUNNING", G.A100_80, count=2, price=1.64, data_center="CA-MTL-1")
    )
    instance = M.instance_from_pod(pod)
    assert (instance.gpu_type, instance.gpu_count, instance.region) == ("A100-80GB", 2, "CA-MTL-1")
    assert (instance.hourly_price, instance.spot, instance.provider_state) == (
        3.28,
        False,
        "RUNNING",
    )
    # createdAt gives the pod its age (orphans report it)
    assert instance.created_at == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", ["", "yesterday", "2026-11-23T09:00:00"])
def test_an_unreadable_or_zoneless_created_at_is_unknown_not_fatal(value: str) -> None:
    pod = Pod.from_dict(dict(R.pod("p1", "n", "RUNNING", G.H100, price=1.0), createdAt=value))
    instance = M.instance_from_pod(pod)
    assert instance.created_at is None and instance.hourly_price == 1.0


def test_offers_per_cloud_from_the_catalog() -> None:
    query = {"include": ["AVAILABILITY"], "cloud": ["COMMUNITY"], "count": ["1"]}
    gpus = [
        GpuType.from_dict(view)
        for view in (R._catalog_view(g, query) for g in R.catalog())
        if view is not None
    ]
    priced = M.offers_from_catalog(gpus, "COMMUNITY", 1)
    by_id = {offer.offer_id: offer for _, offer in priced}
    assert set(by_id) == {G.H100, G.A100_SXM, G.A100_80, G.RTX4090}  # MI300X: no community price
    assert by_id[G.H100].price_per_gpu == 2.69 and by_id[G.H100].available
    assert not by_id[G.A100_SXM].available  # no community stock
    assert not by_id[G.RTX4090].available  # NONE
    assert all(cloud == "COMMUNITY" and not offer.spot for cloud, offer in priced)
    in_dc = dict((o.offer_id, o) for _, o in M.offers_from_catalog(gpus, "COMMUNITY", 1, "US-KS-2"))
    assert in_dc[G.H100].available and not in_dc[G.A100_80].available  # A100 PCIe: US-TX-3 only
