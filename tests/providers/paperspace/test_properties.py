"""Property tests: whatever Paperspace sends, the client ends in a typed result or error.

Each operation gets a documented answer that hypothesis then breaks: truncates its bytes,
drops fields, replaces values by random JSON, or replaces the whole body; error statuses get
random bodies. The client must return a valid result or raise a ``ProviderError`` subclass,
never a bare ``KeyError``/``TypeError``/``AttributeError``/``ValueError`` or a pydantic
``ValidationError``. A launch answer that cannot be read must say that the machine may exist.
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

from gpu_providers import (
    GPUFilters,
    GPUInstance,
    GPUOffer,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
)
from gpu_providers.errors import ProviderError, ProviderServerError, UnexpectedResponseError
from gpu_providers.paperspace import PaperspaceProvider
from tests.providers.timekeeping import isolated

from . import documented as D

KEY = "SENTINEL-paperspace-property-key-0b3a"
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

READY = D.machine(D.ID_READY, "sky-ready-1", "ready", "A6000", "ny2", public_ip="203.0.113.10")
LAUNCH = LaunchRequest(gpu_type="A6000", name="prop", region="ca1", image="tkni3aa4")
LAST_PAGE: dict[str, Any] = {"hasMore": False, "nextPage": None, "items": []}


@dataclass(frozen=True)
class Operation:
    method: str
    args: tuple[Any, ...]
    answer: Callable[[], Any]  # the documented body of the (first) request
    result: type | tuple[type, ...]
    submits: bool = False


OPERATIONS: dict[str, Operation] = {
    "get": Operation("get_instance_status", (D.ID_READY,), lambda: READY, InstanceStatus),
    "list": Operation(
        "list_instances",
        (),
        lambda: {"hasMore": False, "nextPage": None, "items": [READY]},
        list,
    ),
    "offers": Operation(
        "list_available_gpus",
        (GPUFilters(available_only=False),),
        lambda: {"hasMore": False, "items": D.os_templates()},
        list,
    ),
    "availability": Operation(
        "is_available", ("A6000", 1, "ca1"), lambda: {"available": True}, bool
    ),
    "launch": Operation(
        "launch_instance",
        (LAUNCH,),
        lambda: {
            "event": D.event("create", "psnew0f6", "evt1"),
            "data": dict(READY, id="psnew0f6"),
        },
        GPUInstance,
        submits=True,
    ),
    "stop": Operation(
        "stop_instance",
        (D.ID_READY,),
        lambda: {"event": D.event("stop", D.ID_READY, "evt2"), "data": READY},
        GPUInstance,
    ),
}
NAMES = sorted(OPERATIONS)


def outcome(name: str, body: bytes, status: int = 200) -> Any:
    """The result or ``ProviderError`` of operation ``name`` answered ``status``/``body``."""
    operation = OPERATIONS[name]
    served: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        served.append(request)
        if len(served) == 1:
            headers = {"content-type": "application/json"}
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(200, json=LAST_PAGE)  # a fuzzed page asked for more: end it

    client = isolated(
        PaperspaceProvider(api_key=KEY, transport=httpx.MockTransport(answer), max_retries=0)
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


def _dicts(value: Any) -> list[dict[str, Any]]:
    """Every JSON object inside ``value`` (itself included)."""
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
    assert isinstance(outcome(name, body[:cut]), UnexpectedResponseError)


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


STANDARD_ERRORS = sorted(s.value for s in HTTPStatus if s.value >= 400)


@SETTINGS
@given(
    name=st.sampled_from(NAMES),
    status=st.sampled_from(STANDARD_ERRORS),
    body=JSON | st.text(max_size=40).map(lambda t: {"text": t}),
)
def test_error_statuses_give_a_provider_error(name: str, status: int, body: Any) -> None:
    error = outcome(name, json.dumps(body).encode(), status)
    assert isinstance(error, ProviderError)
    assert error.status_code == status
    assert error.maybe_submitted == (OPERATIONS[name].submits and status >= 500)


# -- values of the wrong type inside otherwise well-formed answers -----------------------------

# Mapping code reads these values after the generated from_dict (attrs, no type checks) has
# accepted them; the drivers turn what it trips over into UnexpectedResponseError (with
# maybe_submitted after a launch). These tests keep it that way.


@SETTINGS
@given(name=st.sampled_from(NAMES), data=st.data())
def test_wrong_types_give_a_typed_error_or_a_result(name: str, data: st.DataObject) -> None:
    body = copy.deepcopy(OPERATIONS[name].answer())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="changes")):
        target = data.draw(st.sampled_from(_dicts(body)), label="object")
        if target:
            target[data.draw(st.sampled_from(sorted(target)), label="field")] = data.draw(JSON)
    outcome(name, json.dumps(body).encode())


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
        ("get", ("state",), 5),  # ValidationError building InstanceStatus
        ("get", ("publicIp",), 7),
        ("list", ("items", 0, "machineType"), 5),  # AttributeError in gpu_of_machine_type
        ("list", ("items", 0, "name"), 5),  # ValidationError building GPUInstance
        ("list", ("items", 0, "usageRate"), "cheap"),
        ("offers", ("items", 0, "availableMachineTypes", 0, "machineTypeLabel"), 7),
    ],
)
def test_known_wrong_types_give_a_typed_error(name: str, path: tuple[Any, ...], value: Any) -> None:
    error = outcome(name, _with(name, path, value))
    assert isinstance(error, UnexpectedResponseError)
    assert error.maybe_submitted == OPERATIONS[name].submits


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("data", "machineType"), ["A6000"]),  # maps badly after the machine was created
        (("data", "dtCreated"), "yesterday"),  # the generated parser fails on it
    ],
)
def test_a_launch_answer_of_the_wrong_types_still_names_the_machine(
    path: tuple[Any, ...], value: Any
) -> None:
    # The machine exists and bills: its id is read from the raw answer, it comes back pending.
    body = copy.deepcopy(OPERATIONS["launch"].answer())
    instance = outcome("launch", _with("launch", path, value))
    assert isinstance(instance, GPUInstance)
    assert (instance.instance_id, instance.state) == (body["data"]["id"], InstanceState.PENDING)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("get", ("dtCreated",), "yesterday"),  # parsed inside the generated code: caught
        ("get", ("region",), None),
        ("list", ("items",), {"not": "a list"}),
        ("offers", ("items", 0, "availableMachineTypes"), None),
        ("availability", ("available",), None),
    ],
)
def test_wrong_types_the_generated_code_reads_are_typed_errors(
    name: str, path: tuple[Any, ...], value: Any
) -> None:
    result = outcome(name, _with(name, path, value))
    assert isinstance(result, (ProviderError, OPERATIONS[name].result))
