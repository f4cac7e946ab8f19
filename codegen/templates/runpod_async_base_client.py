"""Async base class of the generated RunPod client: runs each operation through gql.

Hand-written source: codegen/templates/runpod_async_base_client.py. `python -m codegen runpod`
has ariadne-codegen copy it into gpu_providers/runpod/_generated/async_base_client.py; edit it
here. Same contract as the sync ``GQLBaseClient`` (see base_client.py), over gql's
``HTTPXAsyncTransport`` and ``httpx.AsyncClient``; gql's own ``execute_timeout`` is disabled so
that httpx's timeout is the only one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.httpx import HTTPXAsyncTransport

from .gql_support import (
    RUNPOD_GRAPHQL_URL,
    StatusFirst,
    parse_document,
    runpod_schema,
    serialize_variables,
)


class _Transport(StatusFirst, HTTPXAsyncTransport):
    """gql's transport, with the HTTP status checked before the body."""


class AsyncGQLBaseClient:
    """Async GraphQL execution over gql's ``HTTPXAsyncTransport`` (one httpx.AsyncClient).

    Arguments as for the sync ``GQLBaseClient``. The connection opens on the first call; use
    ``async with`` or ``await close()``.
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
        self._gql = Client(schema=runpod_schema(), transport=self._transport, execute_timeout=None)
        self._session: AsyncClientSession | None = None
        self._connect_lock: asyncio.Lock | None = None

    async def __aenter__(self) -> AsyncGQLBaseClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (safe to call twice)."""
        if self._session is not None:
            self._session = None
            await self._gql.close_async()

    async def _connected(self) -> AsyncClientSession:
        if self._session is None:
            if self._connect_lock is None:
                self._connect_lock = asyncio.Lock()
            async with self._connect_lock:
                if self._session is None:
                    session = await self._gql.connect_async()
                    assert isinstance(session, AsyncClientSession)
                    self._session = session
        return self._session

    async def execute(
        self,
        query: str,
        operation_name: str | None = None,
        variables: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Validate and send one operation; returns the answer's ``data``."""
        session = await self._connected()
        request = GraphQLRequest(
            parse_document(query),
            variable_values=serialize_variables(variables),
            operation_name=operation_name,
        )
        data: dict[str, Any] = await session.execute(request, **kwargs)
        return data

    def get_data(self, response: dict[str, Any]) -> dict[str, Any]:
        """The generated methods parse this; gql already raised on ``errors``."""
        return response
