"""Run every Python example of docs/service.md, in order, in one namespace: SQLite in a temp
directory, the PostgreSQL example against the throwaway server (``POSTGRES_URL``), and the
client and monitor examples against the loopback fake of the request endpoints
(``SERVER_URL``; tests/fakes/request_server.py: the real server's behaviour is checked by
tests/integration/test_monitor_live.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.request_server import FakeRequestServer
from tests.test_docs import REPO_ROOT, extract_python_blocks

DOC = REPO_ROOT / "docs" / "service.md"


def test_service_guide_examples_run(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SKYPILOT_LEDGER_URL", raising=False)
    blocks = [b for b in extract_python_blocks(DOC) if b.skip_reason is None]
    assert len(blocks) >= 7
    server, server_url = FakeRequestServer().serve()
    namespace: dict[str, Any] = {
        "__name__": "docs_service",
        "POSTGRES_URL": postgres_url,
        "SERVER_URL": server_url,
    }
    try:
        for block in blocks:
            exec(block.compile(), namespace)  # noqa: S102 - the documentation's own examples
    finally:
        server.shutdown()

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "['4f1c9a-launch']"
    assert lines[1] == "True False []"
    assert lines[2] == "3 {True}"
    assert lines[3] == "[]"
    assert lines[4] == "True True"
    assert lines[5] == "[('train-8-gpu', None)]"
    assert lines[6] == "[]"
    assert "label 'api_key' names a credential" in lines[7] and "secret-value" not in lines[7]
    assert lines[8] == "401 for Authorization: Bearer **********"
    assert lines[9] == "True 2"
    assert lines[10] == "['fleet-req-1']"
    assert lines[11] == "0"  # nothing is 30 days old
    # Wiring the clients, the monitor, metrics:
    assert lines[12] == "launch train-1 team-a PENDING"
    assert lines[13] == "RequestSucceeded True team-a"
    assert lines[14] == "['RequestRunning', 'RequestSucceeded'] []"
    assert lines[15] == "RequestSucceeded"
    assert lines[16] == "1.0"
