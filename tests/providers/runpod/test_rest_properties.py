"""Property tests of the RunPod REST v2 backend.

* Every answer that is valid against RunPod's *official* REST v2 document is handled: pods,
  pod lists, the GPU catalog and the createPod answer are generated from the document's own
  schemas (a small JSON Schema -> hypothesis translation below), checked valid with
  jsonschema, served, and must map to our types without any error, the same way in the sync
  and the async client.
* Whatever else comes back (random JSON, a documented answer with a part of another shape),
  the client returns a valid result or raises a ``ProviderError``, never a foreign exception.

Without ../shared (the vendor document) the first group skips. Generation is derandomized and
the database is off, so runs are reproducible and leave no files behind.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gpu_providers import GPUFilters, LaunchRequest, create_async_provider, create_provider
from gpu_providers.errors import ProviderError
from gpu_providers.types import GPUInstance, GPUOffer, InstanceStatus

from ..paperspace.harness import FakeTime
from . import documented as G
from . import documented_rest as R
from .test_rest_contract import VENDOR, problems_with, vendor

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

needs_vendor = pytest.mark.skipif(not VENDOR.is_file(), reason=f"{VENDOR} not found")


# -- JSON Schema (the subset RunPod's document uses) -> hypothesis ---------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**vendor()["components"]["schemas"][name], **{
            k: v for k, v in schema.items() if k != "$ref"
        }}  # fmt: skip
    return schema


def _flatten(schema: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` merged into one object schema (properties and required lists)."""
    schema = _resolve(schema)
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in [*schema["allOf"], {k: v for k, v in schema.items() if k != "allOf"}]:
        flat = _flatten(part)
        if len(flat) == 1 and "description" in flat:
            continue
        if "properties" not in flat and "type" in flat and flat.get("type") != "object":
            return flat  # allOf [one scalar schema]: that schema
        merged["properties"].update(flat.get("properties", {}))
        merged["required"] += flat.get("required", [])
        for key in ("additionalProperties", "enum", "type"):
            if key in flat and key not in ("type",):
                merged[key] = flat[key]
    return merged


def strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against ``schema`` (a schema of RunPod's document)."""
    schema = _flatten(schema)
    if "anyOf" in schema or "oneOf" in schema:
        alternatives = schema.get("anyOf") or schema.get("oneOf") or []
        return st.one_of([strategy(alt) for alt in alternatives])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        return st.one_of([strategy({**schema, "type": k}) for k in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**31)), max_value=2**31)
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum"), max_value=1e9, allow_nan=False, allow_infinity=False
        )
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(max_size=16, min_size=schema.get("minLength", 0))
    if kind == "array":
        items = strategy(schema.get("items", {}))
        return st.lists(items, max_size=min(3, schema.get("maxItems", 3)))
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict):
            return st.dictionaries(st.text(max_size=8), strategy(extra), max_size=3)
        return st.fixed_dictionaries(
            {k: strategy(v) for k, v in properties.items() if k in required},
            optional={k: strategy(v) for k, v in properties.items() if k not in required},
        )
    return st.none() | st.booleans() | st.integers() | st.text(max_size=8)


def of(name: str) -> st.SearchStrategy[Any]:
    """Valid values of the document's component schema ``name``, checked with jsonschema."""
    generated = st.deferred(lambda: strategy({"$ref": f"#/components/schemas/{name}"}))
    return generated.filter(lambda v: not problems_with(v, "components", "schemas", name))


# -- driving both clients --------------------------------------------------------------------


def both(handler: Callable[[httpx.Request], httpx.Response], method: str, *args: Any) -> Any:
    """``method`` through the sync and the async REST client; both must end the same way."""
    outcomes = []
    options = {"api_key": "prop-key", "max_retries": 1, "transport": httpx.MockTransport(handler)}
    with FakeTime().attach_sync(create_provider("runpod", api="rest", **options)) as client:
        try:
            outcomes.append(getattr(client, method)(*args))
        except ProviderError as exc:
            outcomes.append(exc)

    async def run() -> Any:
        client = create_async_provider("runpod", api="rest", **options)
        async with FakeTime().attach_async(client) as attached:
            try:
                return await getattr(attached, method)(*args)
            except ProviderError as exc:
                return exc

    outcomes.append(asyncio.run(run()))
    first, second = outcomes
    if isinstance(first, ProviderError):
        assert type(second) is type(first)
    else:
        assert second == first
    return first


