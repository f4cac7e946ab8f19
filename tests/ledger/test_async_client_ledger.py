"""The async client with an ``AsyncLedger``: a real throwaway PostgreSQL database
(tests/ledger/conftest.py), the SkyPilot server faked (tests/fakes/request_server.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from skypilot_client import AsyncSkyPilotClient, LaunchRequest, SkyPilotClient
from skypilot_client.errors import InvalidInputError, NotFoundError, RequestLostError
from skypilot_client.ledger import AsyncPostgresLedger, LedgerError, LedgerUnavailableError
from tests.fakes.request_server import FakeRequestServer

URL = "http://skypilot.test"


def _client(fake: FakeRequestServer, ledger: Any, **options: Any) -> AsyncSkyPilotClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    return AsyncSkyPilotClient(URL, http_client=http, max_retries=0, ledger=ledger, **options)


def test_a_launch_is_recorded_in_the_async_ledger_before_the_call_returns(
    postgres_url: str,
) -> None:
    fake = FakeRequestServer()

    async def main() -> None:
        async with await AsyncPostgresLedger.connect(postgres_url) as ledger:
            async with _client(fake, ledger, workspace="ws1") as client:
                team = client.with_options(tenant="team-a")
                handle = await team.launch(LaunchRequest(task="run: echo hi", cluster_name="t-1"))
                # Read before anything else runs: the write was awaited inside launch().
                record = await ledger.get_request(handle.request_id)
                dropped = await client.with_options(ledger=None).launch(
                    LaunchRequest(task="run: echo hi", cluster_name="t-2")
                )
                assert await ledger.get_request(dropped.request_id) is None
        assert record is not None
        assert (record.operation, record.cluster, record.workspace, record.tenant) == (
            "launch",
            "t-1",
            "ws1",
            "team-a",
        )
        assert record.status == "PENDING" and handle.request_id in fake.requests

    asyncio.run(main())


def test_a_failed_async_ledger_write_names_the_submitted_request(postgres_url: str) -> None:
    fake = FakeRequestServer()

    async def main() -> LedgerError:
        async with await AsyncPostgresLedger.connect(postgres_url) as ledger:

            async def unreachable(*args: Any, **kwargs: Any) -> Any:
                raise LedgerUnavailableError("ledger: connection lost")

            ledger.record_request = unreachable  # type: ignore[method-assign]
            async with _client(fake, ledger) as client:
                with pytest.raises(LedgerError) as caught:
                    await client.launch(LaunchRequest(task="run: echo hi", cluster_name="t-3"))
        return caught.value

    error = asyncio.run(main())
    assert error.request_id is not None and error.request_id in fake.requests  # was submitted
    assert error.maybe_submitted and not error.retryable
    assert f"launch request {error.request_id} was submitted" in error.message


def test_a_request_recorded_in_the_async_ledger_is_named_as_lost(postgres_url: str) -> None:
    """Another process's launch, which the server forgot (it restarted), found in the ledger:
    RequestLostError. The same id without the ledger is a plain NotFoundError."""
    fake = FakeRequestServer()

    async def main() -> tuple[RequestLostError, NotFoundError]:
        async with await AsyncPostgresLedger.connect(postgres_url) as ledger:
            await ledger.record_request("req-of-another-process", "launch", cluster="train-a")
            async with _client(fake, ledger) as client:
                with pytest.raises(RequestLostError) as lost:
                    await client.wait_for_request("req-of-another-process", timeout=5)
                with pytest.raises(NotFoundError) as plain:
                    await client.with_options(ledger=None).wait_for_request(
                        "req-of-another-process", timeout=5
                    )
                with pytest.raises(NotFoundError) as unknown:  # not in the ledger either
                    await client.wait_for_request("req-nobody-made", timeout=5)
                assert type(unknown.value) is NotFoundError
        return lost.value, plain.value

    lost, plain = asyncio.run(main())
    assert lost.operation == "launch" and lost.cluster_name == "train-a"
    assert lost.maybe_submitted and lost.request_id == "req-of-another-process"
    assert type(plain) is NotFoundError


def test_the_sync_client_refuses_an_async_ledger(postgres_url: str) -> None:
    async def open_and_try() -> None:
        async with await AsyncPostgresLedger.connect(postgres_url) as ledger:
            with pytest.raises(InvalidInputError, match="synchronous"):
                SkyPilotClient(URL, ledger=ledger)  # type: ignore[arg-type]
            with SkyPilotClient(URL) as client, pytest.raises(InvalidInputError):
                client.with_options(ledger=ledger)  # type: ignore[arg-type]
            async with AsyncSkyPilotClient(URL) as aclient:
                with pytest.raises(InvalidInputError):
                    aclient.with_options(ledger=object())  # type: ignore[arg-type]

    asyncio.run(open_and_try())
