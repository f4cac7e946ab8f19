"""Provider launches written to the ledger (write-ahead intents), through the shared drivers.

Driven through the Lambda client over Lambda's documented answers; the faults are injected
in the transport, sync and async.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpu_providers import LaunchRequest, create_async_provider, create_provider
from gpu_providers.errors import CapacityError, InvalidRequestError, ProviderError
from skypilot_client.ledger import IntentOutcome, Ledger, LedgerUnavailableError, open_ledger
from tests.providers.lambda_cloud import documented as D

KEY = "intent-test-key"
LABELS = {"skypilot-job": "train-7"}
LAUNCH = LaunchRequest(
    gpu_type="A10", name="train-7-gpu", labels=LABELS, ssh_key_names=[D.SSH_KEY_NAME]
)
LAUNCH_PATH = f"{D.API}/instance-operations/launch"
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


class Crash(BaseException):
    """The process dying in the middle of the create call (SIGKILL, OOM, a deploy)."""


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with open_ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def run(mode: str, handler: Any, ledger: Ledger | None, method: str, *args: Any) -> Any:
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with create_provider("lambda", api_key=KEY, transport=transport, ledger=ledger) as c:
            return getattr(c, method)(*args)

    async def main() -> Any:
        client = create_async_provider("lambda", api_key=KEY, transport=transport, ledger=ledger)
        async with client:
            return await getattr(client, method)(*args)

    return asyncio.run(main())


@MODES
def test_launch_writes_the_intent_first_completes_it_and_terminate_closes_it(
    mode: str, ledger: Ledger
) -> None:
    vendor = D.DocumentedLambda()
    seen_at_create: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LAUNCH_PATH:  # the intent exists before the create call
            seen_at_create.append(len(ledger.list_open_intents(without_instance=True)))
        return vendor(request)

    instance = run(mode, handler, ledger, "launch_instance", LAUNCH)
    assert seen_at_create == [1]
    (intent,) = ledger.list_open_intents()
    assert (intent.provider, intent.name, dict(intent.labels)) == ("lambda", "train-7-gpu", LABELS)
    assert intent.instance_id == instance.instance_id == D.ID_LAUNCHED
    assert intent.account.startswith("acct_") and KEY not in intent.account
    run(mode, vendor, ledger, "terminate_instance", instance.instance_id)
    assert ledger.list_open_intents() == []
    closed = ledger.get_intent(intent.intent_id)
    assert closed is not None and closed.outcome is IntentOutcome.TERMINATED


@MODES
def test_an_interrupted_launch_leaves_an_intent_the_orphan_listing_resolves(
    mode: str, ledger: Ledger
) -> None:
    vendor = D.DocumentedLambda()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LAUNCH_PATH:
            vendor(request)  # the vendor creates the instance ...
            raise Crash  # ... and the process dies before the answer arrives
        return vendor(request)

    with pytest.raises(Crash):
        run(mode, handler, ledger, "launch_instance", LAUNCH)
    (orphan,) = ledger.list_open_intents(provider="lambda", without_instance=True)
    assert orphan.name == "train-7-gpu" and orphan.instance_id is None
    # The orphan check: the provider's listing, matched by the intended name and our labels.
    listed = run(mode, vendor, None, "list_instances")
    found = [i for i in listed if i.name == orphan.name and LABELS.items() <= i.labels.items()]
    assert [i.instance_id for i in found] == [D.ID_LAUNCHED]
    ledger.complete_intent(orphan.intent_id, found[0].instance_id)
    assert ledger.list_open_intents(without_instance=True) == []


@MODES
def test_a_refused_launch_closes_its_intent_as_not_created(mode: str, ledger: Ledger) -> None:
    vendor = D.DocumentedLambda(launch_outcome="insufficient-capacity")
    written: list[Any] = []
    record = ledger.record_intent

    def spy(*args: Any, **kwargs: Any) -> Any:
        written.append(record(*args, **kwargs))
        return written[-1]

    ledger.record_intent = spy  # type: ignore[method-assign]
    with pytest.raises(CapacityError):
        run(mode, vendor, ledger, "launch_instance", LAUNCH)
    assert sum(r.url.path == LAUNCH_PATH for r in vendor.requests) == 1  # sent and refused
    assert ledger.list_open_intents() == []
    (intent,) = written
    closed = ledger.get_intent(intent.intent_id)
    assert closed is not None and closed.outcome is IntentOutcome.NOT_CREATED


@MODES
def test_a_ledger_that_cannot_write_stops_the_launch_before_the_create(
    mode: str, ledger: Ledger
) -> None:
    vendor = D.DocumentedLambda()

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise LedgerUnavailableError("ledger: database is locked")

    ledger.record_intent = locked  # type: ignore[method-assign]
    with pytest.raises(ProviderError, match="nothing was sent") as caught:
        run(mode, vendor, ledger, "launch_instance", LAUNCH)
    assert not caught.value.maybe_submitted
    assert not any(r.url.path == LAUNCH_PATH for r in vendor.requests)


def test_a_secret_looking_label_is_refused_before_the_create(ledger: Ledger) -> None:
    vendor = D.DocumentedLambda()
    bad = LAUNCH.model_copy(update={"labels": {"api_key": "hunter2-hunter2"}})
    with pytest.raises(InvalidRequestError) as caught:
        run("sync", vendor, ledger, "launch_instance", bad)
    assert "hunter2" not in str(caught.value)
    assert not any(r.url.path == LAUNCH_PATH for r in vendor.requests)


def test_an_async_ledger_is_refused_at_construction() -> None:
    class AsyncOnly:
        async def record_intent(self, *args: Any) -> None: ...

    with pytest.raises(InvalidRequestError, match="synchronous"):
        create_provider("lambda", api_key=KEY, ledger=AsyncOnly())
