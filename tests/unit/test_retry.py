"""Retry policy: Retry-After parsing, backoff delays, and which calls the clients replay.

Nothing sleeps: both clients take a private ``_sleep=`` recorder, and the tests assert on the
delays it was asked for. HTTP is mocked with pytest-httpx (no sockets).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from skypilot_client import AsyncSkyPilotClient, LaunchRequest, SkyPilotClient
from skypilot_client import _constants as constants
from skypilot_client.errors import (
    APIConnectionError,
    APITimeoutError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
    SkyPilotError,
)
from skypilot_client.retry import RetryPolicy, parse_retry_after

BASE_URL = "http://skypilot.test"
HEALTH_URL = f"{BASE_URL}/api/health"
LAUNCH_URL = f"{BASE_URL}/launch"
HEALTH_BODY = {"status": "healthy", "api_version": "62", "version": "0.14.1"}
VERSION_HEADERS = {"X-SkyPilot-API-Version": "62", "X-SkyPilot-Version": "0.14.1"}
REQUEST_ID = "5f1c8a52-0b2e-4d4f-9d7e-3c2b1a0f9e8d"

MODES = ["sync", "async"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No SKYPILOT_* variable or ~/.sky/config.yaml of the machine leaks into the clients."""
    for name in (
        "SKYPILOT_API_SERVER_URL",
        "SKYPILOT_API_SERVER_ENDPOINT",
        "SKYPILOT_SERVICE_ACCOUNT_TOKEN",
        "SKYPILOT_REQUEST_TIMEOUT",
        "SKYPILOT_MAX_RETRIES",
        "SKYPILOT_RETRY_DELAY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


# ---------------------------------------------------------------------------- parse_retry_after

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, None, id="missing"),
        pytest.param({"X-Other": "5"}, None, id="unrelated-header"),
        pytest.param({"Retry-After": "5"}, 5.0, id="seconds"),
        pytest.param({"retry-after": "0"}, 0.0, id="zero-seconds"),
        pytest.param({"RETRY-AFTER": "2.5"}, 2.5, id="fractional-any-case"),
        pytest.param({"Retry-After-Ms": "1500"}, 1.5, id="retry-after-ms"),
        pytest.param(
            {"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-wins-over-seconds"
        ),
        pytest.param(
            {"retry-after-ms": "soon", "retry-after": "3"}, 3.0, id="garbage-ms-falls-back"
        ),
        pytest.param({"retry-after-ms": "soon"}, None, id="garbage-ms-alone"),
        pytest.param({"Retry-After": "-5"}, 0.0, id="negative-seconds-clamped"),
        pytest.param({"retry-after-ms": "-100"}, 0.0, id="negative-ms-clamped"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": ""}, None, id="empty"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0, id="http-date"),
        pytest.param({"Retry-After": "Wednesday, 21-Oct-15 07:29:00 GMT"}, 60.0, id="rfc850-date"),
        pytest.param(
            {"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0, id="http-date-in-the-past"
        ),
        pytest.param({"Retry-After": "Wed, 99 Foo 2015 07:28:00 GMT"}, None, id="bad-date"),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_accepts_httpx_headers() -> None:
    headers = httpx.Headers({"Retry-After": "7"})
    assert parse_retry_after(headers) == 7.0


def test_parse_retry_after_http_date_defaults_to_wall_clock() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    delay = parse_retry_after({"Retry-After": when})
    assert delay is not None
    assert 110.0 <= delay <= 121.0


@pytest.mark.parametrize("headers", [{"Retry-After": "nan"}, {"retry-after-ms": "nan"}])
def test_parse_retry_after_rejects_nan(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, now=NOW) is None


@pytest.fixture
def new_york_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with the local time zone set to UTC-4/-5 (HTTP dates must not depend on it)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is Unix only")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.usefixtures("new_york_time")
def test_parse_retry_after_asctime_date_is_utc() -> None:
    assert parse_retry_after({"Retry-After": "Wed Oct 21 07:28:30 2015"}, now=NOW) == 30.0


# ---------------------------------------------------------------------------- RetryPolicy.delay


def test_delay_grows_exponentially_without_jitter() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=1000.0, jitter=0.25)
    assert [policy.delay(n, None, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_delay_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0)
    assert policy.delay(4, None, 0.0) == 8.0
    assert policy.delay(5, None, 0.0) == 10.0
    assert policy.delay(30, None, 0.0) == 10.0


def test_delay_cap_holds_for_any_attempt() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=60.0)
    assert policy.delay(2000, None, 0.0) == 60.0


@given(
    attempt=st.integers(min_value=1, max_value=40),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_jitter_bounds(attempt: int, rand: float, jitter: float) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=30.0, jitter=jitter)
    base = min(0.5 * 2 ** (attempt - 1), 30.0)
    delay = policy.delay(attempt, None, rand)
    assert base * (1.0 - jitter) <= delay <= base
    assert delay <= policy.max_delay


def test_delay_jitter_only_shortens() -> None:
    policy = RetryPolicy(initial_delay=4.0, max_delay=100.0, jitter=0.25)
    assert policy.delay(1, None, 0.0) == 4.0
    assert policy.delay(1, None, 0.5) == 3.5
    assert 3.0 <= policy.delay(1, None, 0.999999) < 3.001


@pytest.mark.parametrize("retry_after", [0.0, 2.0, 120.0, 300.0])
def test_delay_honours_retry_after_up_to_cap(retry_after: float) -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=60.0, max_retry_after=300.0)
    # Honoured exactly: no jitter, no exponential growth, even above max_delay.
    assert policy.delay(1, retry_after, 0.9) == retry_after
    assert policy.delay(5, retry_after, 0.0) == retry_after


@pytest.mark.parametrize("retry_after", [300.5, 3600.0, float("inf")])
def test_delay_ignores_retry_after_above_cap(retry_after: float) -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=60.0, max_retry_after=300.0)
    assert policy.delay(1, retry_after, 0.0) == 1.0
    assert policy.delay(3, retry_after, 0.0) == 4.0
    assert policy.delay(20, retry_after, 0.0) == 60.0


