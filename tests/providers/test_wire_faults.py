"""Faults on the OpenAPI wire, the same for every provider on it (Lambda, Paperspace,
TensorDock, RunPod REST), sync and async, over each provider's documented responder:

- an exception that is not httpx's, raised inside the transport (a custom transport, an event
  hook), becomes our ``ProviderConnectionError`` with the exception chained, as on the
  GraphQL wire; maybe submitted when the call was a create (DESIGN rule 10, rule 9);
- a launch interrupted once its create may have been sent logs a WARNING naming the create
  operation (and the instance once known), not the flow's first call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gpu_providers import LaunchRequest, create_async_provider, create_provider
from gpu_providers.errors import ProviderConnectionError
from tests.providers.lambda_cloud import documented as LD
from tests.providers.paperspace import documented as PD
from tests.providers.runpod import documented_rest as RD
from tests.providers.tensordock import documented as TD
from tests.providers.tensordock.scenarios import PUBLIC_KEY
from tests.providers.timekeeping import FakeClock, attach

KEY = "SENTINEL-wire-faults-key-5d0b"


@dataclass(frozen=True)
class Case:
    """One provider: its documented responder, a launch it accepts, and its create."""

    provider: str
    options: dict[str, Any]
    documented: Callable[[], Any]
    launch: LaunchRequest
    is_create: Callable[[httpx.Request], bool]
    #: The id the create makes, and where the responder keeps what exists.
    new_id: str
    existing: Callable[[Any], Any]


CASES = {
    "lambda": Case(
        "lambda",
        {},
        LD.DocumentedLambda,
        LaunchRequest(gpu_type="A10", name="faults", ssh_key_names=[LD.SSH_KEY_NAME]),
        lambda r: r.url.path == f"{LD.API}/instance-operations/launch",
        LD.ID_LAUNCHED,
        lambda d: d.instances,
    ),
    "paperspace": Case(
        "paperspace",
        {},
        PD.DocumentedPaperspace,
        LaunchRequest(gpu_type="A6000", name="faults", region="ca1", image="tkni3aa4"),
        lambda r: (r.method, r.url.path) == ("POST", f"{PD.API_PREFIX}/machines"),
        PD.NEW_IDS[0],
        lambda d: d.machines,
    ),
    "tensordock": Case(
        "tensordock",
        {},
        TD.DocumentedTensorDock,
        LaunchRequest(gpu_type="RTX4090", name="faults", ssh_public_key=PUBLIC_KEY),
        lambda r: (r.method, r.url.path) == ("POST", f"{TD.API_PREFIX}/instances"),
        TD.NEW_IDS[0],
        lambda d: d.instances,
    ),
    "runpod-rest": Case(
        "runpod",
        {"api": "rest"},
        RD.DocumentedRunPodRest,
        LaunchRequest(gpu_type="H100", name="faults"),
        lambda r: (RD._route(r) or ("",))[0] == "createPod",
        RD.NEW_IDS[0],
        lambda d: d.pods,
    ),
}

PROVIDERS = pytest.mark.parametrize("case", sorted(CASES), indirect=True)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[str(request.param)]


def run(case: Case, mode: str, handler: Any, method: str, *args: Any, **options: Any) -> Any:
    """``method`` on a fresh client of ``case`` (sync or async) over ``handler``."""
    clock = FakeClock()
    options = {"api_key": KEY, "transport": httpx.MockTransport(handler), **case.options, **options}
    if mode == "sync":
        client: Any = create_provider(case.provider, **options)
        with attach(client, clock, clock.sleep) as sync_client:
            return getattr(sync_client, method)(*args)

    async def main() -> Any:
        client = create_async_provider(case.provider, **options)
        async with attach(client, clock, clock.asleep) as async_client:
            return await getattr(async_client, method)(*args)

    return asyncio.run(main())


class HookBug(Exception):
    """What a buggy event hook or custom transport raises (not httpx's)."""


def _causes(exc: BaseException) -> list[BaseException]:
    chain = []
    while exc.__cause__ is not None:
        exc = exc.__cause__
        chain.append(exc)
    return chain


# -- foreign exceptions in the transport --------------------------------------------------------


@PROVIDERS
@MODES
def test_a_foreign_exception_after_the_create_is_ours_and_maybe_submitted(
    case: Case, mode: str
) -> None:
    documented = case.documented()
    creates: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = documented(request)
        if case.is_create(request):
            creates.append(request)
            raise HookBug("a response hook failed")  # after the instance was made
        return answer

    with pytest.raises(ProviderConnectionError) as info:
        run(case, mode, handler, "launch_instance", case.launch, max_retries=3)
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert "list instances" in info.value.message
    assert [type(c) for c in _causes(info.value)] == [HookBug]
    assert len(creates) == 1 and case.new_id in case.existing(documented)  # never replayed


@PROVIDERS
@MODES
def test_a_foreign_exception_on_a_read_is_ours_and_retried(case: Case, mode: str) -> None:
    documented = case.documented()
    failures = [HookBug("a request hook failed")]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop()
        answer: httpx.Response = documented(request)
        return answer

    instances = run(case, mode, handler, "list_instances", max_retries=1)
    assert instances and not failures  # the second attempt answered

    def always(request: httpx.Request) -> httpx.Response:
        raise HookBug("a request hook failed")

    with pytest.raises(ProviderConnectionError) as info:
        run(case, mode, always, "list_instances", max_retries=0)
    assert not info.value.maybe_submitted and info.value.instance_id is None
    assert isinstance(info.value.__cause__, HookBug)


@PROVIDERS
@MODES
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_are_not_swallowed(
    case: Case, mode: str, interrupt: type[BaseException]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise interrupt()

    with pytest.raises(interrupt):
        run(case, mode, handler, "list_instances")


# -- the cancellation warning names the create ---------------------------------------------------


def _warning(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    return record


@PROVIDERS
def test_an_interrupt_while_the_create_is_on_the_wire_names_it_sync(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    documented = case.documented()

    def handler(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = documented(request)
        if case.is_create(request):
            raise KeyboardInterrupt  # Ctrl-C while the answer is on its way
        return answer

    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        with pytest.raises(KeyboardInterrupt):
            run(case, "sync", handler, "launch_instance", case.launch)
    record = _warning(caplog)
    assert record.getMessage().startswith("launch interrupted (KeyboardInterrupt)")
    assert "instance: unknown" in record.getMessage()
    assert getattr(record, "operation", None) == "launch"
    assert getattr(record, "maybe_submitted", None) is True


@PROVIDERS
def test_a_cancel_while_the_create_is_on_the_wire_names_it_async(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    documented = case.documented()

    async def main() -> None:
        reached = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            answer: httpx.Response = documented(request)
            if case.is_create(request):
                reached.set()  # made; the answer never comes back
                await asyncio.Event().wait()
            return answer

        clock = FakeClock()
        client = create_async_provider(
            case.provider, api_key=KEY, transport=httpx.MockTransport(handler), **case.options
        )
        async with attach(client, clock, clock.asleep):
            task = asyncio.create_task(client.launch_instance(case.launch))
            await reached.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        asyncio.run(main())
    record = _warning(caplog)
    assert record.getMessage().startswith("launch interrupted (CancelledError)")
    assert getattr(record, "operation", None) == "launch"
    assert case.new_id in case.existing(documented)


READ_BACKS: dict[str, Callable[[httpx.Request], bool]] = {
    "lambda": lambda r: r.url.path == f"{LD.API}/instances/{LD.ID_LAUNCHED}",
    "tensordock": lambda r: (
        (r.method, r.url.path) == ("GET", f"{TD.API_PREFIX}/instances/{TD.NEW_IDS[0]}")
    ),
}


@pytest.mark.parametrize("case", sorted(READ_BACKS), indirect=True)
@MODES
def test_an_interrupt_during_the_read_back_names_the_create_and_the_instance(
    case: Case, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    documented = case.documented()
    is_read_back = READ_BACKS[case.provider]

    if mode == "sync":

        def handler(request: httpx.Request) -> httpx.Response:
            if is_read_back(request):
                raise KeyboardInterrupt
            answer: httpx.Response = documented(request)
            return answer

        with caplog.at_level(logging.WARNING, logger="gpu_providers"):
            with pytest.raises(KeyboardInterrupt):
                run(case, mode, handler, "launch_instance", case.launch)
    else:

        async def main() -> None:
            reached = asyncio.Event()

            async def handler(request: httpx.Request) -> httpx.Response:
                if is_read_back(request):
                    reached.set()
                    await asyncio.Event().wait()
                answer: httpx.Response = documented(request)
                return answer

            clock = FakeClock()
            client = create_async_provider(
                case.provider, api_key=KEY, transport=httpx.MockTransport(handler)
            )
            async with attach(client, clock, clock.asleep):
                task = asyncio.create_task(client.launch_instance(case.launch))
                await reached.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        with caplog.at_level(logging.WARNING, logger="gpu_providers"):
            asyncio.run(main())
    record = _warning(caplog)
    assert record.getMessage().startswith("launch interrupted")
    assert f"instance: {case.new_id}" in record.getMessage()
    assert getattr(record, "operation", None) == "launch"
    assert getattr(record, "instance_id", None) == case.new_id
