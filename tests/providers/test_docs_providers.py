"""Run every Python example of docs/providers.md, in order, against the vendors' documented
responses (the live APIs cannot be reached from the tests): the examples call the real
clients exactly as written; pytest-httpx answers their HTTP requests with the documented
Lambda and RunPod responders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from gpu_providers import _core
from tests.providers.lambda_cloud import documented as lambda_docs
from tests.providers.runpod import documented as runpod_docs
from tests.providers.runpod import documented_rest as runpod_rest_docs
from tests.providers.tensordock import documented as tensordock_docs
from tests.providers.timekeeping import AttachedClock, FakeClock
from tests.providers.vastai import documented as vast_docs
from tests.test_docs import REPO_ROOT, extract_python_blocks

DOC = REPO_ROOT / "docs" / "providers.md"
KEY_VARS = (
    "LAMBDA_API_KEY",
    "PAPERSPACE_API_KEY",
    "RUNPOD_API_KEY",
    "TENSORDOCK_API_TOKEN",
    "VAST_API_KEY",
)


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
    tensordock = tensordock_docs.DocumentedTensorDock()
    httpx_mock.add_callback(
        tensordock,
        url=re.compile(r"https://dashboard\.tensordock\.com/api/v2/.*"),
        is_reusable=True,
    )
    runpod_rest = runpod_rest_docs.DocumentedRunPodRest()  # RunPod's REST v2 (api="rest")
    httpx_mock.add_callback(
        runpod_rest, url=re.compile(r"https://api\.runpod\.io/v2/.*"), is_reusable=True
    )
    vast = vast_docs.DocumentedVast()
    httpx_mock.add_callback(vast, url=re.compile(r"https://console\.vast\.ai/.*"), is_reusable=True)

    blocks = [b for b in extract_python_blocks(DOC) if b.skip_reason is None]
    assert len(blocks) >= 8
    namespace: dict[str, Any] = {
        "__name__": "docs_providers",
        "LAMBDA_KEY": "doc-example-lambda-key",
        "RUNPOD_KEY": "doc-example-runpod-key",
        "TENSORDOCK_TOKEN": "doc-example-tensordock-token",
        "VAST_KEY": "doc-example-vast-key",
    }
    for block in blocks:
        exec(block.compile(), namespace)  # noqa: S102 - the documentation's own examples

    out = capsys.readouterr().out
    assert "['lambda', 'paperspace', 'runpod', 'tensordock', 'vastai']" in out
    assert "known providers: lambda, paperspace, runpod, tensordock, vastai" in out
    assert "lambda 404 global/object-does-not-exist" in out
    assert "rejected:" in out
    launched = [r for r in account.requests if r.url.path.endswith("/instance-operations/launch")]
    # The lifecycle's launch, the money-safety one and the one with a startup script.
    assert len(launched) == 3
    assert all(b"my-laptop" in request.content for request in launched)
    assert sum(b"user_data" in request.content for request in launched) == 1
    # The documented instance keeps booting: the 15-minute wait ran on the fake clock.
    assert "not ready after 15 minutes: pending" in out
    # TensorDock: the cheapest RTX4090 offer (2 GPUs in Dallas), priced from its parts; the
    # launch created, read back, stopped and deleted one VM (the second delete: a 404)
    assert "2 RTX4090 0.793 {'gpu': 0.7, 'vcpu': 0.024, 'ram': 0.064, 'storage': 0.005}" in out
    assert f"ssh user@{tensordock_docs.NEW_IP} -p 22" in out
    assert "stop: stopping" in out
    assert tensordock.count("POST", "/instances") == 1
    assert tensordock.count("DELETE", "/instances/{id}") == 2
    assert tensordock_docs.NEW_IDS[0] not in tensordock.instances
    # RunPod over REST v2: launched, ready, terminated; spot and an unknown api refused.
    assert "rest https://api.runpod.io" in out
    assert f"{runpod_rest_docs.NEW_IDS[0]} {runpod_rest_docs.POD_PUBLIC_IP} 10400" in out
    assert runpod_rest_docs.NEW_IDS[0] not in runpod_rest.pods
    assert "spot: False" in out and "unknown RunPod api 'soap'" in out
    # Labels, the search across clouds and the orphans (issue 9).
    assert "nightly-eval {'job': 'nightly', 'managed-by': 'gpu-providers'}" in out
    deployed = [
        o for o in runpod.operations if o.get("operationName") == "PodFindAndDeployOnDemand"
    ]
    assert deployed[-1]["variables"]["input"]["name"] == (
        "nightly-eval.gpl.job_nightly.managed-by_gpu-providers"
    )
    assert "['lambda', 'runpod'] []" in out
    assert "True [('paperspace', 'MissingCredentialsError')]" in out
    assert "[('nightly-eval', 'would_terminate')]" in out
    assert "[('nightly-eval', 'terminated', True)]" in out
    assert out.count("8xH100 $") >= 2
    # Vast.ai: the search ran without a key, the rest with it; one rental, then destroyed.
    searches = [r for r in vast.requests if r.url.path == "/api/v0/bundles/"]
    assert "authorization" not in searches[0].headers
    assert vast.count("PUT", "/api/v0/asks/4000101/") == 1
    assert vast_docs.ID_LAUNCHED not in vast.instances
    assert "4000101 NO on-demand $0.3521/h = 0.35 + 0.002083 disk" in out
    assert "12000200 pending NO" in out
    assert "train-45 {'team': 'ml'}" in out
    created = [r for r in vast.requests if r.method == "PUT" and "/asks/" in r.url.path]
    assert json.loads(created[0].content)["label"] == "train-45.gpl.team_ml"
    for closing in ("lam", "runpod", "vast"):
        namespace[closing].close()
