"""Replay the Paperspace cassettes through the sync and the async client (offline).

Every scenario runs twice, once per client, against the same cassette; both must make every
recorded request (no more, no fewer) and produce the same outcomes and waits: sync/async
parity. The cassettes built from the documented responder (PROVENANCE.md) are also checked
against the mapped results we expect; a cassette re-recorded live (``record --live``, no
``x-documented-response`` header) is only checked for parity.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider

from ..cassettes import body_text, find_secrets, provider_vcr
from . import documented as D
from .harness import (
    CASSETTES,
    FakeTime,
    Outcome,
    header,
    iter_exchanges,
    results,
    run_async,
    run_sync,
)
from .scenarios import LAUNCH_NAME, RECORDING_KEY, SCENARIOS

DIRECTORY = CASSETTES / "paperspace"
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
        provider_vcr("paperspace", "none").use_cassette(f"{name}.yaml") as cassette,
        time.attach_sync(
            PaperspaceProvider(api_key=scenario.api_key, **scenario.options)
        ) as client,
    ):
        outcomes = run_sync(client, scenario.script)
    assert cassette.all_played, "the sync client made fewer requests than were recorded"
    return outcomes, time.sleeps


async def replay_async(name: str) -> tuple[list[Outcome], list[float]]:
    scenario = SCENARIOS[name]
    time = FakeTime()
    random.seed(name)  # the backoff jitter: the same draws for both clients
    with provider_vcr("paperspace", "none").use_cassette(f"{name}.yaml") as cassette:
        async with time.attach_async(
            AsyncPaperspaceProvider(api_key=scenario.api_key, **scenario.options)
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


def _expect_list_machines(outcomes: list[Outcome], sleeps: list[float]) -> None:
    everything, named = results(outcomes, "list_instances")
    assert [m["instance_id"] for m in everything] == [
        D.ID_READY,
        D.ID_SERVICEREADY,
        D.ID_PROVISIONING,
        D.ID_OFF,
        D.ID_TRAIN,
    ]
    by_id = {m["instance_id"]: m for m in everything}
    assert by_id[D.ID_READY] == {
        "provider": "paperspace",
        "instance_id": D.ID_READY,
        "name": "sky-ready-1",
        "state": "running",
        "provider_state": "ready",
        "gpu_type": "A6000",
        "gpu_count": 1,
        "region": "ny2",
        "hourly_price": 1.89,
        "public_ip": "203.0.113.10",
        "ssh_port": 22,
        "spot": False,
        "created_at": "2026-11-23T09:00:00Z",
        "labels": {},
    }
    assert by_id[D.ID_TRAIN]["gpu_type"] == "H100"
    assert by_id[D.ID_TRAIN]["gpu_count"] == 8
    assert by_id[D.ID_TRAIN]["hourly_price"] == 47.60
    assert by_id[D.ID_OFF]["state"] == "stopped"
    assert by_id[D.ID_OFF]["region"] == "ams1"
    assert [m["name"] for m in named] == ["sky-ready-1", "sky-svc-1", "sky-prov-1"]
    # three pages each time: no cursor, then the two cursors
    afters = [r["uri"] for r in _requests("list_machines", "GET", "/machines")]
    assert len(afters) == 6
    assert sum("after=cursor-2" in u for u in afters) == 2
    assert sum("after=cursor-4" in u for u in afters) == 2


def _expect_machine_states(outcomes: list[Outcome], sleeps: list[float]) -> None:
    statuses = {s["provider_state"]: s for s in results(outcomes, "get_instance_status")}
    assert {k: (v["state"], v["ready"]) for k, v in statuses.items()} == {
        "ready": ("running", True),
        "serviceready": ("running", False),
        "provisioning": ("pending", False),
        "off": ("stopped", False),
    }
    assert statuses["ready"]["public_ip"] is not None
    assert statuses["ready"]["ssh_port"] == 22
    assert statuses["provisioning"]["public_ip"] is None
    assert statuses["provisioning"]["ssh_port"] is None


def _expect_offers(outcomes: list[Outcome], sleeps: list[float]) -> None:
    available, everything = results(outcomes, "list_available_gpus")
    (pricing,) = results(outcomes, "get_normalized_pricing")
    assert {o["offer_id"] for o in available} == {
        "A100-80G",
        "A4000",
        "A6000",
        "A6000x2",
        "H100",
        "H100x8",
        "P4000",
        "RTX4000",
    }
    assert {o["offer_id"] for o in everything if not o["available"]} == {"RTX5000", "V100-32G"}
    assert "C5" not in {o["offer_id"] for o in everything}  # a CPU type is not a GPU offer
    offers = {o["offer_id"]: o for o in everything}
    assert offers["A6000x2"]["gpu_type"] == "A6000"
    assert offers["A6000x2"]["gpu_count"] == 2
    assert offers["A100-80G"]["gpu_type"] == "A100-80GB"
    assert offers["V100-32G"]["gpu_type"] == "V100-32GB"
    assert offers["H100x8"]["gpu_memory_gb"] == 80
    # Paperspace publishes no price list: offers carry none, pricing says so.
    assert all(o["price_per_gpu"] is None and o["hourly_price"] is None for o in everything)
    assert pricing["on_demand_per_gpu_hour"] is None
    assert pricing["spot_per_gpu_hour"] is None
    assert {o["offer_id"] for o in pricing["offers"]} == {"A6000", "A6000x2"}


def _expect_availability(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert results(outcomes, "is_available") == [True, False, False]
    uris = [r["uri"] for r in _requests("availability", "GET", "/machine-availability")]
    assert [u.split("?")[1] for u in uris] == [
        "machineType=A6000&region=ca1",
        "machineType=A6000&region=ny2",
        "machineType=H100x8&region=ny2",
    ]


def _create_body(name: str) -> dict[str, Any]:
    (request,) = _requests(name, "POST", "/machines")
    body = json.loads(body_text(request))
    assert isinstance(body, dict)
    return body


def _expect_launch_pick_region(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (launched,) = results(outcomes, "launch_instance")
    assert launched["instance_id"] == D.NEW_IDS[0]
    assert launched["name"] == LAUNCH_NAME
    assert (launched["state"], launched["provider_state"]) == ("pending", "provisioning")
    assert (launched["gpu_type"], launched["gpu_count"]) == ("A6000", 1)
    assert launched["region"] == "ca1"  # ny2 had no A6000
    assert launched["hourly_price"] == 1.89
    (status,) = results(outcomes, "get_instance_status")
    assert (status["state"], status["ready"]) == ("pending", False)
    assert results(outcomes, "terminate_instance") == [None]
    assert _create_body("launch_pick_region") == {
        "name": LAUNCH_NAME,
        "machineType": "A6000",
        "templateId": "tvimtol9",  # ML-in-a-Box ranks first among templates offering A6000
        "diskSize": 100,
        "region": "ca1",
        "publicIpType": "dynamic",  # reachable over SSH (SkyPilot does the same)
        "startOnCreate": True,
        "emailPassword": True,  # the spec's default, written out by the generated model
    }


def _expect_launch_in_region(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (launched,) = results(outcomes, "launch_instance")
    assert (launched["gpu_type"], launched["region"]) == ("A100-80GB", "ny2")
    assert _create_body("launch_in_region") == {
        "name": LAUNCH_NAME,
        "machineType": "A100-80G",
        "templateId": "tvimtol9",
        "diskSize": 250,
        "region": "ny2",
        "publicIpType": "dynamic",  # reachable over SSH (SkyPilot does the same)
        "startOnCreate": True,
        "emailPassword": True,  # the spec's default, written out by the generated model
    }
    # an explicit region and image need neither availability nor templates
    assert len(list(iter_exchanges(DIRECTORY / "launch_in_region.yaml"))) == 2


def _expect_no_capacity_anywhere(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (error,) = outcomes
    assert error["error"] == "CapacityError"
    assert error["maybe_submitted"] is False
    assert _requests("launch_no_capacity_anywhere", "POST", "/machines") == []
    regions = [
        r["uri"].rsplit("region=", 1)[1]
        for r in _requests("launch_no_capacity_anywhere", "GET", "/machine-availability")
    ]
    assert regions == ["ny2", "ca1", "ams1"]


def _expect_capacity_400(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (error,) = outcomes
    assert (error["error"], error["status_code"]) == ("CapacityError", 400)
    assert error["maybe_submitted"] is False  # a 4xx says the machine was not created


def _expect_stop_start(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (stopped,) = results(outcomes, "stop_instance")
    (started,) = results(outcomes, "start_instance")
    assert (stopped["state"], stopped["provider_state"]) == ("stopping", "stopping")
    assert (started["state"], started["provider_state"]) == ("pending", "starting")
    for request, _ in iter_exchanges(DIRECTORY / "stop_start.yaml"):
        # FACTS.md quirk: start/stop are PATCH with no body and no JSON content type.
        assert request["method"] == "PATCH"
        assert body_text(request) == ""
        assert header(request["headers"], "content-type") is None


def _expect_missing_machine(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert [o.get("error") for o in outcomes] == [
        "InstanceNotFoundError",
        None,
        "InstanceNotFoundError",
    ]
    assert outcomes[1]["result"] is None  # terminate of a missing machine succeeds
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
    (machines,) = results(outcomes, "list_instances")
    assert len(machines) == 5
    assert sleeps[0] == 2.0  # Retry-After honoured by the retry
    statuses = [r["status"]["code"] for _, r in iter_exchanges(DIRECTORY / "rate_limited.yaml")]
    assert statuses == [429, 200, 200, 200]


def _expect_bad_gateway(outcomes: list[Outcome], sleeps: list[float]) -> None:
    status, launch = outcomes
    assert status["result"]["state"] == "running"  # the GET was retried after the 502
    assert (launch["error"], launch["status_code"]) == ("ProviderServerError", 502)
    assert launch["maybe_submitted"] is True  # ... but the create was not replayed
    assert len(_requests("bad_gateway", "POST", "/machines")) == 1


def _expect_launch_with_startup_script(outcomes: list[Outcome], sleeps: list[float]) -> None:
    from .scenarios import PUBLIC_KEY, STARTUP_ENV, STARTUP_SCRIPT

    launched, status, terminated = outcomes
    assert (launched["result"]["instance_id"], launched["result"]["region"]) == (
        D.NEW_IDS[0],
        "ca1",
    )
    assert status["result"]["ready"] is False  # provisioning, no public IP yet
    assert terminated["result"] is None
    (script_request,) = _requests("launch_with_startup_script", "POST", "/startup-scripts")
    sent = json.loads(body_text(script_request))
    assert (sent["name"], sent["isRunOnce"]) == (f"gpu-providers-{LAUNCH_NAME}", True)
    script = sent["script"]
    assert script.startswith("#!/bin/bash\n")
    assert "export MODEL_NAME=llama-3-8b" in script
    assert "export GREETING='it'\"'\"'s a test'" in script  # shell-quoted
    assert f"'{PUBLIC_KEY}' >> /home/paperspace/.ssh/authorized_keys" in script
    assert STARTUP_ENV and STARTUP_SCRIPT not in script  # the script travels base64-encoded
    (create,) = _requests("launch_with_startup_script", "POST", "/machines")
    body = json.loads(body_text(create))
    assert (body["startupScriptId"], body["publicIpType"]) == ("scr0a1b2", "dynamic")
    assert "enableNvlink" not in body  # A6000: no NVLink
    assert _requests("launch_with_startup_script", "DELETE", "/startup-scripts/scr0a1b2") == []


def _expect_launch_startup_script_refused(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (launch,) = outcomes
    assert (launch["error"], launch["maybe_submitted"]) == ("CapacityError", False)
    (create,) = _requests("launch_startup_script_refused", "POST", "/machines")
    body = json.loads(body_text(create))
    assert (body["machineType"], body["enableNvlink"]) == ("H100x8", True)
    deleted = _requests("launch_startup_script_refused", "DELETE", "/startup-scripts/scr0a1b2")
    assert len(deleted) == 1  # the refused launch's script is not left behind


def _expect_live_lifecycle(outcomes: list[Outcome], sleeps: list[float]) -> None:
    (launched,) = results(outcomes, "launch_instance")
    assert (launched["gpu_type"], launched["region"]) == ("A4000", "ny2")
    assert results(outcomes, "terminate_instance") == [None, None]


EXPECTATIONS: dict[str, Callable[[list[Outcome], list[float]], None]] = {
    "list_machines": _expect_list_machines,
    "machine_states": _expect_machine_states,
    "offers": _expect_offers,
    "availability": _expect_availability,
    "launch_pick_region": _expect_launch_pick_region,
    "launch_in_region": _expect_launch_in_region,
    "launch_no_capacity_anywhere": _expect_no_capacity_anywhere,
    "launch_capacity_400": _expect_capacity_400,
    "launch_with_startup_script": _expect_launch_with_startup_script,
    "launch_startup_script_refused": _expect_launch_startup_script_refused,
    "stop_start": _expect_stop_start,
    "missing_machine": _expect_missing_machine,
    "terminate_twice": _expect_terminate_twice,
    "unauthorized": _expect_unauthorized,
    "rate_limited": _expect_rate_limited,
    "bad_gateway": _expect_bad_gateway,
    "live_lifecycle": _expect_live_lifecycle,
}


def test_every_scenario_has_expectations() -> None:
    assert sorted(EXPECTATIONS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_documented_cassette_maps_as_expected(name: str) -> None:
    if not _documented(name):
        pytest.skip(f"{name}.yaml was re-recorded live: only parity is checked")
    outcomes, sleeps = replay_sync(name)
    EXPECTATIONS[name](outcomes, sleeps)
