"""Run every Python example of docs/providers.md, in order, against the vendors' documented
responses (the live APIs cannot be reached from the tests): the examples call the real
clients exactly as written; pytest-httpx answers their HTTP requests with the documented
Lambda and RunPod responders."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from gpu_providers import _core
from tests.providers.lambda_cloud import documented as lambda_docs
from tests.providers.runpod import documented as runpod_docs
from tests.providers.timekeeping import AttachedClock, FakeClock
from tests.providers.vastai import documented as vast_docs
from tests.test_docs import REPO_ROOT, extract_python_blocks

DOC = REPO_ROOT / "docs" / "providers.md"
KEY_VARS = ("LAMBDA_API_KEY", "PAPERSPACE_API_KEY", "RUNPOD_API_KEY", "VAST_API_KEY")


def test_providers_guide_examples_run(
    httpx_mock: HTTPXMock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no vendor config file of the developer's
    clock = FakeClock()  # waits in the examples pass in fake time, at once
    monkeypatch.setattr(_core, "SYSTEM_CLOCK", AttachedClock(clock, clock.sleep))
    account = lambda_docs.DocumentedLambda()
    account.ssh_keys.append({"id": "1" * 32, "name": "my-laptop", "public_key": "ssh-ed25519 A"})
    runpod = runpod_docs.DocumentedRunPod()
    httpx_mock.add_callback(
        account, url=re.compile(r"https://cloud\.lambda\.ai/.*"), is_reusable=True
    )
    httpx_mock.add_callback(
        runpod, url=re.compile(r"https://api\.runpod\.io/graphql.*"), is_reusable=True
    )
    vast = vast_docs.DocumentedVast()
    httpx_mock.add_callback(vast, url=re.compile(r"https://console\.vast\.ai/.*"), is_reusable=True)

    blocks = [b for b in extract_python_blocks(DOC) if b.skip_reason is None]
    assert len(blocks) >= 8
    namespace: dict[str, Any] = {
        "__name__": "docs_providers",
        "LAMBDA_KEY": "doc-example-lambda-key",
        "RUNPOD_KEY": "doc-example-runpod-key",
        "VAST_KEY": "doc-example-vast-key",
    }
    for block in blocks:
        exec(block.compile(), namespace)  # noqa: S102 - the documentation's own examples

    out = capsys.readouterr().out
    assert "['lambda', 'paperspace', 'runpod', 'vastai']" in out
    assert "known providers: lambda, paperspace, runpod, vastai" in out
    assert "lambda 404 global/object-does-not-exist" in out
    assert "rejected:" in out
    launched = [r for r in account.requests if r.url.path.endswith("/instance-operations/launch")]
    # The lifecycle's launch, the money-safety one and the one with a startup script.
    assert len(launched) == 3
    assert all(b"my-laptop" in request.content for request in launched)
    assert sum(b"user_data" in request.content for request in launched) == 1
    # The documented instance keeps booting: the 15-minute wait ran on the fake clock.
    assert "not ready after 15 minutes: pending" in out
    # Vast.ai: the search ran without a key, the rest with it; one rental, then destroyed.
    searches = [r for r in vast.requests if r.url.path == "/api/v0/bundles/"]
    assert "authorization" not in searches[0].headers
    assert vast.count("PUT", "/api/v0/asks/4000101/") == 1
    assert vast_docs.ID_LAUNCHED not in vast.instances
    assert "4000101 NO on-demand $0.3521/h = 0.35 + 0.002083 disk" in out
    assert "12000200 pending NO" in out
    for closing in ("lam", "runpod", "vast"):
        namespace[closing].close()
