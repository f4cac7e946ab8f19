"""Paperspace: mapping and classification tables, input checks, launch safety, secrets.

Network-level tests run every case through the sync and the async client (``kind``) over an
``httpx.MockTransport``: the documented responder, with injected answers where needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pydantic
import pytest

from gpu_providers import LaunchRequest
from gpu_providers.errors import (
    AuthenticationError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from gpu_providers.gpus import GPU_TABLE, gpu_spec
from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider
from gpu_providers.paperspace import _mapping as M
from gpu_providers.paperspace._generated.models import Machine, OsTemplate
from gpu_providers.types import InstanceState

from . import documented as D
from .harness import FakeTime, drive

KEY = "SENTINEL-paperspace-unit-key-41d7"
CLASSES = (PaperspaceProvider, AsyncPaperspaceProvider)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(
    kind: str,
    responder: D.DocumentedPaperspace | Callable[[httpx.Request], httpx.Response],
    method: str,
    *args: Any,
    time: FakeTime | None = None,
    **options: Any,
) -> Any:
    """``method(*args)`` on a fresh sync or async client answered by ``responder``."""
    options.setdefault("api_key", KEY)
    transport = httpx.MockTransport(responder)
    return drive(kind, CLASSES, method, *args, time=time, transport=transport, **options)


def _count(responder: D.DocumentedPaperspace, method: str, path: str) -> int:
    return sum(1 for r in responder.requests if r.method == method and r.url.path == "/v1" + path)


# -- error classification ---------------------------------------------------------------------

CAPACITY_MESSAGE = "There is not enough capacity for machine type H100x8 in region ny2 right now."


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, D.error_body("Invalid API key", "UNAUTHORIZED"), AuthenticationError),
        (403, D.error_body("Forbidden", "FORBIDDEN"), AuthenticationError),
        (404, D.error_body("Machine not found", "NOT_FOUND"), InstanceNotFoundError),
        (400, D.error_body(CAPACITY_MESSAGE, "BAD_REQUEST"), CapacityError),
        (400, D.error_body("This machine type is out of stock", "X"), CapacityError),
        (400, D.error_body("H100 is not available in ams1", "X"), CapacityError),
        (409, D.error_body("No machines available in this region", "X"), CapacityError),
        (400, D.error_body("Machine quota reached for your team", "X"), QuotaExceededError),
        (422, D.error_body("You exceeded the GPU limit", "X"), QuotaExceededError),
        (400, D.error_body("diskSize must be positive", "BAD_REQUEST"), InvalidRequestError),
        (422, D.error_body("Invalid templateId", "X"), InvalidRequestError),
        (400, None, InvalidRequestError),
        (400, {"message": 42, "code": "X"}, InvalidRequestError),
        (400, ["not", "an", "object"], InvalidRequestError),
        (429, D.error_body("Too many requests", "TOO_MANY_REQUESTS"), RateLimitError),
        (500, D.error_body("Internal error", "INTERNAL"), ProviderServerError),
        (502, None, ProviderServerError),
        (503, "<html>unavailable</html>", ProviderServerError),
        (504, None, ProviderServerError),
    ],
)
def test_classification_table(status: int, body: Any, expected: type[ProviderError]) -> None:
    error = M.classify(status, body, "launch")
    assert type(error) is expected
    assert error.status_code == status
    assert error.provider == "paperspace"
    assert str(error).startswith("[paperspace] launch: ")
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        assert body["message"] in error.message
        assert error.code == body["code"]


def test_classification_keeps_a_non_string_code_as_text() -> None:
    assert M.classify(404, {"message": "gone", "code": 404}, "get").code == "404"


def test_retryable_errors_are_exactly_throttling_and_server_errors() -> None:
    assert M.classify(429, None, "x").is_retryable
    assert M.classify(502, None, "x").is_retryable
    for status in (400, 401, 403, 404, 409, 422):
        assert not M.classify(status, None, "x").is_retryable


# -- states, machine types, instances ---------------------------------------------------------

#: Every value of the vendor's Machine.state enum (FACTS.md) and what it means to us.
STATES = {
    "off": InstanceState.STOPPED,
    "starting": InstanceState.PENDING,
    "stopping": InstanceState.STOPPING,
    "restarting": InstanceState.PENDING,
    "serviceready": InstanceState.RUNNING,
    "ready": InstanceState.RUNNING,
    "upgrading": InstanceState.PENDING,
    "provisioning": InstanceState.PENDING,
}


def _machine(**changes: Any) -> Machine:
    body = D.machine(D.ID_READY, "m", "ready", "A6000", "ny2", public_ip="203.0.113.9")
    body.update(changes)
    return Machine.from_dict(body)


@pytest.mark.parametrize(("state", "expected"), sorted(STATES.items()))
def test_every_documented_state_is_mapped(state: str, expected: InstanceState) -> None:
    machine = _machine(state=state)
    assert M.instance_from_api(machine).state == expected
    status = M.status_from_api(machine)
    assert status.state == expected
    assert status.provider_state == state
    assert status.ready == (state == "ready")  # serviceready: running, not yet usable


def test_state_table_is_complete_and_case_insensitive() -> None:
    assert dict(M.STATES) == STATES
    assert M.status_from_api(_machine(state="Ready")).state == InstanceState.RUNNING


def test_a_new_state_is_unknown_not_an_error() -> None:
    status = M.status_from_api(_machine(state="hibernating"))
    assert (status.state, status.provider_state) == (InstanceState.UNKNOWN, "hibernating")


def test_instance_fields() -> None:
    instance = M.instance_from_api(
        _machine(machineType="A100-80Gx8", region="sfo9", usageRate=25.44, publicIp=None)
    )
    assert (instance.gpu_type, instance.gpu_count) == ("A100-80GB", 8)
    assert instance.region == "sfo9"  # the open region union: a new region passes through
    assert instance.hourly_price == 25.44  # usageRate: the whole machine, per hour
    assert (instance.public_ip, instance.ssh_port) == (None, None)
    assert instance.created_at is not None
    enum_region = M.instance_from_api(_machine(region="ams1")).region
    assert enum_region == "ams1"  # generated enum member -> its value


def test_unknown_machine_type_gives_no_gpu() -> None:
    instance = M.instance_from_api(_machine(machineType="C5"))
    assert (instance.gpu_type, instance.gpu_count) == (None, None)


@pytest.mark.parametrize(
    ("gpu", "count", "label"),
    [
        ("H100", 1, "H100"),
        ("H100", 8, "H100x8"),
        ("A100-80GB", 1, "A100-80G"),
        ("A100-80GB", 8, "A100-80Gx8"),
        ("A6000", 2, "A6000x2"),
        ("V100-32GB", 1, "V100-32G"),
        ("P4000", 1, "P4000"),
    ],
)
def test_machine_type_labels(gpu: str, count: int, label: str) -> None:
    assert M.machine_type(gpu_spec(gpu), count) == label
    assert M.gpu_of_machine_type(label) == (gpu_spec(gpu), count)


def test_every_paperspace_gpu_round_trips() -> None:
    for spec in (s for s in GPU_TABLE if s.paperspace):
        for count in (1, 2, 4, 8):
            label = M.machine_type(spec, count)
            assert label is not None
            assert M.gpu_of_machine_type(label) == (spec, count)


@pytest.mark.parametrize("label", ["C5", "GPU+", "", "x8", "H200", "L4x2"])
def test_labels_without_a_known_gpu(label: str) -> None:
    assert M.gpu_of_machine_type(label) is None


def test_gpus_paperspace_does_not_offer_have_no_label() -> None:
    for name in ("L4", "RTX4090", "H200", "T4"):
        assert M.machine_type(gpu_spec(name), 1) is None


def test_offers_from_templates_merge_availability_and_carry_no_price() -> None:
    templates = [OsTemplate.from_dict(t) for t in D.os_templates()]
    offers = {o.offer_id: o for o in M.offers_from_templates(templates)}
    # P4000 is unavailable on one template and available on another: available.
    assert offers["P4000"].available
    assert not offers["RTX5000"].available
    assert "C5" not in offers
    h100x8 = offers["H100x8"]
    assert (h100x8.gpu_type, h100x8.gpu_count, h100x8.gpu_memory_gb) == ("H100", 8, 80)
    assert all(o.price_per_gpu is None and o.hourly_price is None for o in offers.values())
    assert all(o.provider == "paperspace" and not o.spot for o in offers.values())


# -- bad inputs: rejected before any request --------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"gpu_type": "NOT-A-GPU"},
        {"gpu_type": "H100", "gpu_count": 0},
        {"gpu_type": "H100", "gpu_count": -1},
        {"gpu_type": "H100", "image": ""},
        {"gpu_type": "H100", "image": "   "},
        {"gpu_type": "H100", "disk_gb": -100},
    ],
)
def test_bad_launch_requests_cannot_be_built(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        LaunchRequest.model_validate(fields)


@pytest.mark.parametrize(
    ("request_fields", "error"),
    [
        ({"gpu_type": "L4"}, InvalidRequestError),  # a GPU Paperspace does not offer
        ({"gpu_type": "RTX4090", "region": "ny2"}, InvalidRequestError),
        ({"gpu_type": "A6000", "name": "x.gpl.y", "labels": {"team": "ml"}}, InvalidRequestError),
        ({"gpu_type": "A6000", "spot": True}, UnsupportedFeatureError),
        ({"gpu_type": "A6000", "spot": True, "bid_price": 0.5}, UnsupportedFeatureError),
        ({"gpu_type": "A6000", "ssh_key_names": ["laptop"]}, UnsupportedFeatureError),
        ({"gpu_type": "A6000", "ssh_public_key": "not a public key"}, InvalidRequestError),
        ({"gpu_type": "A6000", "ssh_public_key": "ssh-ed25519 AAAA k\nx"}, InvalidRequestError),
        ({"gpu_type": "A6000", "env": {"A": "two\nlines"}}, InvalidRequestError),
        ({"gpu_type": "A6000", "startup_script": "#cloud-config\n{}"}, InvalidRequestError),
        ({"gpu_type": "A6000", "min_cuda_version": "12.4"}, UnsupportedFeatureError),
        ({"gpu_type": "A6000", "region": "eu-central"}, InvalidRequestError),
        ({"gpu_type": "A6000", "region": "  "}, InvalidRequestError),
    ],
)
def test_unsupported_launches_are_rejected_before_any_request(
    kind: str, request_fields: dict[str, Any], error: type[ProviderError]
) -> None:
    responder = D.DocumentedPaperspace()
    request = LaunchRequest.model_validate({"name": "x", **request_fields})
    with pytest.raises(error):
        call(kind, responder, "launch_instance", request)
    assert responder.requests == []


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("get_instance_status", ("",)),
        ("terminate_instance", ("  ",)),
        ("get_normalized_pricing", ("NOT-A-GPU",)),
        ("translate_gpu_type", ("L4",)),
        ("is_available", ("L4", 1, "ny2")),
        ("is_available", ("A6000", 1, "")),
    ],
)
def test_bad_arguments_are_rejected_before_any_request(
    kind: str, method: str, args: tuple[Any, ...]
) -> None:
    responder = D.DocumentedPaperspace()
    with pytest.raises(InvalidRequestError):
        call(kind, responder, method, *args)
    assert responder.requests == []


BUG_IDS = (
    "product bug: gpu_providers/paperspace/_client.py _flow_power (start/stop) does not check "
    "the instance id; '' is sent as PATCH /machines//stop. Fix: call _check_id(self.name, "
    "instance_id) first (as get_instance_status and terminate_instance do)."
)


@pytest.mark.parametrize("method", ["stop_instance", "start_instance"])
def test_stop_start_check_the_id_before_any_request(kind: str, method: str) -> None:
    responder = D.DocumentedPaperspace()
    with pytest.raises(InvalidRequestError):
        call(kind, responder, method, "")
    assert responder.requests == []


BUG_IS_AVAILABLE = (
    "product bug: gpu_providers/paperspace/_client.py _label (line ~114) calls gpu_spec() "
    "unguarded and never checks gpu_count, so is_available('NOT-A-GPU', ...) raises a bare "
    "ValueError and is_available('H100', 0|-1, ...) sends machineType=H100x0 / H100x-1. Fix: "
    "in _label, turn gpu_spec's ValueError into InvalidRequestError and reject gpu_count < 1."
)


@pytest.mark.parametrize("args", [("NOT-A-GPU", 1, "ny2"), ("H100", 0, "ny2"), ("H100", -1, "ny2")])
def test_is_available_rejects_bad_gpu_arguments(kind: str, args: tuple[Any, ...]) -> None:
    responder = D.DocumentedPaperspace()
    with pytest.raises(InvalidRequestError):
        call(kind, responder, "is_available", *args)
    assert responder.requests == []


def test_translate_region() -> None:
    client = PaperspaceProvider(api_key=KEY)
    assert client.translate_region("us-east") == "ny2"
    assert client.translate_region("US-WEST") == "ca1"
    assert client.translate_region("europe") == "ams1"
    assert client.translate_region("sfo9") == "sfo9"  # new regions pass through
    assert client.translate_gpu_type("a100-80gb") == "A100-80G"


# -- launch safety: never replayed once it may have reached Paperspace ------------------------

LAUNCH = LaunchRequest(gpu_type="A6000", name="safety", region="ca1", image="tkni3aa4")


@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx.ReadTimeout("read timed out"),
        lambda: httpx.RemoteProtocolError("peer closed connection without a complete message"),
        lambda: httpx.WriteTimeout("write timed out"),
        D.bad_gateway,
        lambda: httpx.Response(500, json=D.error_body("Internal error", "INTERNAL")),
        lambda: httpx.Response(503, text="Service Unavailable"),
        lambda: httpx.Response(504, text="Gateway Timeout"),
    ],
    ids=["read-timeout", "reset", "write-timeout", "502-html", "500", "503", "504"],
)
def test_launch_is_not_replayed_when_it_may_have_arrived(
    kind: str, failure: Callable[[], Any]
) -> None:
    answer = failure()
    responder = D.DocumentedPaperspace(inject={("POST", "/machines"): [answer]})
    time = FakeTime()
    with pytest.raises(ProviderError) as info:
        call(kind, responder, "launch_instance", LAUNCH, time=time, max_retries=3)
    error = info.value
    assert isinstance(error, (ProviderServerError, ProviderConnectionError))
    assert error.maybe_submitted
    assert not error.is_retryable
    assert "list instances by name" in error.message
    assert _count(responder, "POST", "/machines") == 1
    assert time.sleeps == []  # no backoff either: nothing was retried
    if isinstance(answer, httpx.Response):
        assert error.status_code == answer.status_code
    else:
        assert isinstance(error.__cause__, type(answer))  # the httpx error is chained
    if isinstance(answer, httpx.TimeoutException):
        assert isinstance(error, ProviderTimeoutError)


def test_launch_is_retried_after_429_with_its_retry_after(kind: str) -> None:
    responder = D.DocumentedPaperspace(inject={("POST", "/machines"): [D.rate_limited("3")]})
    time = FakeTime()
    instance = call(kind, responder, "launch_instance", LAUNCH, time=time)
    assert instance.instance_id == D.NEW_IDS[0]
    assert _count(responder, "POST", "/machines") == 2
    assert time.sleeps[0] == 3.0


def test_launch_is_retried_when_the_connection_never_opened(kind: str) -> None:
    responder = D.DocumentedPaperspace(
        inject={("POST", "/machines"): [httpx.ConnectError("connection refused")]}
    )
    instance = call(kind, responder, "launch_instance", LAUNCH)
    assert instance.name == "safety"
    assert _count(responder, "POST", "/machines") == 2  # the first never reached the API


def test_reads_are_retried_after_5xx_and_give_up_after_max_retries(kind: str) -> None:
    failures = [D.bad_gateway(), D.bad_gateway(), D.bad_gateway()]
    responder = D.DocumentedPaperspace(inject={("GET", "/machines/{id}"): failures})
    with pytest.raises(ProviderServerError) as info:
        call(kind, responder, "get_instance_status", D.ID_READY, max_retries=2)
    assert not info.value.maybe_submitted
    assert _count(responder, "GET", f"/machines/{D.ID_READY}") == 3


BUG_STATUS = (
    "product bug: the generated client's _build_response (gpu_providers/paperspace/_generated/"
    "api/*/*.py, openapi-python-client template) calls HTTPStatus(response.status_code); a "
    "status outside http.HTTPStatus (Cloudflare 520-527, nginx 499, 430) raises ValueError, "
    "which _base.py OpenAPIProvider._invoke turns into UnexpectedResponseError without a "
    "status_code, so a 522 on a read is not retried. Fix: in _invoke, on ValueError check "
    "whether the status is a valid HTTPStatus and, if not, classify by status (or make the "
    "codegen emit an int status_code via a custom template)."
)


@pytest.mark.parametrize("status", [520, 522, 530])
def test_a_non_standard_5xx_is_a_retried_server_error(kind: str, status: int) -> None:
    origin_down = httpx.Response(status, text=f"error code: {status}")
    responder = D.DocumentedPaperspace(inject={("GET", "/machines/{id}"): [origin_down]})
    instance = call(kind, responder, "get_instance_status", D.ID_READY)
    assert instance.state == InstanceState.RUNNING
    assert len(responder.requests) == 2


def test_a_malformed_launch_answer_says_the_machine_may_exist(kind: str) -> None:
    responder = D.DocumentedPaperspace(
        inject={("POST", "/machines"): [httpx.Response(200, json={"event": {}, "data": {}})]}
    )
    with pytest.raises(UnexpectedResponseError) as info:
        call(kind, responder, "launch_instance", LAUNCH)
    assert info.value.maybe_submitted
    assert _count(responder, "POST", "/machines") == 1


def test_capacity_refusal_is_not_retried(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    request = LaunchRequest(gpu_type="H100", gpu_count=8, name="x", region="ca1", image="t")
    with pytest.raises(CapacityError) as info:
        call(kind, responder, "launch_instance", request)
    assert not info.value.maybe_submitted
    assert _count(responder, "POST", "/machines") == 1


# -- idempotent terminate ---------------------------------------------------------------------


def test_terminate_is_idempotent(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    assert call(kind, responder, "terminate_instance", D.ID_OFF) is None
    assert call(kind, responder, "terminate_instance", D.ID_OFF) is None  # 404: gone already
    assert [r.method for r in responder.requests] == ["DELETE", "DELETE"]


def test_terminate_does_not_hide_other_errors(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    with pytest.raises(AuthenticationError):
        call(kind, responder, "terminate_instance", D.ID_OFF, api_key=D.REVOKED_KEY)


# -- pagination -------------------------------------------------------------------------------


def test_has_more_without_a_cursor_ends_the_listing(kind: str) -> None:
    page = {"hasMore": True, "nextPage": None, "items": [D.initial_machines()[0]]}
    responder = D.DocumentedPaperspace(
        inject={("GET", "/machines"): [httpx.Response(200, json=page)]}
    )
    instances = call(kind, responder, "list_instances")
    assert [i.instance_id for i in instances] == [D.ID_READY]
    assert len(responder.requests) == 1


BUG_CURSOR = (
    "product bug: gpu_providers/paperspace/_client.py _flow_list / _flow_templates loop while "
    "hasMore and nextPage are set, with no guard: an API that repeats a cursor makes "
    "list_instances/list_available_gpus request forever. Fix: remember the cursors seen and "
    "raise UnexpectedResponseError when one repeats (or cap the number of pages)."
)


@pytest.mark.parametrize(
    ("method", "route"), [("list_instances", "/machines"), ("list_available_gpus", "/os-templates")]
)
def test_a_repeated_cursor_does_not_loop_forever(kind: str, method: str, route: str) -> None:
    requests: list[httpx.Request] = []

    def same_page_forever(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) > 2_500:
            raise RuntimeError("the client kept asking for the same page")
        assert request.url.path == "/v1" + route
        return httpx.Response(200, json={"hasMore": True, "nextPage": "same", "items": []})

    with pytest.raises(UnexpectedResponseError):
        call(kind, same_page_forever, method)


# -- credentials ------------------------------------------------------------------------------


def test_bearer_header_and_no_key_in_urls_reprs_or_errors(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    call(kind, responder, "list_instances")
    with pytest.raises(InstanceNotFoundError) as info:
        call(kind, responder, "get_instance_status", D.ID_MISSING)
    assert responder.requests
    for request in responder.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert KEY not in str(request.url)
        assert "x-api-key" not in request.headers  # the legacy API's header, not this one's
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert KEY not in repr(PaperspaceProvider(api_key=KEY))
