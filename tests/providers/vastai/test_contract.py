"""Contract: our Vast.ai traffic against the vendor's official OpenAPI 3.1 document.

Every request in cassettes/vastai/, and every request the sync and the async client send while
running the scenarios and a set of launch options, must be an operation of the vendor spec
(method + path, path and query parameters valid) with a JSON body valid for the operation's
requestBody schema and bearer authentication (offer search may be anonymous); never the
legacy ``api_key`` query parameter. Every recorded response must have a documented status
and a body valid for that status's schema.

The vendor document (``../shared/reference/vastai/openapi.yaml``) is OpenAPI 3.1: its schemas
are validated with openapi-schema-validator's ``OAS31Validator``, ``$ref``s resolved through a
``referencing`` registry. Without ../shared/reference these tests skip, saying so.

Deliberate differences are listed in ``DEVIATIONS`` with their reason (the same as V1-V5 of
specs/vastai/openapi.yaml and PROVENANCE.md); everything else must validate, and every
deviation must still be needed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gpu_providers import LaunchRequest, create_async_provider, create_provider
from tests.providers.cassettes import body_json, body_text, load_interactions

from . import documented as D
from .record import DIRECTORY, client_options
from .scenarios import RECORDING_KEY, SCENARIOS, run_async, run_sync

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"
SPEC_PATH = REFERENCE / "vastai" / "openapi.yaml"
SPEC_URI = "urn:vastai-api:1.0.0"
CASSETTE_PATHS = sorted(DIRECTORY.glob("*.yaml"))


@lru_cache(maxsize=1)
def _load() -> dict[str, Any] | None:
    if not SPEC_PATH.is_file():
        return None
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def vendor_spec() -> dict[str, Any]:
    """The vendor's OpenAPI document, or skip the test (saying where it looked)."""
    spec = _load()
    if spec is None:
        pytest.skip(
            f"Vast.ai's vendor spec is not available at {SPEC_PATH.resolve()} "
            "(../shared/reference is only present in CI and the development workspace)"
        )
    return spec


@dataclass(frozen=True)
class Finding:
    """One way an exchange departs from the vendor document."""

    where: str
    side: str  # "request" or "response"
    kind: str  # "schema" | "status" | "operation" | "parameter" | "body" | "auth" | "path"
    detail: str
    operation: str | None = None
    status: int | None = None
    error: Any = None

    def __str__(self) -> str:
        return f"{self.where} {self.side}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Deviation:
    """A documented, deliberate difference from the vendor's document."""

    name: str
    reason: str
    matches: Callable[[Finding], bool]


def _schema_error(finding: Finding, operation: str, path: tuple[Any, ...], validator: str) -> bool:
    error = finding.error
    return (
        finding.kind == "schema"
        and finding.operation == operation
        and error is not None
        and tuple(error.absolute_path) == path
        and error.validator == validator
    )


DEVIATIONS = (
    Deviation(
        "trailing-slash (V1)",
        "the vendor's CLI and SDK call every path with a trailing slash; the spec has none",
        lambda f: f.kind == "path",
    ),
    Deviation(
        "env-object (V2)",
        "createInstance env is typed string (Docker flags) upstream; the CLI and dstack send "
        "an object, and so do we",
        lambda f: _schema_error(f, "createInstance", ("env",), "type"),
    ),
    Deviation(
        "instances-null (V3)",
        "showInstance answers {'instances': null} for an id the account does not have "
        "(dstack reads it so); the spec has the Instance object only",
        lambda f: (
            _schema_error(f, "showInstance", ("instances",), "type") and f.error.instance is None
        ),
    ),
    Deviation(
        "search-429-text",
        "searchOffers documents no 429; FACTS.md: a limited call answers plain text "
        "'API requests too frequent' without Retry-After",
        lambda f: f.kind == "status" and f.operation == "searchOffers" and f.status == 429,
    ),
    Deviation(
        "create-402-credit",
        "createInstance documents no credit error; launch_no_credit.yaml answers 402 with "
        "the spec's insufficient_balance body (transferCredit)",
        lambda f: f.kind == "status" and f.operation == "createInstance" and f.status == 402,
    ),
)