def serve(operation: str, status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    """The documented responder, with ``operation`` answering ``body`` (JSON) instead."""
    responder = R.DocumentedRunPodRest()

    def handler(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = responder(request)
        routed = R._route(request)
        if routed and routed[0] == operation:
            return httpx.Response(status, json=body)
        return answer

    return handler


# -- spec-valid answers are handled ----------------------------------------------------------


@needs_vendor
@SETTINGS
@given(pod=of("Pod"))
def test_every_valid_pod_maps_to_a_status(pod: dict[str, Any]) -> None:
    result = both(serve("getPod", 200, pod), "get_instance_status", "anypod")
    assert isinstance(result, InstanceStatus) and result.instance_id == pod["id"]
    assert not result.ready or (result.public_ip and result.ssh_port)


@needs_vendor
@SETTINGS
@given(pods=of("ListPodsResponse"))
def test_every_valid_pod_list_maps(pods: dict[str, Any]) -> None:
    result = both(serve("listPods", 200, pods), "list_instances")
    assert [i.instance_id for i in result] == [p["id"] for p in pods["pods"]]
    assert all(isinstance(i, GPUInstance) for i in result)


@needs_vendor
@SETTINGS
@given(catalog=of("ListGpuTypesResponse"), known=st.booleans())
def test_every_valid_catalog_maps_to_offers(catalog: dict[str, Any], known: bool) -> None:
    if known and catalog["gpus"]:  # one GPU type we know, so offers come out
        catalog["gpus"][0]["id"] = G.H100
    result = both(serve("listGpuTypes", 200, catalog), "list_available_gpus", GPUFilters(
        available_only=False
    ))  # fmt: skip
    assert all(isinstance(o, GPUOffer) and o.price_per_gpu and o.price_per_gpu > 0 for o in result)
    if known and catalog["gpus"]:
        price = catalog["gpus"][0]["price"]
        expected = sum(1 for cloud in ("secure", "community") if price[cloud] > 0)
        assert len(result) == expected


@needs_vendor
@SETTINGS
@given(pod=of("Pod"))
def test_every_valid_create_answer_returns_the_pod(pod: dict[str, Any]) -> None:
    result = both(serve("createPod", 201, pod), "launch_instance", LaunchRequest(gpu_type="H100"))
    if pod["id"]:
        assert isinstance(result, GPUInstance) and result.instance_id == pod["id"]
    else:  # valid upstream (no minLength), but it names nothing: may exist, unknown id
        assert isinstance(result, ProviderError) and result.maybe_submitted


@needs_vendor
@SETTINGS
@given(problem=of("ErrorResponse"), status=st.sampled_from([400, 401, 402, 403, 404, 409, 422]))
def test_every_documented_error_body_is_one_of_ours(problem: dict[str, Any], status: int) -> None:
    problem["status"] = status
    result = both(serve("getPod", status, problem), "get_instance_status", "anypod")
    assert isinstance(result, ProviderError) and result.status_code == status


# -- anything else: a result or our error ----------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

READS: list[tuple[str, str, tuple[Any, ...]]] = [
    ("getPod", "get_instance_status", (R.ID_READY,)),
    ("listPods", "list_instances", ()),
    ("listGpuTypes", "list_available_gpus", (GPUFilters(available_only=False),)),
    ("createPod", "launch_instance", (LaunchRequest(gpu_type="H100"),)),
    ("podAction", "stop_instance", (R.ID_READY,)),
]


@pytest.mark.parametrize(("operation", "method", "args"), READS, ids=[r[1] for r in READS])
@SETTINGS
@given(body=JSON, status=st.sampled_from([200, 201, 400, 404, 500]))
def test_any_answer_is_a_result_or_our_error(
    operation: str, method: str, args: tuple[Any, ...], body: Any, status: int
) -> None:
    both(serve(operation, status, body), method, *args)  # raises if foreign or not in parity


def _documented_pod() -> dict[str, Any]:
    return R.pod(R.ID_READY, "sky-train-1", "RUNNING", G.H100, price=2.99, ssh_port=10341)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@SETTINGS
@given(data=st.data(), replacement=JSON)
def test_a_documented_pod_with_one_part_changed(data: st.DataObject, replacement: Any) -> None:
    pod = _documented_pod()
    path = data.draw(st.sampled_from(_paths(pod)))
    changed = copy.deepcopy(pod)
    target = changed
    for key in path[:-1]:
        target = target[key]
    assume(target[path[-1]] != replacement)
    target[path[-1]] = replacement
    for operation, method in (("getPod", "get_instance_status"), ("createPod", "launch_instance")):
        arg: Any = R.ID_READY if method == "get_instance_status" else LaunchRequest(gpu_type="H100")
        result = both(
            serve(operation, 201 if operation == "createPod" else 200, changed), method, arg
        )
        if operation == "createPod" and isinstance(changed.get("id"), str) and changed["id"]:
            # the id is read first: whatever else is off, the launch names the pod
            assert not isinstance(result, ProviderError) and result.instance_id == changed["id"]


def test_the_documented_pod_is_valid_upstream() -> None:
    if not VENDOR.is_file():
        pytest.skip(f"{VENDOR} not found")
    assert (
        problems_with(json.loads(json.dumps(_documented_pod())), "components", "schemas", "Pod")
        == []
    )
