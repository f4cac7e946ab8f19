"""Client wiring (submissions recorded in the ledger) and the request monitor, offline.

The server here is tests/fakes/request_server.py (a fake of the request endpoints over
``httpx.MockTransport``); the real server is in tests/integration/test_monitor_live.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from skypilot_client import AsyncSkyPilotClient, LaunchRequest, SkyPilotClient
from skypilot_client.errors import InvalidInputError, SkyPilotError
from skypilot_client.ledger import Ledger, LedgerUnavailableError, open_ledger
from skypilot_client.monitor import (
    AsyncRequestMonitor,
    RequestCancelled,
    RequestEvent,
    RequestFailed,
    RequestLost,
    RequestMonitor,
    RequestRunning,
    RequestSucceeded,
)
from tests.fakes.request_server import VERSION_HEADERS, FakeRequestServer

URL = "http://skypilot.test"


def _client(fake: FakeRequestServer, **options: Any) -> SkyPilotClient:
    transport = httpx.MockTransport(fake.handler)
    return SkyPilotClient(
        URL, http_client=httpx.Client(transport=transport), max_retries=0, **options
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with open_ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


# -- client wiring ----------------------------------------------------------------------------


def _launch_server(request_id: str, seen: list[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/health":
            return httpx.Response(
                200, json={"status": "healthy", "api_version": "62"}, headers=VERSION_HEADERS
            )
        if request.url.path == "/launch":
            return httpx.Response(
                200, json=None, headers={**VERSION_HEADERS, "X-Skypilot-Request-ID": request_id}
            )
        raise AssertionError(request.url.path)

    return httpx.MockTransport(handle)


def test_a_launch_is_recorded_before_the_call_returns(ledger: Ledger) -> None:
    seen: list[str] = []
    http = httpx.Client(transport=_launch_server("req-launch-1", seen))
    with SkyPilotClient(URL, http_client=http, ledger=ledger, workspace="ws1") as client:
        team = client.with_options(tenant="team-a")
        handle = team.launch(LaunchRequest(task="run: echo hi", cluster_name="train-1"))
    assert handle.request_id == "req-launch-1"
    record = ledger.get_request("req-launch-1")
    assert record is not None
    assert (record.operation, record.cluster, record.workspace, record.tenant) == (
        "launch",
        "train-1",
        "ws1",
        "team-a",
    )
    assert record.status == "PENDING" and not record.is_final


def test_async_client_records_too_and_with_options_can_drop_the_ledger(ledger: Ledger) -> None:
    fake = FakeRequestServer()  # answers each POST with a new request id

    async def main() -> tuple[str, str]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
        async with AsyncSkyPilotClient(URL, http_client=http, ledger=ledger) as client:
            first = await client.launch(LaunchRequest(task="run: echo hi", cluster_name="a-1"))
            second = await client.with_options(ledger=None).launch(
                LaunchRequest(task="run: echo hi", cluster_name="a-2")
            )
            return first.request_id, second.request_id

    first, second = asyncio.run(main())
    record = ledger.get_request(first)
    assert record is not None and record.cluster == "a-1"
    assert first in fake.requests and second in fake.requests
    assert ledger.get_request(second) is None  # that copy records nothing


def test_reads_are_not_recorded_and_bad_wiring_is_refused_before_any_call(
    ledger: Ledger,
) -> None:
    fake = FakeRequestServer()
    with _client(fake, ledger=ledger) as client:
        client.health()
        assert ledger.list_pending() == []
        with pytest.raises(InvalidInputError):
            client.with_options(ledger=object())  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="tenant"):
            client.with_options(tenant="sky_abcdefghijklmnop1234")
    assert fake.count("/launch") == 0


def test_a_failed_ledger_write_names_the_submitted_request(ledger: Ledger) -> None:
    seen: list[str] = []
    http = httpx.Client(transport=_launch_server("req-closed-1", seen))
    client = SkyPilotClient(URL, http_client=http, ledger=ledger)

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise LedgerUnavailableError("ledger: database is locked")

    ledger.record_request = locked  # type: ignore[method-assign]
    with pytest.raises(SkyPilotError) as caught:
        client.launch(LaunchRequest(task="run: echo hi", cluster_name="train-2"))
    assert caught.value.request_id == "req-closed-1"
    assert caught.value.maybe_submitted and not caught.value.retryable


def test_importing_the_client_does_not_import_the_ledger_or_monitor() -> None:
    code = (
        "import sys, skypilot_client; from skypilot_client import SkyPilotClient; "
        "SkyPilotClient('http://x'); "
        "print(sorted(m for m in sys.modules if 'ledger' in m or 'monitor' in m "
        "or 'sqlite3' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the monitor ------------------------------------------------------------------------------


def _pending(
    ledger: Ledger, fake: FakeRequestServer, n: int, *, uuids: bool = False, **kwargs: Any
) -> list[str]:
    ids = [str(uuid.uuid4()) if uuids else f"req-{i:04d}" for i in range(n)]
    for rid in ids:
        ledger.record_request(rid, "launch", cluster=f"c-{rid}", tenant="t")
        fake.add(rid, **kwargs)
    return ids


def test_events_are_typed_and_each_final_event_is_emitted_once(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    ledger.record_request("ok", "launch", cluster="c1")
    ledger.record_request("bad", "launch", cluster="c2")
    ledger.record_request("stopped", "down", cluster="c3")
    ledger.record_request("gone", "launch")
    fake.add("ok", checks=1, message="Provisioning")
    fake.add("bad", final="FAILED", checks=0)
    fake.add("stopped", final="CANCELLED", checks=0)
    events: list[RequestEvent] = []
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger, on_event=events.append, lost_after=2)
        first = monitor.check_once()
        second = monitor.check_once()
        third = monitor.check_once()
    assert events == first + second + third
    kinds = {(type(e).__name__, e.request_id) for e in events}
    assert kinds == {
        ("RequestRunning", "ok"),
        ("RequestFailed", "bad"),
        ("RequestCancelled", "stopped"),
        ("RequestSucceeded", "ok"),
        ("RequestLost", "gone"),
    }
    running = next(e for e in events if isinstance(e, RequestRunning))
    assert running.status_message == "Provisioning" and running.cluster == "c1"
    failed = next(e for e in events if isinstance(e, RequestFailed))
    assert type(failed.error).__name__ == "ResourcesUnavailableError"
    assert ledger.get_request("bad").error_type == "ResourcesUnavailableError"  # type: ignore[union-attr]
    assert "no capacity" in (ledger.get_request("bad").summary or "")  # type: ignore[union-attr]
    assert ledger.get_request("gone").status == "LOST"  # type: ignore[union-attr]
    assert isinstance(next(e for e in events if e.request_id == "gone"), RequestLost)
    assert isinstance(next(e for e in events if e.request_id == "stopped"), RequestCancelled)
    assert ledger.list_pending() == []
    assert sum(isinstance(e, RequestSucceeded) for e in events) == 1


def test_many_requests_go_in_few_status_calls_within_the_url_budget(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    _pending(ledger, fake, 450, uuids=True, checks=5)  # server ids are UUIDs
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger, max_query_bytes=6_000)
        monitor.check_once()
    calls = fake.count("/api/status")
    assert calls == monitor.last_cycle_calls
    assert 4 <= calls <= 5  # ~110 uuids-sized ids per 6 KB query
    assert fake.max_ids_seen >= 100
    assert fake.max_query_bytes <= 6_000


def test_more_pending_than_one_claim_are_checked_in_turn(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    ids = _pending(ledger, fake, 30, checks=100)
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger, claim_limit=10)
        for _ in range(3):
            monitor.check_once()
    assert {fake.requests[rid].seen for rid in ids} == {1}


def test_an_unreachable_server_backs_off_and_changes_nothing(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    _pending(ledger, fake, 3, checks=0)
    fake.down = True
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger, interval=1.0, max_backoff=8.0)
        with pytest.raises(SkyPilotError):
            monitor.check_once()
        waits = [monitor._core.plan_wait(True) for _ in range(6)]
        assert waits[0] <= 2.0 and max(waits) <= 8.0 and waits[-1] >= 6.4
        assert monitor._core.plan_wait(False) == 1.0
        assert len(ledger.list_pending()) == 3
        fake.down = False
        assert len(monitor.check_once()) == 3


def test_the_thread_runs_cycles_stops_and_gives_claims_back(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    _pending(ledger, fake, 5, checks=0)
    ledger.record_request("slow", "launch")
    fake.add("slow", checks=10_000)
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger, interval=0.05, lease_seconds=30)
        with monitor:
            got = []
            for event in monitor.events(timeout=5):
                if isinstance(event, RequestSucceeded):
                    got.append(event.request_id)
                if len(got) == 5:
                    break
    assert sorted(got) == [f"req-{i:04d}" for i in range(5)]
    slow = ledger.get_request("slow")
    assert slow is not None and slow.claimed_by is None  # released on stop


def test_a_broken_callback_does_not_stop_the_monitor(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    _pending(ledger, fake, 2, checks=0)

    def broken(event: RequestEvent) -> None:
        raise RuntimeError("bug in the service")

    seen: list[RequestEvent] = []
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger, on_event=[broken, seen.append])
        monitor.check_once()
    assert len(seen) == 2


def test_settings_are_checked(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    with _client(fake) as client:
        led = ledger
        bads: list[dict[str, Any]] = [
            {"interval": 0},
            {"interval": 30, "lease_seconds": 10},
            {"claim_limit": 0},
            {"lost_after": 0},
            {"max_query_bytes": 10},
        ]
        for bad in bads:
            with pytest.raises(InvalidInputError):
                RequestMonitor(client, led, **bad)


def test_async_monitor_with_sqlite_uses_its_own_thread_and_an_async_iterator(
    ledger: Ledger,
) -> None:
    fake = FakeRequestServer()
    _pending(ledger, fake, 4, checks=1)
    import threading

    main_thread = threading.get_ident()
    ledger_threads: set[int] = set()
    real_claim = ledger.claim_pending

    def claim(*args: Any, **kwargs: Any) -> Any:
        ledger_threads.add(threading.get_ident())
        return real_claim(*args, **kwargs)

    ledger.claim_pending = claim  # type: ignore[method-assign]

    async def main() -> list[RequestEvent]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
        async with AsyncSkyPilotClient(URL, http_client=http, max_retries=0) as client:
            monitor = AsyncRequestMonitor(client, ledger, interval=0.02)
            finals: list[RequestEvent] = []
            async with monitor:
                async for event in monitor.events():
                    if not isinstance(event, RequestRunning):
                        finals.append(event)
                    if len(finals) == 4:
                        break
            return finals

    finals = asyncio.run(main())
    assert {type(e) for e in finals} == {RequestSucceeded}
    assert len({e.request_id for e in finals}) == 4
    assert ledger_threads and main_thread not in ledger_threads


def test_events_emitted_before_anyone_iterates_are_not_lost(ledger: Ledger) -> None:
    fake = FakeRequestServer()
    _pending(ledger, fake, 3, checks=0)
    with _client(fake) as client:
        monitor = RequestMonitor(client, ledger)
        emitted = monitor.check_once()
        assert [e.request_id for e in monitor.events(timeout=0.1)] == [
            e.request_id for e in emitted
        ]
        assert len(emitted) == 3
