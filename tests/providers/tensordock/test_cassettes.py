"""Replay the TensorDock cassettes through the sync and the async client (offline).

Every scenario runs twice, once per client, against the same cassette; both must make every
recorded request (no more, no fewer) and produce the same outcomes and waits: sync/async
parity. The cassettes built from the documented responder (PROVENANCE.md) are also checked
against the mapped results we expect; a cassette re-recorded live (``record --live``, no
``x-documented-response`` header) is only checked for parity.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from gpu_providers.tensordock import AsyncTensorDockProvider, TensorDockProvider
from tests.providers.cassettes import body_text, find_secrets, provider_vcr
from tests.providers.paperspace.harness import (
    CASSETTES,
    FakeTime,
    Outcome,
    header,
    iter_exchanges,
    results,
    run_async,
    run_sync,
)

from . import documented as D
from .scenarios import LAUNCH_NAME, PUBLIC_KEY, RECORDING_KEY, SCENARIOS

DIRECTORY = CASSETTES / "tensordock"
NAMES = sorted(SCENARIOS)


def _documented(name: str) -> bool:
    return all(
        header(response["headers"], D.DOCUMENTED_HEADER) == D.DOCUMENTED_VALUE
        for _, response in iter_exchanges(DIRECTORY / f"{name}.yaml")
    )


def replay_sync(name: str) -> tuple[list[Outcome], list[float]]:
    scenario = SCENARIOS[name]
    time = FakeTime()
    random.seed(name)  # the backoff jitter: the same draws for both clients
    with (
        provider_vcr("tensordock", "none").use_cassette(f"{name}.yaml") as cassette,
        time.attach_sync(
            TensorDockProvider(api_key=scenario.api_key, **scenario.options)
        ) as client,
    ):
        outcomes = run_sync(client, scenario.script)
    assert cassette.all_played, "the sync client made fewer requests than were recorded"
    return outcomes, time.sleeps


async def replay_async(name: str) -> tuple[list[Outcome], list[float]]:
    scenario = SCENARIOS[name]
    time = FakeTime()
    random.seed(name)
    with provider_vcr("tensordock", "none").use_cassette(f"{name}.yaml") as cassette:
        async with time.attach_async(
            AsyncTensorDockProvider(api_key=scenario.api_key, **scenario.options)
        ) as client:
            outcomes = await run_async(client, scenario.script)
    assert cassette.all_played, "the async client made fewer requests than were recorded"
    return outcomes, time.sleeps


def test_every_scenario_has_a_cassette_and_provenance() -> None:
    assert sorted(p.stem for p in DIRECTORY.glob("*.yaml")) == NAMES
    provenance = (DIRECTORY / "PROVENANCE.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"`{name}`" in provenance, f"PROVENANCE.md does not describe {name}"


@pytest.mark.parametrize("name", NAMES)
def test_no_secret_in_cassette(name: str) -> None:
    path = DIRECTORY / f"{name}.yaml"
    assert find_secrets(path, known=(RECORDING_KEY, D.REVOKED_KEY)) == []
    assert "bearer" not in path.read_text(encoding="utf-8").lower()


@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES)
async def test_replay_sync_and_async_agree(name: str) -> None:
    sync_outcomes, sync_sleeps = replay_sync(name)
    async_outcomes, async_sleeps = await replay_async(name)
    assert async_outcomes == sync_outcomes
    assert async_sleeps == sync_sleeps
    assert sync_outcomes, "a scenario makes at least one call"


# -- what the documented cassettes must map to ------------------------------------------------


def _requests(name: str, method: str, path: str) -> list[dict[str, Any]]:
    return [
        request
        for request, _ in iter_exchanges(DIRECTORY / f"{name}.yaml")
        if request["method"] == method and request["uri"].split("?")[0] == D.BASE_URL + path
    ]


def _create_body(name: str) -> dict[str, Any]:
    (request,) = _requests(name, "POST", "/instances")
    body = json.loads(body_text(request))
    assert isinstance(body, dict)
    return body


def _expect_offers(outcomes: list[Outcome], sleeps: list[float]) -> None:
    available, everything = results(outcomes, "list_available_gpus")
    (pricing,) = results(outcomes, "get_normalized_pricing")
    # cheapest per GPU first: 2x RTX4090 in Dallas shares its vCPU/RAM/storage cost
    assert [(o["gpu_type"], o["gpu_count"]) for o in available[:3]] == [
        ("RTX4090", 2),
        ("RTX4090", 2),
        ("RTX4090", 1),
    ]
    one = next(o for o in available if o["offer_id"].startswith("location:" + D.LOC_DALLAS))
    assert one["offer_id"] == f"location:{D.LOC_DALLAS}:geforcertx4090-pcie-24gb"
    single = next(o for o in available if o["offer_id"] == one["offer_id"] and o["gpu_count"] == 1)
    # FACTS.md: count*price_per_hr + vcpus*per_vcpu_hr + ram_gb*per_gb_ram_hr +
    # storage_gb*per_gb_storage_hr, for 4 vCPUs, 16 GB RAM and 100 GB storage
    assert single["price_breakdown"] == {
        "gpu": 0.35,
        "vcpu": 4 * 0.003,
        "ram": 16 * 0.002,
        "storage": 100 * 0.00005,
    }
    assert single["hourly_price"] == pytest.approx(0.35 + 0.012 + 0.032 + 0.005)
    assert (single["vcpus"], single["ram_gb"], single["disk_gb"]) == (4, 16, 100)
    assert single["region"] == D.LOC_DALLAS
    assert single["provider_gpu_type"] == "geforcertx4090-pcie-24gb"
    # the hostnode offers are listed too
    assert any(o["offer_id"].startswith("hostnode:" + D.NODE_DALLAS) for o in available)
    # sold out: Dallas H100 (max_count 0), Frankfurt hostnode H100 (availableCount 0)
    sold_out = {o["offer_id"] for o in everything if not o["available"]}
    assert sold_out == {
        f"location:{D.LOC_DALLAS}:h100-sxm5-80gb",
        f"hostnode:{D.NODE_FRANKFURT}:h100-sxm5-80gb",
    }
    assert not any("mi300x" in o["offer_id"] for o in everything)  # unknown GPU: skipped
    h100 = {(o["offer_id"], o["gpu_count"]): o for o in everything if o["gpu_type"] == "H100"}
    eu2 = h100[(f"location:{D.LOC_FRANKFURT}:h100-sxm5-80gb", 2)]
    assert (eu2["vcpus"], eu2["ram_gb"]) == (8, 32)
    assert eu2["hourly_price"] == pytest.approx(2 * 2.45 + 8 * 0.004 + 32 * 0.0025 + 100 * 0.00006)
    assert pricing["on_demand_per_gpu_hour"] == pytest.approx((0.7 + 0.024 + 0.064 + 0.005) / 2)
    assert pricing["spot_per_gpu_hour"] is None


def _expect_list_instances(outcomes: list[Outcome], sleeps: list[float]) -> None:
    everything, named = results(outcomes, "list_instances")
    assert [i["instance_id"] for i in everything] == [
        D.ID_RUNNING,
        D.ID_STARTING,
        D.ID_STOPPED,
        D.ID_DISASSOCIATED,
        D.ID_PORTS,
    ]
    assert everything[0] == {
        "provider": "tensordock",
        "instance_id": D.ID_RUNNING,
        "name": "sky-run-1",
        "state": "running",
        "provider_state": "running",
        "gpu_type": "RTX4090",
        "gpu_count": 1,
        "region": None,
        "hourly_price": 0.4,
        "public_ip": "203.0.113.10",
        "ssh_port": 22,
        "spot": False,
        "created_at": None,
        "labels": {},
    }
    assert [i["state"] for i in everything] == [
        "running",
        "pending",
        "stopped",
        "stopped",
        "running",
    ]
    assert (everything[1]["gpu_type"], everything[1]["gpu_count"]) == ("H100", 2)
    assert everything[4]["ssh_port"] == 20001  # port forward 22 -> 20001
    assert [i["name"] for i in named] == ["sky-run-1", "sky-boot-1", "sky-ports-1"]


def _expect_instance_states(outcomes: list[Outcome], sleeps: list[float]) -> None:
    statuses = results(outcomes, "get_instance_status")
    assert [(s["provider_state"], s["state"], s["ready"]) for s in statuses] == [
        ("running", "running", True),
        ("starting", "pending", False),
        ("Stopped", "stopped", False),  # wrapped in {"data": ...}
        ("StoppedDisassociated", "stopped", False),
        ("running", "running", True),  # wrapped, behind a port forward
    ]
    assert statuses[4]["ssh_port"] == 20001
    assert statuses[1]["public_ip"] is None
    wrapped = [
        json.loads(body_text(response))
        for request, response in iter_exchanges(DIRECTORY / "instance_states.yaml")
        if request["uri"].endswith(D.ID_STOPPED)
    ]
    assert list(wrapped[0]) == ["data"]  # the cassette really holds the wrapped form


def _expect_launch_cheapest(outcomes: list[Outcome], sleeps: list[float]) -> None:
    launched, status, terminated = outcomes
    instance = launched["result"]
    assert instance["instance_id"] == D.NEW_IDS[0]
    assert (instance["name"], instance["state"]) == (LAUNCH_NAME, "running")
    assert (instance["gpu_type"], instance["gpu_count"]) == ("RTX4090", 1)
    assert instance["region"] == D.LOC_DALLAS  # 0.35 in Dallas beats 0.37 in Toronto
    assert instance["hourly_price"] == pytest.approx(0.399)
    assert (instance["public_ip"], instance["ssh_port"]) == (D.NEW_IP, 22)
    assert status["result"]["ready"] is True
    assert terminated["result"] is None
    assert _create_body("launch_cheapest") == {
        "data": {
            "type": "virtualmachine",
            "attributes": {
                "name": LAUNCH_NAME,
                "type": "virtualmachine",
                "image": "ubuntu2404",
                "resources": {
                    "vcpu_count": 4,
                    "ram_gb": 16,
                    "storage_gb": 100,
                    "gpus": {"geforcertx4090-pcie-24gb": {"count": 1}},
                },
                "location_id": D.LOC_DALLAS,
                "useDedicatedIp": True,
                "ssh_key": PUBLIC_KEY,
            },
        }
    }
    sent = _requests("launch_cheapest", "POST", "/instances")
    assert header(sent[0]["headers"], "accept") == "application/json"
    assert header(sent[0]["headers"], "content-type") == "application/json"


def _expect_launch_in_country(outcomes: list[Outcome], sleeps: list[float]) -> None:
    from .scenarios import STARTUP_SCRIPT

    launched, terminated = outcomes
    assert launched["result"]["region"] == D.LOC_FRANKFURT
    assert launched["result"]["gpu_count"] == 2
    attributes = _create_body("launch_in_country")["data"]["attributes"]
    assert attributes["image"] == "ubuntu2204"
    assert attributes["resources"] == {
        "vcpu_count": 8,
        "ram_gb": 32,
        "storage_gb": 200,
        "gpus": {"h100-sxm5-80gb": {"count": 2}},
    }
    (command,) = attributes["cloud_init"]["runcmd"]
    encoded = command.split("'")[3]
    script = base64.b64decode(encoded).decode()
    assert script.startswith("#!/bin/bash\n")
    assert "export MODEL_NAME=llama-3-8b" in script
    assert STARTUP_SCRIPT not in command  # the script travels base64-encoded
    assert terminated["result"] is None


def _expect_no_capacity(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (error,) = outcomes
    assert (error["error"], error["maybe_submitted"]) == ("CapacityError", False)
    assert _requests("launch_no_capacity", "POST", "/instances") == []


def _expect_capacity_refused(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (error,) = outcomes
    assert (error["error"], error["status_code"]) == ("CapacityError", 400)
    assert error["maybe_submitted"] is False  # a 4xx says nothing was created


def _expect_low_balance(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (error,) = outcomes
    assert (error["error"], error["status_code"]) == ("BillingError", 400)
    assert error["maybe_submitted"] is False


def _expect_stop_start(outcomes: list[Outcome], sleeps: list[float]) -> None:
    stopped, status, started = outcomes
    assert (stopped["result"]["state"], stopped["result"]["provider_state"]) == (
        "stopping",
        "stopping",
    )
    assert status["result"]["state"] == "stopped"
    assert (started["result"]["state"], started["result"]["provider_state"]) == (
        "pending",
        "starting",
    )
    for request in _requests("stop_start", "POST", f"/instances/{D.ID_RUNNING}/stop"):
        assert body_text(request) == ""


def _expect_missing_instance(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert [o.get("error") for o in outcomes] == [
        "InstanceNotFoundError",
        None,
        "InstanceNotFoundError",
    ]
    assert outcomes[1]["result"] is None  # delete of a missing instance succeeds
    assert outcomes[0]["status_code"] == 404


def _expect_terminate_twice(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert [o.get("error") for o in outcomes] == [None, None, "InstanceNotFoundError"]
    statuses = [r["status"]["code"] for _, r in iter_exchanges(DIRECTORY / "terminate_twice.yaml")]
    assert statuses == [200, 404, 404]


def _expect_unauthorized(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert [(o["error"], o["status_code"]) for o in outcomes] == [
        ("AuthenticationError", 401),
        ("AuthenticationError", 401),
    ]


def _expect_rate_limited(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (instances,) = results(outcomes, "list_instances")
    assert len(instances) == 5
    # no Retry-After: our backoff, then the limiter slowed down after the 429
    assert sleeps
    assert all(s > 0 for s in sleeps)
    statuses = [r["status"]["code"] for _, r in iter_exchanges(DIRECTORY / "rate_limited.yaml")]
    assert statuses == [429, 200]


def _expect_bad_gateway(outcomes: list[Outcome], sleeps: list[float]) -> None:
    status, launch = outcomes
    assert status["result"]["state"] == "running"  # the GET was retried after the 502
    assert (launch["error"], launch["status_code"]) == ("ProviderServerError", 502)
    assert launch["maybe_submitted"] is True  # ... but the create was not replayed
    assert len(_requests("bad_gateway", "POST", "/instances")) == 1


EXPECTATIONS: dict[str, Callable[[list[Outcome], list[float]], None]] = {
    "offers": _expect_offers,
    "list_instances": _expect_list_instances,
    "list_instances_attributes": _expect_list_instances,
    "instance_states": _expect_instance_states,
    "launch_cheapest": _expect_launch_cheapest,
    "launch_in_country": _expect_launch_in_country,
    "launch_no_capacity": _expect_no_capacity,
    "launch_capacity_refused": _expect_capacity_refused,
    "launch_low_balance": _expect_low_balance,
    "stop_start": _expect_stop_start,
    "missing_instance": _expect_missing_instance,
    "terminate_twice": _expect_terminate_twice,
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
