"""Client scenarios run against the real server: recorded into cassettes, then replayed.

A scenario is a list of steps (client method, arguments, what must come out). The same steps
run through ``SkyPilotClient`` and ``AsyncSkyPilotClient``, so replaying one cassette with
both clients is also a parity test.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vcr

from skypilot_client import (
    AsyncSkyPilotClient,
    ClusterList,
    ClusterState,
    ClusterStatus,
    CostEstimate,
    EstimateCostRequest,
    ExecuteRequest,
    HealthStatus,
    LaunchRequest,
    LaunchResult,
    LogsRequest,
    RequestState,
    SkyPilotClient,
    errors,
)

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "skypilot"
# Cassettes never hold the real port or identity: both are normalized when recording.
RECORDED_URL = "http://127.0.0.1:46580"
RECORDED_USER_ID = "5eed0001"
RECORDED_USER = "sdk-tests"

GPU_TASK = "resources:\n  infra: hyperbolic\n  accelerators: H100:1\nrun: nvidia-smi\n"


@dataclass(frozen=True)
class Step:
    """One client call: ``then`` calls a method on the returned handle."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    then: str | None = None
    raises: type[BaseException] | None = None
    check: Callable[[Any], object] | None = None
    #: Keep the returned request id for later steps as ``{"$request": name}``.
    save_as: str | None = None


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _health(h: HealthStatus) -> None:
    _expect(h.is_healthy and h.api_version == 62 and h.version == "0.14.1", f"health: {h!r}")


def _clouds(clouds: list[str]) -> None:
    _expect(clouds == ["hyperbolic"], f"enabled clouds: {clouds!r}")


def _no_clusters(listing: ClusterList) -> None:
    _expect(listing.total == 0 and listing.clusters == [], f"clusters: {listing!r}")


def _h100_price(est: CostEstimate) -> None:
    _expect(
        est.cloud == "Hyperbolic"
        and est.instance_type == "1x-H100-28-271"
        and est.cost_per_hour == 1.99
        and abs(est.estimated_cost - 5.97) < 1e-9
        and not est.spot,
        f"estimate: {est!r}",
    )


def _h100_spot(est: CostEstimate) -> None:
    _expect(est.spot and est.cost_per_hour == 1.29 and est.hours == 2, f"spot: {est!r}")


def _dryrun(result: LaunchResult) -> None:
    _expect(result.dryrun and result.job_id is None, f"dryrun: {result!r}")


def _offers(offers: list[Any]) -> None:
    names = {(o.accelerator, o.instance_type, o.price) for o in offers}
    _expect(("H100", "1x-H100-28-271", 1.99) in names, f"offers: {names!r}")


def _init_cluster(status: ClusterStatus) -> None:
    _expect(status.name == "sdk-init" and status.status == ClusterState.INIT, f"{status!r}")


def _plan_table(lines: list[str]) -> None:
    _expect(any("Considered resources" in line for line in lines), f"log: {lines!r}")
    _expect(not any("sky-payload" in line for line in lines), "payload lines must be dropped")


def _succeeded(status: Any) -> None:
    _expect(status.status == RequestState.SUCCEEDED and status.name == "sky.launch", f"{status!r}")


def _progress_done(events: list[Any]) -> None:
    percents = [e.percent for e in events]
    _expect(events[-1].phase.value == "succeeded" and percents == sorted(percents), f"{events}")


