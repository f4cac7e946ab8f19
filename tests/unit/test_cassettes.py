"""Replay the cassettes recorded from a real SkyPilot 0.14.1 server (no server needed).

Each cassette is replayed through the sync and the async client; both must produce the
recorded outcomes, which makes this a sync/async parity test too. Re-record with
``python -m tests.record_cassettes``.
"""

from __future__ import annotations

import pytest

from skypilot_client import AsyncSkyPilotClient, SkyPilotClient
from tests.scenarios import CASSETTES, RECORDED_URL, SCENARIOS, make_vcr, run_async, run_sync

NAMES = sorted(SCENARIOS)


def test_every_scenario_has_a_cassette() -> None:
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_replay_sync(name: str) -> None:
    with (
        make_vcr("none").use_cassette(f"{name}.yaml") as cassette,
        SkyPilotClient(RECORDED_URL, max_retries=0) as client,
    ):
        outcomes = run_sync(client, name)
    assert len(outcomes) == len(SCENARIOS[name])
    assert cassette.all_played, "the client made fewer calls than were recorded"


@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES)
async def test_replay_async_matches_sync(name: str) -> None:
    with (
        make_vcr("none").use_cassette(f"{name}.yaml"),
        SkyPilotClient(RECORDED_URL, max_retries=0) as client,
    ):
        expected = run_sync(client, name)
    with make_vcr("none").use_cassette(f"{name}.yaml") as cassette:
        async with AsyncSkyPilotClient(RECORDED_URL, max_retries=0) as aclient:
            outcomes = await run_async(aclient, name)
    assert outcomes == expected
    assert cassette.all_played
