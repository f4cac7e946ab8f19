"""A server that forgets requests (restart), waits through outages, and identical reads
sharing one round trip. Offline: a small in-memory fake of the SkyPilot protocol behind
``httpx.MockTransport`` (sync and async alike); backoff sleeps are recorded, never slept.
The same behaviours against the real server: tests/integration/test_restarts_live.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from skypilot_client import AsyncSkyPilotClient, LaunchRequest, SkyPilotClient
from skypilot_client._submitted import SubmittedRequests, submitted_now
from skypilot_client.errors import (
    APIConnectionError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    RequestLostError,
    WaitTimeoutError,
)

URL = "http://fake-skypilot.test:46580"
TASK = {"resources": {"infra": "hyperbolic", "accelerators": "H100:1"}, "run": "echo hi"}
MODES = ["sync", "async"]


def _cluster(name: str, status: str) -> dict[str, Any]:
    return {"name": name, "status": status, "cloud": "Hyperbolic", "autostop": -1}


class Fake:
    """Just enough of the server: async requests, /api/get, /api/status, and a restart."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}  # request id -> path that created it
        self.forgotten: set[str] = set()
        self.clusters = [_cluster("train-a", "UP")]
        self.calls: list[tuple[str, str]] = []
        self.get_failures: list[Exception | int] = []  # next /api/get answers: error or status
        self.gate: threading.Event | None = None  # holds /api/get until set (sync callers)
        self.agate: asyncio.Event | None = None  # the same for async callers
        self.status_code = 200  # answer to every POST (e.g. 401)
        self.restart_after: str | None = None  # restart right after accepting this path
        self.refuse_after_restart: str | None = None  # 401 for this path once restarted
        self._lock = threading.Lock()

    def restart(self) -> None:
        """What a server start does: its request database is cleared."""
        self.forgotten |= set(self.kinds)

    def count(self, path: str) -> int:
        return sum(1 for _, p in self.calls if p == path)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            self.calls.append((request.method, path))
        version = {"X-SkyPilot-API-Version": "62"}
        if path == "/api/health":
            return httpx.Response(
                200, json={"status": "healthy", "api_version": "62"}, headers=version
            )
        if path == "/api/get":
            rid = request.url.params["request_id"]
            if self.get_failures:
                failure = self.get_failures.pop(0)
                if isinstance(failure, Exception):
                    raise failure
                return httpx.Response(failure, json={"detail": "Server is shutting down"})
            if rid in self.forgotten or rid not in self.kinds:
                return httpx.Response(
                    404, json={"detail": f"Request '{rid}' not found"}, headers=version
                )
            return httpx.Response(200, json=self._record(rid), headers=version)
        if path == "/api/stream":
            rid = request.url.params["request_id"]
            if rid in self.forgotten or rid not in self.kinds:
                return httpx.Response(404, json={"detail": f"Request '{rid}' not found"})
            return httpx.Response(200, text="done\n", headers=version)
        if path == "/api/status":
            rid = request.url.params["request_ids"]
            known = rid in self.kinds and rid not in self.forgotten
            return httpx.Response(200, json=[self._record(rid)] if known else [], headers=version)
        refused = self.refuse_after_restart == path and self.forgotten
        if self.status_code != 200 or refused:
            return httpx.Response(401, json={"detail": "Invalid or expired token"})
        with self._lock:
            rid = f"req-{len(self.kinds) + 1:04d}-{path.strip('/').replace('/', '-')}"
            self.kinds[rid] = path
        if self.restart_after == path:
            self.restart()
        return httpx.Response(200, json=None, headers={**version, "X-Skypilot-Request-ID": rid})

    def _record(self, rid: str) -> dict[str, Any]:
        path = self.kinds[rid]
        value: Any = None
        if path == "/status":
            value = self.clusters
        elif path == "/launch":
            value = {"job_id": 1, "handle": "gAROLg=="}
        elif path == "/enabled_clouds":
            value = ["hyperbolic"]
        name = "sky." + path.strip("/")
        return {
            "request_id": rid,
            "name": name,
            "status": "SUCCEEDED",
            "return_value": json.dumps(value),
            "error": "null",
            "created_at": 1795433897.31,
            "cluster_name": None,
        }

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/get" and self.agate is not None:
            await asyncio.wait_for(self.agate.wait(), 5)
        return self.handle(request)

    def shandle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/get" and self.gate is not None:
            assert self.gate.wait(5), "the test never opened the gate"
        return self.handle(request)


