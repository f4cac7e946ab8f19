"""Contract: RunPod GraphQL traffic in the cassettes against ``specs/runpod/schema.graphql``.

RunPod publishes no SDL (FACTS.md), so our schema is the contract. For every request in the
cassettes: the document is one of our operation documents (specs/runpod/operations), it
validates against the schema (``graphql.validate``), its arguments are all variables, and
its variables coerce to the declared types. For every response: HTTP 200 answers are GraphQL
results whose ``data`` has exactly the shape of the request's selection with values of the
schema's types (checked field by field) and parse with the generated result models;
``errors`` entries have a string ``message``. Non-GraphQL answers are allowed only for the
statuses listed in ``NON_GRAPHQL`` (with the reason).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    VariableNode,
    parse,
    print_ast,
    validate,
)
from graphql.execution.values import get_variable_values
from pydantic import BaseModel

from gpu_providers.runpod._generated.get_pod import GetPod
from gpu_providers.runpod._generated.gpu_types import GpuTypes
from gpu_providers.runpod._generated.my_pods import MyPods
from gpu_providers.runpod._generated.pod_bid_resume import PodBidResume
from gpu_providers.runpod._generated.pod_find_and_deploy_on_demand import (
    PodFindAndDeployOnDemand,
)
from gpu_providers.runpod._generated.pod_rent_interruptable import PodRentInterruptable
from gpu_providers.runpod._generated.pod_resume import PodResume
from gpu_providers.runpod._generated.pod_stop import PodStop
from gpu_providers.runpod._generated.pod_terminate import PodTerminate

from ..cassettes import body_text
from ..paperspace.harness import CASSETTES, REFERENCE, ROOT, iter_exchanges
from . import documented as D

DIRECTORY = CASSETTES / "runpod"
OPERATIONS_DIR = ROOT / "specs" / "runpod" / "operations"

#: operationName -> the generated model that parses its ``data``.
MODELS: dict[str, type[BaseModel]] = {
    "GetPod": GetPod,
    "GpuTypes": GpuTypes,
    "MyPods": MyPods,
    "PodFindAndDeployOnDemand": PodFindAndDeployOnDemand,
    "PodRentInterruptable": PodRentInterruptable,
    "PodResume": PodResume,
    "PodBidResume": PodBidResume,
    "PodStop": PodStop,
    "PodTerminate": PodTerminate,
}
#: HTTP statuses whose body is not a GraphQL result, and why that is acceptable.
NON_GRAPHQL: dict[int, str] = {
    401: "RunPod documents only the status for a bad key (FACTS.md); our body is plain text",
    429: "no GraphQL rate limit is documented; a throttling proxy answers in plain text",
    502: "the gateway in front of the API answers with an HTML page",
}


@cache
def schema() -> GraphQLSchema:
    return D.schema()


@cache
def documented_operations() -> dict[str, str]:
    """operationName -> the normalized text of our operation document (fragments included)."""
    fragments = parse((OPERATIONS_DIR / "fragments.graphql").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for path in sorted(OPERATIONS_DIR.glob("*.graphql")):
        if path.name == "fragments.graphql":
            continue
        document = parse(path.read_text(encoding="utf-8"))
        (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        assert operation.name is not None
        found[operation.name.value] = _normalized(document, fragments)
    return found


def _normalized(document: DocumentNode, fragments: DocumentNode | None = None) -> str:
    """Operation then the fragments it uses, each printed canonically."""
    definitions = list(document.definitions)
    if fragments is not None:
        used = {n.name.value for n in _walk(document) if isinstance(n, FragmentSpreadNode)}
        definitions += [
            d
            for d in fragments.definitions
            if isinstance(d, FragmentDefinitionNode) and d.name.value in used
        ]
    operations = [print_ast(d) for d in definitions if isinstance(d, OperationDefinitionNode)]
    named = sorted(print_ast(d) for d in definitions if isinstance(d, FragmentDefinitionNode))
    return "\n".join(operations + named)


def _walk(node: Any) -> list[Any]:
    found = [node]
    for key in getattr(node, "keys", ()):
        child = getattr(node, key, None)
        for item in child if isinstance(child, tuple) else (child,):
            if hasattr(item, "kind"):
                found += _walk(item)
    return found


def _fields(
    selections: tuple[SelectionNode, ...], fragments: dict[str, FragmentDefinitionNode]
) -> dict[str, FieldNode]:
    """Response key -> field node of a selection set, fragments expanded."""
    found: dict[str, FieldNode] = {}
    for selection in selections:
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            found[key] = selection
        elif isinstance(selection, FragmentSpreadNode):
            spread = fragments[selection.name.value].selection_set.selections
            found.update(_fields(spread, fragments))
        elif isinstance(selection, InlineFragmentNode):
            found.update(_fields(selection.selection_set.selections, fragments))
    return found


def _scalar_ok(name: str, value: Any) -> bool:
    """Whether a JSON value is a valid serialized value of the scalar ``name``."""
    if name == "Int":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "Float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name in ("String", "ID"):
        return isinstance(value, str)
    if name == "Boolean":
        return isinstance(value, bool)
    if name == "Void":
        return value is None
    raise AssertionError(f"unknown scalar {name}")


def shape_problems(
    type_: GraphQLOutputType,
    field: FieldNode | None,
    value: Any,
    fragments: dict[str, FragmentDefinitionNode],
    path: str,
) -> list[str]:
    """Where ``value`` differs from what ``type_`` with ``field``'s selection promises."""
    if isinstance(type_, GraphQLNonNull):
        if value is None:
            return [f"{path}: null for non-null {type_}"]
        type_ = type_.of_type
    if value is None:
        return []
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} for {type_}"]
        problems = []
        for index, item in enumerate(value):
            problems += shape_problems(type_.of_type, field, item, fragments, f"{path}[{index}]")
        return problems
    if isinstance(type_, GraphQLScalarType):
        ok = _scalar_ok(type_.name, value)
        return [] if ok else [f"{path}: {value!r} is not {type_.name}"]
    if isinstance(type_, GraphQLEnumType):
        return [] if value in type_.values else [f"{path}: {value!r} not in {type_.name}"]
    assert isinstance(type_, GraphQLObjectType), type_
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__} for {type_.name}"]
    assert field is not None and field.selection_set is not None
    selected = _fields(field.selection_set.selections, fragments)
    problems = []
    if set(value) != set(selected):
        problems.append(f"{path}: keys {sorted(value)} != selection {sorted(selected)}")
    for key, node in selected.items():
        if key in value:
            definition = type_.fields[node.name.value]
            problems += shape_problems(
                definition.type, node, value[key], fragments, f"{path}.{key}"
            )
    return problems


