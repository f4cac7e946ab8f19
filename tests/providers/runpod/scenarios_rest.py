"""The RunPod REST v2 cassette scenarios (``api="rest"``): what ``record_rest`` records and
``test_cassettes_rest`` replays. The scripts mirror the GraphQL ones (``scenarios.py``) where
the behaviour is the same; ``live`` has the same meaning.
"""

from __future__ import annotations

from typing import Any

from gpu_providers import GPUFilters, LaunchRequest

from ..paperspace.harness import Call, Failed
from . import documented_rest as R
from .scenarios import ENV, LAUNCH_NAME, PUBLIC_KEY, RECORDING_KEY, STARTUP_SCRIPT, Scenario, Steps

__all__ = ["LAUNCH_NAME", "PUBLIC_KEY", "RECORDING_KEY", "SCENARIOS", "STARTUP_SCRIPT"]


def _offers() -> Steps:
    yield Call("list_available_gpus")
    yield Call("list_available_gpus", (GPUFilters(available_only=False),))
    yield Call("list_available_gpus", (GPUFilters(min_gpu_count=2, regions=["US"]),))
    yield Call("get_normalized_pricing", ("H100",))
    yield Call("get_normalized_pricing", ("RTX4090",))


def _cleanup(launched: Any) -> Steps:
    if not isinstance(launched, Failed):
        yield Call("terminate_instance", (launched.instance_id,))


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
    yield Call("get_instance_status", (launched.instance_id,))  # starting
    yield Call("get_instance_status", (launched.instance_id,))  # running, SSH not mapped yet
    yield Call("get_instance_status", (launched.instance_id,))  # SSH endpoint known: ready
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_wait_ready() -> Steps:
    request = LaunchRequest(gpu_type="A100-80GB", name=LAUNCH_NAME, region="us-east")
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("wait_until_ready", (launched.instance_id,), {"timeout": 900.0})
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_no_stock() -> Steps:
    request = LaunchRequest(gpu_type="RTX4090", gpu_count=2, name=LAUNCH_NAME, region="EU-RO-1")
    launched = yield Call("launch_instance", (request,))
    yield from _cleanup(launched)


def _launch_refused() -> Steps:
    request = LaunchRequest(gpu_type="H100", name=LAUNCH_NAME)
    launched = yield Call("launch_instance", (request,))
    yield from _cleanup(launched)


def _pod_states() -> Steps:
    for pod_id in (R.ID_READY, R.ID_BOOTING, R.ID_EXITED, R.ID_ERROR, R.ID_MISSING):
        yield Call("get_instance_status", (pod_id,))


def _list_pods() -> Steps:
    yield Call("list_instances")
    yield Call("list_instances", ("sky-",))


def _stop_resume() -> Steps:
    yield Call("stop_instance", (R.ID_READY,))
    yield Call("stop_instance", (R.ID_READY,))  # 409: not valid for EXITED
    yield Call("start_instance", (R.ID_READY,))


def _terminate_twice() -> Steps:
    yield Call("terminate_instance", (R.ID_EXITED,))
    yield Call("terminate_instance", (R.ID_EXITED,))
    yield Call("get_instance_status", (R.ID_EXITED,))


def _missing_pod() -> Steps:
    yield Call("get_instance_status", (R.ID_MISSING,))
    yield Call("terminate_instance", (R.ID_MISSING,))


def _unauthorized() -> Steps:
    yield Call("list_instances")
    yield Call("get_instance_status", (R.ID_MISSING,))


def _rate_limited() -> Steps:
    yield Call("list_instances")


def _bad_gateway() -> Steps:
    yield Call("get_instance_status", (R.ID_READY,))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "offers",
            "catalog/gpus with pod availability per cloud: in stock, out of stock, one cloud "
            "only, unknown GPU; 2 GPUs in the US; H100 and RTX4090 pricing",
            _offers,
            responder=R.DocumentedRunPodRest,
            live="yes",
        ),
        Scenario(
            "launch_on_demand",
            "catalog (cloud and price), createPod (H100, SSH key, env, startup script as "
            "args), getPod three times (starting, running without SSH, ready), deletePod",
            _launch_on_demand,
            responder=R.DocumentedRunPodRest,
            live="billed",
        ),
        Scenario(
            "launch_wait_ready",
            "A100 80GB in us-east (countryCodes US -> the US data centers in stock), "
            "wait_until_ready polls getPod until SSH is mapped, deletePod",
            _launch_wait_ready,
            responder=R.DocumentedRunPodRest,
            live="billed",
        ),
        Scenario(
            "launch_no_stock",
            "2x RTX 4090 in EU-RO-1: the catalog reports NONE, nothing is created",
            _launch_no_stock,
            responder=R.DocumentedRunPodRest,
        ),
        Scenario(
            "launch_capacity_400",
            "createPod answers 400 (could not be placed): a refusal, nothing created",
            _launch_refused,
            responder=lambda: R.DocumentedRunPodRest(inject={"createPod": [R.no_capacity()]}),
        ),
        Scenario(
            "launch_insufficient_balance",
            "createPod answers 402 (insufficient balance): a billing refusal",
            _launch_refused,
            responder=lambda: R.DocumentedRunPodRest(inject={"createPod": [R.no_balance()]}),
        ),
        Scenario(
            "pod_states",
            "getPod: running with SSH, starting, exited, error, missing (404 problem)",
            _pod_states,
            responder=R.DocumentedRunPodRest,
        ),
        Scenario(
            "list_pods",
            "listPods, then the sky- name prefix",
            _list_pods,
            responder=R.DocumentedRunPodRest,
            live="yes",
        ),
        Scenario(
            "stop_resume",
            "podAction stop, stop again (409 for EXITED), start",
            _stop_resume,
            responder=R.DocumentedRunPodRest,
        ),
        Scenario(
            "terminate_twice",
            "deletePod 204, deletePod 404 problem (= success), getPod 404",
            _terminate_twice,
            responder=R.DocumentedRunPodRest,
        ),
        Scenario(
            "missing_pod",
            "getPod and deletePod of an id that does not exist: 404 problem bodies",
            _missing_pod,
            responder=R.DocumentedRunPodRest,
            live="yes",
        ),
        Scenario(
            "unauthorized",
            "a revoked key: 401 problem on every call",
            _unauthorized,
            responder=R.DocumentedRunPodRest,
            api_key=R.REVOKED_KEY,
            live="yes",
        ),
        Scenario(
            "rate_limited",
            "429 problem with Retry-After: 2, then the retried listPods succeeds",
            _rate_limited,
            responder=lambda: R.DocumentedRunPodRest(inject={"listPods": [R.rate_limited("2")]}),
        ),
        Scenario(
            "bad_gateway",
            "HTTP 502 (HTML) on getPod, retried",
            _bad_gateway,
            responder=lambda: R.DocumentedRunPodRest(inject={"getPod": [R.bad_gateway()]}),
        ),
    )
}
