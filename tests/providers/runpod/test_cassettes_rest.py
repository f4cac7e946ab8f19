"""Replay the RunPod REST v2 cassettes (cassettes/runpod/rest/) through the sync and the async
client of ``api="rest"`` (offline).

Both clients replay every cassette (all recorded requests, same outcomes and waits: parity).
Cassettes built from the documented responder (PROVENANCE.md) are also checked against the
mapped results we expect; one re-recorded live (no ``x-documented-response`` header) is only
checked for parity.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from gpu_providers import create_async_provider, create_provider

from ..cassettes import body_text, find_secrets, provider_vcr
from ..paperspace.harness import (
    CASSETTES,
    FakeTime,
    Outcome,
    header,
    iter_exchanges,
    results,
    run_async,
    run_sync,
)
from . import documented as G
from . import documented_rest as R
from .scenarios_rest import LAUNCH_NAME, PUBLIC_KEY, RECORDING_KEY, SCENARIOS, STARTUP_SCRIPT

DIRECTORY = CASSETTES / "runpod" / "rest"
NAMES = sorted(SCENARIOS)


def _documented(name: str) -> bool:
    return all(
        header(response["headers"], R.DOCUMENTED_HEADER) == R.DOCUMENTED_VALUE
        for _, response in iter_exchanges(DIRECTORY / f"{name}.yaml")
    )


def replay_sync(name: str) -> tuple[list[Outcome], list[float]]:
    scenario = SCENARIOS[name]
    time = FakeTime()
    random.seed(name)  # the backoff jitter: the same draws for both clients
    client = create_provider("runpod", api="rest", api_key=scenario.api_key, **scenario.options)
    with (
        provider_vcr("runpod/rest", "none").use_cassette(f"{name}.yaml") as cassette,
        time.attach_sync(client) as attached,
    ):
        outcomes = run_sync(attached, scenario.script)
    assert cassette.all_played, "the sync client made fewer requests than were recorded"
    return outcomes, time.sleeps


async def replay_async(name: str) -> tuple[list[Outcome], list[float]]:
    scenario = SCENARIOS[name]
    time = FakeTime()
    random.seed(name)
    client = create_async_provider(
        "runpod", api="rest", api_key=scenario.api_key, **scenario.options
    )
    with provider_vcr("runpod/rest", "none").use_cassette(f"{name}.yaml") as cassette:
        async with time.attach_async(client) as attached:
            outcomes = await run_async(attached, scenario.script)
    assert cassette.all_played, "the async client made fewer requests than were recorded"
    return outcomes, time.sleeps


def requests_of(name: str) -> list[tuple[str, str, Any]]:
    """(method, URL, JSON body or None) of every request of a cassette."""
    found = []
    for request, _ in iter_exchanges(DIRECTORY / f"{name}.yaml"):
        text = body_text(request)
        found.append((request["method"], request["uri"], json.loads(text) if text else None))
    return found


def test_every_scenario_has_a_cassette_and_provenance() -> None:
    assert sorted(p.stem for p in DIRECTORY.glob("*.yaml")) == NAMES
    provenance = (DIRECTORY / "PROVENANCE.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"`{name}`" in provenance, f"PROVENANCE.md does not describe {name}"
    assert "python -m tests.providers.runpod.record_rest --live" in provenance


@pytest.mark.parametrize("name", NAMES)
def test_no_secret_in_cassette(name: str) -> None:
    path = DIRECTORY / f"{name}.yaml"
    assert find_secrets(path, known=(RECORDING_KEY, R.REVOKED_KEY)) == []
    for _, uri, _ in requests_of(name):
        assert uri.startswith(f"{R.API}/v2/") and "key" not in uri.lower()


@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES)
async def test_replay_sync_and_async_agree(name: str) -> None:
    sync_outcomes, sync_sleeps = replay_sync(name)
    async_outcomes, async_sleeps = await replay_async(name)
    assert async_outcomes == sync_outcomes
    assert async_sleeps == sync_sleeps
    assert sync_outcomes


# -- what the documented cassettes must map to ------------------------------------------------


def _expect_offers(outcomes: list[Outcome], sleeps: list[float]) -> None:
    available, everything, two_in_us = results(outcomes, "list_available_gpus")
    h100, rtx4090 = results(outcomes, "get_normalized_pricing")
    assert all(o["available"] and not o["spot"] for o in available)
    assert {o["gpu_type"] for o in available} == {"H100", "A100-80GB"}  # MI300X: not ours
    assert any(not o["available"] for o in everything)  # RTX 4090: NONE
    prices = [o["price_per_gpu"] for o in everything]
    assert prices == sorted(prices)
    assert all(o["region"] == "US" and o["gpu_count"] == 2 for o in two_in_us)
    assert h100["on_demand_per_gpu_hour"] == 2.69 and h100["spot_per_gpu_hour"] is None
    assert rtx4090["on_demand_per_gpu_hour"] == 0.34  # a price, though none is in stock
    assert sleeps == []


def _create_body(name: str) -> dict[str, Any]:
    (body,) = [b for method, uri, b in requests_of(name) if method == "POST" and b and "gpu" in b]
    assert isinstance(body, dict)
    return body


def _expect_launch_on_demand(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (launched,) = results(outcomes, "launch_instance")
    assert launched["instance_id"] == R.NEW_IDS[0] and launched["name"] == LAUNCH_NAME
    assert launched["state"] == "pending" and launched["hourly_price"] == 2.69
    starting, unmapped, ready = results(outcomes, "get_instance_status")
    assert (starting["state"], starting["ready"]) == ("pending", False)
    assert (unmapped["state"], unmapped["ready"]) == ("running", False)
    assert (ready["ready"], ready["public_ip"], ready["ssh_port"]) == (True, R.POD_PUBLIC_IP, 10400)
    body = _create_body("launch_on_demand")
    assert body["cloud"] == "COMMUNITY"  # the cheapest cloud with stock
    assert body["gpu"] == {"id": G.H100, "count": 1, "minCudaVersion": "12.4"}
    assert body["env"]["PUBLIC_KEY"] == body["env"]["SSH_PUBLIC_KEY"] == PUBLIC_KEY
    assert body["env"]["CASSETTE_MODE"] == "documented"
    assert body["ports"] == ["22/tcp"] and body["startSsh"] is True
    assert "dataCenterIds" not in body  # anywhere: RunPod picks
    encoded = body["args"].split("echo ", 1)[1].split(" |", 1)[0]
    assert base64.b64decode(encoded).decode() == STARTUP_SCRIPT
    assert results(outcomes, "terminate_instance") == [None]


def _expect_launch_wait_ready(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (launched,) = results(outcomes, "launch_instance")
    (ready,) = results(outcomes, "wait_until_ready")
    assert ready["ready"] and ready["instance_id"] == launched["instance_id"]
    body = _create_body("launch_wait_ready")
    # us-east -> US -> the US data centers the catalog reports in stock for that cloud
    assert body["cloud"] == "SECURE" and body["dataCenterIds"] == ["US-TX-3"]
    uris = [uri for _, uri, _ in requests_of("launch_wait_ready")]
    assert all("countryCodes=US" in u for u in uris if "/catalog/" in u)
    assert len(sleeps) == 2  # polled twice before SSH was mapped


def _expect_refusal(kind: str, status: int | None) -> Callable[[list[Outcome], list[float]], None]:
    def check(outcomes: list[Outcome], sleeps: list[float]) -> None:
        (failed,) = results(outcomes, "launch_instance")
        assert failed["error"] == kind and failed["status_code"] == status
        assert failed["maybe_submitted"] is False
        assert results(outcomes, "terminate_instance") == []  # nothing to clean up

    return check


def _expect_pod_states(outcomes: list[Outcome], sleeps: list[float]) -> None:
    ready, booting, exited, error, missing = results(outcomes, "get_instance_status")
    assert ready["ready"] and ready["ssh_port"] == 10341
    assert (booting["state"], exited["state"], error["state"]) == ("pending", "stopped", "failed")
    assert (missing["error"], missing["status_code"]) == ("InstanceNotFoundError", 404)


def _expect_list_pods(outcomes: list[Outcome], sleeps: list[float]) -> None:
    everything, mine = results(outcomes, "list_instances")
    assert len(everything) == 4
    assert [p["name"] for p in mine] == ["sky-train-1", "sky-boot-1", "sky-broken-1"]
    ready = next(p for p in everything if p["instance_id"] == R.ID_READY)
    assert (ready["gpu_type"], ready["region"], ready["hourly_price"]) == ("H100", "US-TX-3", 2.99)


def _expect_stop_resume(outcomes: list[Outcome], sleeps: list[float]) -> None:
    stopped, conflict = results(outcomes, "stop_instance")
    assert stopped["state"] == "stopped"
    assert (conflict["error"], conflict["status_code"]) == ("InvalidRequestError", 409)
    (started,) = results(outcomes, "start_instance")
    assert started["state"] == "running"


def _expect_terminate_twice(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert results(outcomes, "terminate_instance") == [None, None]
    (gone,) = results(outcomes, "get_instance_status")
    assert gone["error"] == "InstanceNotFoundError"


def _expect_missing_pod(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (missing,) = results(outcomes, "get_instance_status")
    assert missing["error"] == "InstanceNotFoundError" and missing["code"] == "Not Found"
    assert results(outcomes, "terminate_instance") == [None]


def _expect_unauthorized(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert [o["error"] for o in outcomes] == ["AuthenticationError"] * 2
    assert {o["status_code"] for o in outcomes} == {401}


def _expect_rate_limited(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (pods,) = results(outcomes, "list_instances")
    assert len(pods) == 4 and sleeps == [2.0]  # RunPod's Retry-After, waited on fake time


def _expect_bad_gateway(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (status,) = results(outcomes, "get_instance_status")
    assert status["ready"] and len(sleeps) == 1


EXPECTATIONS: dict[str, Callable[[list[Outcome], list[float]], None]] = {
    "offers": _expect_offers,
    "launch_on_demand": _expect_launch_on_demand,
    "launch_wait_ready": _expect_launch_wait_ready,
    "launch_no_stock": _expect_refusal("CapacityError", None),
    "launch_capacity_400": _expect_refusal("CapacityError", 400),
    "launch_insufficient_balance": _expect_refusal("BillingError", 402),
    "pod_states": _expect_pod_states,
    "list_pods": _expect_list_pods,
    "stop_resume": _expect_stop_resume,
    "terminate_twice": _expect_terminate_twice,
    "missing_pod": _expect_missing_pod,
    "unauthorized": _expect_unauthorized,
    "rate_limited": _expect_rate_limited,
    "bad_gateway": _expect_bad_gateway,
}


def test_every_scenario_has_expectations() -> None:
    assert sorted(EXPECTATIONS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_documented_cassette_maps_as_expected(name: str) -> None:
    if not _documented(name):
        pytest.skip(f"{name}.yaml was re-recorded live: only parity is checked")
    outcomes, sleeps = replay_sync(name)
    EXPECTATIONS[name](outcomes, sleeps)
