"""Waiting on server requests: the long poll, local deadlines, cancellation."""

from __future__ import annotations

import time

import httpx
import pytest
from pytest_httpx import HTTPXMock

from skypilot_client import AsyncSkyPilotClient, SkyPilotClient, errors

URL = "http://skypilot.test:46580"


def test_long_poll_read_timeouts_repoll_until_the_local_deadline(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), is_reusable=True)
    started = time.monotonic()
    with (
        SkyPilotClient(URL, max_retries=0) as client,
        pytest.raises(errors.WaitTimeoutError) as info,
    ):
        client.wait_for_request("req-1", timeout=0.3)
    assert time.monotonic() - started < 5
    assert info.value.request_id == "req-1"
    assert isinstance(info.value, TimeoutError)
    assert len(httpx_mock.get_requests()) >= 1
    assert all(r.url.path == "/api/get" for r in httpx_mock.get_requests())


def test_long_poll_read_timeout_is_capped_by_the_deadline(httpx_mock: HTTPXMock) -> None:
    seen: list[float] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"]["read"])
        raise httpx.ReadTimeout("slow", request=request)

    httpx_mock.add_callback(capture, is_reusable=True)
    with SkyPilotClient(URL, max_retries=0) as client, pytest.raises(errors.WaitTimeoutError):
        client.wait_for_request("req-2", timeout=0.5)
    assert seen
    assert max(seen) <= 0.5  # never waits past the caller's deadline


@pytest.mark.anyio
async def test_async_wait_deadline(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), is_reusable=True)
    async with AsyncSkyPilotClient(URL, max_retries=0) as client:
        with pytest.raises(errors.WaitTimeoutError):
            await client.wait_for_request("req-3", timeout=0.3)


def test_on_request_hook_sees_every_attempt(httpx_mock: HTTPXMock) -> None:
    from skypilot_client import RequestMetrics

    headers = {"X-SkyPilot-API-Version": "62", "X-Skypilot-Request-ID": "rid-9"}
    httpx_mock.add_response(status_code=503, headers={"Retry-After": "0"})
    httpx_mock.add_response(json={"status": "healthy", "api_version": "62"}, headers=headers)
    seen: list[RequestMetrics] = []

    def broken(_: RequestMetrics) -> None:
        raise RuntimeError("a broken hook must not break the call")

    with SkyPilotClient(URL, on_request=seen.append, _sleep=lambda _: None) as client:
        assert client.health().is_healthy
        client.with_options(timeout=5)  # copies share the hook
    assert [(m.operation, m.status_code, m.attempt) for m in seen] == [
        ("health", 503, 1),
        ("health", 200, 2),
    ]
    assert seen[1].request_id == "rid-9"
    assert seen[1].path == "/api/health"
    assert all(m.duration >= 0 for m in seen)
    httpx_mock.add_response(json={"status": "healthy"}, headers=headers)
    with SkyPilotClient(URL, on_request=broken) as client:
        assert client.health().is_healthy


def _submitted_then(failure: Exception) -> object:
    """A server that accepts a teardown (request id ``req-down``) and then fails every wait."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/health":
            return httpx.Response(
                200,
                json={"status": "healthy", "api_version": "62"},
                headers={"X-SkyPilot-API-Version": "62"},
            )
        if request.url.path == "/down":
            return httpx.Response(
                200, json={"request_id": "req-down"}, headers={"X-Skypilot-Request-ID": "req-down"}
            )
        raise failure

    return answer


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ReadTimeout("slow"), errors.WaitTimeoutError),
        # A wait rides out an outage until its deadline, then says why it timed out.
        (httpx.ConnectError("the server went away"), errors.WaitTimeoutError),
    ],
    ids=["deadline", "outage"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failed_wait_after_a_submission_says_it_was_submitted(
    httpx_mock: HTTPXMock, mode: str, failure: Exception, expected: type[Exception]
) -> None:
    """DESIGN rule 9: the teardown was accepted; whatever the wait says, the caller learns
    that the work was submitted and which request to look at, never "retry it"."""
    import asyncio

    httpx_mock.add_callback(_submitted_then(failure), is_reusable=True)  # type: ignore[arg-type]

    def terminate() -> None:
        if mode == "sync":
            with SkyPilotClient(URL, max_retries=0) as client:
                client.terminate("c1", timeout=0.3)
            return

        async def main() -> None:
            async with AsyncSkyPilotClient(URL, max_retries=0) as client:
                await client.terminate("c1", timeout=0.3)

        asyncio.run(main())

    with pytest.raises(expected) as info:
        terminate()
    error = info.value
    assert isinstance(error, errors.SkyPilotError)
    assert error.maybe_submitted
    assert not error.is_retryable
    assert error.request_id == "req-down"
    assert "req-down" in error.message
