"""Property tests: every answer our spec allows is handled, and whatever else TensorDock
sends ends in a typed result or error.

Spec-valid answers are drawn from the schemas of ``specs/tensordock/openapi.yaml`` (both forms
of ``GET /instances/{id}``, both wrappers of ``GET /instances``, locations and hostnodes,
create, start/stop, delete, and error bodies). Then the documented answers are broken:
truncated, fields dropped, values replaced by random JSON, the whole body replaced; error
statuses get random bodies. The client must return a valid result or raise a
``ProviderError`` subclass, never a bare ``KeyError``/``TypeError``/``ValueError`` or a
pydantic ``ValidationError``; a launch answer that cannot be read says the VM may exist.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpu_providers import GPUFilters, GPUInstance, GPUOffer, InstanceStatus, LaunchRequest
from gpu_providers.errors import (
    AuthenticationError,
    InstanceNotFoundError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
)
from gpu_providers.tensordock import TensorDockProvider
from gpu_providers.tensordock import _mapping as mapping
from tests.providers.timekeeping import isolated

from . import documented as D
from .scenarios import PUBLIC_KEY
from .test_contract import deref, spec

KEY = "SENTINEL-tensordock-property-token-7d1c"
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)

#: Strings drawn for these properties come from real values half of the time, so mapping
#: code past the lookups runs too.
KNOWN_STRINGS: dict[str, list[str]] = {
    "v0Name": ["geforcertx4090-pcie-24gb", "h100-sxm5-80gb", "a100-pcie-40gb", "unknown-x-1gb"],
    "status": ["running", "starting", "Stopped", "StoppedDisassociated", "deleting", "weird"],
    "ipAddress": ["203.0.113.9"],
}


def from_schema(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values valid against ``schema`` (the subset of JSON Schema our spec uses)."""
    kind = schema.get("type")
    strategy: st.SearchStrategy[Any]
    if "enum" in schema:
        strategy = st.sampled_from(schema["enum"])
    elif kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {k: from_schema(v, k) for k, v in properties.items()}
        extra = schema.get("additionalProperties")
        strategy = st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
        if isinstance(extra, dict):
            keys = st.sampled_from(KNOWN_STRINGS["v0Name"]) | st.text(max_size=8)
            strategy = st.dictionaries(keys, from_schema(extra), max_size=2)
    elif kind == "array":
        strategy = st.lists(from_schema(schema["items"], name), max_size=3)
    elif kind == "string":
        known = KNOWN_STRINGS.get(name, [])
        text = st.text(min_size=schema.get("minLength", 0), max_size=10)
        strategy = (st.sampled_from(known) | text) if known else text
    elif kind == "integer":
        strategy = st.integers(min_value=schema.get("minimum", -(2**31)), max_value=2**31)
    elif kind == "number":
        low = schema.get("minimum", -1e6)
        strategy = st.integers(min_value=int(low), max_value=10**6) | st.floats(
            min_value=low, max_value=1e6, allow_nan=False
        )
    elif kind == "boolean":
        strategy = st.booleans()
    else:
        raise AssertionError(f"our spec uses a schema this strategy does not know: {schema}")
    return st.none() | strategy if schema.get("nullable") else strategy


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = deref(spec()["components"]["schemas"][name])
    return found


def answer(
    method: str, route: str, body: bytes, status: int = 200
) -> Callable[[httpx.Request], httpx.Response]:
    """The documented organization, except ``method route``, which answers ``body``."""
    documented = D.DocumentedTensorDock()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == method and documented._route(request)[0] == route:
            headers = {"content-type": "application/json"}
            return httpx.Response(status, content=body, headers=headers)
        return documented(request)

    return handler


@dataclass(frozen=True)
class Operation:
    method: str
    args: tuple[Any, ...]
    route: tuple[str, str]  # the request whose answer is under test
    answer: Callable[[], Any]  # its documented body
    result: type | tuple[type, ...]
    submits: bool = False


