"""Contract: our TensorDock traffic against our own OpenAPI document.

TensorDock publishes no OpenAPI (or other machine-readable) description of its v2 API, so
there is no vendor spec to check against. What is checked instead is our own
``specs/tensordock/openapi.yaml`` (written from the documentation, sources named in its
header, inferred parts marked ``x-inferred``), the document the client is generated from:

* every request in the cassettes, and every request the sync and async clients send while
  running the scenarios (headers included): a described path and method, a body exactly when
  the operation has a ``requestBody`` and valid against it, bearer authentication, JSON
  ``Accept``;
* every response in the cassettes: a 2xx body against the operation's schema; any other
  status against ``components.schemas.Error`` (or a gateway's HTML page for a 502).

A live re-recording (``record --live``) would then check the document against TensorDock.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from gpu_providers.tensordock import AsyncTensorDockProvider, TensorDockProvider
from gpu_providers.tensordock import _mapping as mapping
from tests.providers.cassettes import ROOT, body_text
from tests.providers.paperspace.harness import CASSETTES, iter_exchanges, run_async, run_sync

from .scenarios import SCENARIOS, Scenario

SPEC = ROOT / "specs" / "tensordock" / "openapi.yaml"
DIRECTORY = CASSETTES / "tensordock"
SERVER_PREFIX = "/api/v2"
#: Statuses whose body may be a gateway's page, not the API's JSON.
GATEWAY_PAGES = {502}
#: Operations our client uses: every one must appear in the cassettes.
CLIENT_OPERATIONS = {
    "listLocations",
    "listHostnodes",
    "listInstances",
    "createInstance",
    "getInstance",
    "deleteInstance",
    "startInstance",
    "stopInstance",
}


@dataclass(frozen=True)
class Exchange:
    """A request (and, from a cassette, its response) in a neutral form."""

    where: str
    method: str
    url: str
    headers: dict[str, str]
    body: str
    status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: str | None = None


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    assert loaded["openapi"].startswith("3.0")
    return loaded


def deref(node: Any) -> Any:
    """``node`` with every local ``$ref`` replaced by its target (our spec has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec()
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return deref(target)
        return {key: deref(value) for key, value in node.items()}
    if isinstance(node, list):
        return [deref(item) for item in node]
    return node


@cache
def routes() -> list[tuple[re.Pattern[str], str, str]]:
    found = []
    for template, item in spec()["paths"].items():
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
        for method in item:
            if method in ("get", "put", "post", "delete", "patch"):
                found.append((re.compile(f"^{pattern}$"), method.upper(), template))
    return sorted(found, key=lambda r: (r[2].count("{"), r[2]))


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    assert path.startswith(SERVER_PREFIX + "/"), path
    local = path[len(SERVER_PREFIX) :]
    for pattern, route_method, template in routes():
        if pattern.match(local) and route_method == method:
            return template, deref(spec()["paths"][template][method.lower()])
    raise AssertionError(f"{method} {local} is not an operation of specs/tensordock")


def violations(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def check_request(exchange: Exchange) -> str:
    url = httpx.URL(exchange.url)
    template, op = operation(exchange.method, url.path)
    where = f"{exchange.where}: {exchange.method} {url.path}"
    assert not url.params, f"{where}: no operation here takes query parameters"
    content_type = exchange.headers.get("content-type")
    problems: list[str] = []
    if "requestBody" in op:
        assert content_type == "application/json", f"{where}: content-type {content_type}"
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        problems += violations(schema, json.loads(exchange.body))
    else:
        assert exchange.body == "", f"{where}: a body on an operation without requestBody"
    assert exchange.headers.get("accept") == "application/json", where
    assert not problems, f"{where} ({template}):\n  " + "\n  ".join(problems)
    return str(op["operationId"])


def check_response(exchange: Exchange) -> None:
    url = httpx.URL(exchange.url)
    _, op = operation(exchange.method, url.path)
    assert exchange.status is not None and exchange.response_body is not None
    where = f"{exchange.where}: {exchange.method} {url.path} -> {exchange.status}"
    content_type = (exchange.response_headers or {}).get("content-type", "")
    if exchange.status in GATEWAY_PAGES and not content_type.startswith("application/json"):
        return
    assert content_type.startswith("application/json"), f"{where}: {content_type}"
    if 200 <= exchange.status < 300:
        response = op["responses"].get(str(exchange.status))
        assert response is not None, f"{where}: status not described"
        schema = response["content"]["application/json"]["schema"]
    else:
        schema = deref(spec()["components"]["schemas"]["Error"])
    problems = violations(schema, json.loads(exchange.response_body))
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)


def cassette_exchanges() -> list[Exchange]:
    found = []
    for path in sorted(DIRECTORY.glob("*.yaml")):
        for index, (request, response) in enumerate(iter_exchanges(path)):
            found.append(
                Exchange(
                    where=f"{path.name}#{index}",
                    method=request["method"],
                    url=request["uri"],
                    headers={k.lower(): str(v[0]) for k, v in request["headers"].items()},
                    body=body_text(request),
                    status=int(response["status"]["code"]),
                    response_headers={k.lower(): str(v[0]) for k, v in response["headers"].items()},
                    response_body=body_text(response),
                )
            )
    return found


async def _run_async(scenario: Scenario, options: dict[str, Any]) -> None:
    async with AsyncTensorDockProvider(**options) as client:
        await run_async(client, scenario.script)


def client_exchanges() -> list[Exchange]:
    """The requests both clients send while running every scenario (documented answers)."""
    found: list[Exchange] = []
    for name, scenario in sorted(SCENARIOS.items()):
        for kind in ("sync", "async"):
            responder = scenario.responder()
            options: dict[str, Any] = {
                "api_key": scenario.api_key,
                "transport": responder.transport(),
                **scenario.options,
            }
            if kind == "sync":
                with TensorDockProvider(**options) as client:
                    run_sync(client, scenario.script)
            else:
                asyncio.run(_run_async(scenario, options))
            for index, request in enumerate(responder.requests):
                found.append(
                    Exchange(
                        where=f"{name}/{kind}#{index}",
                        method=request.method,
                        url=str(request.url),
                        headers={k.lower(): v for k, v in request.headers.items()},
                        body=request.content.decode(),
                    )
                )
    return found


def test_cassette_requests_and_responses_follow_our_spec() -> None:
    exchanges = cassette_exchanges()
    assert exchanges
    operations = set()
    for exchange in exchanges:
        operations.add(check_request(exchange))
        check_response(exchange)
    assert operations == CLIENT_OPERATIONS


def test_requests_the_clients_send_follow_our_spec() -> None:
    exchanges = client_exchanges()
    for exchange in exchanges:
        check_request(exchange)
        authorization = exchange.headers.get("authorization", "")
        assert re.fullmatch(r"Bearer \S+", authorization), exchange.where
    assert {e.where.split("/")[1].split("#")[0] for e in exchanges} == {"sync", "async"}


def test_the_spec_names_its_sources_and_marks_what_is_inferred() -> None:
    text = SPEC.read_text(encoding="utf-8")
    header = text.split("\nopenapi:", 1)[0]
    assert "publishes no OpenAPI" in header
    for source in (
        "https://dashboard.tensordock.com/api/docs",
        "apartmentlines/terraform-provider-tensordock",
        "359986dc95972e119a5caaee9d9ce9bc7b8b1f35",
        "api-evangelist/tensordock",
        "v0",
    ):
        assert source in header, source
    schemas = spec()["components"]["schemas"]
    for name in ("InstanceEnvelope", "InstanceListData", "InstanceListItem", "Error"):
        assert schemas[name].get("x-inferred") is True, name
    assert spec()["paths"]["/instances"]["post"]["responses"]["201"]["x-inferred"] is True
    assert spec()["servers"] == [{"url": "https://dashboard.tensordock.com/api/v2"}]


def test_our_state_table_covers_every_status_seen() -> None:
    # FACTS.md: starting, running, stopping, stopped, StoppedDisassociated; the derived
    # spec adds deleting, deleted, error.
    seen = ["starting", "running", "stopping", "stopped", "StoppedDisassociated"]
    seen += ["deleting", "deleted", "error", "Running", "STOPPED", "stopped_disassociated"]
    assert all(mapping.state_of(s).value != "unknown" for s in seen)
    assert mapping.state_of("hibernating").value == "unknown"
