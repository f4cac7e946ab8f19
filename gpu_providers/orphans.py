"""Instances you forgot: ``find_orphans`` lists the instances that carry your labels but are
not among the ids you know; ``terminate_orphans`` terminates what such a report lists (a dry
run unless told otherwise). Sync and async (``afind_orphans``, ``aterminate_orphans``)
share their logic; providers are asked concurrently, each with a deadline, and a provider
that fails is reported beside the others, never hidden.

Money invariants (DESIGN rule 9): an orphan is reported ``gone`` only on the provider's own
proof (a status read after the terminate call says ``terminated``, or the provider says it
no longer knows the id); a terminate call that was accepted but not yet proven is
``terminating``, and one whose outcome is unknown (error, deadline) is ``failed`` or
``unknown`` with ``gone=False``: it may still bill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._fanout import (
    Progress,
    ProviderFailure,
    SkippedProvider,
    Target,
    aclose_all,
    check_timeout,
    close_all,
    plan,
    run_async,
    run_sync,
)
from .errors import InstanceNotFoundError, InvalidRequestError, ProviderError
from .labels import MANAGED_BY, check_labels
from .types import GPUInstance, InstanceState

__all__ = [
    "Orphan",
    "OrphanReport",
    "TerminationOutcome",
    "TerminationReport",
    "afind_orphans",
    "aterminate_orphans",
    "find_orphans",
    "terminate_orphans",
]

DEFAULT_TIMEOUT = 30.0


class Orphan(BaseModel):
    """An instance with your labels that you do not know about."""

    model_config = ConfigDict(frozen=True)

    instance: GPUInstance
    #: Which client found it (the provider name; ``name#2`` for a second client of it).
    source: str
    #: Seconds since the provider says it was created (None when it does not say).
    age_seconds: float | None = None
    #: ``hourly_price`` x age: what it may have cost so far, USD (None when the provider
    #: reports either not). An upper bound: time spent stopped may have billed less.
    cost_so_far: float | None = None


class OrphanReport(BaseModel):
    """What ``find_orphans`` found, and which providers could not be checked."""

    model_config = ConfigDict(frozen=True)

    orphans: list[Orphan]
    labels: dict[str, str]
    failures: list[ProviderFailure] = Field(default_factory=list)
    skipped: list[SkippedProvider] = Field(default_factory=list)
    #: The providers whose instances were listed.
    checked: list[str] = Field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Whether some provider could not be checked (it may hide more orphans)."""
        return bool(self.failures)


Action = Literal["would_terminate", "terminated", "terminating", "failed", "unknown", "skipped"]


class TerminationOutcome(BaseModel):
    """What happened to one orphan."""

    model_config = ConfigDict(frozen=True)

    provider: str
    instance_id: str
    name: str | None = None
    action: Action
    #: True only on the provider's own proof that the instance is gone.
    gone: bool = False
    #: The state last read after the terminate call (None when none was read).
    state: InstanceState | None = None
    reason: str | None = None


class TerminationReport(BaseModel):
    """Per-instance outcomes of ``terminate_orphans``."""

    model_config = ConfigDict(frozen=True)

    dry_run: bool
    outcomes: list[TerminationOutcome]

    @property
    def all_gone(self) -> bool:
        """Whether every orphan is proven gone."""
        return all(o.gone for o in self.outcomes)


# -- the logic (no I/O) ---------------------------------------------------------------------


def _known(known_ids: Iterable[str]) -> frozenset[str]:
    if isinstance(known_ids, str):
        raise InvalidRequestError("known_ids must be a collection of ids, not one string")
    return frozenset(str(i).strip() for i in known_ids if str(i).strip())


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    if not labels:
        raise InvalidRequestError("labels must not be empty: orphans are found by your labels")
    try:
        return check_labels(labels)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def _orphan(instance: GPUInstance, source: str, now: datetime) -> Orphan:
    age = cost = None
    if instance.created_at is not None:
        created = instance.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        age = max((now - created).total_seconds(), 0.0)
        if instance.hourly_price is not None:
            cost = round(instance.hourly_price * age / 3600.0, 4)
    return Orphan(instance=instance, source=source, age_seconds=age, cost_so_far=cost)