def sync_client(fake: Fake, **kwargs: Any) -> SkyPilotClient:
    sleeps = kwargs.pop("sleeps", [])
    http = httpx.Client(transport=httpx.MockTransport(fake.shandle))
    return SkyPilotClient(URL, http_client=http, _sleep=sleeps.append, **kwargs)


def async_client(fake: Fake, **kwargs: Any) -> AsyncSkyPilotClient:
    sleeps: list[float] = kwargs.pop("sleeps", [])

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.ahandle))
    return AsyncSkyPilotClient(URL, http_client=http, _sleep=sleep, **kwargs)


def run(mode: str, fake: Fake, body: Callable[[Any], Any], **kwargs: Any) -> Any:
    """``body(client)`` with a sync client, or awaited with an async one."""
    if mode == "sync":
        with sync_client(fake, **kwargs) as client:
            return body(client)

    async def main() -> Any:
        async with async_client(fake, **kwargs) as client:
            result = body(client)
            while isinstance(result, Awaitable):
                result = await result
            return result

    return asyncio.run(main())


async def _launch_and_wait(client: Any, fake: Fake, **result_kwargs: Any) -> Any:
    handle = await client.launch(LaunchRequest(cluster_name="train-a", task=TASK))
    fake.restart()
    return await handle.result(timeout=30, **result_kwargs)


def launch_then_restart(
    mode: str, fake: Fake, *, max_retries: int = 3, **result_kwargs: Any
) -> RequestLostError:
    def sync_body(client: SkyPilotClient) -> Any:
        handle = client.launch(LaunchRequest(cluster_name="train-a", task=TASK))
        fake.restart()
        return handle.result(timeout=30, **result_kwargs)

    def body(client: Any) -> Any:
        if mode == "sync":
            return sync_body(client)
        return _launch_and_wait(client, fake, **result_kwargs)

    with pytest.raises(RequestLostError) as info:
        run(mode, fake, body, max_retries=max_retries)
    return info.value


# ---------------------------------------------------------------------------- lost requests


@pytest.mark.parametrize("mode", MODES)
def test_a_launch_the_server_forgot_is_named_and_maybe_submitted(mode: str) -> None:
    fake = Fake()
    lost = launch_then_restart(mode, fake)
    assert isinstance(lost, NotFoundError) and lost.status_code == 404
    assert lost.maybe_submitted and not lost.is_retryable
    assert lost.operation == "launch" and lost.cluster_name == "train-a"
    assert lost.request_id is not None and lost.request_id.endswith("-launch")
    assert "restarted" in lost.message and "client.get_status('train-a')" in lost.message
    assert "reconcile=True" in lost.message
    assert not lost.reconciled and lost.cluster_status is None
    assert fake.count("/api/get") == 1  # promptly: a 404 is not retried


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("state", "says"), [("UP", "is UP"), ("INIT", "is INIT"), (None, "no cluster")]
)
def test_reconcile_reports_what_exists(mode: str, state: str | None, says: str) -> None:
    fake = Fake()
    fake.clusters = [_cluster("train-a", state)] if state else [_cluster("other", "UP")]
    lost = launch_then_restart(mode, fake, reconcile=True)
    assert lost.reconciled
    if state is None:
        assert lost.cluster_status is None
    else:
        assert lost.cluster_status.name == "train-a" and lost.cluster_status.status.value == state
    assert "Reconciled: " in lost.message and says in lost.message
    assert lost.maybe_submitted


@pytest.mark.parametrize("mode", MODES)
def test_reconcile_that_cannot_read_the_status_still_raises_the_lost_request(mode: str) -> None:
    fake = Fake()
    fake.refuse_after_restart = "/status"
    lost = launch_then_restart(mode, fake, reconcile=True, max_retries=0)
    assert not lost.reconciled
    assert (
        "Reading the cluster's status to reconcile failed too (AuthenticationError" in lost.message
    )


