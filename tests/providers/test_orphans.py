"""Instances you forgot: find_orphans / terminate_orphans, sync and async, against the
documented responders of the three providers, and an in-process fake provider for the
outcomes the responders cannot produce (terminate refused, status unreadable)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest

from gpu_providers import GPUInstance, InstanceState, InstanceStatus
from gpu_providers.errors import InstanceNotFoundError, InvalidRequestError, ProviderServerError
from gpu_providers.lambda_cloud import AsyncLambdaProvider, LambdaProvider
from gpu_providers.orphans import (
    OrphanReport,
    TerminationReport,
    afind_orphans,
    aterminate_orphans,
    find_orphans,
    terminate_orphans,
)
from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider
from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider
from tests.providers.lambda_cloud import documented as LD
from tests.providers.paperspace import documented as PD
from tests.providers.runpod import documented as RD

KEY = "SENTINEL-orphans-test-key-9b0e"
KINDS = ["sync", "async"]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)  # 3 h after the machines' dtCreated
MINE = {"team": "ml"}


class Accounts:
    """The three documented accounts, with some instances labelled ``team=ml``."""

    def __init__(self) -> None:
        self.lam = LD.DocumentedLambda()  # ID_ACTIVE is tagged team=ml (and job=pretrain)
        self.pap = PD.DocumentedPaperspace()
        self.pap.machines[PD.ID_TRAIN]["name"] = "train-8x.gpl.team_ml"
        self.pap.machines[PD.ID_READY]["name"] = "sky-ready-1.gpl.team_ml"
        self.run = RD.DocumentedRunPod()
        self.run.pods[RD.ID_READY]["name"] = "sky-train-1.gpl.team_ml"
        self.run.pods[RD.ID_EXITED]["name"] = "notebook-old.gpl.team_ml.owner_ada"

    def clients(self, kind: str) -> list[Any]:
        classes = (
            (LambdaProvider, PaperspaceProvider, RunPodProvider)
            if kind == "sync"
            else (AsyncLambdaProvider, AsyncPaperspaceProvider, AsyncRunPodProvider)
        )
        transports = (LD.transport(self.lam), self.pap.transport(), self.run.transport())
        return [
            cls(api_key=KEY, transport=transport)
            for cls, transport in zip(classes, transports, strict=True)
        ]

    def sent_terminations(self) -> int:
        lam = sum(r.url.path.endswith("/terminate") for r in self.lam.requests)
        pap = sum(r.method == "DELETE" for r in self.pap.requests)
        run = sum(o.get("operationName") == "PodTerminate" for o in self.run.operations)
        return int(lam + pap + run)


#: Known: one by provider:id, one by bare id.
KNOWN = [f"paperspace:{PD.ID_READY}", RD.ID_EXITED]


def _find(kind: str, clients: list[Any], known: Any = KNOWN, **options: Any) -> OrphanReport:
    if kind == "sync":
        return find_orphans(known, MINE, clients, now=NOW, **options)
    return asyncio.run(afind_orphans(known, MINE, clients, now=NOW, **options))


def _terminate(kind: str, found: OrphanReport, clients: list[Any], **options: Any) -> Any:
    if kind == "sync":
        return terminate_orphans(found, providers=clients, **options)

    async def main() -> TerminationReport:
        try:
            return await aterminate_orphans(found, providers=clients, **options)
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_orphans_are_labelled_unknown_and_not_terminated(kind: str) -> None:
    accounts = Accounts()
    found = _find(kind, accounts.clients(kind))
    assert found.checked == ["lambda", "paperspace", "runpod"] and not found.partial
    assert found.labels == MINE
    assert [(o.source, o.instance.instance_id, o.instance.name) for o in found.orphans] == [
        ("lambda", LD.ID_ACTIVE, "train-a100-01"),
        ("paperspace", PD.ID_TRAIN, "train-8x"),
        ("runpod", RD.ID_READY, "sky-train-1"),
    ]
    by_id = {o.instance.instance_id: o for o in found.orphans}
    # Paperspace reports when a machine was created and its rate: age and cost so far.
    assert by_id[PD.ID_TRAIN].age_seconds == 3 * 3600
    assert by_id[PD.ID_TRAIN].cost_so_far == pytest.approx(3 * 47.60)
    # Lambda and RunPod report no creation time: unknown, not zero.
    assert by_id[LD.ID_ACTIVE].age_seconds is None and by_id[LD.ID_ACTIVE].cost_so_far is None
    assert by_id[RD.ID_READY].instance.labels == MINE


@pytest.mark.parametrize("kind", KINDS)
def test_a_dry_run_sends_nothing(kind: str) -> None:
    accounts = Accounts()
    clients = accounts.clients(kind)
    found = _find(kind, clients)
    report = _terminate(kind, found, clients)
    assert report.dry_run
    assert [o.action for o in report.outcomes] == ["would_terminate"] * 3
    assert not any(o.gone for o in report.outcomes)
    assert accounts.sent_terminations() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_terminating_reports_gone_only_on_the_providers_proof(kind: str) -> None:
    accounts = Accounts()
    clients = accounts.clients(kind)
    found = _find(kind, clients)
    report = _terminate(kind, found, clients, dry_run=False)
    assert not report.dry_run and not report.all_gone
    outcomes = {o.provider: o for o in report.outcomes}
    # Lambda says "terminating" after the call: accepted, not yet gone.
    assert (outcomes["lambda"].action, outcomes["lambda"].gone) == ("terminating", False)
    assert outcomes["lambda"].state is InstanceState.TERMINATING
    # Paperspace and RunPod no longer know the id: their own proof that it is gone.
    for provider in ("paperspace", "runpod"):
        assert (outcomes[provider].action, outcomes[provider].gone) == ("terminated", True)
    assert accounts.sent_terminations() == 3
    # Only the orphans: the known instances are still there.
    assert PD.ID_READY in accounts.pap.machines and RD.ID_EXITED in accounts.run.pods


@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_that_cannot_be_listed_makes_the_report_partial(kind: str) -> None:
    accounts = Accounts()
    clients = accounts.clients(kind)
    clients[0] = (LambdaProvider if kind == "sync" else AsyncLambdaProvider)(
        api_key=LD.REVOKED_KEY, transport=LD.transport(accounts.lam)
    )
    found = _find(kind, clients)
    assert found.partial and found.checked == ["paperspace", "runpod"]
    assert [(f.provider, f.error) for f in found.failures] == [("lambda", "AuthenticationError")]
    assert LD.REVOKED_KEY not in found.model_dump_json()


def test_labels_are_required_and_checked() -> None:
    with pytest.raises(InvalidRequestError, match="must not be empty"):
        find_orphans([], {}, [])
    with pytest.raises(InvalidRequestError, match="label key"):
        find_orphans([], {"Bad": "x"}, [])
    with pytest.raises(InvalidRequestError, match="collection"):
        find_orphans("abc", MINE, [])


# -- outcomes the documented responders cannot produce -------------------------------------


class FakeInstancesProvider:
    """An in-process fake provider client: one labelled instance; terminate and the status
    read after it do what the test says."""

    name = "fake"

    def __init__(self, *, terminate: Exception | None, status: Any) -> None:
        self.terminate_error = terminate
        self.status = status
        self.terminated: list[str] = []

    def list_instances(
        self, name_prefix: str | None = None, *, labels: Any = None
    ) -> list[GPUInstance]:
        return [
            GPUInstance(
                provider="fake",
                instance_id="i-1",
                state=InstanceState.RUNNING,
                labels=dict(MINE),
                hourly_price=2.0,
                created_at=datetime(2026, 11, 23, 11, 30, tzinfo=timezone.utc),
            ),
            GPUInstance(
                provider="fake", instance_id="i-old", state=InstanceState.TERMINATED, labels=MINE
            ),
        ]

    def terminate_instance(self, instance_id: str) -> None:
        self.terminated.append(instance_id)
        if self.terminate_error is not None:
            raise self.terminate_error

    def get_instance_status(self, instance_id: str) -> InstanceStatus:
        if isinstance(self.status, Exception):
            raise self.status
        return InstanceStatus(instance_id=instance_id, state=self.status)


@pytest.mark.parametrize(
    ("terminate", "status", "action", "gone"),
    [
        (ProviderServerError("terminate: HTTP 502", provider="fake"), None, "failed", False),
        (None, InstanceNotFoundError("gone", provider="fake"), "terminated", True),
        (None, InstanceState.TERMINATED, "terminated", True),
        (None, InstanceState.RUNNING, "terminating", False),
        (None, ProviderServerError("status: HTTP 503", provider="fake"), "terminating", False),
    ],
)
def test_each_outcome_is_reported_per_instance(
    terminate: Exception | None, status: Any, action: str, gone: bool
) -> None:
    fake = FakeInstancesProvider(terminate=terminate, status=status)
    found = find_orphans([], MINE, [fake], now=NOW)
    # Terminated instances are no orphans; age and cost come from created_at and the rate.
    assert [(o.instance.instance_id, o.age_seconds, o.cost_so_far) for o in found.orphans] == [
        ("i-1", 1800.0, 1.0)
    ]
    report = terminate_orphans(found, providers=[fake], dry_run=False)
    assert fake.terminated == ["i-1"]
    [outcome] = report.outcomes
    assert (outcome.instance_id, outcome.action, outcome.gone) == ("i-1", action, gone)
    if terminate is not None:
        assert outcome.reason == "terminate: HTTP 502"


def test_orphans_of_a_provider_without_a_client_are_skipped_not_gone() -> None:
    fake = FakeInstancesProvider(terminate=None, status=InstanceState.TERMINATED)
    found = find_orphans([], MINE, [fake], now=NOW)
    other = FakeInstancesProvider(terminate=None, status=InstanceState.TERMINATED)
    other.name = "other"
    report = terminate_orphans(found, providers=[other], dry_run=False)
    assert [(o.action, o.gone) for o in report.outcomes] == [("skipped", False)]
    assert other.terminated == [] and fake.terminated == []


@pytest.mark.parametrize("kind", KINDS)
def test_orphans_from_the_recorded_instance_list(kind: str) -> None:
    from tests.providers.cassettes import provider_vcr
    from tests.providers.lambda_cloud.scenarios import RECORDING_KEY

    cls = LambdaProvider if kind == "sync" else AsyncLambdaProvider
    with provider_vcr("lambda", "none").use_cassette("list_instances.yaml"):
        found = _find(kind, [cls(api_key=RECORDING_KEY)], known=[])
    assert [o.instance.instance_id for o in found.orphans] == [LD.ID_ACTIVE]
    assert found.orphans[0].instance.labels == {"team": "ml", "job": "pretrain"}