def _report(
    found: list[tuple[Target, list[GPUInstance]]],
    known: frozenset[str],
    labels: dict[str, str],
    failures: list[ProviderFailure],
    skipped: list[SkippedProvider],
    now: datetime | None,
) -> OrphanReport:
    when = now or datetime.now(timezone.utc)
    orphans = [
        _orphan(instance, target.name, when)
        for target, instances in found
        for instance in instances
        if instance.state is not InstanceState.TERMINATED
        and instance.instance_id not in known
        and f"{instance.provider}:{instance.instance_id}" not in known
    ]
    orphans.sort(key=lambda o: (o.source, -(o.age_seconds or 0), o.instance.instance_id))
    return OrphanReport(
        orphans=orphans,
        labels=labels,
        failures=sorted(failures, key=lambda f: f.provider),
        skipped=sorted(skipped, key=lambda s: s.provider),
        checked=sorted(target.name for target, _ in found),
    )


def _outcome(orphan: Orphan, action: Action, **fields: Any) -> TerminationOutcome:
    instance = orphan.instance
    return TerminationOutcome(
        provider=orphan.source,
        instance_id=instance.instance_id,
        name=instance.name,
        action=action,
        **fields,
    )


def _after_terminate(orphan: Orphan, error: BaseException | None) -> TerminationOutcome:
    """The outcome of a terminate call that raised ``error`` (no status read yet)."""
    reason = error.message if isinstance(error, ProviderError) else type(error).__name__
    return _outcome(orphan, "failed", reason=reason)


def _after_status(
    orphan: Orphan, state: InstanceState | None, error: BaseException | None
) -> TerminationOutcome:
    """The outcome once the terminate call was accepted and the status read back."""
    if isinstance(error, InstanceNotFoundError):  # the provider's own proof (rule 9)
        return _outcome(orphan, "terminated", gone=True, reason="not found")
    if error is not None:
        why = error.message if isinstance(error, ProviderError) else type(error).__name__
        return _outcome(orphan, "terminating", reason=f"terminate accepted; status unknown: {why}")
    if state is InstanceState.TERMINATED:
        return _outcome(orphan, "terminated", gone=True, state=state)
    return _outcome(orphan, "terminating", state=state, reason="terminate accepted; not gone yet")


def _by_source(found: OrphanReport) -> dict[str, list[Orphan]]:
    groups: dict[str, list[Orphan]] = {}
    for orphan in found.orphans:
        groups.setdefault(orphan.source, []).append(orphan)
    return groups


def _dry_run(found: OrphanReport) -> TerminationReport:
    return TerminationReport(
        dry_run=True,
        outcomes=[_outcome(o, "would_terminate") for o in found.orphans],
    )


def _merge(
    found: OrphanReport,
    done: list[tuple[Target, list[TerminationOutcome]]],
    failures: list[ProviderFailure],
    targets: list[Target],
) -> TerminationReport:
    outcomes = [outcome for _, batch in done for outcome in batch]
    reached = {o.instance_id for o in outcomes}
    why = {f.provider: f for f in failures}
    names = {t.name for t in targets}
    for orphan in found.orphans:
        if orphan.instance.instance_id in reached:
            continue
        failure = why.get(orphan.source)
        if orphan.source not in names and failure is None:
            outcomes.append(_outcome(orphan, "skipped", reason="no client for this provider"))
        elif failure is not None and failure.error == "DeadlineExceeded":
            outcomes.append(_outcome(orphan, "unknown", reason="deadline: outcome unknown"))
        else:
            reason = failure.reason if failure else "not attempted"
            outcomes.append(_outcome(orphan, "failed", reason=reason))
    order = {o.instance.instance_id: i for i, o in enumerate(found.orphans)}
    outcomes.sort(key=lambda o: order.get(o.instance_id, len(order)))
    return TerminationReport(dry_run=False, outcomes=outcomes)


def _providers_for(found: OrphanReport, providers: Sequence[Any] | None) -> list[Any]:
    if providers is not None:
        return list(providers)
    return sorted({o.source.split("#")[0] for o in found.orphans})


# -- sync -----------------------------------------------------------------------------------


