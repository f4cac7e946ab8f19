"""The Vast.ai cassette scenarios: what the recorder runs and the replay tests re-run.

A scenario is a list of steps (a client method and its arguments) plus how to answer it
without a live account (a ``DocumentedVast`` configuration). Steps are plain data so the sync
and the async client run exactly the same calls; an argument may be a ``Ref`` to a field of an
earlier step's result (the id of the instance just launched).

``live`` says whether ``record --live`` may re-record the scenario against the real API:
``"yes"`` (reads, and calls that create nothing), ``"billed"`` (rents a real instance, billed
until the scenario destroys it; needs a second flag), ``"no"`` (the real API cannot be made to
answer that way on demand: 429, a rented-away offer, no credit, instances in every state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gpu_providers import GPUFilters, LaunchRequest
from gpu_providers.errors import ProviderError

from . import documented as D

#: The API key the documented recordings and the replays use (never written to a cassette).
RECORDING_KEY = "SENTINEL-vastai-recording-key-7c41"
#: Label of the instances the launch scenarios rent.
LAUNCH_NAME = "skypilot-sdk-cassette"
#: Illustrative, nothing secret (a cassette keeps request bodies).
STARTUP_SCRIPT = "#!/bin/bash\npip install -q vllm\n"
STARTUP_ENV = {"MODEL_NAME": "llama-3-8b"}

Outcome = dict[str, Any]


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
    responder: Callable[[], D.DocumentedVast] = D.DocumentedVast
    #: None: the client has no key at all (offer search is anonymous).
    api_key: str | None = RECORDING_KEY
    live: Literal["yes", "billed", "no"] = "no"


def _launch(gpu_type: str = "RTX4090", count: int = 1, **extra: Any) -> Step:
    request = LaunchRequest(gpu_type=gpu_type, gpu_count=count, name=LAUNCH_NAME, **extra)
    return Step("launch_instance", (request,))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "offers",
            "offer search (on-demand and interruptible), filters, per-GPU pricing",
            (
                Step("list_available_gpus"),
                Step(
                    "list_available_gpus",
                    (GPUFilters(gpu_types=["RTX4090"], min_reliability=0.99, spot=False),),
                ),
                Step(
                    "list_available_gpus",
                    (GPUFilters(gpu_types=["H100"], verified_only=False, spot=True),),
                ),
                Step("list_available_gpus", (GPUFilters(regions=["us-east"], spot=False),)),
                Step("get_normalized_pricing", ("A100-80GB",)),
            ),
            live="yes",
        ),
        Scenario(
            "offers_without_key",
            "offer search works without an API key; listing instances does not",
            (
                Step("list_available_gpus", (GPUFilters(gpu_types=["A100"], spot=False),)),
                Step("list_instances"),
            ),
            api_key=None,
            live="yes",
        ),
        Scenario(
            "launch",
            "rent the cheapest 1x RTX 4090 with env and a startup script, read it, destroy it",
            (
                _launch(env=STARTUP_ENV, startup_script=STARTUP_SCRIPT),
                Step("get_instance_status", (Ref(0, "instance_id"),)),
                Step("terminate_instance", (Ref(0, "instance_id"),)),
            ),
            live="billed",
        ),
        Scenario(
            "launch_spot",
            "rent 1x RTX 4090 interruptible with a bid of 0.25/GPU-h, then destroy it",
            (
                _launch(spot=True, bid_price=0.25, disk_gb=20),
                Step("terminate_instance", (Ref(0, "instance_id"),)),
            ),
            live="billed",
        ),
        Scenario(
            "launch_offer_gone",
            "create answered 404 no_such_ask (the offer was rented meanwhile)",
            (_launch("H100"),),
            responder=lambda: D.DocumentedVast(launch_outcome="gone-404"),
        ),
        Scenario(
            "launch_offer_unavailable",
            "create answered 410 no_such_ask (cannot start now; cancel_unavail)",
            (_launch("A100-80GB"),),
            responder=lambda: D.DocumentedVast(launch_outcome="gone-410"),
        ),
        Scenario(
            "launch_no_credit",
            "create answered 402 insufficient_balance",
            (_launch(),),
            responder=lambda: D.DocumentedVast(launch_outcome="no-credit"),
        ),
        Scenario(
            "launch_created_stopped",
            "create refused (invalid_price) but names a new_contract: it is destroyed",
            (_launch(spot=True),),
            responder=lambda: D.DocumentedVast(launch_outcome="created-stopped"),
        ),
        Scenario(
            "launch_unauthorized",
            "the key is revoked between search and create: create answered 401 auth_error",
            (_launch(),),
            responder=lambda: D.DocumentedVast(launch_outcome="unauthorized"),
        ),
        Scenario(
            "invalid_api_key",
            "every call with an invalid key: 401 auth_error (search: the spec's 404)",
            (
                Step("list_instances"),
                Step("get_instance_status", (D.ID_RUNNING,)),
                Step("list_available_gpus", (GPUFilters(spot=False),)),
            ),
            api_key=D.REVOKED_KEY,
            live="yes",
        ),
        Scenario(
            "instance_states",
            "show instance: running, loading, provisioning, exited, outbid, stopped, absent",
            (
                Step("get_instance_status", (D.ID_RUNNING,)),
                Step("get_instance_status", (D.ID_LOADING,)),
                Step("get_instance_status", (D.ID_PROVISIONING,)),
                Step("get_instance_status", (D.ID_EXITED,)),
                Step("get_instance_status", (D.ID_OUTBID,)),
                Step("get_instance_status", (D.ID_STOPPED,)),
                Step("get_instance_status", (D.ID_MISSING,)),
            ),
        ),
        Scenario(
            "missing_instance",
            "show of an absent instance is null; destroying it is 404 not_found and succeeds",
            (
                Step("get_instance_status", (D.ID_MISSING,)),
                Step("terminate_instance", (D.ID_MISSING,)),
            ),
            live="yes",
        ),
        Scenario(
            "list_instances",
            "list every instance over three v1 pages, then only those labelled train-*",
            (Step("list_instances"), Step("list_instances", ("train-",))),
            responder=lambda: D.DocumentedVast(page_size=2),
            live="yes",
        ),
        Scenario(
            "stop_start_label",
            "stop a running instance, start it, label it, destroy it",
            (
                Step("stop_instance", (D.ID_RUNNING,)),
                Step("start_instance", (D.ID_RUNNING,)),
                Step("label_instance", (D.ID_RUNNING, "train-4090-renamed")),
                Step("terminate_instance", (D.ID_RUNNING,)),
            ),
        ),
        Scenario(
            "rate_limited",
            "429 without Retry-After (text, then JSON detail); the retried calls succeed",
            (Step("list_available_gpus", (GPUFilters(spot=False),)), Step("list_instances")),
            responder=lambda: D.DocumentedVast(throttle=1),
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
        "instance_id": exc.instance_id,
        "message": exc.message,
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