@pytest.mark.parametrize("mode", MODES)
def test_an_id_this_client_never_submitted_stays_a_plain_not_found(mode: str) -> None:
    fake = Fake()
    with pytest.raises(NotFoundError) as info:
        run(mode, fake, lambda c: c.wait_for_request("0b6c1f7e-never-submitted", timeout=5))
    assert type(info.value) is NotFoundError and not info.value.maybe_submitted
    with pytest.raises(NotFoundError) as info:
        run(mode, fake, lambda c: c.get_request("0b6c1f7e-never-submitted"))
    assert type(info.value) is NotFoundError


@pytest.mark.parametrize("mode", MODES)
def test_a_lost_read_is_named_but_not_maybe_submitted(mode: str) -> None:
    fake = Fake()
    fake.restart_after = "/status"  # the server restarts between the submit and the wait
    with pytest.raises(RequestLostError) as info:
        run(mode, fake, lambda c: c.list_clusters())
    lost = info.value
    assert lost.operation == "status" and not lost.maybe_submitted and lost.cluster_name is None
    assert "calling again is safe" in lost.message


@pytest.mark.parametrize("mode", MODES)
def test_get_request_of_a_forgotten_submission_and_copies_share_the_record(mode: str) -> None:
    fake = Fake()

    def sync_body(client: SkyPilotClient) -> Any:
        rid = client.launch(LaunchRequest(cluster_name="train-a", task=TASK)).request_id
        fake.restart()
        return client.with_options(timeout=5).get_request(rid)

    async def async_body(client: AsyncSkyPilotClient) -> Any:
        rid = (await client.launch(LaunchRequest(cluster_name="train-a", task=TASK))).request_id
        fake.restart()
        return await client.with_options(timeout=5).get_request(rid)

    with pytest.raises(RequestLostError) as info:
        run(mode, fake, sync_body if mode == "sync" else async_body)
    assert info.value.maybe_submitted and info.value.cluster_name == "train-a"


def test_streaming_the_log_of_a_forgotten_request_names_it() -> None:
    fake = Fake()
    with sync_client(fake) as client:
        handle = client.launch(LaunchRequest(cluster_name="train-a", task=TASK))
        assert list(handle.stream(follow=False)) == ["done"]
        fake.restart()
        with pytest.raises(RequestLostError) as info:
            list(handle.stream(follow=False))
        with pytest.raises(NotFoundError) as other:
            list(client.stream_request_logs("0b6c1f7e-never-submitted"))
    assert info.value.maybe_submitted and info.value.request_id == handle.request_id
    assert type(other.value) is NotFoundError


def test_a_lost_managed_job_launch_points_at_the_jobs_queue() -> None:
    fake = Fake()
    with sync_client(fake) as client:
        handle = client.jobs.launch({"run": "echo hi"}, name="nightly")
        fake.restart()
        with pytest.raises(RequestLostError) as info:
            handle.result(timeout=5)
    assert info.value.maybe_submitted and info.value.operation == "jobs.launch"
    assert "client.jobs.queue()" in info.value.message


def test_an_unknown_endpoint_404_is_not_a_lost_request() -> None:
    fake = Fake()

    def no_api_get(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/get":
            return httpx.Response(404, json={"detail": "Not Found"})
        return fake.handle(request)

    http = httpx.Client(transport=httpx.MockTransport(no_api_get))
    with SkyPilotClient(URL, http_client=http) as client:
        handle = client.launch(LaunchRequest(cluster_name="train-a", task=TASK))
        with pytest.raises(NotFoundError) as info:
            handle.result(timeout=5)
    assert type(info.value) is NotFoundError  # the server's own words decide, not a bare 404


def test_the_record_of_submitted_requests_is_bounded_and_knows_prefixes() -> None:
    record = SubmittedRequests(capacity=3)
    for i in range(5):
        record.record(submitted_now(f"{i}aaaaaaaa-{i}", "status", None, False))
    assert len(record) == 3
    assert record.lookup("0aaaaaaaa-0") is None  # the oldest were forgotten
    assert record.lookup("4aaaaaaaa-4") is not None
    assert record.lookup("3aaaaaaaa") is not None  # a unique prefix, as the server allows
    assert record.lookup("3aaa") is None  # too short to trust


# ---------------------------------------------------------------------------- outages


@pytest.mark.parametrize("mode", MODES)
def test_a_wait_rides_out_an_outage_and_logs_it_once(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="skypilot_client")
    fake = Fake()
    failures: list[Exception | int] = [httpx.ConnectError("refused")] * 6
    fake.get_failures = [*failures, 503, httpx.ReadError("reset")]
    sleeps: list[float] = []

    def body(client: Any) -> Any:
        return client.list_clusters()

    clusters = run(mode, fake, body, max_retries=0, sleeps=sleeps)  # max_retries: submissions
    assert [c.name for c in clusters.clusters] == ["train-a"]
    assert fake.count("/status") == 1  # the submission was not repeated
    assert fake.count("/api/get") == 9
    assert len(sleeps) == 8
    assert sleeps[0] <= 1.0 and all(s <= 5.0 for s in sleeps)  # capped backoff
    assert max(sleeps) >= 3.75  # ... that did grow to the cap (minus jitter)
    records = [
        r for r in caplog.records if "unreachable" in r.getMessage() or "again" in r.getMessage()
    ]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]
    assert "answers again" in records[1].getMessage()


