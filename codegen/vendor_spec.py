"""``python -m codegen lambda --spec PATH``: generate from a vendor spec you downloaded.

Lambda's full document (https://cloud.lambda.ai/api/v1/openapi.json) has about 25 operations and
60 schemas; the SDK uses nine operations. This module cuts the downloaded document down to the
operations that specs/lambda/openapi.yaml keeps (same paths, methods and operationIds), with the
component schemas they reference, and applies the same relaxations R1-R3 that
specs/lambda/openapi.yaml documents, so the generated package keeps its shape and its tolerance
of new region codes, statuses and error codes. If the vendor renamed or dropped an operation we
use, it stops and says which.

Paperspace's upstream document declares every schema inline, while specs/paperspace/openapi.yaml
names them (Machine, MachineEvent, ...), so a downloaded Paperspace spec would generate different
class names: update specs/paperspace/openapi.yaml instead (tests/contract compares it with the
vendor copy).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from . import CodegenError

SUPPORTED = ("lambda",)

# R1, R2 in specs/lambda/openapi.yaml: closed enums that must accept values added later.
_LAMBDA_OPEN_ENUMS = ("PublicRegionCode", "InstanceStatus")

# R3 in specs/lambda/openapi.yaml: the generic error envelope, last alternative of every error.
_API_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "description": "Any Lambda error; `code` is stable, `message` and `suggestion` are not.",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "suggestion": {"type": "string"},
    },
}

_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def load_document(path: Path) -> dict[str, Any]:
    """Read an OpenAPI document (JSON or YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CodegenError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CodegenError(f"{path} is not valid JSON/YAML: {exc}") from exc
    if not isinstance(data, dict) or "paths" not in data:
        raise CodegenError(f"{path} is not an OpenAPI document (no `paths`)")
    return data


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """``{(path, method): operationId}`` of a document."""
    found = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in _METHODS and isinstance(op, dict):
                found[(path, method)] = op.get("operationId", "")
    return found


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _schema_closure(doc: dict[str, Any], roots: Any) -> dict[str, Any]:
    schemas = doc.get("components", {}).get("schemas", {})
    keep: dict[str, Any] = {}
    todo = list(_refs(roots))
    while todo:
        ref = todo.pop()
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            raise CodegenError(f"unsupported $ref {ref!r} in the vendor spec")
        name = ref[len(prefix) :]
        if name in keep:
            continue
        if name not in schemas:
            raise CodegenError(f"the vendor spec references {ref!r} but does not define it")
        keep[name] = schemas[name]
        todo.extend(_refs(schemas[name]))
    return dict(sorted(keep.items()))


def _open_error_union(response: dict[str, Any]) -> None:
    """R3: make a response's ``error`` property accept the generic ApiError last."""
    for media in response.get("content", {}).values():
        props = media.get("schema", {}).get("properties", {})
        error = props.get("error")
        if not isinstance(error, dict):
            continue
        ref = {"$ref": "#/components/schemas/ApiError"}
        if "anyOf" in error:
            if ref not in error["anyOf"]:
                error["anyOf"].append(ref)
        elif "$ref" in error:
            props["error"] = {"anyOf": [{"$ref": error["$ref"]}, ref]}


def subset_lambda(vendor: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The vendor document cut to our operations, with relaxations R1-R3 applied."""
    wanted = operations(ours)
    available = operations(vendor)
    problems = [
        f"{method.upper()} {path} ({op_id})"
        for (path, method), op_id in sorted(wanted.items())
        if available.get((path, method)) != op_id
    ]
    if problems:
        raise CodegenError(
            "the vendor spec no longer has these operations (path, method and operationId) "
            "that specs/lambda/openapi.yaml uses: " + ", ".join(problems)
        )
    paths: dict[str, Any] = {}
    for path, method in sorted(wanted):
        paths.setdefault(path, {})[method] = copy.deepcopy(vendor["paths"][path][method])
        shared = vendor["paths"][path].get("parameters")
        if shared:
            paths[path]["parameters"] = copy.deepcopy(shared)
    schemas = copy.deepcopy(_schema_closure(vendor, paths))
    for item in paths.values():
        for method, op in item.items():
            if method in _METHODS:
                for status, response in op.get("responses", {}).items():
                    if status[:1] in {"4", "5"}:
                        _open_error_union(response)
    for name in _LAMBDA_OPEN_ENUMS:
        if name in schemas:
            known = ", ".join(str(v) for v in schemas[name].get("enum", []))
            schemas[name] = {"type": "string", "description": f"Known values: {known}."}
    schemas["ApiError"] = copy.deepcopy(_API_ERROR)

    components: dict[str, Any] = {"schemas": schemas}
    if "securitySchemes" in vendor.get("components", {}):
        components["securitySchemes"] = copy.deepcopy(vendor["components"]["securitySchemes"])
    subset: dict[str, Any] = {
        "openapi": vendor.get("openapi", "3.1.0"),
        "info": copy.deepcopy(vendor.get("info", {"title": "Lambda Cloud API", "version": "?"})),
        "paths": paths,
        "components": components,
    }
    if "servers" in vendor:
        subset["servers"] = copy.deepcopy(vendor["servers"])
    # Same package docstring as the spec in specs/ produces.
    subset["info"]["title"] = ours["info"]["title"]
    return subset


def prepare(provider: str, vendor_path: Path, our_spec: Path, scratch: Path) -> Path:
    """Write the generator input for ``--spec`` into ``scratch``; returns its path."""
    if provider not in SUPPORTED:
        raise CodegenError(
            f"--spec is supported for {', '.join(SUPPORTED)} only; for {provider}, edit "
            f"specs/{provider}/ and run `python -m codegen {provider}`"
        )
    subset = subset_lambda(load_document(vendor_path), load_document(our_spec))
    out = scratch / "vendor-subset.json"
    out.write_text(json.dumps(subset, indent=1, sort_keys=False), encoding="utf-8")
    return out
