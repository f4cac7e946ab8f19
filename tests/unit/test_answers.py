"""Server answers we cannot read, values the server did not report, and submissions whose
fate is unknown. Everything raised is a ``SkyPilotError`` that says what it knows.

Runs the faithful fake (tests/fakes/transcript_server.py) with one answer tampered with, on
the sync and the async client alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from skypilot_client import (
    AsyncSkyPilotClient,
    ExecuteRequest,
    LaunchRequest,
    LogsRequest,
    SkyPilotClient,
)
from skypilot_client.errors import MalformedResponseError, SkyPilotError
from tests.fakes.transcript_server import VERSION_HEADERS, FakeSkyPilotServer

pytestmark = pytest.mark.anyio

URL = "http://fake-skypilot.test:46580"
MODES = ["sync", "async"]
Handler = Callable[[httpx.Request], httpx.Response]
Op = tuple[Callable[[SkyPilotClient], Any], Callable[[AsyncSkyPilotClient], Awaitable[Any]]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run(mode: str, handler: Handler, op: Op) -> Any:
    """The operation's result on one client (errors propagate)."""
    if mode == "sync":
        with SkyPilotClient(
            URL, max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handler))
        ) as client:
            return op[0](client)
    async with AsyncSkyPilotClient(
        URL, max_retries=0, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    ) as aclient:
        return await op[1](aclient)


async def raised(mode: str, handler: Handler, op: Op) -> SkyPilotError:
    try:
        await run(mode, handler, op)
    except SkyPilotError as exc:
        return exc
    raise AssertionError("the call did not raise")