@pytest.mark.parametrize("mode", MODES)
def test_an_outage_longer_than_the_wait_ends_at_its_deadline(mode: str) -> None:
    fake = Fake()
    fake.kinds["req-known"] = "/status"
    fake.get_failures = [httpx.ConnectError("refused")] * 100_000
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as info:
        run(mode, fake, lambda c: c.wait_for_request("req-known", timeout=0.3))
    assert time.monotonic() - started < 3
    assert "unreachable" in info.value.message
    assert isinstance(info.value.__cause__, APIConnectionError)


@pytest.mark.parametrize("mode", MODES)
def test_errors_retrying_cannot_fix_end_a_wait_at_once(mode: str) -> None:
    fake = Fake()
    fake.kinds["req-known"] = "/status"
    fake.get_failures = [401]
    with pytest.raises(AuthenticationError):
        run(mode, fake, lambda c: c.wait_for_request("req-known", timeout=30))
    assert fake.count("/api/get") == 1


# ---------------------------------------------------------------------------- single flight


def test_threads_asking_the_same_question_share_one_round_trip() -> None:
    fake = Fake()
    fake.gate = threading.Event()
    results: list[Any] = []
    with sync_client(fake) as client:
        client.health()
        threads = [
            threading.Thread(target=lambda: results.append(client.list_clusters()))
            for _ in range(20)
        ]
        for t in threads:
            t.start()
        flights = _wait_for_joins(client, 19)
        fake.gate.set()
        for t in threads:
            t.join(10)
    assert fake.count("/status") == 1 and fake.count("/api/get") == 1
    assert flights.joined == 19
    assert len(results) == 20 and all(r == results[0] for r in results)


def _wait_for_joins(client: Any, count: int) -> Any:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        flights = client._shared.flights
        if flights is not None and flights.joined >= count:
            return flights
        time.sleep(0.01)
    raise AssertionError("the callers never joined one flight")


async def _gather_async(
    fake: Fake, calls: Callable[[AsyncSkyPilotClient], list[Any]], **kwargs: Any
) -> list[Any]:
    fake.agate = asyncio.Event()
    async with async_client(fake, **kwargs) as client:
        await client.health()
        tasks = [asyncio.ensure_future(c) for c in calls(client)]
        for _ in range(50):
            await asyncio.sleep(0)
        fake.agate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)


def test_tasks_asking_the_same_question_share_one_round_trip() -> None:
    fake = Fake()
    results = asyncio.run(_gather_async(fake, lambda c: [c.list_clusters() for _ in range(50)]))
    assert fake.count("/status") == 1
    assert all(r == results[0] for r in results) and results[0].total == 1


def test_different_questions_tenants_and_workspaces_never_share() -> None:
    fake = Fake()

    def calls(c: AsyncSkyPilotClient) -> list[Any]:
        return [
            c.list_clusters(),
            c.list_clusters(all_users=True),  # other arguments
            c.with_options(token="sky_tenant_b").list_clusters(),  # other tenant
            c.with_options(workspace="team-b").list_clusters(),  # other workspace
            c.with_options(timeout=5).list_clusters(),  # same question: shared
            c.enabled_clouds(),
            c.enabled_clouds(),
        ]

    results = asyncio.run(_gather_async(fake, calls))
    assert not [r for r in results if isinstance(r, BaseException)]
    assert fake.count("/status") == 4 and fake.count("/enabled_clouds") == 1


