"""Sync base class of the generated RunPod client: runs each operation through gql.

Hand-written source: codegen/templates/runpod_base_client.py. `python -m codegen runpod` has
ariadne-codegen copy it into gpu_providers/runpod/_generated/base_client.py; edit it here.

The generated ``RunPodClient`` subclasses :class:`GQLBaseClient`; every generated method calls
:meth:`execute` with its operation document and variables, then parses ``get_data(...)`` into
its typed pydantic result model. Execution goes through gql with the schema loaded, so every
document is validated locally before it is sent, and values travel only as variables.

Errors are gql's, unchanged, for the adapter to classify:

- ``gql.transport.exceptions.TransportQueryError``: the answer had ``errors`` (RunPod answers
  HTTP 200 for most of them); ``.errors`` holds the list, ``.data`` any partial data.
- ``gql.transport.exceptions.TransportServerError``: HTTP status >= 400 (``.code``, and that
  answer's ``.headers`` and JSON ``.body``).
- ``gql.transport.exceptions.TransportProtocolError``: the body was not a GraphQL answer.
- ``gql.transport.exceptions.TransportConnectionFailed``: the request failed in httpx; the
  httpx exception (timeout, connect error, ...) is its ``__cause__``.
- ``graphql.GraphQLError``: the document does not validate against the schema.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.client import SyncClientSession
from gql.transport.httpx import HTTPXTransport

from .gql_support import (
    RUNPOD_GRAPHQL_URL,
    StatusFirst,
    parse_document,
    runpod_schema,
    serialize_variables,
)


class _Transport(StatusFirst, HTTPXTransport):
    """gql's transport, with the HTTP status checked before the body."""


class GQLBaseClient:
    """Sync GraphQL execution over gql's ``HTTPXTransport`` (one httpx.Client per instance).

    ``headers`` carries the credentials (``{"Authorization": "Bearer <key>"}``); ``timeout``
    defaults to 30 s and None must be passed explicitly to wait forever. Other keyword
    arguments go to ``httpx.Client`` unchanged (``transport=`` for a mock or a recorder,
    ``limits=``, ``event_hooks=``, ``proxy=`` ...). The connection opens on the first call;
    use the client as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        url: str = RUNPOD_GRAPHQL_URL,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | httpx.Timeout | None = 30.0,
        **httpx_options: Any,
    ) -> None:
        self.url = url
        self._transport = _Transport(
            url=url, headers=dict(headers or {}), timeout=timeout, **httpx_options
        )
        self._gql = Client(schema=runpod_schema(), transport=self._transport)
        self._session: SyncClientSession | None = None
        self._connect_lock = threading.Lock()  # two threads must not connect twice

    def __enter__(self) -> GQLBaseClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (safe to call twice)."""
        if self._session is not None:
            self._session = None
            self._gql.close_sync()

    def execute(
        self,
        query: str,
        operation_name: str | None = None,
        variables: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Validate and send one operation; returns the answer's ``data``.

        Extra keyword arguments reach gql's transport (``extra_args={...}`` is passed to
        ``httpx.Client.post``, e.g. per-call headers or timeout).
        """
        if self._session is None:
            with self._connect_lock:
                if self._session is None:
                    self._session = self._gql.connect_sync()
        request = GraphQLRequest(
            parse_document(query),
            variable_values=serialize_variables(variables),
            operation_name=operation_name,
        )
        data: dict[str, Any] = self._session.execute(request, **kwargs)
        return data

    def get_data(self, response: dict[str, Any]) -> dict[str, Any]:
        """The generated methods parse this; gql already raised on ``errors``."""
        return response
