"""The Lambda cassette scenarios: what the recorder runs and the replay tests re-run.

A scenario is a list of steps (a client method and its arguments) plus how to answer it
without a live account (a ``DocumentedLambda`` configuration). Steps are plain data so the
sync and the async client run exactly the same calls; an argument may be a ``Ref`` to a
field of an earlier step's result (the id of the instance just launched).

``live`` says whether ``record --live`` may re-record the scenario against the real API:
``"yes"`` (reads, or changes that cost nothing and are undone: an SSH key added and deleted),
``"billed"`` (creates a real instance, billed until the scenario terminates it; needs a second
flag), ``"no"`` (the real API cannot be made to answer that way on demand: 429, no capacity,
quota, an account with instances in every state; these cassettes stay documented).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gpu_providers import GPUFilters, LaunchRequest
from gpu_providers.errors import ProviderError

from . import documented as D

#: The API key the documented recordings and the replays use (never written to a cassette).
RECORDING_KEY = "SENTINEL-lambda-recording-key-5e2b"
#: Name of the instance the launch scenarios ask for.
LAUNCH_NAME = "skypilot-sdk-cassette"

Outcome = dict[str, Any]
#: Boot-time setup of the user_data scenario: illustrative, nothing secret (a cassette keeps
#: request bodies, user_data included).
STARTUP_SCRIPT = "#!/bin/bash\npip install -q vllm\n"
STARTUP_ENV = {"MODEL_NAME": "llama-3-8b"}


@dataclass(frozen=True)
class Ref:
    """An argument taken from the result of step ``step`` (its field ``key``)."""

    step: int
    key: str


@dataclass(frozen=True)
class Step:
    """One client call."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A named sequence of calls and the documented account that answers it."""

    name: str
    description: str
    steps: tuple[Step, ...]
    responder: Callable[[], D.DocumentedLambda] = D.DocumentedLambda
    api_key: str = RECORDING_KEY
    live: Literal["yes", "billed", "no"] = "no"


def _launch(gpu_type: str, count: int = 1, **extra: Any) -> Step:
    request = LaunchRequest(
        gpu_type=gpu_type,
        gpu_count=count,
        ssh_key_names=[D.SSH_KEY_NAME],
        name=LAUNCH_NAME,
        **extra,
    )
    return Step("launch_instance", (request,))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "instance_types",
            "offers (available and all), per-GPU pricing incl. a type with no capacity",
            (
                Step("list_available_gpus"),
                Step("list_available_gpus", (GPUFilters(available_only=False),)),
                Step("get_normalized_pricing", ("A100-80GB",)),
                Step("get_normalized_pricing", ("H100",), {"region": "us-west-3"}),
                Step("get_normalized_pricing", ("a10",)),
            ),
            live="yes",
        ),
        Scenario(
            "launch",
            "launch 1x A10 (instance types, launch, get), then terminate it",
            (
                _launch("A10", labels={"purpose": "cassette"}),
                Step("get_instance_status", (Ref(0, "instance_id"),)),
                Step("terminate_instance", (Ref(0, "instance_id"),)),
            ),
            live="billed",
        ),
        Scenario(
            "launch_with_startup_script",
            "launch 1x A10 in us-west with a startup script and env (cloud-init user_data), "
            "then terminate it",
            (
                _launch(
                    "A10",
                    region="us-west",
                    startup_script=STARTUP_SCRIPT,
                    env=STARTUP_ENV,
                ),
                Step("terminate_instance", (Ref(0, "instance_id"),)),
            ),
        ),
        Scenario(
            "launch_insufficient_capacity",
            "launch answered 400 instance-operations/launch/insufficient-capacity",
            (_launch("A100-80GB", 8),),
            responder=lambda: D.DocumentedLambda(launch_outcome="insufficient-capacity"),
        ),
        Scenario(
            "launch_quota_exceeded",
            "launch answered 400 global/quota-exceeded",
            (_launch("GH200"),),
            responder=lambda: D.DocumentedLambda(launch_outcome="quota-exceeded"),
        ),
        Scenario(
            "launch_unauthorized",
            "the key is revoked between listing types and launching: launch answered 401",
            (_launch("A10"),),
            responder=lambda: D.DocumentedLambda(launch_outcome="unauthorized"),
        ),
        Scenario(
            "invalid_api_key",
            "every call with an invalid key: 401 global/invalid-api-key",
            (
                Step("list_instances"),
                Step("list_available_gpus"),
                Step("get_instance_status", (D.ID_MISSING,)),
                _launch("A10"),
            ),
            api_key=D.REVOKED_KEY,
            live="yes",
        ),
        Scenario(
            "instance_states",
            "get instance: booting, active, unhealthy, terminated, then 404",
            (
                Step("get_instance_status", (D.ID_BOOTING,)),
                Step("get_instance_status", (D.ID_ACTIVE,)),
                Step("get_instance_status", (D.ID_UNHEALTHY,)),
                Step("get_instance_status", (D.ID_TERMINATED,)),
                Step("get_instance_status", (D.ID_MISSING,)),
            ),
        ),
        Scenario(
            "missing_instance",
            "get of a missing instance is 404; terminating it is 404 and succeeds",
            (
                Step("get_instance_status", (D.ID_MISSING,)),
                Step("terminate_instance", (D.ID_MISSING,)),
            ),
            live="yes",
        ),
        Scenario(
            "list_instances",
            "list every instance, then only those named train-*",
            (Step("list_instances"), Step("list_instances", ("train-",))),
            live="yes",
        ),
        Scenario(
            "restart_and_terminate",
            "restart an active instance, terminate it (200), see it terminating",
            (
                Step("restart_instance", (D.ID_ACTIVE,)),
                Step("terminate_instance", (D.ID_ACTIVE,)),
                Step("get_instance_status", (D.ID_ACTIVE,)),
            ),
        ),
        Scenario(
            "ssh_keys",
            "list keys, add one, list again, delete it",
            (
                Step("list_ssh_keys"),
                Step("add_ssh_key", ("skypilot-sdk-cassette-tmp", D.PUBLIC_KEY)),
                Step("list_ssh_keys"),
                Step("delete_ssh_key", (Ref(1, "id"),)),
            ),
            live="yes",
        ),
        Scenario(
            "rate_limited",
            "429 with Retry-After: 2, then the retried list succeeds",
            (Step("list_instances"),),
            responder=lambda: D.DocumentedLambda(throttle=1, retry_after="2"),
        ),
    )
}


