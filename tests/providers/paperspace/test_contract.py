"""Contract: our Paperspace traffic against the vendor's own OpenAPI 3.0.3 document.

Checked against ``../shared/reference/paperspace/openapi.json`` (skipped when the folder is
absent, see DESIGN.md "References"):

* every request in the cassettes, and every request the sync and async clients send while
  running the scenarios (headers included): a documented path and method, only documented
  query parameters with values of their schema, required ones present, a body exactly when
  the operation has a ``requestBody`` and valid against it, bearer authentication;
* every response in the cassettes: a 200 body against the operation's ``200`` schema, any
  other status against its ``default`` error response.

The vendor's document contradicts itself or the API in a few places; each accepted
deviation is listed in ``DEVIATIONS`` with its reason, and the test fails when a listed
deviation no longer occurs, so the list stays true.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider
from gpu_providers.paperspace import _mapping as M

from ..cassettes import body_text
from .harness import CASSETTES, REFERENCE, iter_exchanges, run_async, run_sync
from .scenarios import SCENARIOS, Scenario

VENDOR_SPEC = REFERENCE / "paperspace" / "openapi.json"
DIRECTORY = CASSETTES / "paperspace"
SERVER_PREFIX = "/v1"  # servers[0].url is https://api.paperspace.com/v1

pytestmark = pytest.mark.skipif(
    not VENDOR_SPEC.is_file(),
    reason=f"the vendor's OpenAPI document is not at {VENDOR_SPEC} (../shared/reference is "
    "only present in the development workspace; see DESIGN.md 'References')",
)

#: (JSON path suffix, schema keyword, instance) -> why we accept a violation of the vendor spec.
DEVIATIONS: dict[tuple[str, str, Any], str] = {
    ("autoSnapshotFrequency", "enum", None): (
        "the vendor declares `nullable: true` on a string enum without listing null (FACTS.md "
        "'Generator check'); a machine with auto-snapshots off has null here. Our spec: P1."
    ),
    ("restorePointFrequency", "enum", None): (
        "same nullable-enum defect as autoSnapshotFrequency (FACTS.md); null when restore "
        "points are off. Our spec: P1."
    ),
    ("defaultSizeGb", "anyOf", None): (
        "the vendor puts `nullable: true` beside an `anyOf` without `type`; OpenAPI 3.0.3 "
        "applies nullable only together with `type`, so a strict validator rejects the null "
        "the vendor means to allow (a template without a default size)."
    ),
    ("nextPage", "type", None): (
        "the vendor's description says nextPage 'is `null` when there is no next page' but "
        "its schema is a non-nullable string (FACTS.md 'Pagination'). Our spec: P2."
    ),
}
#: Statuses whose body is a gateway's page, not the API's error envelope.
GATEWAY_PAGES: dict[int, str] = {
    502: "a 502 comes from the gateway in front of the API, as an HTML page (documented.py)",
}
#: Operations our client uses: every one must appear in the cassettes.
CLIENT_OPERATIONS = {
    "machines-list",
    "machines-get",
    "machines-create",
    "machines-delete",
    "machines-start",
    "machines-stop",
    "machineAvailability-list",
    "osTemplates-list",
    "startupScripts-create",
    "startupScripts-delete",
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
def vendor() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(VENDOR_SPEC.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.0")
    return spec


@cache
def routes() -> list[tuple[re.Pattern[str], str, str]]:
    """(regex, method, template) for every vendor operation, literal paths first."""
    found = []
    for template, item in vendor()["paths"].items():
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
        for method in item:
            if method in ("get", "put", "post", "delete", "patch"):
                found.append((re.compile(f"^{pattern}$"), method.upper(), template))
    return sorted(found, key=lambda r: (r[2].count("{"), r[2]))


def operation(method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The vendor operation (template, object, path parameters) serving ``method path``."""
    assert path.startswith(SERVER_PREFIX + "/"), path
    local = path[len(SERVER_PREFIX) :]
    for pattern, route_method, template in routes():
        match = pattern.match(local)
        if match and route_method == method:
            op = vendor()["paths"][template][method.lower()]
            return template, op, match.groupdict()
    raise AssertionError(f"{method} {local} is not an operation of the vendor's spec")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = vendor()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def violations(schema: dict[str, Any], instance: Any, used: set[tuple[str, str, Any]]) -> list[str]:
    """Schema errors not covered by DEVIATIONS (and record which deviations occurred)."""
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    problems = []
    for error in validator.iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path)
        key = (str(error.absolute_path[-1]) if error.absolute_path else "", str(error.validator))
        deviation = (*key, error.instance if error.instance is None else "<value>")
        if deviation in DEVIATIONS:
            used.add(deviation)
            continue
        problems.append(f"{path or '<root>'}: {error.message}")
    return problems


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def check_request(exchange: Exchange, used: set[tuple[str, str, Any]]) -> str:
    """Problems of one request against the vendor spec (raises); returns the operationId."""
    url = httpx.URL(exchange.url)
    template, op, path_params = operation(exchange.method, url.path)
    where = f"{exchange.where}: {exchange.method} {url.path}"
    params = {p["name"]: p for p in op.get("parameters", [])}
    problems: list[str] = []
    for name, value in path_params.items():
        schema = params[name]["schema"]
        problems += violations(schema, _coerce(value, schema), used)
    query = dict(url.params.multi_items())
    for name, value in query.items():
        if name not in params or params[name]["in"] != "query":
            problems.append(f"query parameter {name!r} is not documented")
            continue
        schema = params[name]["schema"]
        problems += [f"?{name}: {p}" for p in violations(schema, _coerce(value, schema), used)]
    for name, param in params.items():
        if param.get("required") and param["in"] == "query" and name not in query:
            problems.append(f"required query parameter {name!r} missing")
    content_type = exchange.headers.get("content-type")
    if "requestBody" in op:
        body_schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert content_type == "application/json", f"{where}: content-type {content_type}"
        problems += violations(body_schema, json.loads(exchange.body), used)
    else:
        # FACTS.md quirk: start/stop take no body, and a JSON content type breaks them.
        assert exchange.body == "", f"{where}: a body on an operation without requestBody"
        assert content_type is None, f"{where}: content-type {content_type} without a body"
    assert not problems, f"{where} ({template}):\n  " + "\n  ".join(problems)
    return str(op["operationId"])


