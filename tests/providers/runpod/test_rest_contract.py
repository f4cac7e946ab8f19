"""Contract tests of the RunPod REST v2 backend against RunPod's *official* REST v2 OpenAPI
document (../shared/reference/runpod/rest-v2-openapi.json, 2.0.0 of 2026-08-18), not our
subset spec: every request we send (in the cassettes and built live by the client for many
launch variants) must match an operation there (method, path, declared query parameters with
valid values, a body valid against its JSON Schema 2020-12, ``unevaluatedProperties`` and
``if``/``then`` included), and every documented answer in the cassettes must be valid against
the response schema of its status.

The document lives outside the repository (DESIGN.md "References"): without it these tests
skip.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from gpu_providers import GPUFilters, LaunchRequest, create_provider

from ..cassettes import body_text
from ..paperspace.harness import REFERENCE, FakeTime, header, iter_exchanges
from . import documented_rest as R
from .scenarios_rest import SCENARIOS
from .test_cassettes_rest import DIRECTORY

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

VENDOR = REFERENCE / "runpod" / "rest-v2-openapi.json"
BASE = "urn:runpod-rest-v2"
METHODS = ("get", "put", "post", "delete", "patch")


@cache
def vendor() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(VENDOR.read_text(encoding="utf-8"))
    return document


@pytest.fixture(autouse=True)
def _needs_the_vendor_document() -> None:
    if not VENDOR.is_file():
        pytest.skip(f"RunPod's REST v2 document not found: {VENDOR}")


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


@cache
def _registry() -> Any:
    from referencing.jsonschema import DRAFT202012

    resource = referencing.Resource.from_contents(vendor(), default_specification=DRAFT202012)
    return referencing.Registry().with_resource(BASE, resource)


def problems_with(value: Any, *location: str) -> list[str]:
    """Why ``value`` is not valid against the schema at ``location`` in the vendor document."""
    schema = {"$ref": f"{BASE}#{_pointer(*location)}"}
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
        for e in validator.iter_errors(value)
    ]


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """(path template, operation) of the vendor document a request is."""
    for template, item in vendor()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of RunPod's REST v2 document")


def _parameters(template: str, method: str, op: dict[str, Any]) -> dict[str, Any]:
    """name -> (parameter, where its schema is in the vendor document) of query parameters."""
    found: dict[str, Any] = {}
    for index, raw in enumerate(op.get("parameters", [])):
        if "$ref" in raw:
            name = raw["$ref"].rsplit("/", 1)[-1]
            param = vendor()["components"]["parameters"][name]
            location: tuple[str, ...] = ("components", "parameters", name, "schema")
        else:
            param = raw
            location = ("paths", template, method, "parameters", str(index), "schema")
        if param["in"] == "query":
            found[param["name"]] = (param, location)
    return found


def _typed(value: str, schema: dict[str, Any], explode: bool) -> Any:
    kind = schema.get("type")
    if kind == "array":  # form style; explode false: comma-separated
        items = value.split(",") if not explode else [value]
        return [_typed(v, schema.get("items", {}), True) for v in items]
    if kind == "integer":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def request_problems(method: str, url: str, body: Any) -> list[str]:
    """Everything about one request that the vendor document does not allow."""
    parts = urlsplit(url)
    template, op = operation(method, parts.path)
    where = op["operationId"]
    found: list[str] = []
    declared = _parameters(template, method.lower(), op)
    sent = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in sent:
        if name not in declared:
            found.append(f"{where}: query parameter {name!r} is not declared")
            continue
        param, location = declared[name]
        explode = param.get("explode", param.get("style", "form") == "form")
        typed = _typed(value, param["schema"], explode)
        found += [f"{where}({name}) {p}" for p in problems_with(typed, *location)]
    names = [n for n, _ in sent]
    for name, (param, _) in declared.items():
        if param.get("required") and name not in names:
            found.append(f"{where}: required query parameter {name!r} missing")
    if len(names) != len(set(names)):
        found.append(f"{where}: a query parameter is repeated (upstream lists are comma-joined)")
    spec_body = op.get("requestBody")
    if spec_body is None:
        if body is not None:
            found.append(f"{where}: sends a body the operation does not take")
    elif body is None:
        if spec_body.get("required"):
            found.append(f"{where}: the required body is missing")
    else:
        location = ("paths", template, method.lower(), "requestBody", "content")
        found += [
            f"{where} body {p}"
            for p in problems_with(body, *location, "application/json", "schema")
        ]
    return found


def response_problems(method: str, url: str, status: int, headers: Any, text: str) -> list[str]:
    """Everything about one documented answer that the vendor document does not allow."""
    template, op = operation(method, urlsplit(url).path)
    responses = op["responses"]
    key = str(status) if str(status) in responses else "default"
    response = responses[key]
    if "$ref" in response:
        response = vendor()["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    content = response.get("content")
    if not content:
        return (
            [] if not text else [f"{op['operationId']} {status}: a body where none is documented"]
        )
    media = (header(headers, "content-type") or "").split(";")[0].strip()
    if media not in content:
        return [f"{op['operationId']} {status}: {media!r} is not one of {sorted(content)}"]
    schema = content[media]["schema"]
    if "$ref" in schema:
        location: tuple[str, ...] = ("components", "schemas", schema["$ref"].rsplit("/", 1)[-1])
    else:
        location = ("paths", template, method.lower(), "responses", key, "content", media, "schema")
    return [f"{op['operationId']} {status} {p}" for p in problems_with(json.loads(text), *location)]


# -- the cassettes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_request_in_the_cassettes_is_valid_upstream(name: str) -> None:
    for request, _ in iter_exchanges(DIRECTORY / f"{name}.yaml"):
        text = body_text(request)
        body = json.loads(text) if text else None
        assert request_problems(request["method"], request["uri"], body) == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_documented_answer_is_valid_upstream(name: str) -> None:
    for request, response in iter_exchanges(DIRECTORY / f"{name}.yaml"):
        if header(response["headers"], R.DOCUMENTED_HEADER) != R.DOCUMENTED_VALUE:
            continue  # recorded live: whatever RunPod said
        media = header(response["headers"], "content-type") or ""
        if media.startswith("text/html"):
            continue  # a gateway's page, not RunPod's answer
        status = int(response["status"]["code"])
        problems = response_problems(
            request["method"], request["uri"], status, response["headers"], body_text(response)
        )
        assert problems == []


# -- every request the client builds --------------------------------------------------------

LAUNCHES = [
    LaunchRequest(gpu_type="H100", name="plain"),
    LaunchRequest(gpu_type="H100"),  # no name: REST v2 requires one
    LaunchRequest(gpu_type="A100-80GB", name="dc", region="US-TX-3", gpu_count=2),
    LaunchRequest(gpu_type="H100", name="country", region="us-west"),
    LaunchRequest(
        gpu_type="H100",
        name="work",
        env={"A": "1", "B": "two words"},
        ssh_public_key="ssh-ed25519 AAAA contract",
        startup_script="#!/bin/bash\necho 'it works' > /tmp/x\n",
        image="ubuntu:22.04",
        disk_gb=80,
        min_cuda_version="12.8",
    ),
]


def _client(responder: R.DocumentedRunPodRest) -> Any:
    client = create_provider(
        "runpod", api="rest", api_key="contract-key", transport=responder.transport()
    )
    return FakeTime().attach_sync(client)


def _check_all(responder: R.DocumentedRunPodRest) -> None:
    assert responder.requests
    for request in responder.requests:
        body = json.loads(request.content) if request.content else None
        assert request_problems(request.method, str(request.url), body) == [], request.url


@pytest.mark.parametrize("request_", LAUNCHES, ids=lambda r: r.name or "no-name")
def test_every_launch_request_is_valid_upstream(request_: LaunchRequest) -> None:
    responder = R.DocumentedRunPodRest()
    with _client(responder) as client:
        launched = client.launch_instance(request_)
        client.wait_until_ready(launched.instance_id)
        client.stop_instance(launched.instance_id)
        client.start_instance(launched.instance_id)
        client.terminate_instance(launched.instance_id)
    assert any(r.method == "POST" and r.url.path == "/v2/pods" for r in responder.requests)
    _check_all(responder)


def test_every_read_request_is_valid_upstream() -> None:
    responder = R.DocumentedRunPodRest()
    with _client(responder) as client:
        client.list_available_gpus(GPUFilters(regions=["US", "EU-RO-1"], min_gpu_count=2))
        client.get_normalized_pricing("A100-80GB", region="CA")
        client.list_instances("sky-")
        client.get_instance_status(R.ID_READY)
    _check_all(responder)


def test_the_check_can_fail() -> None:
    # What REST v2 does not have is refused by the official schema (so the checks above bite).
    spot = {"name": "x", "image": "ubuntu", "gpu": {"id": "NVIDIA H100 80GB HBM3"}, "bidPerGpu": 1}
    assert request_problems("POST", f"{R.API}/v2/pods", spot)
    assert request_problems("POST", f"{R.API}/v2/pods", {"name": "x", "gpu": {"id": "g"}})
    assert request_problems("GET", f"{R.API}/v2/pods?apiKey=nope", None)
    with pytest.raises(AssertionError, match="not an operation"):
        request_problems("GET", f"{R.API}/v2/gpus", None)
    pod = httpx.Response(200, json={"id": "x"}).text
    assert response_problems("GET", f"{R.API}/v2/pods/x", 200, {}, pod)