@lru_cache(maxsize=1)
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(
        vendor_spec(), default_specification=DRAFT202012
    )
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def _validator(*parts: str) -> Any:
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
    return OAS31Validator(
        {"$ref": f"{SPEC_URI}#/{quote(escaped, safe='/~')}"},
        registry=_registry(),
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    spec: dict[str, Any]
    params: dict[tuple[str, str], dict[str, Any]]


def _operations() -> list[Operation]:
    found = []
    for path, item in vendor_spec()["paths"].items():
        for method, spec in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                params = {(p["in"], p["name"]): p for p in spec.get("parameters", [])}
                found.append(Operation(path, method, spec, params))
    return found


def find_operation(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The vendor operation for a request (literal paths win over templated ones)."""
    candidates = [o for o in _operations() if o.method == method.lower()]
    for operation in sorted(candidates, key=lambda o: "{" in o.path):
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(operation.path))
        match = re.match(f"^{pattern}$", path)
        if match:
            return operation, match.groupdict()
    return None


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    if schema.get("type") == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _schema_findings(
    where: str, side: str, validator: Any, instance: Any, operation: str, **extra: Any
) -> Iterator[Finding]:
    for error in validator.iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path)
        yield Finding(
            where, side, "schema", f"at /{path}: {error.message}", operation, error=error, **extra
        )


def _lookup(where: str, method: str, uri: str) -> tuple[Operation, dict[str, str], list[Finding]]:
    path = urlsplit(uri).path
    findings = []
    if path.endswith("/"):
        findings.append(Finding(where, "request", "path", f"{path} (trailing slash)"))
        path = path.rstrip("/")
    found = find_operation(method, path)
    if found is None:
        raise AssertionError(f"{where}: {method} {path} is not an operation of the vendor spec")
    return found[0], found[1], findings


def check_request(
    where: str, method: str, uri: str, headers: dict[str, str], body: str, *, auth: bool = True
) -> list[Finding]:
    operation, path_values, findings = _lookup(where, method, uri)
    name = operation.spec["operationId"]
    for key, value in path_values.items():
        schema = operation.params[("path", key)]["schema"]
        findings += _schema_findings(
            where, "request", OAS31Validator(schema), _coerce(value, schema), name
        )
    for key, value in parse_qsl(urlsplit(uri).query, keep_blank_values=True):
        assert key != "api_key", f"{where}: the key travels in the URL"
        param = operation.params.get(("query", key))
        if param is None:
            findings.append(Finding(where, "request", "parameter", f"{key} undocumented", name))
            continue
        findings += _schema_findings(
            where, "request", OAS31Validator(param["schema"]), _coerce(value, param["schema"]), name
        )
    authorization = headers.get("authorization")
    needs_auth = auth and (authorization is not None or name != "searchOffers")
    if needs_auth and not re.fullmatch(r"Bearer \S+", authorization or ""):
        findings.append(Finding(where, "request", "auth", "no bearer token", name))
    request_body = operation.spec.get("requestBody")
    if request_body is None:
        if body:
            findings.append(Finding(where, "request", "body", "a body on a bodiless call", name))
        return findings
    if headers.get("content-type") != "application/json":
        findings.append(Finding(where, "request", "body", "not JSON", name))
        return findings
    validator = _validator(
        "paths", operation.path, operation.method, "requestBody", "content",
        "application/json", "schema",
    )  # fmt: skip
    findings += _schema_findings(where, "request", validator, body_json({"body": body}), name)
    return findings


def check_response(
    where: str, method: str, uri: str, status: int, headers: dict[str, str], body: str
) -> list[Finding]:
    operation, _, _ = _lookup(where, method, uri)
    name = operation.spec["operationId"]
    responses = operation.spec["responses"]
    if str(status) not in responses:
        return [Finding(where, "response", "status", f"HTTP {status}", name, status)]
    content = responses[str(status)].get("content", {})
    if "application/json" not in content:
        return []
    if "application/json" not in headers.get("content-type", ""):
        return [Finding(where, "response", "body", "not JSON", name, status)]
    validator = _validator(
        "paths", operation.path, operation.method, "responses", str(status), "content",
        "application/json", "schema",
    )  # fmt: skip
    parsed = body_json({"body": body})
    return list(_schema_findings(where, "response", validator, parsed, name, status=status))


def _headers(part: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): str(v[0]) for k, v in (part.get("headers") or {}).items()}


def cassette_findings(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    for index, interaction in enumerate(load_interactions(path)):
        request, response = interaction["request"], interaction["response"]
        where = f"{path.name}#{index}"
        # Cassettes never keep the Authorization header: auth is checked on live requests.
        findings += check_request(
            where,
            request["method"],
            request["uri"],
            _headers(request),
            body_text(request),
            auth=False,
        )
        findings += check_response(
            where,
            request["method"],
            request["uri"],
            int(response["status"]["code"]),
            _headers(response),
            body_text(response),
        )
    return findings


def _unexplained(findings: list[Finding]) -> list[str]:
    return [str(f) for f in findings if not any(d.matches(f) for d in DEVIATIONS)]


def _sent_findings(requests: list[httpx.Request], label: str) -> list[str]:
    findings: list[Finding] = []
    for index, request in enumerate(requests):
        headers = {k.lower(): v for k, v in request.headers.items()}
        # Cassettes drop the key; here the client's real header is checked too.
        findings += check_request(
            f"{label}#{index}", request.method, str(request.url), headers, request.content.decode()
        )
    return _unexplained(findings)


# -- tests ----------------------------------------------------------------------------------


def test_the_vendor_document_is_vastai_1_0_0() -> None:
    spec = vendor_spec()
    assert (spec["openapi"], spec["info"]["title"], spec["info"]["version"]) == (
        "3.1.0",
        "Vast.ai API",
        "1.0.0",
    )


@pytest.mark.parametrize("path", CASSETTE_PATHS, ids=[p.stem for p in CASSETTE_PATHS])
def test_cassette_matches_the_vendor_spec(path: Path) -> None:
    vendor_spec()
    assert _unexplained(cassette_findings(path)) == []


def test_every_deviation_is_still_needed() -> None:
    vendor_spec()
    findings = [f for p in CASSETTE_PATHS for f in cassette_findings(p)]
    unused = [d.name for d in DEVIATIONS if not any(d.matches(f) for f in findings)]
    assert unused == [], "remove deviations the cassettes no longer need"


def test_the_cassettes_use_every_operation_of_our_spec() -> None:
    vendor_spec()
    used = set()
    for path in CASSETTE_PATHS:
        for interaction in load_interactions(path):
            request = interaction["request"]
            used.add(_lookup("x", request["method"], request["uri"])[0].spec["operationId"])
    assert used == {
        "searchOffers",
        "createInstance",
        "showInstance",
        "showInstances",
        "manageInstance",
        "destroyInstance",
    }


def test_the_checker_rejects_what_the_vendor_rejects() -> None:
    """Spot checks that the validation is real (so an empty finding list means something)."""
    vendor_spec()
    json_headers = {"content-type": "application/json", "authorization": "Bearer k"}
    create = f"{D.BASE_URL}/api/v0/asks/4000101/"
    assert _unexplained(check_request("x", "PUT", create, json_headers, '{"disk": 10}'))  # image
    assert _unexplained(
        check_request("x", "PUT", create, json_headers, '{"image": "i", "runtype": "vnc"}')
    )
    search = f"{D.BASE_URL}/api/v0/bundles/"
    assert _unexplained(check_request("x", "POST", search, json_headers, '{"type": "spot"}'))
    assert _unexplained(check_request("x", "POST", search, json_headers, '{"order": [["x"]]}'))
    instance = f"{D.BASE_URL}/api/v0/instances/12/"
    assert _unexplained(check_request("x", "GET", instance, {}, ""))  # no bearer token
    assert _unexplained(check_response("x", "GET", instance, 200, json_headers, '{"instances": 7}'))
    assert _unexplained(check_response("x", "DELETE", instance, 418, json_headers, ""))
    with pytest.raises(AssertionError, match="not an operation"):
        check_request("x", "GET", f"{D.BASE_URL}/api/v0/nope/", {}, "")


def test_every_scenario_request_matches_the_vendor_spec() -> None:
    """What the sync and the async client send today (not only what the cassettes hold)."""
    vendor_spec()
    problems: list[str] = []
    for name, each in SCENARIOS.items():
        for kind in ("sync", "async"):
            responder = each.responder()
            options = {
                "transport": httpx.MockTransport(responder),
                **client_options(each, each.api_key),
            }
            if kind == "sync":
                with create_provider("vastai", **options) as client:
                    run_sync(client, each)
            else:

                async def main(options: dict[str, Any] = options, scenario: Any = each) -> None:
                    async with create_async_provider("vastai", **options) as client:
                        await run_async(client, scenario)

                asyncio.run(main())
            problems += _sent_findings(responder.requests, f"{name}/{kind}")
    assert problems == []


@pytest.mark.parametrize(
    "request_fields",
    [
        {},
        {"image": "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime", "disk_gb": 64},
        {"spot": True, "bid_price": 0.3},
        {"spot": True},
        {"region": "NO", "min_cuda_version": "12.2"},
        {"name": "n" * 64, "env": {"HF_HOME": "/workspace/hf", "MODEL": "llama"}},
        {"startup_script": "#!/usr/bin/env python3\nprint('hi')\n" * 20},
    ],
    ids=["defaults", "image-disk", "bid", "min-bid", "region-cuda", "name-env", "long-script"],
)
def test_launch_options_match_the_vendor_schema(request_fields: dict[str, Any]) -> None:
    vendor_spec()
    responder = D.DocumentedVast()
    request = LaunchRequest(gpu_type="RTX4090", **request_fields)
    with create_provider(
        "vastai", api_key=RECORDING_KEY, transport=httpx.MockTransport(responder)
    ) as client:
        client.launch_instance(request)
    assert [r.method for r in responder.requests] == ["POST", "PUT", "GET"]
    assert _sent_findings(responder.requests, "launch") == []


def test_without_the_reference_folder_the_contract_tests_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "SPEC_PATH", tmp_path / "no.yaml")
    _load.cache_clear()
    try:
        with pytest.raises(pytest.skip.Exception, match=r"vendor spec is not available at .*"):
            vendor_spec()
    finally:
        monkeypatch.undo()
        _load.cache_clear()