def check_response(exchange: Exchange, used: set[tuple[str, str, Any]]) -> None:
    url = httpx.URL(exchange.url)
    _, op, _ = operation(exchange.method, url.path)
    assert exchange.status is not None and exchange.response_body is not None
    where = f"{exchange.where}: {exchange.method} {url.path} -> {exchange.status}"
    response = op["responses"].get(str(exchange.status)) or op["responses"].get("default")
    assert response is not None, f"{where}: status not documented"
    response = _resolve(response)
    content_type = (exchange.response_headers or {}).get("content-type", "")
    if exchange.status in GATEWAY_PAGES and not content_type.startswith("application/json"):
        return
    assert content_type.startswith("application/json"), f"{where}: {content_type}"
    schema = response["content"]["application/json"]["schema"]
    problems = violations(schema, json.loads(exchange.response_body), used)
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
    async with AsyncPaperspaceProvider(**options) as client:
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
                with PaperspaceProvider(**options) as client:
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


def test_cassette_requests_and_responses_follow_the_vendor_spec() -> None:
    used: set[tuple[str, str, Any]] = set()
    exchanges = cassette_exchanges()
    assert exchanges
    operations = set()
    for exchange in exchanges:
        operations.add(check_request(exchange, used))
        check_response(exchange, used)
    assert operations == CLIENT_OPERATIONS
    assert used == set(DEVIATIONS), f"deviations no longer seen: {set(DEVIATIONS) - used}"


def test_requests_the_clients_send_follow_the_vendor_spec() -> None:
    used: set[tuple[str, str, Any]] = set()
    exchanges = client_exchanges()
    for exchange in exchanges:
        check_request(exchange, used)
        # securitySchemes.BearerAuth: http bearer
        authorization = exchange.headers.get("authorization", "")
        assert re.fullmatch(r"Bearer \S+", authorization), exchange.where
    assert {e.where.split("/")[1].split("#")[0] for e in exchanges} == {"sync", "async"}


def test_our_state_table_covers_the_vendor_state_enum() -> None:
    machine = vendor()["paths"]["/machines/{id}"]["get"]["responses"]["200"]
    states = machine["content"]["application/json"]["schema"]["properties"]["state"]["enum"]
    assert sorted(states) == sorted(M.STATES)


def test_the_error_envelope_is_what_the_classifier_reads() -> None:
    error = _resolve({"$ref": "#/components/responses/error"})
    schema = error["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"message", "code"}
    assert schema["properties"]["code"]["type"] == "string"