LAUNCH = LaunchRequest(gpu_type="RTX4090", name="prop", ssh_public_key=PUBLIC_KEY)
NEW = D.NEW_IDS[0]
OPERATIONS: dict[str, Operation] = {
    "get": Operation(
        "get_instance_status",
        (D.ID_RUNNING,),
        ("GET", "/instances/{id}"),
        lambda: D.initial_instances()[0],
        InstanceStatus,
    ),
    "get_wrapped": Operation(
        "get_instance_status",
        (D.ID_RUNNING,),
        ("GET", "/instances/{id}"),
        lambda: {"data": D.initial_instances()[4]},
        InstanceStatus,
    ),
    "list": Operation(
        "list_instances",
        (),
        ("GET", "/instances"),
        lambda: {"data": {"instances": [D.list_item(i) for i in D.initial_instances()]}},
        list,
    ),
    "locations": Operation(
        "list_available_gpus",
        (GPUFilters(available_only=False),),
        ("GET", "/locations"),
        lambda: {"data": {"locations": D.locations()}},
        list,
    ),
    "hostnodes": Operation(
        "list_available_gpus",
        (GPUFilters(available_only=False),),
        ("GET", "/hostnodes"),
        lambda: {"data": {"hostnodes": D.hostnodes()}},
        list,
    ),
    "launch": Operation(
        "launch_instance",
        (LAUNCH,),
        ("POST", "/instances"),
        lambda: {
            "data": {"type": "virtualmachine", "id": NEW, "name": "prop", "status": "running"}
        },
        GPUInstance,
        submits=True,
    ),
    "stop": Operation(
        "stop_instance",
        (D.ID_RUNNING,),
        ("POST", "/instances/{id}/stop"),
        lambda: {"data": {"type": "instance", "id": D.ID_RUNNING, "attributes": {"status": "x"}}},
        InstanceStatus,
    ),
    "terminate": Operation(
        "terminate_instance",
        (D.ID_RUNNING,),
        ("DELETE", "/instances/{id}"),
        lambda: {"data": {"type": "success", "attributes": {"message": "Instance deleted"}}},
        type(None),
    ),
}
NAMES = sorted(OPERATIONS)


def outcome(name: str, body: bytes, status: int = 200) -> Any:
    """The result or ``ProviderError`` of operation ``name`` answered ``status``/``body``."""
    operation = OPERATIONS[name]
    handler = answer(*operation.route, body, status)
    client = isolated(
        TensorDockProvider(api_key=KEY, transport=httpx.MockTransport(handler), max_retries=0)
    )
    error: ProviderError | None = None
    with client:
        try:
            result = getattr(client, operation.method)(*operation.args)
        except ProviderError as exc:
            error = exc
    if error is not None:
        refused = error.status_code is not None and 400 <= error.status_code < 500
        unreadable = isinstance(error, (UnexpectedResponseError, ProviderServerError))
        if operation.submits and unreadable and not refused:
            assert error.maybe_submitted, "a launch answer we cannot read may have created it"
        if operation.submits and refused:
            assert not error.maybe_submitted, "a 4xx is the provider's refusal"
        assert KEY not in str(error)
        return error
    assert isinstance(result, operation.result), result
    if isinstance(result, list):
        assert all(isinstance(item, (GPUInstance, GPUOffer)) for item in result)
    return result


# -- every spec-valid answer is handled ---------------------------------------------------------

SPEC_ANSWERS: dict[str, st.SearchStrategy[Any]] = {
    # GET /instances/{id}: the bare form (no `data`), and the wrapped form
    "get": from_schema(schema("InstanceFields")),
    "get_wrapped": st.fixed_dictionaries({"data": from_schema(schema("InstanceFields"))}),
    "locations": from_schema(schema("LocationsResponse")),
    "hostnodes": from_schema(schema("HostnodesResponse")),
    "launch": from_schema(schema("CreateInstanceResponse")),
    "stop": from_schema(schema("InstanceActionResponse")),
    "terminate": from_schema(schema("SuccessResponse")),
}


@SETTINGS
@given(data=st.data())
@pytest.mark.parametrize("name", sorted(SPEC_ANSWERS))
def test_every_spec_valid_answer_is_handled(name: str, data: st.DataObject) -> None:
    body = data.draw(SPEC_ANSWERS[name], label="body")
    result = outcome(name, json.dumps(body).encode())
    assert isinstance(result, OPERATIONS[name].result), result


@SETTINGS
@given(body=from_schema(schema("InstanceListResponse")))
def test_every_spec_valid_list_is_handled(body: Any) -> None:
    result = outcome("list", json.dumps(body).encode())
    data = body["data"]
    listed = "instances" in data or "instances" in (data.get("attributes") or {})
    if listed:
        assert isinstance(result, list), result
    else:  # no list at all: unknown, never "no instances"
        assert isinstance(result, UnexpectedResponseError)


