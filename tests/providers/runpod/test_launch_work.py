"""RunPod launches that carry work and what comes after: startup script, environment and SSH
key; readiness (a public SSH port); preemption; spot resume with a bid; one region notion;
the CUDA floor; and the money invariants when something fails after the pod was made.

Network-level tests run through the sync and the async client (``kind``) over the documented
GraphQL responder on fake time (nothing really sleeps).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpu_providers import GPUFilters, LaunchRequest
from gpu_providers.errors import (
    CapacityError,
    InstanceNotReadyError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    UnexpectedResponseError,
    WaitTimeoutError,
)
from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider
from gpu_providers.runpod import _mapping as M
from gpu_providers.runpod._generated.get_pod import GetPod
from gpu_providers.types import InstanceState, ProviderFeature

from ..paperspace.harness import FakeTime, drive
from . import documented as D

KEY = "SENTINEL-runpod-work-key-51ab"
CLASSES = (RunPodProvider, AsyncRunPodProvider)
SECRET_VALUE = "s3cr3t-token-value-never-logged"
SECRET_SCRIPT = "#!/bin/bash\nexport HF_TOKEN=hf_script_secret_0000\necho started\n"


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(
    kind: str,
    responder: Callable[[httpx.Request], Any],
    method: str,
    *args: Any,
    time: FakeTime | None = None,
    **options: Any,
) -> Any:
    options.setdefault("api_key", KEY)
    transport = httpx.MockTransport(responder)
    return drive(kind, CLASSES, method, *args, time=time, transport=transport, **options)


def sent(responder: D.DocumentedRunPod, operation: str) -> list[dict[str, Any]]:
    """The variables of every request of ``operation``."""
    return [o["variables"] for o in responder.operations if o.get("operationName") == operation]


def deploy_input(responder: D.DocumentedRunPod) -> dict[str, Any]:
    (variables,) = sent(responder, "PodFindAndDeployOnDemand") or sent(
        responder, "PodRentInterruptable"
    )
    result: dict[str, Any] = variables["input"]
    return result


# -- 1. startup script, environment, SSH key ---------------------------------------------------


def test_features_and_notes() -> None:
    client = RunPodProvider(api_key=KEY)
    for feature in (
        ProviderFeature.STARTUP_SCRIPT,
        ProviderFeature.ENVIRONMENT,
        ProviderFeature.SSH_PUBLIC_KEY,
    ):
        assert client.supports_feature(feature)
    notes = " ".join(client.get_provider_info().notes)
    assert "a pod-level key overrides the public keys of the account's settings" in notes


def test_env_and_ssh_key_become_the_pod_env(kind: str) -> None:
    responder = D.DocumentedRunPod()
    request = LaunchRequest(
        gpu_type="H100", name="env", env={"A_TOKEN": SECRET_VALUE, "MODE": "x"},
        ssh_public_key="ssh-ed25519 AAAA test",
    )  # fmt: skip
    call(kind, responder, "launch_instance", request)
    assert deploy_input(responder)["env"] == [
        {"key": "A_TOKEN", "value": SECRET_VALUE},
        {"key": "MODE", "value": "x"},
        {"key": "PUBLIC_KEY", "value": "ssh-ed25519 AAAA test"},
        {"key": "SSH_PUBLIC_KEY", "value": "ssh-ed25519 AAAA test"},
    ]
    assert "dockerArgs" not in deploy_input(responder)  # no script: the image's own start


@pytest.mark.parametrize("name", ["PUBLIC_KEY", "SSH_PUBLIC_KEY"])
def test_public_key_given_twice_is_refused_before_any_request(kind: str, name: str) -> None:
    responder = D.DocumentedRunPod()
    request = LaunchRequest(
        gpu_type="H100", env={name: "ssh-rsa A"}, ssh_public_key="ssh-ed25519 B"
    )
    with pytest.raises(InvalidRequestError):
        call(kind, responder, "launch_instance", request)
    assert responder.requests == []


def test_startup_script_becomes_the_start_command(kind: str) -> None:
    responder = D.DocumentedRunPod()
    request = LaunchRequest(gpu_type="H100", name="script", startup_script=SECRET_SCRIPT)
    call(kind, responder, "launch_instance", request)
    command = deploy_input(responder)["dockerArgs"]
    program, flag, script = shlex.split(command)
    assert (program, flag) == ("bash", "-c")
    assert base64.b64encode(SECRET_SCRIPT.encode()).decode() in script
    assert "HF_TOKEN" not in command  # only ever base64
    assert script.endswith(M._KEEP_SSH)  # SSH still starts (the image's /start.sh first)


NASTY_SCRIPT = """#!/bin/bash
# quotes ' " and ` and $HOME and \\ and a heredoc; exit codes do not stop the pod
cat > "$OUT/result.txt" <<'EOF'
it's "quoted" `not run` $NOT_EXPANDED \\n ünïcødé
EOF
echo "home=$HOME" >> "$OUT/result.txt"
exit 3
"""


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("base64")), reason="no bash")
def test_the_start_command_runs_any_script_verbatim(tmp_path: Path) -> None:
    program, flag, command = shlex.split(M.start_command(NASTY_SCRIPT))
    # Run everything but the part that keeps the container alive (SSH start, sleep).
    command = command.removesuffix(M._KEEP_SSH) + "wait"
    out = tmp_path / "out"
    out.mkdir()
    env = {"HOME": str(tmp_path), "OUT": str(out), "PATH": os.environ.get("PATH", "")}
    subprocess.run([program, flag, command], env=env, check=True, timeout=60)
    text = (out / "result.txt").read_text(encoding="utf-8")
    assert text == ('it\'s "quoted" `not run` $NOT_EXPANDED \\n ünïcødé\n' + f"home={tmp_path}\n")
    saved = tmp_path / ".gpu-providers" / "startup.sh"
    assert saved.read_text(encoding="utf-8") == NASTY_SCRIPT
    for path in (saved, tmp_path / ".gpu-providers" / "startup.log"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # scripts carry secrets


def test_a_script_too_long_for_one_argument_is_refused_without_echoing_it(kind: str) -> None:
    responder = D.DocumentedRunPod()
    script = "echo " + "x" * 120_000 + " " + SECRET_VALUE
    with pytest.raises(InvalidRequestError) as info:
        call(
            kind,
            responder,
            "launch_instance",
            LaunchRequest(gpu_type="H100", startup_script=script),
        )
    assert responder.requests == []
    assert SECRET_VALUE not in str(info.value) and "xxxx" not in str(info.value)


def test_env_and_script_stay_out_of_repr_errors_and_logs(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = LaunchRequest(
        gpu_type="H100", name="secret", env={"A_TOKEN": SECRET_VALUE}, startup_script=SECRET_SCRIPT
    )
    assert SECRET_VALUE not in repr(request) and "HF_TOKEN" not in repr(request)
    responder = D.DocumentedRunPod(
        inject={"PodFindAndDeployOnDemand": [httpx.Response(502, text="bad gateway")]}
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        call(kind, responder, "launch_instance", request)
    assert info.value.maybe_submitted
    encoded = base64.b64encode(SECRET_SCRIPT.encode()).decode()
    for secret in (SECRET_VALUE, "HF_TOKEN", encoded):
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert secret not in caplog.text
    # gql logs request payloads at DEBUG: they are redacted, the records still there
    assert "[request payload redacted by gpu_providers]" in caplog.text


# -- 2. readiness -------------------------------------------------------------------------------


def _pod(**changes: Any) -> Any:
    body = D.pod(D.ID_READY, "p", "RUNNING", D.H100, cost=2.99, up=True)
    body.update(changes)
    parsed = GetPod.model_validate({"pod": body})
    assert parsed.pod is not None
    return parsed.pod


@pytest.mark.parametrize(
    ("runtime", "ready"),
    [
        (None, False),  # container not up
        (D.runtime(public_port=None), False),  # up, port 22 not mapped
        (dict(D.runtime(), ports=[dict(D.runtime()["ports"][0], publicPort=None)]), False),
        (dict(D.runtime(), ports=[dict(D.runtime()["ports"][0], ip=None)]), False),
        (D.runtime(), True),
    ],
    ids=["no-runtime", "no-ssh-port", "no-public-port", "no-ip", "ssh-mapped"],
)
def test_ready_needs_a_public_ssh_port(runtime: Any, ready: bool) -> None:
    status = M.status_from_api(_pod(runtime=runtime))
    assert status.ready is ready
    assert (status.public_ip is not None, status.ssh_port is not None) == (ready, ready)
    if runtime is not None and not ready:
        assert status.state == InstanceState.RUNNING
        assert status.message == "container up; SSH port 22 not yet mapped to a public address"


def test_wait_until_ready_polls_until_the_ssh_port_is_mapped(kind: str) -> None:
    responder = D.DocumentedRunPod()
    time = FakeTime()
    launched = call(kind, responder, "launch_instance", LaunchRequest(gpu_type="H100"), time=time)
    status = call(kind, responder, "wait_until_ready", launched.instance_id, 300.0, time=time)
    assert (status.ready, status.public_ip, status.ssh_port) == (True, D.POD_PUBLIC_IP, 10400)
    # no runtime, runtime without the port, then the port: three looks, two pauses
    assert len(sent(responder, "GetPod")) == 3
    assert time.sleeps == [5.0, 7.5]


def test_wait_until_ready_times_out_on_fake_time(kind: str) -> None:
    responder = D.DocumentedRunPod()  # ID_BOOTING never gets a runtime
    time = FakeTime()
    with pytest.raises(WaitTimeoutError) as info:
        call(kind, responder, "wait_until_ready", D.ID_BOOTING, 60.0, time=time)
    assert info.value.instance_id == D.ID_BOOTING
    assert sum(time.sleeps) == pytest.approx(60.0)  # every wait was fake


@pytest.mark.parametrize(
    ("pod_id", "state"),
    [(D.ID_EXITED, InstanceState.STOPPED), (D.ID_PREEMPTED, InstanceState.PREEMPTED)],
)
def test_wait_until_ready_stops_at_a_final_state(
    kind: str, pod_id: str, state: InstanceState
) -> None:
    time = FakeTime()
    with pytest.raises(InstanceNotReadyError) as info:
        call(kind, D.DocumentedRunPod(), "wait_until_ready", pod_id, 600.0, time=time)
    assert info.value.instance_id == pod_id
    assert time.sleeps == []


# -- 3. preemption ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_type", "status", "reason", "expected"),
    [
        ("INTERRUPTABLE", "EXITED", "Exited by Runpod: Mon Nov 23 2026", InstanceState.PREEMPTED),
        ("BID", "EXITED", "Exited by RunPod: outbid", InstanceState.PREEMPTED),
        ("INTERRUPTABLE", "EXITED", "Exited by User: Mon Nov 23 2026", InstanceState.STOPPED),
        ("INTERRUPTABLE", "EXITED", None, InstanceState.STOPPED),  # no reason: as reported
        ("RESERVED", "EXITED", "Exited by Runpod: Mon Nov 23 2026", InstanceState.STOPPED),
        ("INTERRUPTABLE", "RUNNING", "Exited by Runpod: earlier", InstanceState.RUNNING),
    ],
)
def test_preemption_rule(
    pod_type: str, status: str, reason: str | None, expected: InstanceState
) -> None:
    pod = _pod(podType=pod_type, desiredStatus=status, lastStatusChange=reason)
    assert M.instance_from_api(pod).state == expected
    assert M.status_from_api(pod).state == expected


# -- 4. resume: spot pods with a bid ------------------------------------------------------------


def test_a_spot_pod_resumes_with_a_bid(kind: str) -> None:
    responder = D.DocumentedRunPod()
    call(kind, responder, "stop_instance", D.ID_SPOT)
    status = call(kind, responder, "start_instance", D.ID_SPOT)
    assert status.provider_state == "RUNNING"
    assert sent(responder, "PodResume") == []
    ((variables),) = sent(responder, "PodBidResume")
    # A100 80GB PCIe in the secure cloud (machine.secureCloud): that cloud's minimum bid
    assert variables == {"input": {"podId": D.ID_SPOT, "bidPerGpu": 0.98, "gpuCount": 2}}
    (lookup,) = sent(responder, "GpuTypes")
    assert lookup["filter"] == {"id": D.A100_80}


def test_an_on_demand_pod_resumes_without_a_bid(kind: str) -> None:
    responder = D.DocumentedRunPod()
    call(kind, responder, "start_instance", D.ID_EXITED)
    assert sent(responder, "PodBidResume") == [] and sent(responder, "GpuTypes") == []
    assert sent(responder, "PodResume") == [{"input": {"podId": D.ID_EXITED, "gpuCount": 1}}]


def test_a_spot_resume_without_a_price_sends_no_bid(kind: str) -> None:
    responder = D.DocumentedRunPod()
    responder.pods[D.ID_PREEMPTED]["machine"]["gpuTypeId"] = D.L4  # no lowestPrice at all
    with pytest.raises(CapacityError):
        call(kind, responder, "start_instance", D.ID_PREEMPTED)
    assert sent(responder, "PodBidResume") == []


# -- 5. one region notion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "code"),
    [
        ("us-east", "US"),
        ("US-West", "US"),
        ("ca-central", "CA"),
        ("EU-RO-1", "EU-RO-1"),
        ("eu-ro-1", "EU-RO-1"),  # RunPod wants upper case
        ("EUR-IS-2", "EUR-IS-2"),
        ("ro", "RO"),
        ("US", "US"),
    ],
)
def test_translate_region(region: str, code: str) -> None:
    assert RunPodProvider(api_key=KEY).translate_region(region) == code


@pytest.mark.parametrize("region", ["eu-west", "europe", "US-TX", "u", ""])
def test_regions_runpod_cannot_place_are_refused(region: str) -> None:
    with pytest.raises(InvalidRequestError):
        RunPodProvider(api_key=KEY).translate_region(region)


@pytest.mark.parametrize(
    ("region", "placement"),
    [("EU-RO-1", {"dataCenterId": "EU-RO-1"}), ("us-east", {"countryCode": "US"})],
)
def test_launch_sends_the_region_as_data_center_or_country(
    kind: str, region: str, placement: dict[str, str]
) -> None:
    responder = D.DocumentedRunPod()
    request = LaunchRequest(gpu_type="A100-80GB", region=region)
    with contextlib.suppress(CapacityError):  # nothing in EU-RO-1: the request matters here
        call(kind, responder, "launch_instance", request)
    deploy = deploy_input(responder)
    assert {k: deploy[k] for k in ("dataCenterId", "countryCode") if k in deploy} == placement
    (lookup,) = sent(responder, "GpuTypes")
    for cloud in ("secureInput", "communityInput"):
        assert {k: v for k, v in lookup[cloud].items() if k in placement} == placement


def test_offers_in_a_region_carry_that_region_and_launch_there(kind: str) -> None:
    responder = D.DocumentedRunPod()
    offers = call(kind, responder, "list_available_gpus", GPUFilters(regions=["ca-central"]))
    assert offers and {o.region for o in offers} == {"CA"}
    assert {o.offer_id for o in offers} == {D.A100_80}  # the documented CA stock
    lookup = sent(responder, "GpuTypes")[0]
    assert lookup["secureInput"]["countryCode"] == "CA"
    offers = call(kind, responder, "list_available_gpus", GPUFilters(regions=["us-east"]))
    h100 = next(o for o in offers if o.gpu_type == "H100")
    assert h100.region == "US"
    request = LaunchRequest(gpu_type="H100", region=h100.region)
    launched = call(kind, responder, "launch_instance", request)
    assert deploy_input(responder)["countryCode"] == "US"
    assert launched.region == "US-TX-3"  # a data center in that country
    pricing = call(kind, D.DocumentedRunPod(), "get_normalized_pricing", "H100", "us-east")
    assert pricing.region == "US" and pricing.on_demand_per_gpu_hour == 2.69


# -- 6. the CUDA floor --------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "floor"), [(None, "12.4"), ("12.8", "12.8")])
def test_a_cuda_floor_is_sent_by_default_and_can_be_raised(
    kind: str, given: str | None, floor: str
) -> None:
    for spot in (False, True):
        responder = D.DocumentedRunPod()
        request = LaunchRequest(gpu_type="H100", spot=spot, min_cuda_version=given)
        call(kind, responder, "launch_instance", request)
        assert deploy_input(responder)["minCudaVersion"] == floor
        (lookup,) = sent(responder, "GpuTypes")
        assert lookup["secureInput"]["minCudaVersion"] == floor
        assert lookup["communityInput"]["minCudaVersion"] == floor


# -- 8. failures after the pod was made ---------------------------------------------------------

ON_DEMAND = LaunchRequest(gpu_type="H100", name="fault")
SPOT = LaunchRequest(gpu_type="H100", name="fault", spot=True)
LAUNCHES = [
    pytest.param(ON_DEMAND, "PodFindAndDeployOnDemand", id="on-demand"),
    pytest.param(SPOT, "PodRentInterruptable", id="spot"),
]


def _after_the_mutation(
    mutation: str, failure: Callable[[], BaseException]
) -> tuple[D.DocumentedRunPod, Callable[[httpx.Request], httpx.Response]]:
    """A responder that creates the pod, then fails instead of answering."""
    responder = D.DocumentedRunPod()

    def handler(request: httpx.Request) -> httpx.Response:
        answer = responder(request)
        if json.loads(request.content).get("operationName") == mutation:
            raise failure()
        return answer

    return responder, handler


@pytest.mark.parametrize(("request_", "mutation"), LAUNCHES)
def test_a_mapping_error_on_the_launch_answer_names_the_pod(
    kind: str, request_: LaunchRequest, mutation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(pod: Any) -> Any:
        raise ValueError("unmappable")

    monkeypatch.setattr(M, "instance_from_api", broken)
    responder = D.DocumentedRunPod()
    with pytest.raises(UnexpectedResponseError) as info:
        call(kind, responder, "launch_instance", request_, max_retries=3)
    error = info.value
    assert (error.maybe_submitted, error.is_retryable) == (True, False)
    assert error.instance_id == D.NEW_IDS[0]
    assert D.NEW_IDS[0] in str(error)
    assert len(sent(responder, mutation)) == 1
    assert D.NEW_IDS[0] in responder.pods  # it really exists: the error says so


@pytest.mark.parametrize(("request_", "mutation"), LAUNCHES)
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (lambda: httpx.ReadTimeout("timed out after the pod was made"), ProviderTimeoutError),
        (lambda: httpx.RemoteProtocolError("connection reset"), ProviderError),
        (lambda: RuntimeError("a bug in a transport hook"), ProviderConnectionError),
    ],
    ids=["read-timeout", "reset", "foreign-exception"],
)
def test_a_transport_failure_after_the_mutation_is_maybe_submitted(
    kind: str,
    request_: LaunchRequest,
    mutation: str,
    failure: Callable[[], BaseException],
    expected: type[ProviderError],
) -> None:
    responder, handler = _after_the_mutation(mutation, failure)
    time = FakeTime()
    with pytest.raises(expected) as info:
        call(kind, handler, "launch_instance", request_, time=time, max_retries=3)
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert len(sent(responder, mutation)) == 1  # never replayed
    assert D.NEW_IDS[0] in responder.pods


@pytest.mark.parametrize(("request_", "mutation"), LAUNCHES)
def test_an_interrupt_after_the_mutation_warns(
    request_: LaunchRequest, mutation: str, caplog: pytest.LogCaptureFixture
) -> None:
    responder, handler = _after_the_mutation(mutation, KeyboardInterrupt)
    client = FakeTime().attach_sync(
        RunPodProvider(api_key=KEY, transport=httpx.MockTransport(handler))
    )
    with caplog.at_level(logging.WARNING, logger="gpu_providers"), client:
        with pytest.raises(KeyboardInterrupt):
            client.launch_instance(request_)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "after the launch may have reached RunPod" in record.getMessage()
    assert record.maybe_submitted is True  # type: ignore[attr-defined]
    assert D.NEW_IDS[0] in responder.pods


@pytest.mark.parametrize(("request_", "mutation"), LAUNCHES)
def test_cancelling_an_async_launch_in_flight_warns(
    request_: LaunchRequest, mutation: str, caplog: pytest.LogCaptureFixture
) -> None:
    responder = D.DocumentedRunPod()

    async def run() -> None:
        arrived, never = asyncio.Event(), asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            answer = responder(request)
            if json.loads(request.content).get("operationName") == mutation:
                arrived.set()  # the pod exists; the answer never comes back
                await never.wait()
            return answer

        client = FakeTime().attach_async(
            AsyncRunPodProvider(api_key=KEY, transport=httpx.MockTransport(handler))
        )
        async with client:
            task = asyncio.create_task(client.launch_instance(request_))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        asyncio.run(run())
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "CancelledError" in record.getMessage()
    assert "List instances by name before launching again" in record.getMessage()
    assert record.maybe_submitted is True  # type: ignore[attr-defined]
    assert D.NEW_IDS[0] in responder.pods