def test_coalescing_can_be_turned_off() -> None:
    fake = Fake()
    asyncio.run(
        _gather_async(fake, lambda c: [c.list_clusters() for _ in range(5)], coalesce_reads=False)
    )
    assert fake.count("/status") == 5
    fake = Fake()
    asyncio.run(
        _gather_async(
            fake, lambda c: [c.with_options(coalesce_reads=False).list_clusters() for _ in range(3)]
        )
    )
    assert fake.count("/status") == 3


def test_submissions_are_never_coalesced() -> None:
    fake = Fake()

    def calls(c: AsyncSkyPilotClient) -> list[Any]:
        return [c.terminate("train-a", timeout=5) for _ in range(3)]

    asyncio.run(_gather_async(fake, calls))
    assert fake.count("/down") == 3


def test_an_error_reaches_every_waiter_each_its_own() -> None:
    fake = Fake()
    fake.status_code = 401
    results = asyncio.run(
        _gather_async(fake, lambda c: [c.list_clusters() for _ in range(4)], max_retries=0)
    )
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert len({id(r) for r in results}) == 4  # one copy per waiter
    assert len({r.message for r in results}) == 1 and fake.count("/status") == 1


def test_cancelling_one_waiter_leaves_the_shared_call_to_the_others() -> None:
    fake = Fake()

    async def main() -> list[Any]:
        fake.agate = asyncio.Event()
        async with async_client(fake) as client:
            await client.health()
            first = asyncio.ensure_future(client.list_clusters())  # leads the flight
            others = [asyncio.ensure_future(client.list_clusters()) for _ in range(3)]
            for _ in range(20):
                await asyncio.sleep(0)
            first.cancel()
            for _ in range(5):
                await asyncio.sleep(0)
            fake.agate.set()
            assert first.cancelled() or isinstance(first.exception(), asyncio.CancelledError)
            return await asyncio.gather(*others)

    results = asyncio.run(main())
    assert [r.total for r in results] == [1, 1, 1]
    assert fake.count("/status") == 1


def test_the_read_cache_is_off_by_default_and_keeps_answers_for_its_ttl() -> None:
    fake = Fake()
    with sync_client(fake) as client:
        client.list_clusters()
        client.list_clusters()
        assert fake.count("/status") == 2  # no cache by default
        cached = client.with_options(read_cache_ttl=60)
        first = cached.list_clusters()
        fake.clusters = []
        assert cached.list_clusters() == first  # kept for 60 s
        assert client.list_clusters().total == 0  # a copy without a TTL asks again
        assert fake.count("/status") == 4
    with pytest.raises(InvalidInputError):
        SkyPilotClient(URL, read_cache_ttl=-1)


def test_results_handed_to_several_callers_are_their_own_containers() -> None:
    fake = Fake()
    fake.gate = threading.Event()
    results: list[list[str]] = []
    with sync_client(fake) as client:
        client.health()
        threads = [
            threading.Thread(target=lambda: results.append(client.enabled_clouds()))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        _wait_for_joins(client, 2)
        fake.gate.set()
        for t in threads:
            t.join(10)
    results[0].append("mutated")
    assert results[1] == ["hyperbolic"] and results[2] == ["hyperbolic"]


@pytest.mark.parametrize("mode", MODES)
def test_a_submission_recorded_in_the_ledger_is_named_by_another_client(
    mode: str, tmp_path: Any
) -> None:
    """A launch submitted by another process (or before this one restarted) is known from
    the ledger: after a server restart it is a RequestLostError, not a plain 404."""
    from skypilot_client.ledger import open_ledger

    fake = Fake()
    with open_ledger(str(tmp_path / "ledger.sqlite3")) as ledger:
        with sync_client(fake, ledger=ledger) as first:  # "the process that died"
            request_id = first.launch(LaunchRequest(cluster_name="train-a", task=TASK)).request_id
        fake.restart()
        wait = lambda c: c.wait_for_request(request_id, timeout=5)  # noqa: E731
        with pytest.raises(RequestLostError) as info:
            run(mode, fake, wait, ledger=ledger)
        lost = info.value
        assert lost.operation == "launch" and lost.cluster_name == "train-a"
        assert lost.maybe_submitted and lost.request_id == request_id
        # Without the ledger the same id is a plain NotFoundError: nothing says it was ours.
        with pytest.raises(NotFoundError) as plain:
            run(mode, fake, wait)
        assert type(plain.value) is NotFoundError