def test_default_policy_matches_constants() -> None:
    policy = RetryPolicy()
    assert policy.max_retries == constants.DEFAULT_MAX_RETRIES
    assert policy.max_retry_after == constants.MAX_RETRY_AFTER
    assert policy.delay(1, constants.MAX_RETRY_AFTER, 0.0) == constants.MAX_RETRY_AFTER


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (APIConnectionError("down"), True),
        (APITimeoutError("slow"), True),
        (RateLimitError("429", status_code=429), True),
        (RateLimitError("429", status_code=429, retry_after=300.0), True),
        (RateLimitError("429 for a day", status_code=429, retry_after=86400.0), False),
        (ServiceUnavailableError("503", status_code=503), True),
        (ServiceUnavailableError("503 for an hour", status_code=503, retry_after=3600.0), False),
        (InternalServerError("502", status_code=502), True),
        (InternalServerError("504", status_code=504), True),
        (InternalServerError("500", status_code=500), False),
        (APIConnectionError("maybe sent", maybe_submitted=True), False),
        (InternalServerError("502", status_code=502, maybe_submitted=True), False),
        (SkyPilotError("generic"), False),
        (ValueError("not ours"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_should_retry(error: BaseException, retried: bool) -> None:
    assert RetryPolicy().should_retry(error) is retried


# ---------------------------------------------------------------------------- through the clients


@dataclass
class Result:
    """What one client call did: its value or its error, and the backoff delays asked for."""

    value: Any = None
    error: SkyPilotError | None = None
    delays: list[float] = field(default_factory=list)


def _launch_request() -> LaunchRequest:
    return LaunchRequest(cluster_name="retry-test", task={"run": "echo hi"})


async def run_call(mode: str, operation: str, *, max_retries: int = 2) -> Result:
    """Run ``health`` or ``launch`` on the sync or async client, recording sleeps."""
    result = Result()
    settings: dict[str, Any] = {"max_retries": max_retries, "retry_delay": 0.5}

    if mode == "sync":

        def sleep(seconds: float) -> None:
            result.delays.append(seconds)

        def run_sync() -> None:
            with SkyPilotClient(BASE_URL, _sleep=sleep, **settings) as client:
                try:
                    if operation == "health":
                        result.value = client.health()
                    else:
                        result.value = client.launch(_launch_request()).request_id
                except SkyPilotError as exc:
                    result.error = exc

        await anyio.to_thread.run_sync(run_sync)
        return result

    async def asleep(seconds: float) -> None:
        result.delays.append(seconds)

    async with AsyncSkyPilotClient(BASE_URL, _sleep=asleep, **settings) as aclient:
        try:
            if operation == "health":
                result.value = await aclient.health()
            else:
                result.value = (await aclient.launch(_launch_request())).request_id
        except SkyPilotError as exc:
            result.error = exc
    return result


def add_health(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=HEALTH_URL, json=HEALTH_BODY, headers=VERSION_HEADERS)


def add_submitted(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST",
        url=LAUNCH_URL,
        content=b"null",
        headers={**VERSION_HEADERS, "X-Skypilot-Request-ID": REQUEST_ID},
    )


def requests_to(httpx_mock: HTTPXMock, method: str, url: str) -> list[httpx.Request]:
    return httpx_mock.get_requests(method=method, url=url)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_503_with_retry_after_is_retried_then_succeeds(
    mode: str, httpx_mock: HTTPXMock
) -> None:
    for _ in range(2):
        httpx_mock.add_response(
            method="GET",
            url=HEALTH_URL,
            status_code=503,
            json={"detail": "Server is shutting down, please try again later."},
            headers={"Retry-After": "3"},
        )
    add_health(httpx_mock)

    result = await run_call(mode, "health", max_retries=3)

    assert result.error is None
    assert result.value.status == "healthy"
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == 3
    assert result.delays == [3.0, 3.0]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_429_gives_rate_limit_error_after_all_attempts(
    mode: str, httpx_mock: HTTPXMock
) -> None:
    max_retries = 2
    for _ in range(max_retries + 1):
        httpx_mock.add_response(
            method="GET",
            url=HEALTH_URL,
            status_code=429,
            json={"detail": "Too many requests"},
            headers={"Retry-After": "1", "X-Skypilot-Request-ID": "rl-1"},
        )

    result = await run_call(mode, "health", max_retries=max_retries)

    assert isinstance(result.error, RateLimitError)
    assert result.error.status_code == 429
    assert result.error.retry_after == 1.0
    assert result.error.is_rate_limited
    assert result.error.request_id == "rl-1"
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == max_retries + 1
    assert result.delays == [1.0] * max_retries


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_429_without_retry_after_uses_backoff(mode: str, httpx_mock: HTTPXMock) -> None:
    for _ in range(3):
        httpx_mock.add_response(method="GET", url=HEALTH_URL, status_code=429, json={})

    result = await run_call(mode, "health", max_retries=2)

    assert isinstance(result.error, RateLimitError)
    assert result.error.retry_after is None
    # retry_delay=0.5: attempt 1 waits (0.375, 0.5], attempt 2 waits (0.75, 1.0].
    assert len(result.delays) == 2
    assert 0.375 <= result.delays[0] <= 0.5
    assert 0.75 <= result.delays[1] <= 1.0


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_500_is_not_retried(mode: str, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=HEALTH_URL, status_code=500, json={"detail": "boom"})

    result = await run_call(mode, "health", max_retries=3)

    assert type(result.error) is InternalServerError
    assert result.error.status_code == 500
    assert not result.error.is_retryable
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == 1
    assert result.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [502, 504])
async def test_proxy_errors_on_idempotent_call_are_retried(
    mode: str, status: int, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        method="GET", url=HEALTH_URL, status_code=status, text="<html>Bad Gateway</html>"
    )
    add_health(httpx_mock)

    result = await run_call(mode, "health", max_retries=3)

    assert result.error is None
    assert result.value.status == "healthy"
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == 2
    assert len(result.delays) == 1
    assert 0.375 <= result.delays[0] <= 0.5


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_read_timeout_on_idempotent_call_is_retried(mode: str, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), method="GET", url=HEALTH_URL)
    add_health(httpx_mock)

    result = await run_call(mode, "health", max_retries=1)

    assert result.error is None
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == 2
    assert len(result.delays) == 1


