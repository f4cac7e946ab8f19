"""What the RunPod base clients share: the schema, parsed documents, variable serialization.

Hand-written source: codegen/templates/gql_support.py. `python -m codegen runpod` copies it into
gpu_providers/runpod/_generated/ next to the code ariadne-codegen generates; edit it here.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Mapping
from typing import Any

from graphql import DocumentNode, GraphQLSchema, build_ast_schema, parse
from pydantic import BaseModel

from .base_model import UNSET
from .schema import SDL

#: RunPod's GraphQL endpoint. Authenticate with ``Authorization: Bearer <api key>`` (never the
#: ``?api_key=`` query parameter: it ends up in logs).
RUNPOD_GRAPHQL_URL = "https://api.runpod.io/graphql"


class _RedactPayloads(logging.Filter):
    """Keeps request payloads out of gql's DEBUG log: their variables carry launch inputs
    (environment values, startup scripts) that must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith((">>>", "operations")):
            record.msg, record.args = "%s", ("[request payload redacted by gpu_providers]",)
        return True


# gql's httpx transports log every request body with log.debug(">>> %s", payload).
for _name in ("gql.transport.httpx",):
    logging.getLogger(_name).addFilter(_RedactPayloads())


@functools.cache
def runpod_schema() -> GraphQLSchema:
    """The schema in specs/runpod/schema.graphql, built once per process."""
    return build_ast_schema(parse(SDL))


@functools.lru_cache(maxsize=128)
def parse_document(query: str) -> DocumentNode:
    """Parse an operation document once; gql validates it against the schema on every call."""
    return parse(query)


def serialize_variables(variables: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """JSON-ready variables: UNSET arguments left out, input models dumped by their aliases.

    Fields of an input model that the caller never set are left out as well, so RunPod
    applies its own defaults; a field set to None is sent as null.
    """
    if not variables:
        return None
    return {name: _serialize(value) for name, value in variables.items() if value is not UNSET}


def _serialize(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, list | tuple):
        return [_serialize(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _status_error(code: int, headers: Any, body: Any) -> Exception:
    from gql.transport.exceptions import TransportServerError

    error = TransportServerError(f"HTTP {code} from the GraphQL endpoint", code)
    # The answer's own headers (Retry-After) and JSON body (RunPod's validation messages)
    # travel with the exception: the transport's last-response state is shared between calls.
    error.headers = headers  # type: ignore[attr-defined]
    error.body = body  # type: ignore[attr-defined]
    return error


class StatusFirst:
    """Mixin for gql's httpx transports: an HTTP error status wins over its body.

    gql reads a JSON body first and raises ``TransportQueryError`` when it has ``errors``,
    losing the status (a JSON 429 or 401 would look like a query error). Here any status
    >= 400 raises ``TransportServerError`` with its code, plus ``.headers`` and ``.body`` (the
    JSON body, or None) of that answer.
    """

    def _get_json_result(self, response: Any) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise _status_error(response.status_code, response.headers, body)
        return super()._get_json_result(response)  # type: ignore[misc]