def returning(fake: FakeSkyPilotServer, path: str, value: Any, name: str = "sky.op") -> Handler:
    """The fake, except that the request submitted to ``path`` returns ``value``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != path:
            return fake.handle(request)
        fake.requests.append(request)
        return fake._submit(name, value)

    return handler


def answering(
    fake: FakeSkyPilotServer, path: str, response: Callable[[], httpx.Response]
) -> Handler:
    """The fake, except that ``path`` answers ``response()`` directly."""

    def handler(request: httpx.Request) -> httpx.Response:
        return response() if request.url.path == path else fake.handle(request)

    return handler


EXECUTE = ExecuteRequest(cluster_name="train-up", command="echo hi")
LOGS = LogsRequest(cluster_name="train-up", job_id=1)
LAUNCH_ATTACHED = LaunchRequest(cluster_name="train-up", task={"run": "x"}, detach=False)


def op(name: str) -> Op:
    """A public call by name, for both clients."""

    async def launch_result(c: AsyncSkyPilotClient, request: LaunchRequest) -> Any:
        return await (await c.launch(request)).result()

    table: dict[str, Op] = {
        "health": (lambda c: c.health(), lambda c: c.health()),
        "execute": (lambda c: c.execute(EXECUTE), lambda c: c.execute(EXECUTE)),
        "get_logs": (lambda c: c.get_logs(LOGS), lambda c: c.get_logs(LOGS)),
        "launch_attached": (
            lambda c: c.launch(LAUNCH_ATTACHED).result(),
            lambda c: launch_result(c, LAUNCH_ATTACHED),
        ),
        "list_clusters": (lambda c: c.list_clusters(), lambda c: c.list_clusters()),
        "get_status": (lambda c: c.get_status("train-up"), lambda c: c.get_status("train-up")),
        "queue": (lambda c: c.queue("train-up"), lambda c: c.queue("train-up")),
        "get_request": (lambda c: c.get_request("rid"), lambda c: c.get_request("rid")),
        "list_requests": (lambda c: c.list_requests(), lambda c: c.list_requests()),
        "list_accelerators": (
            lambda c: c.list_accelerators("H100", clouds=["hyperbolic"]),
            lambda c: c.list_accelerators("H100", clouds=["hyperbolic"]),
        ),
        "enabled_clouds": (lambda c: c.enabled_clouds(), lambda c: c.enabled_clouds()),
        "cancel_request": (
            lambda c: c.cancel_request("rid"),
            lambda c: c.cancel_request("rid"),
        ),
        "terminate": (lambda c: c.terminate("train-up"), lambda c: c.terminate("train-up")),
        "stop": (lambda c: c.stop("train-up"), lambda c: c.stop("train-up")),
        "autostop": (
            lambda c: c.autostop("train-up", 10),
            lambda c: c.autostop("train-up", 10),
        ),
        "start": (lambda c: c.start("train-up"), lambda c: c.start("train-up")),
        "launch": (
            lambda c: c.launch(LaunchRequest(cluster_name="train-up", task={"run": "x"})),
            lambda c: c.launch(LaunchRequest(cluster_name="train-up", task={"run": "x"})),
        ),
    }
    return table[name]


# ---------------------------------------------------------------------------- unknown values


@pytest.mark.parametrize("mode", MODES)
async def test_unreported_exit_code_is_none_not_zero(mode: str) -> None:
    fake = FakeSkyPilotServer(job_exit_code=None)

    result = await run(mode, fake.handle, op("execute"))
    assert result.exit_code is None
    assert result.succeeded is None  # unknown, not True
    logs = await run(mode, fake.handle, op("get_logs"))
    assert logs.exit_code is None
    launched = await run(mode, fake.handle, op("launch_attached"))
    assert launched.exit_code is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", [True, "0", 1.5])
async def test_exit_code_of_the_wrong_type_is_not_an_exit_code(mode: str, value: Any) -> None:
    fake = FakeSkyPilotServer(job_exit_code=value)

    result = await run(mode, fake.handle, op("execute"))
    assert result.exit_code is None and result.succeeded is None


# ---------------------------------------------------------------------------- malformed answers

BAD_CLUSTER = {"name": "train-up", "status": "UP", "launched_at": "yesterday"}
BAD_JOB = {"job_name": "x", "status": "RUNNING"}
BAD_ROW = ["Hyperbolic", "1x-H100", 1, "lots", 28, 80, 271, 2.5, None, "us-central-1"]

SUBMITTED_RESULTS = [
    # (operation, path answered, value returned by the request, field the error names)
    ("list_clusters", "/status", [{"name": "x"}], "status"),
    ("list_clusters", "/status", {"clusters": []}, "return_value"),
    ("get_status", "/status", [BAD_CLUSTER], "launched_at"),
    ("queue", "/queue", [BAD_JOB], "job_id"),
    ("queue", "/queue", "no jobs", "return_value"),
    ("execute", "/job_status", {"one": "RUNNING"}, "job_status"),
    ("execute", "/exec", {"job_id": "seven"}, "job_id"),
    ("launch_attached", "/launch", {"job_id": "seven"}, "job_id"),
    ("launch_attached", "/launch", ["not", "a", "dict"], "return_value"),
    ("list_accelerators", "/list_accelerators", {"H100": [BAD_ROW]}, "accelerator_count"),
    ("list_accelerators", "/list_accelerators", ["H100"], "return_value"),
    ("enabled_clouds", "/enabled_clouds", "hyperbolic", "return_value"),
    ("cancel_request", "/api/cancel", {"rid": True}, "return_value"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "path", "value", "field"), SUBMITTED_RESULTS)
async def test_unreadable_request_result_names_the_field(
    mode: str, name: str, path: str, value: Any, field: str
) -> None:
    fake = FakeSkyPilotServer()

    error = await raised(mode, returning(fake, path, value), op(name))

    assert type(error) is MalformedResponseError, repr(error)
    assert field in error.message
    assert error.request_id  # the request whose answer it was


def _json(status: int, body: Any) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(status, json=body, headers=VERSION_HEADERS)


RUNNING = {"request_id": "r", "name": "sky.launch", "status": "RUNNING"}
DIRECT_ANSWERS = [
    ("health", "/api/health", _json(200, ["healthy"]), "health"),
    ("health", "/api/health", _json(200, {"api_version": "62"}), "status"),
    ("get_request", "/api/status", _json(200, {"request_id": "rid"}), "api/status"),
    ("get_request", "/api/status", _json(200, [{"request_id": "rid"}]), "name"),
    ("list_requests", "/api/status", _json(200, [{"name": "sky.launch"}]), "request_id"),
    ("list_requests", "/api/status", _json(200, [RUNNING, 2]), "[1]"),
    ("list_requests", "/api/status", _json(200, None), "api/status"),
    ("execute", "/api/get", _json(200, {"status": "SUCCEEDED", "name": "sky.exec"}), "request_id"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "path", "response", "field"), DIRECT_ANSWERS)
async def test_unreadable_answer_names_the_field(
    mode: str, name: str, path: str, response: Callable[[], httpx.Response], field: str
) -> None:
    fake = FakeSkyPilotServer()

    error = await raised(mode, answering(fake, path, response), op(name))

    assert type(error) is MalformedResponseError, repr(error)
    assert field in error.message


@pytest.mark.parametrize("mode", MODES)
async def test_parse_failures_chain_the_parser_error(mode: str) -> None:
    fake = FakeSkyPilotServer()

    error = await raised(mode, returning(fake, "/queue", [BAD_JOB]), op("queue"))

    assert error.__cause__ is not None  # the pydantic error, for whoever debugs it


# ---------------------------------------------------------------------------- maybe submitted

SUBMISSIONS = [
    ("launch", "/launch"),
    ("execute", "/exec"),
    ("terminate", "/down"),
    ("stop", "/stop"),
    ("start", "/start"),
    ("autostop", "/autostop"),
]
MAYBE_ACTED = [301, 307, 500, 501, 502, 504, 505, 507, 520, 521, 522, 523, 524, 599]
DID_NOT_ACT = [400, 401, 403, 404, 409, 422, 429, 503]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "path"), SUBMISSIONS)
@pytest.mark.parametrize("status", MAYBE_ACTED)
async def test_submission_answered_oddly_may_have_been_submitted(
    mode: str, name: str, path: str, status: int
) -> None:
    fake = FakeSkyPilotServer()

    def answer() -> httpx.Response:
        return httpx.Response(status, text="upstream trouble", headers={"location": "/x"})

    error = await raised(mode, answering(fake, path, answer), op(name))

    assert error.status_code == status
    assert error.maybe_submitted is True
    assert error.is_retryable is False
    assert "may have been submitted" in str(error)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "path"), SUBMISSIONS)
@pytest.mark.parametrize("status", DID_NOT_ACT)
async def test_submission_refused_did_nothing(mode: str, name: str, path: str, status: int) -> None:
    fake = FakeSkyPilotServer()

    def answer() -> httpx.Response:
        return httpx.Response(status, json={"detail": "no"})

    error = await raised(mode, answering(fake, path, answer), op(name))

    assert error.status_code == status
    assert error.maybe_submitted is False


UNREADABLE_ACCEPTANCE: list[Callable[[], httpx.Response]] = [
    lambda: httpx.Response(200, text="<html>gateway says hi</html>"),
    lambda: httpx.Response(200, content=b'{"half": '),
    lambda: httpx.Response(200, json=None),  # no X-Skypilot-Request-ID header
    lambda: httpx.Response(202, json=None, headers=VERSION_HEADERS),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "path"), SUBMISSIONS)
@pytest.mark.parametrize("answer", UNREADABLE_ACCEPTANCE, ids=["html", "half-json", "no-id", "202"])
async def test_unreadable_acceptance_may_have_been_submitted(
    mode: str, name: str, path: str, answer: Callable[[], httpx.Response]
) -> None:
    fake = FakeSkyPilotServer()

    error = await raised(mode, answering(fake, path, answer), op(name))

    assert type(error) is MalformedResponseError
    assert error.maybe_submitted is True
    assert error.is_retryable is False
