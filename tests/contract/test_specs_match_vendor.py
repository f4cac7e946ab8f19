"""Our OpenAPI specs (specs/<provider>/openapi.yaml) against the vendors' own documents.

Every operation we keep must exist upstream (same path, method, operationId and parameters),
and every schema property we keep must have the upstream type: same `type`, `format`, `enum`,
`const`, `nullable`, `required`, item and union types. The only differences allowed are the
relaxations listed in RELAXATIONS below, each documented at the top of its spec file; the test
also fails when a listed relaxation is no longer used, so the list stays true.

The vendor documents live outside the repository, in ../shared/reference (see DESIGN.md); the
tests skip when that folder is absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parents[2].parent / "shared" / "reference"

#: provider -> (our spec, vendor document under REFERENCE)
SPECS = {
    "lambda": (ROOT / "specs" / "lambda" / "openapi.yaml", "lambda/openapi-1.8.3.json"),
    "paperspace": (ROOT / "specs" / "paperspace" / "openapi.yaml", "paperspace/openapi.json"),
    "runpod-rest": (ROOT / "specs" / "runpod-rest" / "openapi.yaml", "runpod/rest-v2-openapi.json"),
    "vastai": (ROOT / "specs" / "vastai" / "openapi.yaml", "vastai/openapi.yaml"),
}

#: Documented differences, keyed by location. A location is the name of our component schema,
#: or "<Component>.<property>". Kinds:
#:   "open-enum"       upstream has a closed string `enum`, ours accepts any string;
#:   "nullable-added"  upstream is not nullable, ours is (the value really is null sometimes);
#:   "format-dropped"  upstream has a `format` (date-time), ours is the plain type;
#:   "null-allowed"    ours is anyOf [upstream schema, {type: "null"}] (OpenAPI 3.1 form);
#:   "object-for-string" upstream types a string, the vendor's own clients send an object;
#:   "free-form"       ours is one `additionalProperties: true` object for upstream's fields.
RELAXATIONS: dict[str, dict[str, str]] = {
    "lambda": {
        "PublicRegionCode": "open-enum",  # R1
        "InstanceStatus": "open-enum",  # R2
    },
    "paperspace": {
        "MachineList.nextPage": "nullable-added",  # P2
        "OsTemplateList.nextPage": "nullable-added",  # P2
        "Machine.state": "open-enum",  # P3
        "MachineEvent.name": "open-enum",  # P4
        "MachineEvent.state": "open-enum",  # P4
    },
    "runpod-rest": {
        "PodStatus": "open-enum",  # D1
        "Pod.actions[]": "open-enum",  # D2
        "Pod.cloud": "open-enum",  # D3
        "GpuManufacturer": "open-enum",  # D4
        "AvailabilityLevel": "open-enum",  # D4
        "PodClusterRole": "open-enum",  # D4
        "Pod.createdAt": "format-dropped",  # D5
        "Pod.startedAt": "format-dropped",  # D5
    },
    "vastai": {
        "CreateInstanceRequest.env": "object-for-string",  # V2
        "showInstance 200.instances": "null-allowed",  # V3
        "OfferQuery": "free-form",  # V4
    },
}

#: Schemas only we define, accepted as the LAST alternative of an upstream union (or turning a
#: single upstream schema into a union with it): lambda R3, the generic error envelope.
FALLBACK_REFS: dict[str, set[str]] = {
    "lambda": {"#/components/schemas/ApiError"},
    "paperspace": set(),
    "runpod-rest": set(),
    "vastai": set(),
}

#: Responses we deliberately do not declare (paperspace P5: `default` error responses).
OMITTED_RESPONSES: dict[str, set[str]] = {
    "lambda": set(),
    "paperspace": {"default"},
    # runpod-rest D7: RFC 9457 problem answers are classified from the raw status and body.
    "runpod-rest": {"400", "401", "403", "404", "409", "422", "429", "default"},
    "vastai": {"400", "401", "403", "404", "410", "429"},  # V5: error bodies vary
}
#: Providers whose spec writes every path with a trailing slash (vastai V1: the form the
#: vendor's CLI calls); compared without it.
TRAILING_SLASH = {"vastai"}

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# Keywords that make up a schema's type; annotations (description, examples, default,
# minLength, pattern, ...) are not compared.
TYPE_KEYS = ("type", "format", "const", "nullable")


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _parameter(doc: dict[str, Any], parameter: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in parameter:
        found: dict[str, Any] = doc["components"]["parameters"][parameter["$ref"].rsplit("/")[-1]]
        return found
    return parameter


def _operations(doc: dict[str, Any], provider: str = "") -> dict[tuple[str, str], dict[str, Any]]:
    strip = provider in TRAILING_SLASH
    return {
        (path.rstrip("/") if strip else path, method): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


@dataclass
class Comparison:
    """Walks one of our schemas and the vendor's side by side, collecting mismatches."""

    provider: str
    ours: dict[str, Any]
    vendor: dict[str, Any]
    problems: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)

    def _resolve(self, doc: dict[str, Any], schema: Any, where: str) -> tuple[dict[str, Any], str]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/components/schemas/"), ref
            where = ref.rsplit("/", 1)[-1] if doc is self.ours else where
            schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
            seen += 1
            assert seen < 20, f"$ref loop at {where}"
        assert isinstance(schema, dict), where
        return schema, where

    def _normalize(
        self, doc: dict[str, Any], schema: dict[str, Any], where: str
    ) -> tuple[dict[str, Any], str]:
        """`{nullable: true, anyOf: [X]}` means X with `nullable: true` (not a difference);
        `allOf` (OpenAPI 3.1 composition, runpod-rest) is compared as its merged object."""
        schema, where = self._resolve(doc, schema, where)
        if "allOf" in schema:
            return self._merged(doc, schema, where)
        alternatives = schema.get("anyOf")
        if (
            isinstance(alternatives, list)
            and len(alternatives) == 1
            and set(schema) <= {"anyOf", "nullable", "description"}
        ):
            inner, where = self._resolve(doc, alternatives[0], where)
            merged = dict(inner)
            if schema.get("nullable"):
                merged["nullable"] = True
            return merged, where
        return schema, where

    def _merged(
        self, doc: dict[str, Any], schema: dict[str, Any], where: str
    ) -> tuple[dict[str, Any], str]:
        """One schema for `allOf`: a single member as itself (and named as it), members with
        properties as one object (properties and required lists merged)."""
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        parts = [self._normalize(doc, part, where) for part in schema["allOf"]]
        if len(parts) == 1 and "properties" not in rest:
            only, named = parts[0]
            return {**only, **{k: v for k, v in rest.items() if k in TYPE_KEYS}}, named
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in [*(p for p, _ in parts), rest]:
            merged["properties"].update(part.get("properties") or {})
            merged["required"] += part.get("required") or []
        return merged, where

    def compare(self, ours: Any, vendor: Any, where: str) -> None:
        o, where = self._normalize(self.ours, ours, where)
        v, _ = self._normalize(self.vendor, vendor, where)
        special = RELAXATIONS[self.provider].get(where)
        if special == "null-allowed":
            self.used.add(where)
            others = [a for a in o.get("anyOf") or [] if a != {"type": "null"}]
            if len(others) != 1 or len(o["anyOf"]) != 2:
                self.problems.add(f"{where}: listed as null-allowed but is not anyOf[X, null]")
                return
            self.compare(others[0], vendor, f"{where}!")
            return
        if special == "object-for-string":
            self.used.add(where)
            if v.get("type") != "string" or o.get("type") != "object":
                self.problems.add(f"{where}: listed as object-for-string but is not")
            return
        if special == "free-form":
            self.used.add(where)
            if o.get("additionalProperties") is not True or o.get("properties"):
                self.problems.add(f"{where}: listed as free-form but has properties")
            if v.get("type") != "object" or o.get("type") != "object":
                self.problems.add(f"{where}: listed as free-form but is not an object")
            return
        alternatives = o.get("anyOf")
        if alternatives and alternatives[-1].get("$ref") in FALLBACK_REFS[self.provider]:
            self.used.add(alternatives[-1]["$ref"])
            rest = alternatives[:-1]
            if len(rest) == 1 and "anyOf" not in v:  # ours: anyOf[upstream schema, fallback]
                self.compare(rest[0], vendor, where)
                return
            o = {**o, "anyOf": rest}
        relaxation = RELAXATIONS[self.provider].get(where)
        v = dict(v)
        if relaxation == "open-enum":
            self.used.add(where)
            if not (v.get("type") == "string" and v.pop("enum", None) and "enum" not in o):
                self.problems.add(f"{where}: listed as open-enum but upstream has no enum")
        elif relaxation == "format-dropped":
            self.used.add(where)
            if not v.pop("format", None) or "format" in o:
                self.problems.add(f"{where}: listed as format-dropped but is not")
        elif relaxation == "nullable-added":
            self.used.add(where)
            if v.get("nullable") or not o.get("nullable"):
                self.problems.add(f"{where}: listed as nullable-added but is not")
            v["nullable"] = True

        for key in TYPE_KEYS:
            if o.get(key) != v.get(key):
                self.problems.add(f"{where}: {key} {o.get(key)!r}, upstream {v.get(key)!r}")
        if sorted(map(str, o.get("enum") or [])) != sorted(map(str, v.get("enum") or [])):
            self.problems.add(f"{where}: enum {o.get('enum')}, upstream {v.get('enum')}")

        self._compare_unions(o, v, where)
        if "items" in o or "items" in v:
            if "items" in o and "items" in v:
                self.compare(o["items"], v["items"], f"{where}[]")
            else:
                self.problems.add(f"{where}: array items differ")
        extra_o, extra_v = o.get("additionalProperties"), v.get("additionalProperties")
        if isinstance(extra_o, dict) or isinstance(extra_v, dict):
            if isinstance(extra_o, dict) and isinstance(extra_v, dict):
                self.compare(extra_o, extra_v, f"{where}{{*}}")
            else:
                self.problems.add(f"{where}: additionalProperties differ")

        props_o, props_v = o.get("properties") or {}, v.get("properties") or {}
        for name, schema in props_o.items():
            if name not in props_v:
                self.problems.add(f"{where}.{name}: not defined upstream")
                continue
            self.compare(schema, props_v[name], f"{where}.{name}")
        kept = set(props_o)
        required_o = set(o.get("required") or []) & kept
        required_v = set(v.get("required") or []) & kept
        if required_o != required_v:
            self.problems.add(
                f"{where}: required {sorted(required_o)}, upstream {sorted(required_v)}"
            )

    def _compare_unions(self, o: dict[str, Any], v: dict[str, Any], where: str) -> None:
        alts_o = list(o.get("anyOf") or [])
        alts_v = list(v.get("anyOf") or [])
        if not alts_o and not alts_v and "oneOf" not in o and "oneOf" not in v:
            return
        if len(alts_o) != len(alts_v) or "oneOf" in o or "oneOf" in v:
            self.problems.add(f"{where}: union of {len(alts_o)}, upstream {len(alts_v)}")
            return
        for i, (alt_o, alt_v) in enumerate(zip(alts_o, alts_v, strict=True)):
            self.compare(alt_o, alt_v, f"{where}|{i}")


