"""Paperspace launches: the startup script (env, SSH key, script), its cleanup, publicIpType and
NVLink, readiness and waiting, regions, faults of the create, cancellation, and terminate
without the vendor's proof.

Client tests run with the sync and the async client (``kind``) over the documented responder
(with injected answers where needed) and fake time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gpu_providers import LaunchRequest
from gpu_providers._startup import SCRIPT_PATH
from gpu_providers.errors import (
    CapacityError,
    InstanceNotReadyError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    UnexpectedResponseError,
    WaitTimeoutError,
)
from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider
from gpu_providers.types import InstanceState, ProviderFeature

from . import documented as D
from .harness import FakeTime
from .test_mapping import KEY, call, kind

__all__ = ["kind"]  # the sync/async fixture

SECRET = "SENTINEL-env-secret-19be"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILasVMYHcO3cCm1TE6DL/Fz2RVcWi9CRoP6oUYk1UMvU me"


def _bodies(responder: D.DocumentedPaperspace, method: str, path: str) -> list[Any]:
    return [
        json.loads(r.content) if r.content else None
        for r in responder.requests
        if r.method == method and r.url.path == "/v1" + path
    ]


def _count(responder: D.DocumentedPaperspace, method: str, path: str) -> int:
    return len(_bodies(responder, method, path))


def launch(**fields: Any) -> LaunchRequest:
    base: dict[str, Any] = {"gpu_type": "A6000", "name": "job", "region": "ca1", "image": "tmpl"}
    base.update(fields)
    return LaunchRequest(**base)


def test_features() -> None:
    client = PaperspaceProvider(api_key=KEY)
    for feature in (
        ProviderFeature.STARTUP_SCRIPT,
        ProviderFeature.ENVIRONMENT,
        ProviderFeature.SSH_PUBLIC_KEY,
    ):
        assert client.supports_feature(feature)
    assert not client.supports_feature(ProviderFeature.SPOT_INSTANCES)  # nothing preempts


# -- the startup script -----------------------------------------------------------------------


def _shell_value(exports: str, name: str) -> str:
    result = subprocess.run(
        ["/bin/bash", "-c", f'{exports}\nprintf "%s" "${name}"'],
        capture_output=True,
        text=True,
        check=True,
        env={},
    )
    return result.stdout


def test_one_script_carries_env_key_and_script(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    env = {"HF_TOKEN": SECRET, "ODD": 'a\'b $X `y` \\ "z"'}
    script = "pip install vllm\n"
    request = launch(env=env, ssh_public_key=PUBLIC_KEY + "\n", startup_script=script)
    instance = call(kind, responder, "launch_instance", request)
    assert instance.instance_id == D.NEW_IDS[0]
    (created,) = _bodies(responder, "POST", "/startup-scripts")
    assert (created["name"], created["isRunOnce"]) == ("gpu-providers-job", True)
    text = created["script"]
    exports = "\n".join(x for x in text.splitlines() if x.startswith("export "))
    assert {name: _shell_value(exports, name) for name in env} == env
    assert f"printf '%s\\n' '{PUBLIC_KEY}' >> /home/paperspace/.ssh/authorized_keys" in text
    assert "chmod 600 /home/paperspace/.ssh/authorized_keys" in text
    encoded = text.split("<<'GPU_PROVIDERS_SCRIPT'\n")[1].split("\nGPU_PROVIDERS_SCRIPT\n")[0]
    assert base64.b64decode(encoded).decode() == "#!/bin/bash\n" + script
    assert text.rstrip().endswith(f"exec {SCRIPT_PATH}")
    (machine,) = _bodies(responder, "POST", "/machines")
    assert machine["startupScriptId"] == D.NEW_SCRIPT_IDS[0]
    assert machine["publicIpType"] == "dynamic"
    # kept: the machine runs it at its first boot
    assert responder.startup_scripts[D.NEW_SCRIPT_IDS[0]]["assignedMachineIds"] == [D.NEW_IDS[0]]


def test_no_setup_creates_no_script(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    call(kind, responder, "launch_instance", launch())
    assert _count(responder, "POST", "/startup-scripts") == 0
    (machine,) = _bodies(responder, "POST", "/machines")
    assert "startupScriptId" not in machine


@pytest.mark.parametrize(
    ("gpu_type", "count", "nvlink"),
    [("H100", 8, True), ("A100-80GB", 8, True), ("H100", 1, None), ("A6000", 2, None)],
)
def test_nvlink_on_the_machine_types_that_have_it(
    kind: str, gpu_type: str, count: int, nvlink: bool | None
) -> None:
    responder = D.DocumentedPaperspace()
    request = launch(gpu_type=gpu_type, gpu_count=count, region="ny2")
    # the documented account has no 8-GPU capacity; the body was sent all the same
    with contextlib.suppress(CapacityError):
        call(kind, responder, "launch_instance", request)
    (machine,) = _bodies(responder, "POST", "/machines")
    assert machine.get("enableNvlink") is nvlink


def test_a_failed_script_create_sends_no_machine_create(kind: str) -> None:
    refused = httpx.Response(400, json=D.error_body("script is too long", "BAD_REQUEST"))
    responder = D.DocumentedPaperspace(inject={("POST", "/startup-scripts"): [refused]})
    with pytest.raises(InvalidRequestError) as info:
        call(kind, responder, "launch_instance", launch(env={"A": "1"}))
    assert not info.value.maybe_submitted
    assert _count(responder, "POST", "/machines") == 0


def test_a_refused_create_deletes_its_script_and_raises_the_refusal(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    request = launch(gpu_type="H100", gpu_count=8, region="ny2", ssh_public_key=PUBLIC_KEY)
    with pytest.raises(CapacityError) as info:
        call(kind, responder, "launch_instance", request)
    assert not info.value.maybe_submitted
    assert _count(responder, "DELETE", f"/startup-scripts/{D.NEW_SCRIPT_IDS[0]}") == 1
    assert responder.startup_scripts == {}


def test_a_failed_cleanup_never_replaces_the_refusal(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gpu_providers")
    broken = [httpx.Response(500, json=D.error_body("Internal error", "INTERNAL"))] * 3
    responder = D.DocumentedPaperspace(inject={("DELETE", "/startup-scripts/{id}"): broken})
    request = launch(gpu_type="H100", gpu_count=8, region="ny2", env={"TOKEN": SECRET})
    with pytest.raises(CapacityError):
        call(kind, responder, "launch_instance", request, max_retries=2)
    assert _count(responder, "DELETE", f"/startup-scripts/{D.NEW_SCRIPT_IDS[0]}") == 3
    (record,) = [r for r in caplog.records if D.NEW_SCRIPT_IDS[0] in r.getMessage()]
    assert "ProviderServerError" in record.getMessage()
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx.Response(503, text="Service Unavailable"),
        lambda: httpx.ReadTimeout("read timed out"),
    ],
    ids=["503", "read-timeout"],
)
def test_a_create_that_may_have_worked_keeps_its_script(
    kind: str, failure: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gpu_providers")
    responder = D.DocumentedPaperspace(inject={("POST", "/machines"): [failure()]})
    with pytest.raises(ProviderError) as info:
        call(kind, responder, "launch_instance", launch(ssh_public_key=PUBLIC_KEY))
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert _count(responder, "DELETE", f"/startup-scripts/{D.NEW_SCRIPT_IDS[0]}") == 0
    assert any(D.NEW_SCRIPT_IDS[0] in r.getMessage() for r in caplog.records)


def test_secrets_stay_out_of_logs_errors_and_reprs(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = launch(gpu_type="H100", gpu_count=8, region="ny2", env={"TOKEN": SECRET})
    request = request.model_copy(update={"startup_script": f"echo {SECRET}"})
    assert SECRET not in repr(request)
    responder = D.DocumentedPaperspace()
    with pytest.raises(CapacityError) as info:
        call(kind, responder, "launch_instance", request)
    for text in (str(info.value), repr(info.value), repr(info.value.body), caplog.text):
        assert SECRET not in text


# -- readiness and waiting --------------------------------------------------------------------


class Booting(D.DocumentedPaperspace):
    """An account whose machine ID_PROVISIONING moves one step per read (then stays)."""

    def __init__(self, steps: list[tuple[str, str | None]]) -> None:
        super().__init__()
        self.steps = list(steps)

    def _get(self, request: httpx.Request, machine_id: str | None) -> httpx.Response:
        if machine_id == D.ID_PROVISIONING:
            state, ip = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
            self.machines[machine_id] = dict(self.machines[machine_id], state=state, publicIp=ip)
        return super()._get(request, machine_id)


def test_ready_needs_a_public_ip(kind: str) -> None:
    responder = Booting([("provisioning", None), ("ready", None), ("ready", "203.0.113.80")])
    seen = [call(kind, responder, "get_instance_status", D.ID_PROVISIONING) for _ in range(3)]
    assert [(s.state, s.ready, s.ssh_port) for s in seen] == [
        (InstanceState.PENDING, False, None),
        (InstanceState.RUNNING, False, None),
        (InstanceState.RUNNING, True, 22),
    ]


def test_wait_until_ready(kind: str) -> None:
    responder = Booting([("provisioning", None), ("ready", None), ("ready", "203.0.113.80")])
    time = FakeTime()
    status = call(kind, responder, "wait_until_ready", D.ID_PROVISIONING, 600, time=time)
    assert (status.ready, status.public_ip) == (True, "203.0.113.80")
    assert _count(responder, "GET", f"/machines/{D.ID_PROVISIONING}") == 3
    assert [s for s in time.sleeps if s >= 5] == [5.0, 7.5]


def test_wait_until_ready_times_out(kind: str) -> None:
    responder = Booting([("ready", None)])
    with pytest.raises(WaitTimeoutError) as info:
        call(kind, responder, "wait_until_ready", D.ID_PROVISIONING, 45)
    assert info.value.instance_id == D.ID_PROVISIONING
    assert info.value.status.state is InstanceState.RUNNING


def test_wait_stops_at_a_stopped_machine(kind: str) -> None:
    responder = Booting([("provisioning", None), ("stopping", None), ("off", None)])
    with pytest.raises(InstanceNotReadyError) as info:
        call(kind, responder, "wait_until_ready", D.ID_PROVISIONING, 600)
    assert info.value.status.state is InstanceState.STOPPED  # "stopping" is waited through


# -- regions ----------------------------------------------------------------------------------


def test_generic_regions() -> None:
    client = PaperspaceProvider(api_key=KEY)
    assert [client.translate_region(r) for r in ("us-east", "us-west", "eu-west")] == [
        "ny2",
        "ca1",
        "ams1",
    ]
    for generic in ("eu-central", "asia", "us-south"):
        with pytest.raises(InvalidRequestError, match="no region in"):
            client.translate_region(generic)


def test_launch_and_availability_speak_the_same_codes(kind: str) -> None:
    responder = D.DocumentedPaperspace()
    assert call(kind, responder, "is_available", "A6000", 1, "us-west") is True
    call(kind, responder, "launch_instance", launch(region="us-west"))
    (availability,) = [r for r in responder.requests if r.url.path.endswith("availability")]
    (machine,) = _bodies(responder, "POST", "/machines")
    assert availability.url.params["region"] == machine["region"] == "ca1"


def test_offers_carry_no_region(kind: str) -> None:
    # OS templates list machine types for every region at once; where one can run is only
    # known per region (is_available), so an offer's region is None, never a guess.
    offers = call(kind, D.DocumentedPaperspace(), "list_available_gpus")
    assert offers and all(o.region is None for o in offers)


# -- faults of the create ---------------------------------------------------------------------

CREATE_FAULTS: dict[str, Callable[[], Any]] = {
    "503": lambda: httpx.Response(503, text="Service Unavailable"),
    "500": lambda: httpx.Response(500, json=D.error_body("Internal error", "INTERNAL")),
    "reset": lambda: httpx.RemoteProtocolError("connection reset by peer"),
    "read-timeout": lambda: httpx.ReadTimeout("read timed out"),
    "truncated-json": lambda: httpx.Response(200, text='{"event": {"id": "e1"}, "data": {"id"'),
    "html-200": lambda: httpx.Response(200, text="<html>ok</html>"),
}


@pytest.mark.parametrize("failure", list(CREATE_FAULTS.values()), ids=list(CREATE_FAULTS))
def test_a_create_that_may_have_worked_is_never_unknown_and_retryable(
    kind: str, failure: Callable[[], Any]
) -> None:
    responder = D.DocumentedPaperspace(inject={("POST", "/machines"): [failure()]})
    with pytest.raises(ProviderError) as info:
        call(kind, responder, "launch_instance", launch(env={"A": "1"}), max_retries=3)
    error = info.value
    assert isinstance(
        error, (ProviderServerError, ProviderConnectionError, UnexpectedResponseError)
    )
    assert (error.maybe_submitted, error.is_retryable) == (True, False)
    assert _count(responder, "POST", "/machines") == 1


def test_a_create_answer_our_mapping_cannot_read_names_the_machine(kind: str) -> None:
    created = D.machine("psnew0zz", "job", "provisioning", "A6000", "ca1")
    created["machineType"] = 5  # parses (the generated model does not check), maps badly
    answer = httpx.Response(
        200, json={"event": D.event("create", "psnew0zz", "e1"), "data": created}
    )
    responder = D.DocumentedPaperspace(inject={("POST", "/machines"): [answer]})
    # The machine exists and bills: it comes back pending with its id (docs: money safety 1).
    instance = call(kind, responder, "launch_instance", launch())
    assert (instance.instance_id, instance.state) == ("psnew0zz", InstanceState.PENDING)
    assert _count(responder, "POST", "/machines") == 1


def test_a_bare_404_on_create_is_a_typed_refusal(kind: str) -> None:
    # Core rule: a 4xx is the provider's refusal, so nothing was created; a bare 404 (a
    # proxy's page) is an UnexpectedResponseError, never retried.
    html = httpx.Response(404, text="<html><h1>Not Found</h1></html>")
    responder = D.DocumentedPaperspace(inject={("POST", "/machines"): [html]})
    with pytest.raises(UnexpectedResponseError) as info:
        call(kind, responder, "launch_instance", launch(ssh_public_key=PUBLIC_KEY))
    assert not info.value.is_retryable
    assert _count(responder, "POST", "/machines") == 1
    assert _count(responder, "DELETE", f"/startup-scripts/{D.NEW_SCRIPT_IDS[0]}") == 1


# -- cancellation (async) ---------------------------------------------------------------------


async def _cancel_while_creating(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Cancel a launch (with a startup script) while its create is on the wire; the warnings."""
    responder = D.DocumentedPaperspace()
    in_flight = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/machines":
            in_flight.set()
            await asyncio.Event().wait()
        return responder(request)

    caplog.set_level(logging.WARNING, logger="gpu_providers")
    time = FakeTime()
    client = time.attach_async(
        AsyncPaperspaceProvider(api_key=KEY, transport=httpx.MockTransport(handler))
    )
    task = asyncio.ensure_future(client.launch_instance(launch(ssh_public_key=PUBLIC_KEY)))
    # Wait for the request to be in flight, or for the call to end first (a failure, never
    # a hang: the handler blocks only once the request is out).
    sent = asyncio.ensure_future(in_flight.wait())
    await asyncio.wait({task, sent}, return_when=asyncio.FIRST_COMPLETED)
    assert in_flight.is_set(), f"the call ended before its request went out: {task}"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(await client.list_instances()) == 5  # breaker and limiter still usable
    await client.aclose()
    return [r.getMessage() for r in caplog.records]