# -- work submissions: never replayed once they may have reached the server


def _assert_maybe_submitted(error: SkyPilotError | None) -> SkyPilotError:
    assert error is not None
    assert error.maybe_submitted is True
    assert error.is_retryable is False
    assert "may have been submitted" in str(error)
    assert error.cluster_name == "retry-test"
    return error


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_launch_not_replayed_after_read_timeout(mode: str, httpx_mock: HTTPXMock) -> None:
    add_health(httpx_mock)
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), method="POST", url=LAUNCH_URL)

    result = await run_call(mode, "launch", max_retries=3)

    error = _assert_maybe_submitted(result.error)
    assert isinstance(error, APITimeoutError)
    assert len(requests_to(httpx_mock, "POST", LAUNCH_URL)) == 1
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == 1
    assert result.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("exception", [httpx.ReadError("reset"), httpx.RemoteProtocolError("eof")])
async def test_launch_not_replayed_after_broken_connection(
    mode: str, exception: Exception, httpx_mock: HTTPXMock
) -> None:
    add_health(httpx_mock)
    httpx_mock.add_exception(exception, method="POST", url=LAUNCH_URL)

    result = await run_call(mode, "launch", max_retries=3)

    error = _assert_maybe_submitted(result.error)
    assert type(error) is APIConnectionError
    assert len(requests_to(httpx_mock, "POST", LAUNCH_URL)) == 1
    assert result.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [500, 502, 504])