def jsonable(value: Any) -> Any:
    """A result as plain JSON data (pydantic models dumped, enums as values)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def error_outcome(method: str, exc: ProviderError) -> Outcome:
    """What a test compares about an error."""
    return {
        "step": method,
        "error": type(exc).__name__,
        "status": exc.status_code,
        "code": exc.code,
        "maybe_submitted": exc.maybe_submitted,
        "retry_after": exc.retry_after,
    }


def _resolve(value: Any, outcomes: list[Outcome]) -> Any:
    if isinstance(value, Ref):
        earlier = outcomes[value.step]
        if "ok" not in earlier:
            raise RuntimeError(f"step {value.step} failed, nothing to refer to: {earlier}")
        return earlier["ok"][value.key]
    return value


def _call_args(step: Step, outcomes: list[Outcome]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(_resolve(a, outcomes) for a in step.args)
    kwargs = {k: _resolve(v, outcomes) for k, v in step.kwargs.items()}
    return args, kwargs


def run_sync(client: Any, scenario: Scenario) -> list[Outcome]:
    """Run the steps with a blocking client; a ``ProviderError`` is an outcome."""
    outcomes: list[Outcome] = []
    for step in scenario.steps:
        args, kwargs = _call_args(step, outcomes)
        try:
            result = getattr(client, step.method)(*args, **kwargs)
        except ProviderError as exc:
            outcomes.append(error_outcome(step.method, exc))
        else:
            outcomes.append({"step": step.method, "ok": jsonable(result)})
    return outcomes


async def run_async(client: Any, scenario: Scenario) -> list[Outcome]:
    """Run the steps with an async client (the same calls as ``run_sync``)."""
    outcomes: list[Outcome] = []
    for step in scenario.steps:
        args, kwargs = _call_args(step, outcomes)
        try:
            result = await getattr(client, step.method)(*args, **kwargs)
        except ProviderError as exc:
            outcomes.append(error_outcome(step.method, exc))
        else:
            outcomes.append({"step": step.method, "ok": jsonable(result)})
    return outcomes
