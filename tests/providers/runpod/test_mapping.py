"""RunPod: mapping and classification tables, input checks, launch safety, variables only.

Network-level tests run every case through the sync and the async client (``kind``) over an
``httpx.MockTransport``: the documented GraphQL responder, with injected answers where needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pydantic
import pytest
from graphql import (
    ArgumentNode,
    BooleanValueNode,
    EnumValueNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    Node,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    VariableNode,
    parse,
)

from gpu_providers import GPUFilters, GPUOffer, LaunchRequest
from gpu_providers.errors import (
    AuthenticationError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    UnexpectedResponseError,
)
from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider
from gpu_providers.runpod import _mapping as M
from gpu_providers.runpod._generated.get_pod import GetPod
from gpu_providers.runpod._generated.gpu_types import GpuTypes
from gpu_providers.types import InstanceState

from ..paperspace.harness import FakeTime, drive, run_sync
from . import documented as D
from .scenarios import SCENARIOS

KEY = "SENTINEL-runpod-unit-key-92ce"
CLASSES = (RunPodProvider, AsyncRunPodProvider)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(
    kind: str,
    responder: D.DocumentedRunPod | Callable[[httpx.Request], httpx.Response],
    method: str,
    *args: Any,
    time: FakeTime | None = None,
    **options: Any,
) -> Any:
    """``method(*args)`` on a fresh sync or async client answered by ``responder``."""
    options.setdefault("api_key", KEY)
    transport = httpx.MockTransport(responder)
    return drive(kind, CLASSES, method, *args, time=time, transport=transport, **options)


def _count(responder: D.DocumentedRunPod, operation: str) -> int:
    return sum(1 for o in responder.operations if o.get("operationName") == operation)


def _graphql_errors(*messages: str, code: str | None = None) -> httpx.Response:
    errors: list[dict[str, Any]] = [{"message": m} for m in messages]
    if code:
        errors[0]["extensions"] = {"code": code}
    return httpx.Response(200, json={"data": None, "errors": errors})


# -- GraphQL error classification (errors arrive with HTTP 200) -------------------------------

RESOURCES = (
    "This machine does not have the resources to deploy your pod. Please try a different machine"
)


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([{"message": D.NOT_FOUND_TO_TERMINATE, "path": ["podTerminate"]}], InstanceNotFoundError),
        ([{"message": "Could not find pod abc"}], InstanceNotFoundError),
        ([{"message": "x", "extensions": {"code": "Cluster not found"}}], InstanceNotFoundError),
        ([{"message": D.NO_INSTANCES}], CapacityError),
        ([{"message": RESOURCES}], CapacityError),
        ([{"message": "Insufficient resources"}], CapacityError),
        ([{"message": "Unauthorized"}], AuthenticationError),
        ([{"message": "denied", "extensions": {"code": "UNAUTHENTICATED"}}], AuthenticationError),
        ([{"message": "denied", "extensions": {"code": "FORBIDDEN"}}], AuthenticationError),
        ([{"message": "Your balance is too low to rent this pod"}], QuotaExceededError),
        ([{"message": "Spend limit reached"}], QuotaExceededError),
        (
            [
                {
                    "message": 'Cannot query field "foo" on type "Query".',
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                }
            ],
            InvalidRequestError,
        ),
        ([{"message": "Variable $input got invalid value"}], InvalidRequestError),
        # RunPod's own internal error and throttling, matched explicitly.
        (
            [{"message": "Something went wrong", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
            ProviderServerError,
        ),
        ([{"message": "Something went wrong. Please try again later."}], ProviderServerError),
        ([{"message": "Too many requests, please slow down"}], RateLimitError),
        ([{"message": "x", "extensions": {"code": "TOO_MANY_REQUESTS"}}], RateLimitError),
        # Capacity, as RunPod words it for on-demand and spot pods.
        ([{"message": "There are no instances currently available"}], CapacityError),
        (
            [{"message": "There are not enough free GPUs on the host machine to start this pod."}],
            CapacityError,
        ),
        # Unknown errors are the provider's side: retried for reads, maybe-submitted launches.
        ([{"message": "Unexpected upstream condition 17"}], ProviderServerError),
        ([], ProviderServerError),
        (["not an object"], ProviderServerError),
        ([{"message": None}], ProviderServerError),
    ],
)
def test_graphql_error_table(errors: list[Any], expected: type[ProviderError]) -> None:
    error = M.classify_graphql(errors, "launch")
    assert type(error) is expected
    assert error.provider == "runpod"
    assert error.body == errors
    assert error.status_code is None  # HTTP said 200
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    if isinstance(first.get("message"), str):
        assert first["message"] in error.message
    code = (first.get("extensions") or {}).get("code")
    assert error.code == code


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimitError),
        (500, ProviderServerError),
        (502, ProviderServerError),
        (503, ProviderServerError),
        (504, ProviderServerError),
        (522, ProviderServerError),
    ],
)
def test_http_status_table(status: int, expected: type[ProviderError]) -> None:
    error = M.classify_status(status, None, "get_pod")
    assert type(error) is expected
    assert error.status_code == status


def test_a_400_keeps_runpods_validation_message() -> None:
    body = {"errors": [{"message": 'Variable "$input" got invalid value -1 at "input.gpuCount"'}]}
    error = M.classify_status(400, body, "launch")
    assert type(error) is InvalidRequestError
    assert 'got invalid value -1 at "input.gpuCount"' in error.message
    assert error.status_code == 400


BUG_404 = (
    "product bug: gpu_providers/runpod/_mapping.py classify_status (line ~74) maps HTTP 404 of "
    "the GraphQL endpoint to InstanceNotFoundError via error_for_status; a 404 there means "
    "the endpoint is wrong or gone (RunPod retires GraphQL in early 2027), not the pod, and "
    "terminate_instance then reports success without terminating anything. Fix: classify "
    "404 (and 410) of the endpoint as ProviderError/InvalidRequestError ('GraphQL endpoint "
    "not found'); missing pods are signalled in GraphQL (null or 'not found' errors)."
)


def test_an_http_404_of_the_endpoint_is_not_a_missing_pod(kind: str) -> None:
    responder = D.DocumentedRunPod(
        inject={"PodTerminate": [httpx.Response(404, text="404 page not found")]}
    )
    with pytest.raises(ProviderError) as info:
        call(kind, responder, "terminate_instance", D.ID_READY)
    assert not isinstance(info.value, InstanceNotFoundError)


BUG_STATUS_WITH_JSON = (
    "product bug: with a JSON body that has 'errors' (or 'data'), gql's HTTPXTransport "
    "._prepare_result does not raise TransportServerError for HTTP >= 400, so "
    "gpu_providers/runpod/_client.py _graphql_error classifies a 429 (or 401/5xx) by its "
    "message through classify_graphql: a JSON 429 becomes InvalidRequestError and is not "
    "retried, a JSON 401 'Access denied' is InvalidRequestError. Fix: in "
    "codegen/templates/runpod_base_client.py (and the async one) use an HTTPXTransport "
    "subclass whose _prepare_result raises TransportServerError(status) when status >= 400 "
    "before reading the body (keeping the errors for the message), or check the last "
    "response status in _graphql_error."
)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (429, "Too many requests", RateLimitError),
        (401, "Access denied", AuthenticationError),
        (503, "Service temporarily unavailable", ProviderServerError),
    ],
)
def test_the_http_status_wins_over_a_json_error_body(
    kind: str, status: int, message: str, expected: type[ProviderError]
) -> None:
    body = {"errors": [{"message": message}]}
    responder = D.DocumentedRunPod(inject={"GetPod": [httpx.Response(status, json=body)]})
    with pytest.raises(ProviderError) as info:
        call(kind, responder, "get_instance_status", D.ID_READY, max_retries=0)
    assert type(info.value) is expected
    assert info.value.status_code == status


BUG_RETRY_AFTER = (
    "product bug: gpu_providers/runpod/_mapping.py classify_status never sets retry_after "
    "and _client.py _graphql_error has no response headers, so RunPod's Retry-After is "
    "ignored (error.retry_after is None; the retry waits the jittered backoff). Fix: pass "
    "parse_retry_after(self._gql.response_headers or {}) to classify_status."
)


def test_429_carries_retry_after(kind: str) -> None:
    responder = D.DocumentedRunPod(inject={"MyPods": [D.rate_limited("7")]})
    with pytest.raises(RateLimitError) as info:
        call(kind, responder, "list_instances", max_retries=0)
    assert info.value.retry_after == 7.0


def test_429_is_retried(kind: str) -> None:
    responder = D.DocumentedRunPod(inject={"MyPods": [D.rate_limited("1")]})
    pods = call(kind, responder, "list_instances")
    assert len(pods) == 5
    assert _count(responder, "MyPods") == 2


def test_graphql_errors_with_http_200_are_classified_end_to_end(kind: str) -> None:
    responder = D.DocumentedRunPod(
        inject={"PodFindAndDeployOnDemand": [_graphql_errors(RESOURCES)]}
    )
    request = LaunchRequest(gpu_type="H100", name="x")
    with pytest.raises(CapacityError) as info:
        call(kind, responder, "launch_instance", request)
    assert not info.value.maybe_submitted  # an answered refusal: nothing was created
    assert _count(responder, "PodFindAndDeployOnDemand") == 1


# -- offers and prices per GPU ----------------------------------------------------------------


def _catalog(*gpus: dict[str, Any], count: int = 1) -> list[Any]:
    """Parsed ``gpuTypes`` with lowestPrice asked per cloud (secureLowestPrice and
    communityLowestPrice); a non-callable ``lowestPrice`` is used for both."""
    entries = []
    for gpu in gpus:
        entry = {k: v for k, v in gpu.items() if k != "lowestPrice"}
        lowest = gpu["lowestPrice"]
        for alias, secure in (("secureLowestPrice", True), ("communityLowestPrice", False)):
            wanted = {"gpuCount": count, "secureCloud": secure}
            entry[alias] = lowest(None, wanted) if callable(lowest) else lowest
        entries.append(entry)
    parsed = GpuTypes.model_validate({"gpuTypes": [*entries, None]})
    assert parsed.gpu_types is not None
    return parsed.gpu_types


def _by_source(offers: list[GPUOffer]) -> dict[tuple[str, str | None], GPUOffer]:
    return {(o.offer_id, o.price_source): o for o in offers}


SECURE_ON_DEMAND = "gpuTypes.lowestPrice(secureCloud: true).uninterruptablePrice"
COMMUNITY_ON_DEMAND = "gpuTypes.lowestPrice(secureCloud: false).uninterruptablePrice"
SECURE_SPOT = "gpuTypes.lowestPrice(secureCloud: true).minimumBidPrice"
COMMUNITY_SPOT = "gpuTypes.lowestPrice(secureCloud: false).minimumBidPrice"


def test_offers_are_per_gpu_per_cloud_for_on_demand_and_spot() -> None:
    catalog = _catalog(*D.gpu_types(), count=4)
    offers = _by_source(M.offers_from_gpu_types(catalog, 4))
    secure, community = offers[(D.H100, SECURE_ON_DEMAND)], offers[(D.H100, COMMUNITY_ON_DEMAND)]
    assert (secure.price_per_gpu, secure.hourly_price, secure.spot) == (2.99, 11.96, False)
    assert (community.price_per_gpu, community.hourly_price) == (2.69, 10.76)
    spot = offers[(D.H100, COMMUNITY_SPOT)]
    assert (spot.price_per_gpu, spot.hourly_price, spot.spot) == (1.75, 7.0, True)
    assert offers[(D.H100, SECURE_SPOT)].price_per_gpu == 2.1
    assert secure.gpu_count == spot.gpu_count == 4
    assert (secure.vcpus, secure.ram_gb, secure.region) == (32.0, 248.0, "US")
    assert not offers[(D.RTX4090, COMMUNITY_ON_DEMAND)].available  # stockStatus null
    assert not any(gpu == D.L4 for gpu, _ in offers)  # lowestPrice null: nothing to rent
    assert not any(gpu == D.MI300X for gpu, _ in offers)  # not in our GPU table
    # both clouds, both kinds: four offers of one GPU type
    a100 = [o for o in M.offers_from_gpu_types(catalog, 4) if o.offer_id == D.A100_80]
    assert len(a100) == 4


def test_a_cloud_without_a_lowest_price_is_priced_from_its_list_price() -> None:
    gpu = D.gpu_types()[0]  # H100: securePrice 2.99, communityPrice 2.69
    lowest = gpu["lowestPrice"](None, {"gpuCount": 1, "secureCloud": False})
    gpu["lowestPrice"] = dict(lowest, uninterruptablePrice=None, minimumBidPrice=None)
    offers = _by_source(M.offers_from_gpu_types(_catalog(gpu), 1))
    assert offers[(D.H100, "gpuTypes.securePrice")].price_per_gpu == 2.99
    assert offers[(D.H100, "gpuTypes.communityPrice")].price_per_gpu == 2.69
    assert offers[(D.H100, "gpuTypes.secureSpotPrice")].price_per_gpu == 2.1
    assert offers[(D.H100, "gpuTypes.communitySpotPrice")].price_per_gpu == 1.75


@pytest.mark.parametrize("price", [None, 0.0, -1.0])
def test_missing_zero_or_negative_prices_make_no_offer(price: float | None) -> None:
    gpu = D.gpu_type(D.H100, "H100", "Nvidia", 80, secure=price, community=price, spot=price,
                     stock="High", country="US")  # fmt: skip
    gpu["lowestPrice"] = {
        **D.gpu_types()[0]["lowestPrice"](None, {"gpuCount": 1}),
        "uninterruptablePrice": price,
        "minimumBidPrice": price,
    }
    assert M.offers_from_gpu_types(_catalog(gpu), 1) == []


def test_memory_falls_back_to_the_gpu_table() -> None:
    gpu = D.gpu_types()[0]
    gpu["memoryInGb"] = None
    offer = M.offers_from_gpu_types(_catalog(gpu), 1)[0]
    assert offer.gpu_memory_gb == 80


# -- pod states ---------------------------------------------------------------------------------


def _pod(**changes: Any) -> Any:
    body = D.pod(D.ID_READY, "p", "RUNNING", D.H100, cost=2.99, up=True)
    body.update(changes)
    parsed = GetPod.model_validate({"pod": body})
    assert parsed.pod is not None
    return parsed.pod


@pytest.mark.parametrize(
    ("status", "up", "expected"),
    [
        ("RUNNING", True, InstanceState.RUNNING),
        ("RUNNING", False, InstanceState.PENDING),
        ("running", True, InstanceState.RUNNING),
        ("CREATED", False, InstanceState.PENDING),
        ("RESTARTING", False, InstanceState.PENDING),
        ("EXITED", False, InstanceState.STOPPED),
        ("PAUSED", False, InstanceState.STOPPED),
        ("TERMINATED", False, InstanceState.TERMINATED),
        ("DEAD", False, InstanceState.FAILED),
        ("MIGRATING", False, InstanceState.UNKNOWN),
        (None, False, InstanceState.UNKNOWN),
    ],
)
def test_pod_state_table(status: str | None, up: bool, expected: InstanceState) -> None:
    pod = _pod(desiredStatus=status, runtime=D.runtime() if up else None)
    assert M.instance_from_api(pod).state == expected
    status_ = M.status_from_api(pod)
    assert status_.state == expected
    assert status_.ready == (expected == InstanceState.RUNNING)
    assert status_.provider_state == status


def test_ssh_endpoint_is_the_public_port_22() -> None:
    assert (M.status_from_api(_pod()).public_ip, M.status_from_api(_pod()).ssh_port) == (
        D.POD_PUBLIC_IP,
        10341,
    )
    private = D.runtime()
    private["ports"] = [p for p in private["ports"] if p["privatePort"] != 22] + [
        {"ip": "10.0.0.2", "isIpPublic": False, "privatePort": 22, "publicPort": 22, "type": "tcp"}
    ]
    status = M.status_from_api(_pod(runtime=private))
    assert (status.public_ip, status.ssh_port) == (None, None)
    no_ports = dict(D.runtime(), ports=None)
    assert M.status_from_api(_pod(runtime=no_ports)).ssh_port is None


@pytest.mark.parametrize(
    ("pod_type", "spot"),
    [
        ("INTERRUPTABLE", True),
        ("BID", True),
        ("RESERVED", False),
        ("BACKGROUND", False),
        (None, False),
    ],
)
def test_spot_from_pod_type(pod_type: str | None, spot: bool) -> None:
    assert M.instance_from_api(_pod(podType=pod_type)).spot is spot


def test_instance_fields() -> None:
    instance = M.instance_from_api(_pod(gpuCount=2, costPerHr=5.98, machine=None))
    assert (instance.gpu_count, instance.hourly_price) == (2, 5.98)
    assert (instance.gpu_type, instance.region) == (None, None)  # no machine info


# -- bad inputs: rejected before any request --------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"gpu_type": "NOT-A-GPU"},
        {"gpu_type": "H100", "gpu_count": 0},
        {"gpu_type": "H100", "gpu_count": -1},
        {"gpu_type": "H100", "image": ""},
        {"gpu_type": "H100", "spot": True, "bid_price": -0.1},
        {"gpu_type": "H100", "bid_price": 1.0},  # a bid without spot
    ],
)
def test_bad_launch_requests_cannot_be_built(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        LaunchRequest.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"gpu_type": "P4000"}, InvalidRequestError),  # RunPod has no P4000
        ({"gpu_type": "A10G", "spot": True}, InvalidRequestError),
        ({"gpu_type": "H100", "name": "gpl", "labels": {"team": "ml"}}, InvalidRequestError),
        ({"gpu_type": "H100", "ssh_key_names": ["laptop"]}, InvalidRequestError),
        ({"gpu_type": "H100", "region": "  "}, InvalidRequestError),
    ],
)
def test_unsupported_launches_are_rejected_before_any_request(
    kind: str, fields: dict[str, Any], error: type[ProviderError]
) -> None:
    responder = D.DocumentedRunPod()
    with pytest.raises(error):
        call(kind, responder, "launch_instance", LaunchRequest.model_validate(fields))
    assert responder.requests == []


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("get_instance_status", ("",)),
        ("terminate_instance", ("  ",)),
        ("get_normalized_pricing", ("NOT-A-GPU",)),
        ("translate_gpu_type", ("RTX5000",)),
    ],
)
def test_bad_arguments_are_rejected_before_any_request(
    kind: str, method: str, args: tuple[Any, ...]
) -> None:
    responder = D.DocumentedRunPod()
    with pytest.raises(InvalidRequestError):
        call(kind, responder, method, *args)
    assert responder.requests == []


BUG_IDS = (
    "product bug: gpu_providers/runpod/_client.py _flow_stop / _flow_resume (lines ~212-226) "
    "do not check the pod id; stop_instance('') sends podStop {podId: ''}. Fix: call "
    "_check_id(self.name, instance_id) first, as get_instance_status does."
)


@pytest.mark.parametrize("method", ["stop_instance", "start_instance"])
def test_stop_start_check_the_id_before_any_request(kind: str, method: str) -> None:
    responder = D.DocumentedRunPod()
    with pytest.raises(InvalidRequestError):
        call(kind, responder, method, "")
    assert responder.requests == []


# -- launch safety ------------------------------------------------------------------------------

ON_DEMAND = LaunchRequest(gpu_type="H100", name="safety")
SPOT = LaunchRequest(gpu_type="H100", name="safety", spot=True, bid_price=2.0)
MUTATION = {id(ON_DEMAND): "PodFindAndDeployOnDemand", id(SPOT): "PodRentInterruptable"}


@pytest.mark.parametrize("request_", [ON_DEMAND, SPOT], ids=["on-demand", "spot"])
@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx.ReadTimeout("read timed out"),
        lambda: httpx.RemoteProtocolError("peer closed connection without a complete message"),
    ],
    ids=["read-timeout", "reset"],
)
def test_launch_is_not_replayed_after_a_transport_failure(
    kind: str, request_: LaunchRequest, failure: Callable[[], Exception]
) -> None:
    mutation = MUTATION[id(request_)]
    responder = D.DocumentedRunPod(inject={mutation: [failure()]})
    time = FakeTime()
    with pytest.raises(ProviderError) as info:
        call(kind, responder, "launch_instance", request_, time=time, max_retries=3)
    assert info.value.maybe_submitted
    assert not info.value.is_retryable
    assert _count(responder, mutation) == 1
    assert time.sleeps == []
    if "timeout" in str(failure()):
        assert isinstance(info.value, ProviderTimeoutError)


BUG_5XX_REPLAY = (
    "product bug: RunPod launches are replayed after HTTP 5xx (4 mutations with max_retries=3): "
    "_base.py ProviderCore._mark_submission is only applied in _answer (OpenAPI wire); "
    "gpu_providers/runpod/_client.py _graphql_error returns classify_status(...) for "
    "TransportServerError without it, so the ProviderServerError stays retryable. DESIGN.md "
    "rule 2. Fix: in _RunPodCore._graphql_error return self._mark_submission(effect, "
    "M.classify_status(...)) (and likewise for classify_graphql results)."
)


@pytest.mark.parametrize("request_", [ON_DEMAND, SPOT], ids=["on-demand", "spot"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_launch_is_not_replayed_after_5xx(kind: str, request_: LaunchRequest, status: int) -> None:
    mutation = MUTATION[id(request_)]
    answers = [httpx.Response(status, text="upstream error") for _ in range(4)]
    responder = D.DocumentedRunPod(inject={mutation: answers})
    with pytest.raises(ProviderServerError) as info:
        call(kind, responder, "launch_instance", request_, max_retries=3)
    assert _count(responder, mutation) == 1
    assert info.value.maybe_submitted


def test_launch_is_retried_after_429(kind: str) -> None:
    responder = D.DocumentedRunPod(inject={"PodFindAndDeployOnDemand": [D.rate_limited("1")]})
    time = FakeTime()
    instance = call(kind, responder, "launch_instance", ON_DEMAND, time=time)
    assert instance.instance_id == D.NEW_IDS[0]
    assert _count(responder, "PodFindAndDeployOnDemand") == 2
    assert len(time.sleeps) >= 1  # injected sleep: nothing really waited


def test_launch_is_retried_when_the_connection_never_opened(kind: str) -> None:
    responder = D.DocumentedRunPod(
        inject={"PodFindAndDeployOnDemand": [httpx.ConnectError("connection refused")]}
    )
    instance = call(kind, responder, "launch_instance", ON_DEMAND)
    assert instance.name == "safety"
    assert _count(responder, "PodFindAndDeployOnDemand") == 2


def test_a_malformed_launch_answer_says_the_pod_may_exist(kind: str) -> None:
    malformed = httpx.Response(200, json={"data": {"podFindAndDeployOnDemand": {"name": 5}}})
    responder = D.DocumentedRunPod(inject={"PodFindAndDeployOnDemand": [malformed]})
    with pytest.raises(UnexpectedResponseError) as info:
        call(kind, responder, "launch_instance", ON_DEMAND)
    assert info.value.maybe_submitted


def test_a_null_launch_is_a_capacity_error(kind: str) -> None:
    request = LaunchRequest(gpu_type="RTX4090", name="x")
    with pytest.raises(CapacityError) as info:
        call(kind, D.DocumentedRunPod(), "launch_instance", request)
    assert not info.value.maybe_submitted


# -- spot bids ----------------------------------------------------------------------------------


def test_spot_without_bid_bids_the_current_minimum(kind: str) -> None:
    responder = D.DocumentedRunPod()
    responder.catalog[D.H100] = D.gpu_type(
        D.H100, "H100 SXM", "Nvidia", 80, secure=2.99, community=2.69, spot=1.37,
        stock="High", country="US",
    )  # fmt: skip
    request = LaunchRequest(gpu_type="H100", gpu_count=2, name="bid", spot=True)
    instance = call(kind, responder, "launch_instance", request)
    assert instance.spot
    (gpu_query,) = [o for o in responder.operations if o["operationName"] == "GpuTypes"]
    assert gpu_query["variables"]["secureInput"]["gpuCount"] == 2
    assert gpu_query["variables"]["communityInput"]["gpuCount"] == 2
    (rent,) = [o for o in responder.operations if o["operationName"] == "PodRentInterruptable"]
    assert rent["variables"]["input"]["bidPerGpu"] == 1.37  # community, the cheaper cloud
    assert rent["variables"]["input"]["cloudType"] == "COMMUNITY"
    assert rent["variables"]["input"]["gpuCount"] == 2


def test_spot_with_a_bid_uses_it_in_the_cheapest_cloud(kind: str) -> None:
    responder = D.DocumentedRunPod()
    call(kind, responder, "launch_instance", SPOT)
    assert [o["operationName"] for o in responder.operations] == [
        "GpuTypes",
        "PodRentInterruptable",
    ]
    sent = responder.operations[1]["variables"]["input"]
    assert (sent["bidPerGpu"], sent["cloudType"]) == (2.0, "COMMUNITY")


def test_on_demand_launch_asks_for_the_cloud_of_the_cheapest_offer(kind: str) -> None:
    responder = D.DocumentedRunPod()
    responder.catalog[D.H100] = D.gpu_type(
        D.H100, "H100 SXM", "Nvidia", 80, secure=2.49, community=2.69, spot=1.37,
        stock="High", country="US",
    )  # fmt: skip
    instance = call(kind, responder, "launch_instance", ON_DEMAND)
    sent = responder.operations[1]["variables"]["input"]
    assert sent["cloudType"] == "SECURE"  # securePrice is the cheaper one here
    assert instance.hourly_price == 2.49  # what the pod costs is what the offer said


def test_spot_without_any_spot_price_fails_before_the_mutation(kind: str) -> None:
    responder = D.DocumentedRunPod()
    request = LaunchRequest(gpu_type="L4", name="x", spot=True)  # lowestPrice is null
    with pytest.raises(CapacityError):
        call(kind, responder, "launch_instance", request)
    assert [o["operationName"] for o in responder.operations] == ["GpuTypes"]


# -- idempotent terminate -----------------------------------------------------------------------


def test_terminate_is_idempotent(kind: str) -> None:
    responder = D.DocumentedRunPod()
    assert call(kind, responder, "terminate_instance", D.ID_EXITED) is None
    assert call(kind, responder, "terminate_instance", D.ID_EXITED) is None
    assert _count(responder, "PodTerminate") == 2


def test_terminate_does_not_hide_other_errors(kind: str) -> None:
    with pytest.raises(AuthenticationError):
        call(kind, D.DocumentedRunPod(), "terminate_instance", D.ID_EXITED, api_key=D.REVOKED_KEY)
    responder = D.DocumentedRunPod(
        inject={"PodTerminate": [_graphql_errors("Spend limit reached")]}
    )
    with pytest.raises(QuotaExceededError):
        call(kind, responder, "terminate_instance", D.ID_EXITED)


BUG_NULL_DATA = (
    'product bug: an answer {"data": null} without errors (or {"errors": []}) makes gql\'s '
    "session.execute fail its `assert result.data is not None`; the AssertionError is "
    "re-raised by gpu_providers/runpod/_client.py _graphql_error (`raise exc`, line ~101) "
    "instead of becoming UnexpectedResponseError. Fix: treat AssertionError from the gql "
    "session as self._malformed(effect, exc), or convert it in "
    "codegen/templates/runpod_base_client.py execute()."
)


@pytest.mark.parametrize("body", [{"data": None}, {"errors": []}])
def test_an_answer_without_data_is_unexpected(kind: str, body: dict[str, Any]) -> None:
    responder = D.DocumentedRunPod(inject={"GetPod": [httpx.Response(200, json=body)]})
    with pytest.raises(UnexpectedResponseError):
        call(kind, responder, "get_instance_status", D.ID_READY)


# -- GraphQL built only with variables; credentials -------------------------------------------

LITERALS = (
    StringValueNode,
    IntValueNode,
    FloatValueNode,
    BooleanValueNode,
    EnumValueNode,
    NullValueNode,
    ListValueNode,
    ObjectValueNode,
)


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    for key in node.keys:
        child = getattr(node, key, None)
        for item in child if isinstance(child, tuple) else (child,):
            if isinstance(item, Node):
                yield from _nodes(item)


def _all_requests() -> list[tuple[str, httpx.Request, dict[str, Any]]]:
    found = []
    for name, scenario in sorted(SCENARIOS.items()):
        responder = scenario.responder()
        with RunPodProvider(
            api_key=KEY if scenario.api_key != D.REVOKED_KEY else scenario.api_key,
            transport=responder.transport(),
            **scenario.options,
        ) as client:
            run_sync(client, scenario.script)
        found += [
            (name, r, o) for r, o in zip(responder.requests, responder.operations, strict=True)
        ]
    return found


def test_every_request_carries_values_only_in_variables() -> None:
    requests = _all_requests()
    assert {o["operationName"] for _, _, o in requests} == {
        "GpuTypes",
        "GetPod",
        "MyPods",
        "PodFindAndDeployOnDemand",
        "PodRentInterruptable",
        "PodStop",
        "PodResume",
        "PodBidResume",
        "PodTerminate",
    }
    for where, _, operation in requests:
        document = parse(operation["query"])
        arguments = [n for n in _nodes(document) if isinstance(n, ArgumentNode)]
        assert all(isinstance(a.value, VariableNode) for a in arguments), where
        assert not [n for n in _nodes(document) if isinstance(n, LITERALS)], where
        # and no user value reached the query text
        values = _strings(operation.get("variables"))
        assert values or operation["operationName"] in ("MyPods", "GpuTypes")
        for value in values:
            assert value not in operation["query"], f"{where}: {value!r} in the query text"


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) and len(value) > 3 else []


def test_user_values_travel_as_variables(kind: str) -> None:
    responder = D.DocumentedRunPod()
    name = 'evil") { id } mutation X { podTerminate(input: {podId: "x"}) }'
    request = LaunchRequest(
        gpu_type="H100", name=name[:64], image="repo/img:tag", ssh_public_key="ssh-ed25519 AAAA k"
    )
    instance = call(kind, responder, "launch_instance", request)
    _, operation = responder.operations
    assert operation["variables"]["input"]["name"] == name[:64]
    assert instance.name == name[:64]
    for value in (name[:64], "repo/img:tag", "ssh-ed25519 AAAA k", D.H100):
        assert value not in operation["query"]
    call(kind, responder, "get_instance_status", D.ID_READY)
    assert responder.operations[-1]["variables"] == {"input": {"podId": D.ID_READY}}
    assert D.ID_READY not in responder.operations[-1]["query"]


def test_bearer_header_and_no_key_in_url_body_or_errors(kind: str) -> None:
    responder = D.DocumentedRunPod()
    call(kind, responder, "list_instances")
    with pytest.raises(InstanceNotFoundError) as info:
        call(kind, responder, "get_instance_status", D.ID_MISSING)
    for request in responder.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert str(request.url) == D.GRAPHQL_URL  # no ?api_key=
        assert KEY not in request.content.decode()
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert KEY not in repr(RunPodProvider(api_key=KEY))


def test_offers_filter_by_gpu_count(kind: str) -> None:
    responder = D.DocumentedRunPod()
    offers = call(kind, responder, "list_available_gpus", GPUFilters(min_gpu_count=16))
    assert offers == []  # maxGpuCount 8: lowestPrice is null for 16
    variables = responder.operations[0]["variables"]
    assert variables["secureInput"]["gpuCount"] == variables["communityInput"]["gpuCount"] == 16