@pytest.mark.anyio
async def test_cancelled_while_the_create_is_in_flight(caplog: pytest.LogCaptureFixture) -> None:
    messages = await _cancel_while_creating(caplog)
    assert any(D.NEW_SCRIPT_IDS[0] in m for m in messages)  # the script is not silently left


@pytest.mark.anyio
async def test_cancelled_create_in_flight_is_logged_as_maybe_submitted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = await _cancel_while_creating(caplog)
    assert any("may have reached Paperspace" in m for m in messages)


@pytest.mark.anyio
async def test_cancelled_in_the_limiter_wait_leaves_no_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responder = D.DocumentedPaperspace()
    armed: list[bool] = []
    time = FakeTime()

    async def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if armed:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)

    caplog.set_level(logging.DEBUG, logger="gpu_providers")
    client = AsyncPaperspaceProvider(api_key=KEY, transport=responder.transport())
    from tests.providers.timekeeping import attach

    client = attach(client, time.clock, sleep)
    for _ in range(2):  # use up the burst of 2, so the create must wait for a token
        await client.is_available("A6000", 1, "ca1")
    armed.append(True)
    with pytest.raises(asyncio.CancelledError):
        await client.launch_instance(launch())
    armed.clear()
    assert time.sleeps  # it was cancelled in the limiter's wait
    assert _count(responder, "POST", "/machines") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(await client.list_instances()) == 5
    await client.aclose()


# -- terminate: only the vendor's error envelope proves "already gone" ------------------------


@pytest.mark.parametrize(
    "answer",
    [
        lambda: httpx.Response(404, text="<html><h1>404 Not Found</h1></html>"),
        lambda: httpx.Response(404, json={"detail": "Not Found"}),
        lambda: httpx.Response(404, json={"message": "gone"}),  # no code: not the envelope
    ],
    ids=["html", "json-without-envelope", "message-without-code"],
)
def test_terminate_with_a_bare_404_raises(kind: str, answer: Callable[[], Any]) -> None:
    responder = D.DocumentedPaperspace(inject={("DELETE", "/machines/{id}"): [answer()]})
    with pytest.raises(UnexpectedResponseError) as info:
        call(kind, responder, "terminate_instance", D.ID_READY)
    assert info.value.status_code == 404