SCENARIOS: dict[str, list[Step]] = {
    "read_only": [
        Step("health", check=_health),
        Step("enabled_clouds", check=_clouds),
        Step("list_clusters", check=_no_clusters),
        Step("list_accelerators", ("H100",), {"clouds": ["hyperbolic"]}, check=_offers),
        Step(
            "estimate_cost",
            (EstimateCostRequest(task="resources:\n  accelerators: H100:1\n", hours=3),),
            check=_h100_price,
        ),
        Step(
            "estimate_cost",
            (EstimateCostRequest(task=GPU_TASK, hours=2, spot=True),),
            check=_h100_spot,
        ),
    ],
    "dryrun_launch": [
        Step(
            "launch",
            (LaunchRequest(cluster_name="sdk-dry", task=GPU_TASK, dryrun=True),),
            then="result",
            check=_dryrun,
        ),
        Step(
            "launch",
            (LaunchRequest(cluster_name="sdk-dry", task=GPU_TASK, dryrun=True),),
            save_as="dry",
        ),
        Step("stream_request_logs", ({"$request": "dry"},), check=_plan_table),
        Step("wait_for_request", ({"$request": "dry"},), check=_succeeded),
        Step("get_request", ({"$request": "dry"},), check=_succeeded),
        Step(
            "launch",
            (LaunchRequest(cluster_name="sdk-dry", task=GPU_TASK, dryrun=True),),
            then="progress",
            check=_progress_done,
        ),
    ],
    "missing_cluster": [
        Step("get_status", ("sdk-missing",), raises=errors.ClusterNotFoundError),
        Step("terminate", ("sdk-missing",), raises=errors.ClusterNotFoundError),
        Step("stop", ("sdk-missing",), raises=errors.ClusterNotFoundError),
        Step("queue", ("sdk-missing",), raises=errors.ClusterNotFoundError),
        Step(
            "get_logs",
            (LogsRequest(cluster_name="sdk-missing"),),
            raises=errors.ClusterNotFoundError,
        ),
        Step("autostop", ("sdk-missing", 10), raises=errors.ClusterNotFoundError),
        Step("start", ("sdk-missing",), then="result", raises=errors.ClusterNotFoundError),
        Step(
            "execute",
            (ExecuteRequest(cluster_name="sdk-missing", command="echo hi"),),
            raises=errors.ClusterNotFoundError,
        ),
    ],
    "unknown_request": [
        Step(
            "wait_for_request",
            ("00000000-dead-beef-0000-000000000000",),
            {"timeout": 10},
            raises=errors.NotFoundError,
        ),
        Step("get_request", ("00000000-dead-beef-0000-000000000000",), raises=errors.NotFoundError),
    ],
    # A real launch fails offline at the cloud API and leaves an INIT cluster behind.
    "failed_launch_lifecycle": [
        Step(
            "launch",
            (LaunchRequest(cluster_name="sdk-init", task=GPU_TASK),),
            then="result",
            raises=errors.ProvisioningFailedError,
        ),
        Step("get_status", ("sdk-init",), check=_init_cluster),
        Step("get_logs", (LogsRequest(cluster_name="sdk-init"),), raises=errors.ClusterNotUpError),
        Step("queue", ("sdk-init",), raises=errors.ClusterNotUpError),
        Step("terminate", ("sdk-init",), {"purge": True}),
        Step("get_status", ("sdk-init",), raises=errors.ClusterNotFoundError),
    ],
    "cancelled_launch": [
        Step(
            "launch",
            (LaunchRequest(cluster_name="sdk-cancel", task=GPU_TASK, retry_until_up=True),),
            save_as="launch",
        ),
        Step("cancel_request", ({"$request": "launch"},)),
        Step("wait_for_request", ({"$request": "launch"},), raises=errors.RequestCancelledError),
        Step("terminate", ("sdk-cancel",), {"purge": True}, raises=None),
    ],
}

# Steps whose outcome may legitimately differ between runs against a live server.
LENIENT = {("cancelled_launch", 3)}


def _resolve(value: Any, saved: dict[str, str]) -> Any:
    if isinstance(value, dict) and set(value) == {"$request"}:
        return saved[value["$request"]]
    return value


def _summary(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_summary(v) for v in value]
    if hasattr(value, "request_id"):
        return {"request_id": value.request_id}
    return value


def _finish(step: Step, result: Any, error: BaseException | None, lenient: bool) -> tuple[Any, ...]:
    if error is not None:
        if step.raises is None or not isinstance(error, step.raises):
            if lenient:
                return ("lenient", type(error).__name__)
            raise AssertionError(f"{step.method}: unexpected {error!r}") from error
        return ("error", type(error).__name__, getattr(error, "error_type", None))
    if step.raises is not None and not lenient:
        raise AssertionError(f"{step.method}: expected {step.raises.__name__}, got {result!r}")
    if step.check is not None:
        step.check(result)
    return ("ok", _summary(result))


