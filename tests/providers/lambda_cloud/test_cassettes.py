"""Replay the Lambda cassettes (offline) through the sync and the async client.

Both clients must make exactly the recorded calls and produce the same outcomes and the same
waits (sync/async parity). The value checks below hold for the cassettes built from documented
responses (cassettes/lambda/PROVENANCE.md); after a live re-recording they are skipped for
that cassette, while replay and parity still run. Re-record with
``python -m tests.providers.lambda_cloud.record``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpu_providers import create_async_provider, create_provider
from tests.providers.cassettes import (
    CASSETTES,
    body_json,
    body_text,
    find_secrets,
    load_interactions,
    provider_vcr,
)
from tests.providers.timekeeping import FakeClock, attach

from . import documented as D
from .record import DIRECTORY, is_documented, main, provenance_text
from .scenarios import RECORDING_KEY, SCENARIOS, Outcome, Scenario, run_async, run_sync

NAMES = sorted(SCENARIOS)


def replay_sync(scenario: Scenario) -> tuple[list[Outcome], list[float]]:
    clock = FakeClock(5000.0)
    with (
        provider_vcr("lambda", "none").use_cassette(f"{scenario.name}.yaml") as cassette,
        attach(create_provider("lambda", api_key=scenario.api_key), clock, clock.sleep) as client,
    ):
        outcomes = run_sync(client, scenario)
    assert cassette.all_played, "the sync client made fewer calls than were recorded"
    return outcomes, clock.sleeps


async def replay_async(scenario: Scenario) -> tuple[list[Outcome], list[float]]:
    clock = FakeClock(5000.0)
    with provider_vcr("lambda", "none").use_cassette(f"{scenario.name}.yaml") as cassette:
        async with attach(
            create_async_provider("lambda", api_key=scenario.api_key), clock, clock.asleep
        ) as client:
            outcomes = await run_async(client, scenario)
    assert cassette.all_played, "the async client made fewer calls than were recorded"
    return outcomes, clock.sleeps


# -- files ----------------------------------------------------------------------------------


def test_every_scenario_has_a_cassette() -> None:
    assert sorted(p.stem for p in DIRECTORY.glob("*.yaml")) == NAMES


def test_provenance_is_written_and_current() -> None:
    text = (DIRECTORY / "PROVENANCE.md").read_text(encoding="utf-8")
    assert text == provenance_text(), "re-run the recorder to refresh PROVENANCE.md"
    assert "not recorded from a live Lambda Cloud account" in text
    assert "python -m tests.providers.lambda_cloud.record --live" in text


ALL_CASSETTES = sorted(CASSETTES.rglob("*.yaml"))


@pytest.mark.parametrize(
    "path", ALL_CASSETTES, ids=[str(p.relative_to(CASSETTES)) for p in ALL_CASSETTES]
)
def test_no_secrets_in_any_cassette(path: Path) -> None:
    assert find_secrets(path, known=[RECORDING_KEY, D.REVOKED_KEY]) == []


def test_the_secret_scan_finds_planted_secrets(tmp_path: Path) -> None:
    source = (DIRECTORY / "list_instances.yaml").read_text(encoding="utf-8")
    uri = "uri: https://cloud.lambda.ai/api/v1/instances"
    planted = source.replace(uri, uri + "?api_key=abc", 1)
    planted = planted.replace('"jupyter_token":"REDACTED"', '"jupyter_token":"tok123"', 1)
    header = "      Authorization:\n      - Bearer abcdef123456\n"
    planted = planted.replace("      user-agent:", header + "      user-agent:", 1)
    path = tmp_path / "planted.yaml"
    path.write_text(planted + f"# {RECORDING_KEY}\n", encoding="utf-8")
    problems = " | ".join(find_secrets(path, known=[RECORDING_KEY]))
    expected = ("contains the secret", "Bearer", "'Authorization'", "api_key", "jupyter_token")
    for text in expected:
        assert text in problems


def test_recording_filters_secrets(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"data": {"id": "i", "jupyter_token": "tok-123", "nested": [{"private_key": "pk"}]}}
        return httpx.Response(200, json=body, headers={"set-cookie": "session=abc"})

    path = tmp_path / "filtered.yaml"
    with (
        provider_vcr("lambda", "all").use_cassette(str(path)),
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
    ):
        client.get(
            "https://cloud.lambda.ai/api/v1/instances?api_key=k-123&cluster_id=c1",
            headers={"Authorization": f"Bearer {RECORDING_KEY}", "X-Api-Key": "k-456"},
        )
    assert find_secrets(path, known=[RECORDING_KEY, "k-123", "k-456", "tok-123", "pk"]) == []
    (interaction,) = load_interactions(path)
    assert interaction["request"]["uri"].endswith("/api/v1/instances?cluster_id=c1")
    assert body_json(interaction["response"]) == {
        "data": {"id": "i", "jupyter_token": "REDACTED", "nested": [{"private_key": "REDACTED"}]}
    }


def _essentials(path: Path) -> list[tuple[Any, ...]]:
    """What a cassette says, without headers that depend on the httpx version."""
    return [
        (
            i["request"]["method"],
            i["request"]["uri"],
            body_json(i["request"]),
            i["response"]["status"]["code"],
            body_json(i["response"]) or body_text(i["response"]),
            sorted(
                (k.lower(), tuple(v))
                for k, v in (i["response"].get("headers") or {}).items()
                if k.lower() != "content-length"
            ),
        )
        for i in load_interactions(path)
    ]


def test_the_recorder_reproduces_the_committed_cassettes(tmp_path: Path) -> None:
    lines: list[str] = []
    assert main(["--out", str(tmp_path)], out=lines.append) == 0
    assert len(lines) == len(NAMES)
    for name in NAMES:
        committed = DIRECTORY / f"{name}.yaml"
        if is_documented(committed):
            assert _essentials(tmp_path / f"{name}.yaml") == _essentials(committed), name
    assert provenance_text(tmp_path) == provenance_text(DIRECTORY)


@pytest.mark.parametrize(
    "argv",
    [["--live"], ["--allow-billed-launch"], ["no_such_scenario"]],
    ids=["live-without-key", "billed-without-live", "unknown-scenario"],
)
def test_recorder_refuses(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDA_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert list(tmp_path.iterdir()) == []


def test_live_recording_keeps_what_it_cannot_or_may_not_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_API_KEY", "not-used")
    lines: list[str] = []
    names = ["rate_limited", "instance_states", "launch"]
    assert main(["--live", "--out", str(tmp_path), *names], out=lines.append) == 0
    assert [line.split(":")[0] for line in lines] == names
    assert all("kept" in line for line in lines)
    assert "--allow-billed-launch" in lines[2]
    assert [p.name for p in tmp_path.iterdir()] == ["PROVENANCE.md"]  # no request was made


# -- replay and parity ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES)
async def test_replay_sync_and_async_agree(name: str) -> None:
    scenario = SCENARIOS[name]
    outcomes, sleeps = replay_sync(scenario)
    async_outcomes, async_sleeps = await replay_async(scenario)
    assert len(outcomes) == len(scenario.steps)
    assert async_outcomes == outcomes
    assert async_sleeps == sleeps


# -- what the documented cassettes must map to ----------------------------------------------


def _ok(outcome: Outcome) -> Any:
    assert "error" not in outcome, outcome
    return outcome["ok"]


def _error(outcome: Outcome, cls: str, status: int, code: str | None) -> None:
    assert (outcome.get("error"), outcome.get("status"), outcome.get("code")) == (
        cls,
        status,
        code,
    ), outcome
    assert outcome["maybe_submitted"] is False


def check_instance_types(outcomes: list[Outcome], sleeps: list[float]) -> None:
    available = _ok(outcomes[0])
    assert [(o["offer_id"], o["region"]) for o in available] == [
        ("gpu_1x_a10", "us-east-1"),
        ("gpu_1x_a10", "us-west-1"),
        ("gpu_1x_a100_sxm4", D.UNKNOWN_REGION),  # a region 1.8.3 does not know: kept
        ("gpu_1x_gh200", "us-east-3"),
        ("gpu_8x_a100_80gb_sxm4", "us-west-2"),
        ("gpu_1x_h100_pcie", "us-west-3"),
        ("gpu_1x_h100_pcie", D.UNKNOWN_REGION),
    ]  # cheapest per GPU first; no CPU type; no type without capacity
    by_type = {o["offer_id"]: o for o in available}
    a100_80 = by_type["gpu_8x_a100_80gb_sxm4"]
    assert (a100_80["gpu_type"], a100_80["gpu_count"]) == ("A100-80GB", 8)
    assert (a100_80["hourly_price"], a100_80["price_per_gpu"]) == (14.32, 1.79)
    assert (a100_80["vcpus"], a100_80["ram_gb"], a100_80["disk_gb"]) == (240, 1800, 19500)
    assert by_type["gpu_1x_a100_sxm4"]["gpu_type"] == "A100"
    assert by_type["gpu_1x_a10"]["gpu_type"] == "A10"
    assert by_type["gpu_1x_a10"]["provider_gpu_type"] == "A10 (24 GB PCIe)"
    assert all(o["available"] and not o["spot"] and o["currency"] == "USD" for o in available)

    everything = _ok(outcomes[1])
    no_capacity = [o for o in everything if not o["available"]]
    assert [(o["offer_id"], o["region"], o["price_per_gpu"]) for o in no_capacity] == [
        ("gpu_8x_h100_sxm5", None, 2.99)
    ]
    assert "cpu_4x_general" not in {o["offer_id"] for o in everything}

    a100_pricing, h100_pricing, a10_pricing = (_ok(o) for o in outcomes[2:5])
    assert (a100_pricing["gpu_type"], a100_pricing["on_demand_per_gpu_hour"]) == ("A100-80GB", 1.79)
    assert a100_pricing["spot_per_gpu_hour"] is None
    assert (h100_pricing["region"], h100_pricing["on_demand_per_gpu_hour"]) == ("us-west-3", 2.49)
    assert {o["region"] for o in h100_pricing["offers"]} == {"us-west-3"}
    assert (a10_pricing["gpu_type"], a10_pricing["on_demand_per_gpu_hour"]) == ("A10", 0.75)


def check_launch(outcomes: list[Outcome], sleeps: list[float]) -> None:
    launched = _ok(outcomes[0])
    assert launched["instance_id"] == D.ID_LAUNCHED
    assert (launched["state"], launched["provider_state"]) == ("pending", "booting")
    assert (launched["gpu_type"], launched["gpu_count"]) == ("A10", 1)
    assert (launched["region"], launched["hourly_price"]) == ("us-east-1", 0.75)
    assert launched["labels"] == {"purpose": "cassette"}
    assert launched["name"] == "skypilot-sdk-cassette"
    status = _ok(outcomes[1])
    assert (status["state"], status["ready"], status["public_ip"]) == ("pending", False, None)
    assert _ok(outcomes[2]) is None


def check_launch_insufficient_capacity(outcomes: list[Outcome], sleeps: list[float]) -> None:
    _error(outcomes[0], "CapacityError", 400, "instance-operations/launch/insufficient-capacity")


def check_launch_quota_exceeded(outcomes: list[Outcome], sleeps: list[float]) -> None:
    _error(outcomes[0], "QuotaExceededError", 400, "global/quota-exceeded")


def check_launch_unauthorized(outcomes: list[Outcome], sleeps: list[float]) -> None:
    _error(outcomes[0], "AuthenticationError", 401, "global/invalid-api-key")


def check_invalid_api_key(outcomes: list[Outcome], sleeps: list[float]) -> None:
    for outcome in outcomes:
        _error(outcome, "AuthenticationError", 401, "global/invalid-api-key")


def check_instance_states(outcomes: list[Outcome], sleeps: list[float]) -> None:
    seen = [
        (s["state"], s["provider_state"], s["ready"], s["public_ip"])
        for s in (_ok(o) for o in outcomes[:4])
    ]
    assert seen == [
        ("pending", "booting", False, None),
        ("running", "active", True, "198.51.100.7"),
        ("running", "unhealthy", False, "198.51.100.9"),
        ("terminated", "terminated", False, "198.51.100.11"),
    ]
    assert _ok(outcomes[2])["message"] == "Lambda reports the instance unhealthy"
    _error(outcomes[4], "InstanceNotFoundError", 404, "global/object-does-not-exist")


def check_missing_instance(outcomes: list[Outcome], sleeps: list[float]) -> None:
    _error(outcomes[0], "InstanceNotFoundError", 404, "global/object-does-not-exist")
    assert _ok(outcomes[1]) is None  # terminate of a missing instance succeeds


def check_list_instances(outcomes: list[Outcome], sleeps: list[float]) -> None:
    everything, train = _ok(outcomes[0]), _ok(outcomes[1])
    assert [i["name"] for i in everything] == [
        "train-a100-01",
        "train-h100-02",
        "eval-a10-01",
        "old-notebook",
    ]
    assert [i["name"] for i in train] == ["train-a100-01", "train-h100-02"]
    first = everything[0]
    assert first["labels"] == {"team": "ml", "job": "pretrain"}
    assert (first["gpu_type"], first["gpu_count"], first["hourly_price"]) == ("A100-80GB", 8, 14.32)
    assert (first["public_ip"], first["ssh_port"]) == ("198.51.100.7", 22)
    assert everything[3]["region"] == D.UNKNOWN_REGION


def check_restart_and_terminate(outcomes: list[Outcome], sleeps: list[float]) -> None:
    restarted = _ok(outcomes[0])
    assert (restarted["instance_id"], restarted["state"]) == (D.ID_ACTIVE, "running")
    assert _ok(outcomes[1]) is None
    assert _ok(outcomes[2])["state"] == "terminating"


def check_ssh_keys(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert [k["name"] for k in _ok(outcomes[0])] == [D.SSH_KEY_NAME]
    added = _ok(outcomes[1])
    assert added == {
        "id": D.SSH_KEY_ID_ADDED,
        "name": "skypilot-sdk-cassette-tmp",
        "public_key": D.PUBLIC_KEY,
    }
    assert [k["id"] for k in _ok(outcomes[2])] == [D.SSH_KEY_ID, D.SSH_KEY_ID_ADDED]
    assert _ok(outcomes[3]) is None


def check_rate_limited(outcomes: list[Outcome], sleeps: list[float]) -> None:
    assert len(_ok(outcomes[0])) == 4  # the retried call succeeded
    assert sleeps[0] == 2.0  # Retry-After: 2 honoured (no jittered backoff instead)


def check_launch_with_startup_script(outcomes: list[Outcome], sleeps: list[float]) -> None:
    from .scenarios import STARTUP_SCRIPT

    launched = _ok(outcomes[0])
    assert (launched["instance_id"], launched["region"]) == (D.ID_LAUNCHED, "us-west-1")
    assert _ok(outcomes[1]) is None
    interactions = load_interactions(DIRECTORY / "launch_with_startup_script.yaml")
    (launch,) = [
        i["request"]
        for i in interactions
        if i["request"]["uri"].endswith("/instance-operations/launch")
    ]
    user_data = json.loads(body_text(launch))["user_data"]
    assert "export MODEL_NAME=llama-3-8b" in user_data
    assert user_data.startswith("#!/bin/bash\n") and STARTUP_SCRIPT not in user_data  # base64


CHECKS: dict[str, Callable[[list[Outcome], list[float]], None]] = {
    "instance_types": check_instance_types,
    "launch": check_launch,
    "launch_with_startup_script": check_launch_with_startup_script,
    "launch_insufficient_capacity": check_launch_insufficient_capacity,
    "launch_quota_exceeded": check_launch_quota_exceeded,
    "launch_unauthorized": check_launch_unauthorized,
    "invalid_api_key": check_invalid_api_key,
    "instance_states": check_instance_states,
    "missing_instance": check_missing_instance,
    "list_instances": check_list_instances,
    "restart_and_terminate": check_restart_and_terminate,
    "ssh_keys": check_ssh_keys,
    "rate_limited": check_rate_limited,
}


def test_every_scenario_is_checked() -> None:
    assert sorted(CHECKS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_documented_cassette_maps_to(name: str) -> None:
    if not is_documented(DIRECTORY / f"{name}.yaml"):
        pytest.skip(f"{name}.yaml was re-recorded live: its values are the account's")
    outcomes, sleeps = replay_sync(SCENARIOS[name])
    CHECKS[name](outcomes, sleeps)


@pytest.mark.parametrize("name", NAMES)
def test_documented_cassette_equals_a_fresh_run(name: str) -> None:
    """A cassette built from documented answers is what the responder answers today."""
    if not is_documented(DIRECTORY / f"{name}.yaml"):
        pytest.skip(f"{name}.yaml was re-recorded live")
    scenario = SCENARIOS[name]
    clock = FakeClock(5000.0)
    with attach(
        create_provider(
            "lambda", api_key=scenario.api_key, transport=D.transport(scenario.responder())
        ),
        clock,
        clock.sleep,
    ) as client:
        fresh = run_sync(client, scenario)
    assert replay_sync(scenario)[0] == fresh, "the documented responder changed: re-record"