@SETTINGS
@given(
    name=st.sampled_from(NAMES),
    status=st.sampled_from([401, 403, 404, 429, 500, 503]),
    body=from_schema(schema("Error")),
)
def test_spec_valid_error_bodies_are_classified(name: str, status: int, body: Any) -> None:
    error = outcome(name, json.dumps(body).encode(), status)
    if name == "terminate" and status == 404 and mapping.proves_absence(body):
        assert error is None  # the API's own not-found body: already gone
        return
    assert isinstance(error, ProviderError)
    assert error.status_code == status
    expected: type[ProviderError] = {
        401: AuthenticationError,
        403: AuthenticationError,
        429: RateLimitError,
        500: ProviderServerError,
        503: ProviderServerError,
    }.get(
        status, InstanceNotFoundError if mapping.proves_absence(body) else UnexpectedResponseError
    )
    if name == "launch" and status == 404:
        expected = ProviderError  # the API says a location or key is unknown (or a proxy)
    assert isinstance(error, expected)


# -- anything else: a typed result or error -----------------------------------------------------


def _dicts(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found.extend(_dicts(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_dicts(item))
    return found


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_truncated_answers_are_unexpected_responses(name: str, data: st.DataObject) -> None:
    body = json.dumps(OPERATIONS[name].answer()).encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="cut")
    result = outcome(name, body[:cut])
    if name == "terminate":  # the delete answer is not read: its status is the proof
        assert result is None or isinstance(result, UnexpectedResponseError)
    else:
        assert isinstance(result, UnexpectedResponseError)


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_missing_fields_give_a_typed_error_or_a_result(name: str, data: st.DataObject) -> None:
    body = copy.deepcopy(OPERATIONS[name].answer())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="drops")):
        target = data.draw(st.sampled_from(_dicts(body)), label="object")
        if target:
            del target[data.draw(st.sampled_from(sorted(target)), label="field")]
    outcome(name, json.dumps(body).encode())


@SETTINGS
@given(name=st.sampled_from(NAMES), body=JSON)
def test_random_bodies_give_a_typed_error_or_a_result(name: str, body: Any) -> None:
    outcome(name, json.dumps(body).encode())


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_wrong_types_give_a_typed_error_or_a_result(name: str, data: st.DataObject) -> None:
    body = copy.deepcopy(OPERATIONS[name].answer())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="changes")):
        target = data.draw(st.sampled_from(_dicts(body)), label="object")
        if target:
            target[data.draw(st.sampled_from(sorted(target)), label="field")] = data.draw(JSON)
    outcome(name, json.dumps(body).encode())


STANDARD_ERRORS = sorted(s.value for s in HTTPStatus if s.value >= 400)


@SETTINGS
@given(
    name=st.sampled_from(NAMES),
    status=st.sampled_from(STANDARD_ERRORS),
    body=JSON | st.text(max_size=40).map(lambda t: {"text": t}),
)
def test_error_statuses_give_a_provider_error(name: str, status: int, body: Any) -> None:
    error = outcome(name, json.dumps(body).encode(), status)
    if error is None:  # delete: the API's own 404 body says it is gone
        assert (name, status) == ("terminate", 404)
        assert mapping.proves_absence(body)
        return
    assert isinstance(error, ProviderError)
    assert error.status_code == status
    assert error.maybe_submitted == (OPERATIONS[name].submits and status >= 500)


def _with(name: str, path: tuple[Any, ...], value: Any) -> bytes:
    body = copy.deepcopy(OPERATIONS[name].answer())
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("get", ("status",), 5),
        ("get", ("ipAddress",), 7),
        ("get", ("rateHourly",), "cheap"),
        ("get_wrapped", ("data", "portForwards", 0, "external_port"), "22"),
        ("list", ("data", "instances", 0, "attributes", "name"), 5),
        ("locations", ("data", "locations", 0, "gpus", 0, "price_per_hr"), "0.35"),
        ("hostnodes", ("data", "hostnodes", 0, "available_resources", "max_vcpus"), True),
        ("launch", ("data", "id"), 12345),  # after the VM was created
        ("launch", ("data", "id"), ""),
    ],
)
def test_known_wrong_types_give_a_typed_error(name: str, path: tuple[Any, ...], value: Any) -> None:
    error = outcome(name, _with(name, path, value))
    assert isinstance(error, UnexpectedResponseError)
    assert error.maybe_submitted == OPERATIONS[name].submits
