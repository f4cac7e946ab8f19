"""The RunPod cassette scenarios: what ``record`` records and ``test_cassettes`` replays.

Scripts of client calls (see ``tests/providers/paperspace/harness.py``, shared by both
providers) plus the documented account that answers them. ``live``: ``"yes"`` (reads, ids
that do not exist, a revoked key), ``"billed"`` (creates pods; ``--allow-launch``), ``"no"``
(RunPod cannot be made to answer that way on demand).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from gpu_providers import GPUFilters, LaunchRequest

from ..paperspace.harness import Call, Failed, Script
from . import documented as D

#: The API key of the documented recordings and of the replays (never in a cassette).
RECORDING_KEY = "SENTINEL-runpod-recording-key-3f9e"
LAUNCH_NAME = "skypilot-sdk-cassette"
#: A public key only ever used as test data (no private half exists).
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForCassettesOnly0000000000000 cassette"

Steps = Generator[Call, Any, None]


@dataclass(frozen=True)
class Scenario:
    """A named script and the documented account that answers it."""

    name: str
    description: str
    script: Script
    responder: Callable[[], Any] = D.DocumentedRunPod  # or documented_rest.DocumentedRunPodRest
    api_key: str = RECORDING_KEY
    live: Literal["yes", "billed", "no"] = "no"
    options: dict[str, Any] = field(default_factory=lambda: {"max_retries": 2})


def _offers() -> Steps:
    yield Call("list_available_gpus")
    yield Call("list_available_gpus", (GPUFilters(available_only=False),))
    yield Call("list_available_gpus", (GPUFilters(min_gpu_count=2, spot=True),))
    yield Call("get_normalized_pricing", ("H100",))
    yield Call("get_normalized_pricing", ("RTX4090",))


def _cleanup(launched: Any) -> Steps:
    if not isinstance(launched, Failed):
        yield Call("terminate_instance", (launched.instance_id,))


#: Startup work of the cassette launches: test data only (no secret in it).
STARTUP_SCRIPT = "#!/bin/bash\necho 'cassette startup' > /workspace/started\n"
ENV = {"CASSETTE_MODE": "documented"}


def _launch_on_demand() -> Steps:
    request = LaunchRequest(
        gpu_type="H100",
        name=LAUNCH_NAME,
        ssh_public_key=PUBLIC_KEY,
        env=ENV,
        startup_script=STARTUP_SCRIPT,
    )
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("get_instance_status", (launched.instance_id,))  # container not up yet
    yield Call("get_instance_status", (launched.instance_id,))  # up, SSH port not mapped yet
    yield Call("get_instance_status", (launched.instance_id,))  # SSH endpoint known: ready
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_wait_ready() -> Steps:
    request = LaunchRequest(gpu_type="A100-80GB", name=LAUNCH_NAME, region="us-east")
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("wait_until_ready", (launched.instance_id,), {"timeout": 900.0})
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_no_machine() -> Steps:
    request = LaunchRequest(gpu_type="RTX4090", gpu_count=2, name=LAUNCH_NAME, region="EU-RO-1")
    launched = yield Call("launch_instance", (request,))
    yield from _cleanup(launched)


def _launch_spot_minimum_bid() -> Steps:
    request = LaunchRequest(
        gpu_type="A100-80GB", gpu_count=2, name=LAUNCH_NAME, spot=True, image="ubuntu:22.04"
    )
    launched = yield Call("launch_instance", (request,))
    yield from _cleanup(launched)


def _launch_spot_no_instances() -> Steps:
    request = LaunchRequest(gpu_type="H100", name=LAUNCH_NAME, spot=True, bid_price=0.5)
    launched = yield Call("launch_instance", (request,))
    yield from _cleanup(launched)


def _pod_states() -> Steps:
    for pod_id in (D.ID_READY, D.ID_BOOTING, D.ID_EXITED, D.ID_SPOT, D.ID_PREEMPTED, D.ID_MISSING):
        yield Call("get_instance_status", (pod_id,))


def _list_pods() -> Steps:
    yield Call("list_instances")
    yield Call("list_instances", ("sky-",))


def _stop_resume() -> Steps:
    yield Call("stop_instance", (D.ID_READY,))
    yield Call("start_instance", (D.ID_READY,))


def _stop_resume_spot() -> Steps:
    yield Call("stop_instance", (D.ID_SPOT,))
    yield Call("start_instance", (D.ID_SPOT,))  # podBidResume at the current minimum bid


def _terminate_twice() -> Steps:
    yield Call("terminate_instance", (D.ID_EXITED,))
    yield Call("terminate_instance", (D.ID_EXITED,))
    yield Call("get_instance_status", (D.ID_EXITED,))


def _missing_pod() -> Steps:
    yield Call("get_instance_status", (D.ID_MISSING,))
    yield Call("terminate_instance", (D.ID_MISSING,))


def _unauthorized() -> Steps:
    yield Call("list_instances")
    yield Call("get_instance_status", (D.ID_MISSING,))


def _rate_limited() -> Steps:
    yield Call("list_instances")


def _bad_gateway() -> Steps:
    yield Call("get_instance_status", (D.ID_READY,))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "offers",
            "gpuTypes.lowestPrice: in stock, out of stock, no offer, unknown GPU; pricing",
            _offers,
            live="yes",
        ),
        Scenario(
            "launch_on_demand",
            "gpuTypes (cloud and price), podFindAndDeployOnDemand (H100, SSH key, env, "
            "startup script), get three times (runtime null, up without SSH port, ready), "
            "terminate",
            _launch_on_demand,
            live="billed",
        ),
        Scenario(
            "launch_wait_ready",
            "on-demand A100 80GB in us-east (countryCode US), wait_until_ready polls until the "
            "SSH port is mapped, terminate",
            _launch_wait_ready,
            live="billed",
        ),
        Scenario(
            "launch_no_machine",
            "podFindAndDeployOnDemand answers null (2x RTX 4090 out of stock)",
            _launch_no_machine,
            live="billed",
        ),
        Scenario(
            "launch_spot_minimum_bid",
            "spot without bid: gpuTypes for the minimum bid, podRentInterruptable, terminate",
            _launch_spot_minimum_bid,
            live="billed",
        ),
        Scenario(
            "launch_spot_no_instances",
            "podRentInterruptable below the minimum bid: the documented error, HTTP 200",
            _launch_spot_no_instances,
            live="billed",
        ),
        Scenario(
            "pod_states",
            "pod: running with runtime, running without, exited, spot, preempted spot, "
            "missing (null)",
            _pod_states,
        ),
        Scenario(
            "list_pods",
            "myself.pods, then the sky- name prefix",
            _list_pods,
            live="yes",
        ),
        Scenario(
            "stop_resume",
            "podStop then pod; pod, podResume, pod",
            _stop_resume,
        ),
        Scenario(
            "stop_resume_spot",
            "podStop of a spot pod; pod, gpuTypes (minimum bid), podBidResume, pod",
            _stop_resume_spot,
        ),
        Scenario(
            "terminate_twice",
            "podTerminate, podTerminate again ('pod not found to terminate' = success), pod",
            _terminate_twice,
        ),
        Scenario(
            "missing_pod",
            "pod of a missing id is null; podTerminate errors with HTTP 200 and succeeds",
            _missing_pod,
            live="yes",
        ),
        Scenario(
            "unauthorized",
            "a revoked key: HTTP 401 on every call",
            _unauthorized,
            api_key=D.REVOKED_KEY,
            live="yes",
        ),
        Scenario(
            "rate_limited",
            "HTTP 429 with Retry-After: 2, then the retried myself.pods succeeds",
            _rate_limited,
            responder=lambda: D.DocumentedRunPod(inject={"MyPods": [D.rate_limited("2")]}),
        ),
        Scenario(
            "bad_gateway",
            "HTTP 502 (HTML) on a pod query, retried",
            _bad_gateway,
            responder=lambda: D.DocumentedRunPod(inject={"GetPod": [D.bad_gateway()]}),
        ),
    )
}