def find_orphans(
    known_ids: Iterable[str],
    labels: Mapping[str, str] = MANAGED_BY,
    providers: Sequence[Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    now: datetime | None = None,
) -> OrphanReport:
    """Instances that carry every label of ``labels`` and whose id is not in ``known_ids``
    (ids, or ``provider:id``), on every provider with a key (or those named/given in
    ``providers``). Terminated instances are left out; stopped ones are kept (their disks
    still bill). Providers that fail are listed in ``failures``: check ``partial``."""
    known, wanted, deadline = _known(known_ids), _labels(labels), check_timeout(timeout)
    targets, skipped, failures = plan(
        providers, asynchronous=False, keyless=False, options=provider_options
    )
    outcome = run_sync(
        targets,
        lambda t: t.client.list_instances(labels=wanted),
        timeout=deadline,
        on_progress=on_progress,
    )
    return _report(outcome.results, known, wanted, failures + outcome.failures, skipped, now)


def terminate_orphans(
    found: OrphanReport,
    *,
    dry_run: bool = True,
    providers: Sequence[Any] | None = None,
    timeout: float = 120.0,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> TerminationReport:
    """Terminate the orphans of ``found`` (what you reviewed is what is terminated: nothing
    is listed again). With ``dry_run=True`` (the default) nothing is sent and every orphan
    is reported as ``would_terminate``. Otherwise each is terminated, then its status read
    back; the report says per instance whether it is proven gone. Pass the same
    ``providers`` as to ``find_orphans`` when you gave client objects there."""
    if dry_run:
        return _dry_run(found)
    deadline = check_timeout(timeout)
    groups = _by_source(found)
    targets, _, failures = plan(
        _providers_for(found, providers),
        asynchronous=False,
        keyless=False,
        options=provider_options,
    )
    wanted = [t for t in targets if t.name in groups]
    close_all([t for t in targets if t not in wanted])

    def terminate(target: Target) -> list[TerminationOutcome]:
        outcomes = []
        for orphan in groups[target.name]:
            instance_id = orphan.instance.instance_id
            try:
                target.client.terminate_instance(instance_id)
            except Exception as exc:
                outcomes.append(_after_terminate(orphan, exc))
                continue
            state, error = None, None
            try:
                state = target.client.get_instance_status(instance_id).state
            except Exception as exc:
                error = exc
            outcomes.append(_after_status(orphan, state, error))
        return outcomes

    outcome = run_sync(wanted, terminate, timeout=deadline, on_progress=on_progress)
    return _merge(found, outcome.results, failures + outcome.failures, wanted)


# -- async ----------------------------------------------------------------------------------


async def afind_orphans(
    known_ids: Iterable[str],
    labels: Mapping[str, str] = MANAGED_BY,
    providers: Sequence[Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    now: datetime | None = None,
) -> OrphanReport:
    """The async twin of ``find_orphans``."""
    known, wanted, deadline = _known(known_ids), _labels(labels), check_timeout(timeout)
    targets, skipped, failures = plan(
        providers, asynchronous=True, keyless=False, options=provider_options
    )

    async def listed(target: Target) -> list[GPUInstance]:
        instances: list[GPUInstance] = await target.client.list_instances(labels=wanted)
        return instances

    outcome = await run_async(targets, listed, timeout=deadline, on_progress=on_progress)
    return _report(outcome.results, known, wanted, failures + outcome.failures, skipped, now)


async def aterminate_orphans(
    found: OrphanReport,
    *,
    dry_run: bool = True,
    providers: Sequence[Any] | None = None,
    timeout: float = 120.0,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> TerminationReport:
    """The async twin of ``terminate_orphans``."""
    if dry_run:
        return _dry_run(found)
    deadline = check_timeout(timeout)
    groups = _by_source(found)
    targets, _, failures = plan(
        _providers_for(found, providers),
        asynchronous=True,
        keyless=False,
        options=provider_options,
    )
    wanted = [t for t in targets if t.name in groups]
    await aclose_all([t for t in targets if t not in wanted])

    async def terminate(target: Target) -> list[TerminationOutcome]:
        outcomes = []
        for orphan in groups[target.name]:
            instance_id = orphan.instance.instance_id
            try:
                await target.client.terminate_instance(instance_id)
            except Exception as exc:
                outcomes.append(_after_terminate(orphan, exc))
                continue
            state, error = None, None
            try:
                state = (await target.client.get_instance_status(instance_id)).state
            except Exception as exc:
                error = exc
            outcomes.append(_after_status(orphan, state, error))
        return outcomes

    outcome = await run_async(wanted, terminate, timeout=deadline, on_progress=on_progress)
    return _merge(found, outcome.results, failures + outcome.failures, wanted)