@pytest.fixture(params=sorted(SPECS))
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def docs(provider: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ours_path, vendor_rel = SPECS[provider]
    vendor_path = REFERENCE / vendor_rel
    if not REFERENCE.is_dir():
        pytest.skip(f"vendor reference folder not found: {REFERENCE}")
    if not vendor_path.is_file():
        pytest.skip(f"vendor spec not found: {vendor_path}")
    return _load(ours_path), _load(vendor_path)


def test_our_spec_is_valid_openapi(provider: str) -> None:
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator not installed"
    )
    readers = pytest.importorskip("openapi_spec_validator.readers")
    spec, _ = readers.read_from_filename(str(SPECS[provider][0]))
    validator.validate(spec)


def test_every_operation_exists_upstream(
    provider: str, docs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    ours, vendor = docs
    upstream = _operations(vendor)
    for (path, method), op in _operations(ours, provider).items():
        assert (path, method) in upstream, f"{method.upper()} {path} is not in the vendor spec"
        assert op["operationId"] == upstream[(path, method)]["operationId"], (path, method)


def test_parameters_match_upstream(
    provider: str, docs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    ours, vendor = docs
    upstream = _operations(vendor)
    comparison = Comparison(provider, ours, vendor)
    for (path, method), op in _operations(ours, provider).items():
        # Path-level parameters and `$ref`s to components.parameters count too (runpod-rest).
        listed = vendor["paths"][path].get("parameters", []) + upstream[(path, method)].get(
            "parameters", []
        )
        theirs = {(p["name"], p["in"]): p for p in map(partial(_parameter, vendor), listed)}
        mine = {(p["name"], p["in"]): p for p in op.get("parameters", [])}
        assert set(mine) <= set(theirs), f"{op['operationId']}: {set(mine) - set(theirs)}"
        required = {k for k, p in theirs.items() if p.get("required")}
        assert required <= set(mine), f"{op['operationId']} lacks required {required - set(mine)}"
        for key, param in mine.items():
            assert bool(param.get("required")) == bool(theirs[key].get("required")), key
            comparison.compare(
                param["schema"], theirs[key]["schema"], f"{op['operationId']}({key[0]})"
            )
    assert sorted(comparison.problems) == []


def test_kept_properties_have_the_upstream_types(
    provider: str, docs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    ours, vendor = docs
    upstream = _operations(vendor)
    comparison = Comparison(provider, ours, vendor)
    for (path, method), op in _operations(ours, provider).items():
        theirs = upstream[(path, method)]
        name = op["operationId"]
        body = op.get("requestBody")
        assert bool(body) == bool(theirs.get("requestBody")), f"{name}: request body"
        if body:
            for media, content in body["content"].items():
                comparison.compare(
                    content["schema"],
                    theirs["requestBody"]["content"][media]["schema"],
                    f"{name} request",
                )
        omitted = set(theirs["responses"]) - set(op["responses"])
        assert omitted <= OMITTED_RESPONSES[provider], f"{name}: responses {omitted} missing"
        for status, response in op["responses"].items():
            assert status in theirs["responses"], f"{name}: {status} is not upstream"
            upstream_response = theirs["responses"][status]
            for media, content in response.get("content", {}).items():
                comparison.compare(
                    content["schema"],
                    upstream_response["content"][media]["schema"],
                    f"{name} {status}",
                )
    assert sorted(comparison.problems) == []
    listed = set(RELAXATIONS[provider]) | FALLBACK_REFS[provider]
    assert listed - comparison.used == set(), "relaxations listed but no longer used"


def test_our_components_are_all_used(docs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Every component schema we define is reachable from an operation (no dead schemas)."""
    ours, _ = docs
    text = json.dumps(ours["paths"])
    reachable: set[str] = set()
    todo = [name for name in ours["components"]["schemas"] if f'/schemas/{name}"' in text]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        inner = json.dumps(ours["components"]["schemas"][name])
        todo += [n for n in ours["components"]["schemas"] if f'/schemas/{n}"' in inner]
    unused = set(ours["components"]["schemas"]) - reachable
    # Paperspace's Error envelope stays documented although no response references it (P5).
    assert unused <= {"Error"}, unused