async def test_launch_not_replayed_after_5xx(mode: str, status: int, httpx_mock: HTTPXMock) -> None:
    add_health(httpx_mock)
    httpx_mock.add_response(
        method="POST", url=LAUNCH_URL, status_code=status, text="upstream failed"
    )

    result = await run_call(mode, "launch", max_retries=3)

    error = _assert_maybe_submitted(result.error)
    assert isinstance(error, InternalServerError)
    assert error.status_code == status
    assert len(requests_to(httpx_mock, "POST", LAUNCH_URL)) == 1
    assert result.delays == []


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_launch_replayed_after_connect_error(mode: str, httpx_mock: HTTPXMock) -> None:
    add_health(httpx_mock)
    httpx_mock.add_exception(httpx.ConnectError("refused"), method="POST", url=LAUNCH_URL)
    add_submitted(httpx_mock)

    result = await run_call(mode, "launch", max_retries=3)

    assert result.error is None
    assert result.value == REQUEST_ID
    launches = requests_to(httpx_mock, "POST", LAUNCH_URL)
    assert len(launches) == 2
    assert json.loads(launches[0].content) == json.loads(launches[1].content)
    assert json.loads(launches[0].content)["cluster_name"] == "retry-test"
    assert len(result.delays) == 1
    assert 0.375 <= result.delays[0] <= 0.5


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_launch_replayed_after_503(mode: str, httpx_mock: HTTPXMock) -> None:
    add_health(httpx_mock)
    httpx_mock.add_response(
        method="POST",
        url=LAUNCH_URL,
        status_code=503,
        json={"detail": "The server has exhausted its concurrent worker limit."},
        headers={"Retry-After": "2"},
    )
    add_submitted(httpx_mock)

    result = await run_call(mode, "launch", max_retries=3)

    assert result.error is None
    assert result.value == REQUEST_ID
    assert len(requests_to(httpx_mock, "POST", LAUNCH_URL)) == 2
    assert len(requests_to(httpx_mock, "GET", HEALTH_URL)) == 1
    assert result.delays == [2.0]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_launch_503_until_out_of_retries_is_not_marked_submitted(
    mode: str, httpx_mock: HTTPXMock
) -> None:
    add_health(httpx_mock)
    for _ in range(2):
        httpx_mock.add_response(
            method="POST", url=LAUNCH_URL, status_code=503, headers={"Retry-After": "1"}
        )

    result = await run_call(mode, "launch", max_retries=1)

    assert isinstance(result.error, ServiceUnavailableError)
    assert result.error.maybe_submitted is False
    assert result.error.is_retryable is True
    assert "may have been submitted" not in str(result.error)
    assert len(requests_to(httpx_mock, "POST", LAUNCH_URL)) == 2
    assert result.delays == [1.0]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_launch_sends_health_once_then_submits(mode: str, httpx_mock: HTTPXMock) -> None:
    add_health(httpx_mock)
    add_submitted(httpx_mock)

    result = await run_call(mode, "launch")

    assert result.error is None
    assert result.value == REQUEST_ID
    sent = httpx_mock.get_requests()
    assert [(r.method, r.url.path) for r in sent] == [("GET", "/api/health"), ("POST", "/launch")]
    assert all(r.headers["X-SkyPilot-API-Version"] == str(constants.API_VERSION) for r in sent)
    assert result.delays == []
