"""Four monitoring processes on one real PostgreSQL ledger with 200 pending requests.

The server is tests/fakes/request_server.py served on loopback: a FAKE of the request
endpoints, not the real SkyPilot server, which cannot hold 200 requests quickly (the
restart test against the real server is tests/integration/test_monitor_live.py). The
database is real: the throwaway PostgreSQL server of tests/ledger/conftest.py.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

from skypilot_client.ledger import open_ledger
from tests.fakes.request_server import FakeRequestServer

ROOT = Path(__file__).resolve().parents[2]
FINAL_KINDS = {"RequestSucceeded", "RequestFailed", "RequestCancelled", "RequestLost"}


def test_four_monitor_processes_emit_each_final_event_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    fake = FakeRequestServer()
    rng = random.Random(10)
    expected: dict[str, str] = {}
    with open_ledger(postgres_url) as ledger:
        for i in range(200):
            rid = str(uuid.uuid4())
            ledger.record_request(rid, "launch", cluster=f"node-{i}", tenant="fleet")
            if i % 50 == 49:  # the server never heard of these: LOST after two checks
                expected[rid] = "LOST"
                continue
            final = rng.choice(["SUCCEEDED", "SUCCEEDED", "FAILED", "CANCELLED"])
            fake.add(rid, final=final, checks=rng.randint(0, 3))
            expected[rid] = final
    server, url = fake.serve()
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.monitor_process",
                    url,
                    postgres_url,
                    str(tmp_path / f"events-{n}.jsonl"),
                    "--interval",
                    "0.05",
                    "--lease",
                    "10",
                    "--claim-limit",
                    "20",
                    "--exit-when-idle",
                    "--deadline",
                    "150",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
            )
            for n in range(4)
        ]
        codes = [p.wait(180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.shutdown()
    assert codes == [0, 0, 0, 0]

    events = []
    for n in range(4):
        path = tmp_path / f"events-{n}.jsonl"
        if path.exists():
            events += [json.loads(line) for line in path.read_text().splitlines()]
    finals = [e for e in events if e["kind"] in FINAL_KINDS]
    assert Counter(e["request_id"] for e in finals) == Counter(dict.fromkeys(expected, 1))
    assert {e["request_id"]: e["status"] for e in finals} == expected
    assert all(e["error"] == "ResourcesUnavailableError" for e in finals if e["status"] == "FAILED")
    assert len({e["pid"] for e in finals}) >= 2  # the work really was shared
    with open_ledger(postgres_url) as ledger:
        assert ledger.list_pending() == []
        assert {rid: ledger.get_request(rid).status for rid in expected} == expected  # type: ignore[union-attr]
    # Batched: far fewer status calls than request checks.
    checks = sum(r.seen for r in fake.requests.values())
    assert fake.count("/api/status") < checks / 5


def test_the_async_monitor_awaits_an_async_postgres_ledger(postgres_url: str) -> None:
    import asyncio

    import httpx

    from skypilot_client import AsyncSkyPilotClient
    from skypilot_client.ledger import AsyncPostgresLedger
    from skypilot_client.monitor import AsyncRequestMonitor, RequestEvent

    fake = FakeRequestServer()
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for n, rid in enumerate(ids):
        fake.add(rid, final="FAILED" if n == 0 else "SUCCEEDED", checks=1)

    async def main() -> list[RequestEvent]:
        ledger = await AsyncPostgresLedger.connect(postgres_url)
        async with ledger:
            for rid in ids:
                await ledger.record_request(rid, "launch")
            http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
            async with AsyncSkyPilotClient("http://fake", http_client=http) as client:
                finals: list[RequestEvent] = []
                async with AsyncRequestMonitor(client, ledger, interval=0.05) as monitor:
                    async for event in monitor.events():
                        if event.is_final:
                            finals.append(event)
                        if len(finals) == len(ids):
                            break
                assert await ledger.list_pending() == []
                return finals

    finals = asyncio.run(main())
    assert sorted(e.request_id for e in finals) == sorted(ids)
    assert [type(e).__name__ for e in finals if e.request_id == ids[0]] == ["RequestFailed"]