def data_problems(document: DocumentNode, operation_name: str, data: Any) -> list[str]:
    (operation,) = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and d.name and d.name.value == operation_name
    ]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = (
        schema().mutation_type if operation.operation.value == "mutation" else schema().query_type
    )
    assert root is not None
    if not isinstance(data, dict):
        return [f"data: {type(data).__name__}"]
    selected = _fields(operation.selection_set.selections, fragments)
    problems = [] if set(data) == set(selected) else [f"data keys {sorted(data)}"]
    for key, node in selected.items():
        definition = root.fields[node.name.value]
        problems += shape_problems(definition.type, node, data.get(key), fragments, f"data.{key}")
    return problems


def cassette_exchanges() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in sorted(DIRECTORY.glob("*.yaml")):
        for index, (request, response) in enumerate(iter_exchanges(path)):
            found.append((f"{path.name}#{index}", request, response))
    assert found
    return found


def test_every_request_is_a_documented_operation_with_valid_variables() -> None:
    seen = set()
    for where, request, _ in cassette_exchanges():
        assert request["method"] == "POST", where
        assert request["uri"] == D.GRAPHQL_URL, where
        body = json.loads(body_text(request))
        assert set(body) <= {"query", "operationName", "variables"}, where
        name = body["operationName"]
        document = parse(body["query"])
        assert not validate(schema(), document), where
        assert _normalized(document) == documented_operations()[name], where
        (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        arguments = [n for n in _walk(operation) if getattr(n, "kind", "") == "argument"]
        assert all(isinstance(a.value, VariableNode) for a in arguments), where
        coerced = get_variable_values(
            schema(), operation.variable_definitions or (), body.get("variables") or {}
        )
        # graphql-core 3.2 returns the coerced dict, 3.3 a VariableValues (``.coerced``);
        # both return a list of GraphQLErrors when the variables do not fit the schema.
        coerced = getattr(coerced, "coerced", coerced)
        assert isinstance(coerced, dict), f"{where}: {coerced}"
        seen.add(name)
    assert seen == set(MODELS), f"operations never recorded: {set(MODELS) - seen}"


def test_every_response_matches_the_selection_and_the_generated_models() -> None:
    statuses = set()
    for where, request, response in cassette_exchanges():
        status = int(response["status"]["code"])
        statuses.add(status)
        text = body_text(response)
        if status in NON_GRAPHQL:
            assert not text.lstrip().startswith("{"), f"{where}: see NON_GRAPHQL"
            continue
        assert status == 200, f"{where}: GraphQL answers come with HTTP 200"
        body = json.loads(text)
        assert set(body) <= {"data", "errors", "extensions"} and body, where
        request_body = json.loads(body_text(request))
        name = request_body["operationName"]
        document = parse(request_body["query"])
        for error in body.get("errors") or []:
            assert isinstance(error["message"], str), where
            assert set(error) <= {"message", "locations", "path", "extensions"}, where
        if body.get("data") is None:
            assert body.get("errors"), f"{where}: neither data nor errors"
            continue
        problems = data_problems(document, name, body["data"])
        assert not problems, f"{where}:\n  " + "\n  ".join(problems)
        MODELS[name].model_validate(body["data"])
    assert 200 in statuses


def test_our_operation_documents_validate_against_the_schema() -> None:
    fragments = (OPERATIONS_DIR / "fragments.graphql").read_text(encoding="utf-8")
    for path in sorted(OPERATIONS_DIR.glob("*.graphql")):
        if path.name == "fragments.graphql":
            continue
        text = path.read_text(encoding="utf-8")
        document = parse(text + ("\n" + fragments if "..." in text else ""))
        assert not validate(schema(), document), path.name


def test_the_shape_check_catches_an_answer_off_the_selection() -> None:
    document = parse(documented_operations()["PodStop"])
    assert data_problems(document, "PodStop", {"podStop": {"id": "x", "desiredStatus": 1}})
    assert data_problems(document, "PodStop", {"podStop": {"id": "x"}})
    assert data_problems(document, "PodStop", {"podStop": {"id": None, "desiredStatus": "X"}})
    assert not data_problems(document, "PodStop", {"podStop": {"id": "x", "desiredStatus": "X"}})


FACTS = REFERENCE / "runpod" / "FACTS.md"


@pytest.mark.skipif(
    not FACTS.is_file(),
    reason=f"RunPod's facts are not at {FACTS} (../shared/reference is only present in the "
    "development workspace; see DESIGN.md 'References')",
)
def test_the_documented_messages_are_the_ones_in_the_facts() -> None:
    facts = " ".join(Path(FACTS).read_text(encoding="utf-8").split())
    for text in (D.NO_INSTANCES, D.NOT_FOUND_TO_TERMINATE, D.RTX4090, "minimumBidPrice"):
        assert text in facts