def run_sync(client: SkyPilotClient, name: str) -> list[tuple[Any, ...]]:
    """Run a scenario with the sync client; returns comparable outcomes."""
    outcomes: list[tuple[Any, ...]] = []
    saved: dict[str, str] = {}
    for index, step in enumerate(SCENARIOS[name]):
        args = tuple(_resolve(a, saved) for a in step.args)
        result: Any = None
        error: BaseException | None = None
        try:
            result = getattr(client, step.method)(*args, **step.kwargs)
            if step.save_as:
                saved[step.save_as] = result.request_id
            if step.then:
                result = getattr(result, step.then)()
            if isinstance(result, Iterator):
                result = list(result)
        except errors.SkyPilotError as exc:
            error = exc
        outcomes.append(_finish(step, result, error, (name, index) in LENIENT))
    return outcomes


async def run_async(client: AsyncSkyPilotClient, name: str) -> list[tuple[Any, ...]]:
    """Run a scenario with the async client; returns comparable outcomes."""
    outcomes: list[tuple[Any, ...]] = []
    saved: dict[str, str] = {}
    for index, step in enumerate(SCENARIOS[name]):
        args = tuple(_resolve(a, saved) for a in step.args)
        result: Any = None
        error: BaseException | None = None
        try:
            result = getattr(client, step.method)(*args, **step.kwargs)
            if inspect.isawaitable(result):  # streams are async iterators, not coroutines
                result = await result
            if step.save_as:
                saved[step.save_as] = result.request_id
            if step.then:
                maybe = getattr(result, step.then)()
                result = await maybe if inspect.isawaitable(maybe) else maybe
            if isinstance(result, AsyncIterator):
                result = [item async for item in result]
        except errors.SkyPilotError as exc:
            error = exc
        outcomes.append(_finish(step, result, error, (name, index) in LENIENT))
    return outcomes


# ---------------------------------------------------------------------------- vcr set-up


def _scrub_body(body: Any) -> Any:
    if not body:
        return body
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return body
    if isinstance(data, dict) and isinstance(data.get("env_vars"), dict):
        data["env_vars"] = {
            "SKYPILOT_USER_ID": RECORDED_USER_ID,
            "SKYPILOT_USER": RECORDED_USER,
            **{k: "REDACTED" for k in data["env_vars"] if not k.startswith("SKYPILOT_USER")},
        }
    return json.dumps(data).encode()


def _normalize_request(request: Any) -> Any:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(request.uri)
    request.uri = urlunsplit(("http", "127.0.0.1:46580", parts.path, parts.query, ""))
    request.body = _scrub_body(request.body)
    return request


_PICKLED = ("request_body", "entrypoint")


def _scrub_record(value: Any) -> Any:
    # Pickles may embed request env vars: cassettes keep only what the client reads.
    if isinstance(value, list):
        return [_scrub_record(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: ("<pickle removed>" if k in _PICKLED else _scrub_record(v)) for k, v in value.items()}
    if isinstance(out.get("error"), str) and '"object"' in out["error"]:
        error = json.loads(out["error"])
        error["object"] = "<pickle removed>"
        out["error"] = json.dumps(error)
    return out


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    if body:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            return response
        response["body"]["string"] = json.dumps(_scrub_record(data)).encode()
        for name in list(response.get("headers", {})):
            if name.lower() == "content-length":
                response["headers"][name] = [str(len(response["body"]["string"]))]
    return response


def _body_matcher(r1: Any, r2: Any) -> None:
    def load(body: Any) -> Any:
        if not body:
            return None
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            return body
        if isinstance(data, dict):
            data.pop("env_vars", None)
        return data

    if load(r1.body) != load(r2.body):
        raise AssertionError("request bodies differ")


def make_vcr(record_mode: str) -> vcr.VCR:
    """The vcr configuration shared by the recorder and the replay tests."""
    config = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=["method", "path", "query", "skypilot_body"],
        filter_headers=["authorization", "cookie", "set-cookie"],
        before_record_request=_normalize_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    config.register_matcher("skypilot_body", _body_matcher)
    return config
