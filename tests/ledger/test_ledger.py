"""The ledger's behaviour, the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from skypilot_client.errors import InvalidInputError
from skypilot_client.ledger import (
    FINAL_STATUSES,
    AsyncLedger,
    AsyncPostgresLedger,
    IntentOutcome,
    Ledger,
    LedgerNotFoundError,
    PostgresLedger,
    SQLiteLedger,
    account_fingerprint,
    open_ledger,
)
from skypilot_client.models import RequestState
from tests.conftest import SENTINEL_AWS_KEY_ID, SENTINEL_AWS_SECRET, SENTINEL_TOKEN, SENTINELS
from tests.ledger.conftest import FakeClock

ACCOUNT = account_fingerprint("lambda", "SENTINEL-lambda-ledger-key-3c1d")


@pytest.fixture
def ledger(ledger_url: str, clock: FakeClock) -> Iterator[Ledger]:
    with open_ledger(ledger_url, clock=clock) as opened:
        yield opened


def _static_conformance(
    sqlite: SQLiteLedger, postgres: PostgresLedger, async_postgres: AsyncPostgresLedger
) -> tuple[Ledger, Ledger, AsyncLedger]:
    """mypy checks that each back end implements its interface exactly."""
    return sqlite, postgres, async_postgres


def test_both_back_ends_implement_the_interface(ledger: Ledger) -> None:
    assert isinstance(ledger, Ledger)
    assert ledger.schema_version == 2


def test_final_statuses_are_the_servers_terminal_states_and_lost() -> None:
    terminal = {state.value for state in RequestState if state.is_terminal}
    assert terminal | {"LOST"} == FINAL_STATUSES


def test_record_and_read_a_request(ledger: Ledger, clock: FakeClock) -> None:
    record = ledger.record_request(
        "req-1", "launch", cluster="train", workspace="research", tenant="team-a"
    )
    assert (record.request_id, record.operation, record.cluster) == ("req-1", "launch", "train")
    assert (record.workspace, record.tenant, record.status) == ("research", "team-a", "PENDING")
    assert record.submitted_at == datetime.fromtimestamp(clock.now, tz=timezone.utc)
    assert not record.is_final and record.finished_at is None
    assert ledger.get_request("req-1") == record
    assert ledger.get_request("req-unknown") is None


def test_a_request_recorded_after_it_ended_is_not_pending(ledger: Ledger) -> None:
    record = ledger.record_request("req-1", "autostop", cluster="c", status="SUCCEEDED")
    assert record.is_final and record.status == "SUCCEEDED"
    assert ledger.list_pending() == []
    assert not ledger.update_request("req-1", "FAILED")


def test_recording_the_same_request_twice_keeps_the_first(ledger: Ledger, clock: FakeClock) -> None:
    first = ledger.record_request("req-1", "launch", cluster="a")
    clock.advance(5)
    again = ledger.record_request("req-1", "launch", cluster="b")
    assert again == first


def test_status_updates_and_the_one_final_write(ledger: Ledger, clock: FakeClock) -> None:
    ledger.record_request("req-1", "launch")
    clock.advance(1)
    assert ledger.update_request("req-1", RequestState.RUNNING, status_message="Provisioning")
    running = ledger.get_request("req-1")
    assert running is not None
    assert (running.status, running.status_message) == ("RUNNING", "Provisioning")
    assert running.updated_at > running.submitted_at
    clock.advance(1)
    assert ledger.update_request(
        "req-1",
        "failed",
        summary="no capacity in us-east-1",
        error_type="ResourcesUnavailableError",
    )
    # Once final, no writer is told it changed the request (events fire once).
    assert not ledger.update_request("req-1", "SUCCEEDED")
    assert not ledger.update_request("req-1", "RUNNING")
    final = ledger.get_request("req-1")
    assert final is not None and final.is_final
    assert (final.status, final.error_type) == ("FAILED", "ResourcesUnavailableError")
    assert final.summary == "no capacity in us-east-1"
    assert final.status_message == "Provisioning"  # kept: an update without one changes nothing
    assert not ledger.update_request("req-unknown", "RUNNING")


def test_list_pending_oldest_first_with_filters(ledger: Ledger, clock: FakeClock) -> None:
    for i, (operation, tenant) in enumerate(
        [("launch", "a"), ("down", "a"), ("launch", "b"), ("launch", "a")]
    ):
        ledger.record_request(f"req-{i}", operation, tenant=tenant)
        clock.advance(1)
    ledger.update_request("req-3", "CANCELLED")
    assert [r.request_id for r in ledger.list_pending()] == ["req-0", "req-1", "req-2"]
    assert [r.request_id for r in ledger.list_pending(operation="launch")] == ["req-0", "req-2"]
    assert [r.request_id for r in ledger.list_pending(tenant="a")] == ["req-0", "req-1"]
    assert [r.request_id for r in ledger.list_pending(limit=2)] == ["req-0", "req-1"]
    with pytest.raises(InvalidInputError):
        ledger.list_pending(limit=0)


def test_claims_are_exclusive_until_the_lease_ends(ledger: Ledger, clock: FakeClock) -> None:
    for i in range(5):
        ledger.record_request(f"req-{i}", "launch")
    mine = ledger.claim_pending("monitor-a", limit=3, lease_seconds=30)
    assert len(mine) == 3
    assert all(r.claimed_by == "monitor-a" for r in mine)
    theirs = ledger.claim_pending("monitor-b", limit=10, lease_seconds=30)
    assert {r.request_id for r in theirs}.isdisjoint(r.request_id for r in mine)
    assert len(theirs) == 2
    assert ledger.claim_pending("monitor-c", limit=10) == []
    # The holder renews its own claims.
    clock.advance(20)
    renewed = ledger.claim_pending("monitor-a", limit=10, lease_seconds=30)
    assert {r.request_id for r in renewed} == {r.request_id for r in mine}
    # monitor-b stopped renewing: its lease ends and another monitor takes its requests.
    clock.advance(15)
    taken = ledger.claim_pending("monitor-c", limit=10, lease_seconds=30)
    assert {r.request_id for r in taken} == {r.request_id for r in theirs}


def test_a_final_status_frees_the_claim_and_release_gives_back(
    ledger: Ledger, clock: FakeClock
) -> None:
    for i in range(3):
        ledger.record_request(f"req-{i}", "launch")
    claimed = ledger.claim_pending("monitor-a", limit=10)
    assert ledger.update_request(claimed[0].request_id, "SUCCEEDED")
    done = ledger.get_request(claimed[0].request_id)
    assert done is not None and done.claimed_by is None
    assert ledger.release_claims("monitor-a") == 2
    assert len(ledger.claim_pending("monitor-b", limit=10)) == 2


def test_claims_rotate_least_recently_updated_first(ledger: Ledger, clock: FakeClock) -> None:
    for i in range(4):
        ledger.record_request(f"req-{i}", "launch")
        clock.advance(1)
    first = ledger.claim_pending("m", limit=2)
    assert [r.request_id for r in first] == ["req-0", "req-1"]
    for record in first:
        ledger.update_request(record.request_id, "RUNNING")
    ledger.release_claims("m")
    assert [r.request_id for r in ledger.claim_pending("m", limit=2)] == ["req-2", "req-3"]


def test_claim_arguments_are_checked(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError, match="claim limit"):
        ledger.claim_pending("m", limit=0)
    with pytest.raises(InvalidInputError, match="lease_seconds"):
        ledger.claim_pending("m", lease_seconds=0)
    with pytest.raises(InvalidInputError, match="owner"):
        ledger.claim_pending("bad owner with spaces")


def test_launch_intent_lifecycle(ledger: Ledger, clock: FakeClock) -> None:
    labels = {"skypilot-sdk/owner": "svc", "job": "train-7"}
    intent = ledger.record_intent("lambda", ACCOUNT, name="train-7-gpu", labels=labels)
    assert intent.is_open and intent.instance_id is None
    assert dict(intent.labels) == labels and intent.account == ACCOUNT
    assert [i.intent_id for i in ledger.list_open_intents(without_instance=True)] == [
        intent.intent_id
    ]
    clock.advance(2)
    launched = ledger.complete_intent(intent.intent_id, "inst-123")
    assert launched.instance_id == "inst-123" and launched.is_open
    assert ledger.list_open_intents(without_instance=True) == []
    assert [i.instance_id for i in ledger.list_open_intents(provider="lambda")] == ["inst-123"]
    assert ledger.close_instance("lambda", "inst-123") == 1
    closed = ledger.get_intent(intent.intent_id)
    assert closed is not None and not closed.is_open
    assert closed.outcome is IntentOutcome.TERMINATED
    assert ledger.list_open_intents() == []
    assert ledger.close_instance("lambda", "inst-123") == 0


def test_an_interrupted_launch_is_listed_for_the_orphan_tools(
    ledger: Ledger, clock: FakeClock
) -> None:
    other = account_fingerprint("runpod", "another-key")
    stale = ledger.record_intent("lambda", ACCOUNT, name="a", labels={"run": "1"})
    ledger.record_intent("runpod", other, name="b")
    clock.advance(600)
    fresh = ledger.record_intent("lambda", ACCOUNT, name="c")  # a launch still in progress
    orphans = ledger.list_open_intents(
        provider="lambda", account=ACCOUNT, without_instance=True, older_than=timedelta(minutes=5)
    )
    assert [i.intent_id for i in orphans] == [stale.intent_id]
    assert fresh.intent_id not in {i.intent_id for i in orphans}
    # The orphan tool found nothing by label or name: the vendor shows no instance.
    assert ledger.close_intent(stale.intent_id, IntentOutcome.NOT_CREATED)
    assert not ledger.close_intent(stale.intent_id)
    # ...then the create call answers after all: the instance exists, the intent opens again.
    reopened = ledger.complete_intent(stale.intent_id, "inst-late")
    assert reopened.is_open and reopened.outcome is None
    with pytest.raises(LedgerNotFoundError):
        ledger.complete_intent("0" * 32, "inst-x")
    assert ledger.get_intent("f" * 32) is None


def test_prune_deletes_only_old_finished_records(ledger: Ledger, clock: FakeClock) -> None:
    ledger.record_request("old", "launch")
    ledger.update_request("old", "SUCCEEDED")
    ledger.record_request("pending", "launch")
    done = ledger.record_intent("lambda", ACCOUNT)
    ledger.close_intent(done.intent_id, "not_created")
    clock.advance(3600)
    ledger.record_request("new", "launch")
    ledger.update_request("new", "SUCCEEDED")
    assert ledger.prune(timedelta(minutes=30)) == 2
    assert ledger.get_request("old") is None and ledger.get_intent(done.intent_id) is None
    assert ledger.get_request("pending") is not None and ledger.get_request("new") is not None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ledger: ledger.record_request("", "launch"), "request_id"),
        (lambda ledger: ledger.record_request("id with space", "launch"), "request_id"),
        (lambda ledger: ledger.record_request("r", "launch; drop"), "operation"),
        (lambda ledger: ledger.record_request("r", "launch", cluster="x" * 300), "cluster"),
        (lambda ledger: ledger.record_request("r", "launch", cluster="a\nb"), "cluster"),
        (
            lambda ledger: ledger.record_request("r", "launch", submitted_at=datetime(2026, 1, 1)),
            "timezone",
        ),
        (lambda ledger: ledger.update_request("r", "not a status"), "status"),
        (lambda ledger: ledger.record_intent("Lambda Cloud", ACCOUNT), "provider"),
        (lambda ledger: ledger.record_intent("lambda", "my-account"), "account_fingerprint"),
        (lambda ledger: ledger.close_intent("x", "exploded"), "outcome"),
        (lambda ledger: ledger.complete_intent("not-an-id", "i"), "intent_id"),
    ],
)
def test_bad_input_is_rejected_before_the_database(
    ledger: Ledger, call: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(ledger)  # type: ignore[operator]
    assert ledger.list_pending() == []


# -- no secret is ever stored -------------------------------------------------------------------

SECRET_NAMES = [
    ("cluster", SENTINEL_TOKEN),
    ("workspace", f"Bearer {SENTINEL_TOKEN}"),
    ("tenant", SENTINEL_AWS_KEY_ID),
]


@pytest.mark.parametrize(("field", "value"), SECRET_NAMES)
def test_names_that_look_like_credentials_are_rejected(
    ledger: Ledger, field: str, value: str
) -> None:
    names: dict[str, Any] = {field: value}
    with pytest.raises(InvalidInputError, match="never stores secrets") as info:
        ledger.record_request("req-1", "launch", **names)
    assert value not in str(info.value) and not any(s in str(info.value) for s in SENTINELS)
    assert ledger.get_request("req-1") is None


@pytest.mark.parametrize(
    "labels",
    [
        {"aws_secret_access_key": SENTINEL_AWS_SECRET},
        {"api_key": "SENTINEL-lambda-ledger-key-3c1d"},
        {"owner": SENTINEL_TOKEN},
        {"env": f"AWS_SECRET_ACCESS_KEY={SENTINEL_AWS_SECRET}"},
    ],
)
def test_labels_that_carry_credentials_are_rejected(ledger: Ledger, labels: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError, match="never stores secrets") as info:
        ledger.record_intent("lambda", ACCOUNT, name="n", labels=labels)
    assert not any(secret in str(info.value) for secret in SENTINELS)
    assert ledger.list_open_intents() == []


def test_intents_take_an_account_fingerprint_never_the_key(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError) as info:
        ledger.record_intent("lambda", SENTINEL_TOKEN)
    assert SENTINEL_TOKEN not in str(info.value)
    key = "SENTINEL-lambda-ledger-key-3c1d"
    fingerprint = account_fingerprint("lambda", key)
    assert key not in fingerprint and fingerprint == ACCOUNT
    assert account_fingerprint("runpod", key) != fingerprint  # per provider, per base URL
    assert account_fingerprint("lambda", key, base_url="https://other") != fingerprint


def test_free_text_from_servers_is_masked(ledger: Ledger) -> None:
    ledger.record_request("req-1", "launch")
    message = (
        f"auth failed for Bearer {SENTINEL_TOKEN}; "
        f"env AWS_ACCESS_KEY_ID={SENTINEL_AWS_KEY_ID} AWS_SECRET_ACCESS_KEY={SENTINEL_AWS_SECRET}"
    )
    assert ledger.update_request(
        "req-1", "FAILED", summary=message, status_message=f"token: {SENTINEL_TOKEN}"
    )
    record = ledger.get_request("req-1")
    assert record is not None and record.summary is not None
    assert record.summary == "auth failed for Bearer **********; env ********** **********"
    stored = f"{record.summary} {record.status_message}"
    assert not any(secret in stored for secret in SENTINELS)


def test_no_sentinel_reaches_the_sqlite_files(tmp_path: Path, clock: FakeClock) -> None:
    """Every byte of the database, its WAL and shared memory, after secret-bearing calls."""
    path = tmp_path / "ledger.sqlite3"
    with open_ledger(path, clock=clock) as ledger:
        ledger.record_request("req-1", "launch", cluster="train")
        ledger.update_request(
            "req-1", "FAILED", summary=f"x-api-key: {SENTINEL_AWS_SECRET} ({SENTINEL_AWS_KEY_ID})"
        )
        for value in (SENTINEL_TOKEN, SENTINEL_AWS_KEY_ID):
            with pytest.raises(InvalidInputError):
                ledger.record_request("req-2", "launch", cluster=value)
        with pytest.raises(InvalidInputError):
            ledger.record_intent("lambda", ACCOUNT, labels={"secret": SENTINEL_AWS_SECRET})
        data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"train" in data  # the scan reads the real files
    assert not any(secret.encode() in data for secret in SENTINELS)
