"""Lambda launches: boot-time setup (user_data), readiness and waiting, preemption, regions,
faults after the launch POST, cancellation, and terminate without the vendor's proof.

Every client test runs with the sync and the async client (``mode``) over an
``httpx.MockTransport`` and a fake clock that moves only when the client sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import subprocess
from typing import Any

import httpx
import pytest

from gpu_providers import GPUFilters, create_async_provider
from gpu_providers._startup import SCRIPT_PATH
from gpu_providers.errors import (
    InstanceNotReadyError,
    InvalidRequestError,
    ProviderError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
    WaitTimeoutError,
)
from gpu_providers.types import InstanceState, ProviderFeature
from tests.providers.timekeeping import FakeClock, attach

from . import documented as D
from .test_mapping import KEY, Driver, launch_request, mode, refuse

__all__ = ["mode"]  # the sync/async fixture

#: Values that must never reach a log, an error or a repr.
SECRET = "SENTINEL-env-secret-7f3a"


def _launch_body(account: D.DocumentedLambda) -> dict[str, Any]:
    (launch,) = [r for r in account.requests if r.url.path.endswith("/instance-operations/launch")]
    body = json.loads(launch.content)
    assert isinstance(body, dict)
    return body


def _exports(script: str) -> str:
    return "\n".join(line for line in script.splitlines() if line.startswith("export "))


def _shell_value(exports: str, name: str) -> str:
    """What bash makes of the export lines (the quoting really is what a shell reads)."""
    result = subprocess.run(
        ["/bin/bash", "-c", f'{exports}\nprintf "%s" "${name}"'],
        capture_output=True,
        text=True,
        check=True,
        env={},
    )
    return result.stdout


# -- user_data ------------------------------------------------------------------------------


def test_features_say_startup_script_environment_and_public_key() -> None:
    client = Driver("sync", refuse).client
    assert client.supports_feature(ProviderFeature.STARTUP_SCRIPT)
    assert client.supports_feature(ProviderFeature.ENVIRONMENT)
    assert client.supports_feature(ProviderFeature.SSH_PUBLIC_KEY)


@pytest.mark.anyio
async def test_a_public_key_reaches_the_login_user_at_first_boot(mode: str) -> None:
    account = D.DocumentedLambda()
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExtraKeyForTheTeam laptop"
    async with Driver(mode, account) as call:
        await call("launch_instance", launch_request(ssh_public_key=key))
    body = _launch_body(account)
    assert body["ssh_key_names"] == [D.SSH_KEY_NAME]  # the registered key the API requires
    user_data = body["user_data"]
    assert "install -d -m 700 -o ubuntu -g ubuntu /home/ubuntu/.ssh" in user_data
    assert f"printf '%s\\n' '{key}' >> /home/ubuntu/.ssh/authorized_keys" in user_data


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script", "sent"),
    [
        ("#!/usr/bin/env python3\nprint('hi')\n", "#!/usr/bin/env python3\nprint('hi')\n"),
        ("apt-get install -y jq\n", "#!/bin/bash\napt-get install -y jq\n"),
    ],
)
async def test_a_startup_script_is_the_user_data(mode: str, script: str, sent: str) -> None:
    account = D.DocumentedLambda()
    async with Driver(mode, account) as call:
        launched = await call("launch_instance", launch_request(startup_script=script))
    assert launched.instance_id == D.ID_LAUNCHED
    assert _launch_body(account)["user_data"] == sent


@pytest.mark.anyio
async def test_env_is_written_to_etc_environment_before_the_script_runs(mode: str) -> None:
    account = D.DocumentedLambda()
    env = {"HF_TOKEN": SECRET, "QUOTED": 'it\'s $HOME `x` "y"', "EMPTY": ""}
    script = "#!/bin/sh\necho started\n"
    async with Driver(mode, account) as call:
        await call("launch_instance", launch_request(startup_script=script, env=env))
    user_data = _launch_body(account)["user_data"]
    assert user_data.startswith("#!/bin/bash\n")
    assert "cat >> /etc/environment <<'GPU_PROVIDERS_ENV'\n" in user_data
    exports = _exports(user_data)
    for name, value in env.items():
        assert _shell_value(exports, name) == value  # nothing expanded, nothing lost
    encoded = user_data.split(f"base64 -d > {SCRIPT_PATH} <<'GPU_PROVIDERS_SCRIPT'\n")[1]
    encoded = encoded.split("\nGPU_PROVIDERS_SCRIPT\n")[0]
    assert base64.b64decode(encoded).decode() == script
    assert user_data.rstrip().endswith(f"exec {SCRIPT_PATH}")


@pytest.mark.anyio
async def test_env_alone_needs_no_script(mode: str) -> None:
    account = D.DocumentedLambda()
    async with Driver(mode, account) as call:
        await call("launch_instance", launch_request(env={"A": "1"}))
    user_data = _launch_body(account)["user_data"]
    assert "export A=1" in user_data and "base64" not in user_data


@pytest.mark.anyio
async def test_no_setup_sends_no_user_data(mode: str) -> None:
    account = D.DocumentedLambda()
    async with Driver(mode, account) as call:
        await call("launch_instance", launch_request())
    assert "user_data" not in _launch_body(account)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"startup_script": "#cloud-config\npackages: [jq]\n"}, InvalidRequestError),
        ({"env": {"A": "two\nlines"}}, InvalidRequestError),
        ({"env": {"A": "nul\0"}}, InvalidRequestError),
        # base64 makes a 900 kB script over Lambda's 1 MB once env asks for the wrapper
        ({"startup_script": "#!/bin/sh\n" + "x" * 900_000, "env": {"A": "1"}}, InvalidRequestError),
        ({"min_cuda_version": "12.4"}, UnsupportedFeatureError),
    ],
    ids=["cloud-config", "newline", "nul", "over-1MB", "min-cuda"],
)
async def test_setup_lambda_cannot_carry_is_refused_before_any_request(
    mode: str, fields: dict[str, Any], error: type[ProviderError], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Driver(mode, refuse) as call:
        with pytest.raises(error) as caught:
            await call("launch_instance", launch_request(**fields))
    assert "two\nlines" not in str(caught.value)
    assert "lines" not in caplog.text


@pytest.mark.anyio
async def test_secrets_stay_out_of_logs_errors_and_reprs(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = launch_request(env={"TOKEN": SECRET}, startup_script=f"echo {SECRET}\n")
    assert SECRET not in repr(request) and SECRET not in str(request)

    def handler(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/launch"):
            return httpx.Response(500, json=D.error("global/internal-error", "boom"))
        return D.DocumentedLambda()(r)

    async with Driver(mode, handler, max_retries=2) as call:
        with pytest.raises(ProviderError) as caught:
            await call("launch_instance", request)
    error = caught.value
    for text in (str(error), repr(error), caplog.text, repr(error.body)):
        assert SECRET not in text


# -- readiness and waiting ------------------------------------------------------------------


class Booting:
    """The documented account, where a launched instance goes booting -> active without an
    IP -> active with an IP, one step per read (then stays there)."""

    def __init__(self, steps: list[tuple[str, str | None]]) -> None:
        self.account = D.DocumentedLambda()
        self.account.instances[D.ID_LAUNCHED] = D.instance(
            D.ID_LAUNCHED, status="booting", type_name="gpu_1x_a10", region_name="us-east-1"
        )
        self.steps = list(steps)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(f"/instances/{D.ID_LAUNCHED}"):
            status, ip = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
            self.account.instances[D.ID_LAUNCHED] = D.instance(
                D.ID_LAUNCHED,
                status=status,
                type_name="gpu_1x_a10",
                region_name="us-east-1",
                ip=ip,
            )
        return self.account(request)


READY_STEPS = [("booting", None), ("active", None), ("active", "203.0.113.44")]


@pytest.mark.anyio
async def test_status_is_ready_only_when_active_with_an_ip(mode: str) -> None:
    responder = Booting(READY_STEPS)
    async with Driver(mode, responder) as call:
        seen = [await call("get_instance_status", D.ID_LAUNCHED) for _ in range(3)]
    assert [(s.state, s.ready, s.ssh_port) for s in seen] == [
        (InstanceState.PENDING, False, None),
        (InstanceState.RUNNING, False, None),  # active, but nothing to SSH to yet
        (InstanceState.RUNNING, True, 22),
    ]


@pytest.mark.anyio
async def test_wait_until_ready_polls_until_usable(mode: str) -> None:
    responder = Booting(READY_STEPS)
    async with Driver(mode, responder) as call:
        status = await call("wait_until_ready", D.ID_LAUNCHED, timeout=600)
        pauses = [s for s in call.clock.sleeps if s >= 5.0]
    assert (status.ready, status.public_ip, status.ssh_port) == (True, "203.0.113.44", 22)
    assert responder.account.count("GET", f"/instances/{D.ID_LAUNCHED}") == 3
    assert pauses == [5.0, 7.5]  # the poll's backoff, on fake time


@pytest.mark.anyio
async def test_wait_until_ready_times_out_with_the_last_status(mode: str) -> None:
    responder = Booting([("active", None)])  # never gets an IP
    async with Driver(mode, responder) as call:
        with pytest.raises(WaitTimeoutError) as caught:
            await call("wait_until_ready", D.ID_LAUNCHED, timeout=60)
    error = caught.value
    assert error.instance_id == D.ID_LAUNCHED
    assert error.status.state is InstanceState.RUNNING and not error.status.ready
    assert not error.maybe_submitted  # a wait creates nothing


@pytest.mark.anyio
async def test_unhealthy_is_not_ready_and_not_final(mode: str) -> None:
    responder = Booting([("unhealthy", "203.0.113.44")])
    async with Driver(mode, responder) as call:
        with pytest.raises(WaitTimeoutError):
            await call("wait_until_ready", D.ID_LAUNCHED, timeout=30)
    assert responder.account.count("GET", f"/instances/{D.ID_LAUNCHED}") > 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("terminated", InstanceState.TERMINATED),
        ("terminating", InstanceState.TERMINATING),
        ("preempted", InstanceState.PREEMPTED),
    ],
)
async def test_wait_stops_at_a_state_it_will_not_leave(
    mode: str, status: str, state: InstanceState
) -> None:
    responder = Booting([("booting", None), (status, "203.0.113.44")])
    async with Driver(mode, responder) as call:
        with pytest.raises(InstanceNotReadyError) as caught:
            await call("wait_until_ready", D.ID_LAUNCHED, timeout=600)
    assert caught.value.status.state is state
    assert caught.value.instance_id == D.ID_LAUNCHED
    assert responder.account.count("GET", f"/instances/{D.ID_LAUNCHED}") == 2


@pytest.mark.anyio
async def test_preempted_instances_in_status_and_list(mode: str) -> None:
    account = D.DocumentedLambda()
    account.instances[D.ID_LAUNCHED] = D.instance(
        D.ID_LAUNCHED,
        status="preempted",
        type_name="gpu_1x_a10",
        region_name="us-east-1",
        name="spot-1",
        ip="203.0.113.50",
    )
    async with Driver(mode, account) as call:
        status = await call("get_instance_status", D.ID_LAUNCHED)
        listed = await call("list_instances", "spot-")
    assert (status.state, status.provider_state, status.ready) == (
        InstanceState.PREEMPTED,
        "preempted",
        False,  # an IP, but the capacity is gone
    )
    assert [(i.instance_id, i.state) for i in listed] == [(D.ID_LAUNCHED, InstanceState.PREEMPTED)]


# -- one region vocabulary for offers and launches ------------------------------------------


@pytest.mark.anyio
async def test_every_offer_region_is_what_launch_accepts(mode: str) -> None:
    account = D.DocumentedLambda()
    async with Driver(mode, account) as call:
        offers = await call("list_available_gpus", GPUFilters())
        assert offers
        for offer in offers:
            account.requests.clear()
            request = launch_request(
                gpu_type=offer.gpu_type, gpu_count=offer.gpu_count, region=offer.region
            )
            launched = await call("launch_instance", request)
            body = _launch_body(account)
            assert (body["region_name"], body["instance_type_name"]) == (
                offer.region,
                offer.offer_id,
            )
            assert launched.region == offer.region


def test_generic_regions() -> None:
    client = Driver("sync", refuse).client
    assert client.translate_region("us-east") == "us-east-1"
    assert client.translate_region("EU-CENTRAL") == "europe-central-1"
    assert client.translate_region("us-west-2") == "us-west-2"  # a code passes unchanged
    with pytest.raises(InvalidRequestError, match="no region in eu-west"):
        client.translate_region("eu-west")


@pytest.mark.anyio
async def test_a_generic_region_launches_in_its_code(mode: str) -> None:
    account = D.DocumentedLambda()
    async with Driver(mode, account) as call:
        await call("launch_instance", launch_request(region="us-west"))
    assert _launch_body(account)["region_name"] == "us-west-1"


# -- faults after the launch POST: the caller always learns the instance --------------------


def _after_launch(fault: Any) -> tuple[D.DocumentedLambda, Any]:
    """The documented account, with ``fault`` answering the read-back of the launched id."""
    account = D.DocumentedLambda()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(f"/instances/{D.ID_LAUNCHED}"):
            account.requests.append(request)
            answer = fault(request)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, httpx.Response)
            return answer
        return account(request)

    return account, handler


READ_FAULTS = {
    "503": lambda r: httpx.Response(503, text="Service Unavailable"),
    "500": lambda r: httpx.Response(500, json=D.error("global/internal-error", "boom")),
    "bare-html-404": lambda r: httpx.Response(404, text="<html><h1>Not Found</h1></html>"),
    "json-404-without-envelope": lambda r: httpx.Response(404, json={"detail": "Not Found"}),
    "reset": lambda r: httpx.RemoteProtocolError("connection reset", request=r),
    "read-timeout": lambda r: httpx.ReadTimeout("read timed out", request=r),
    "malformed-json": lambda r: httpx.Response(200, text='{"data": {"id": '),
    "429": lambda r: httpx.Response(429, headers={"Retry-After": "1"}, text="slow down"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(READ_FAULTS.values()), ids=list(READ_FAULTS))
async def test_a_failed_read_back_returns_the_launched_instance_as_pending(
    mode: str, fault: Any
) -> None:
    account, handler = _after_launch(fault)
    async with Driver(mode, handler, max_retries=2) as call:
        launched = await call("launch_instance", launch_request(name="job-7"))
    assert (launched.instance_id, launched.state, launched.name) == (
        D.ID_LAUNCHED,
        InstanceState.PENDING,
        "job-7",
    )
    assert account.count("POST", "/instance-operations/launch") == 1


@pytest.mark.anyio
async def test_a_read_back_our_mapping_cannot_read_names_the_instance(mode: str) -> None:
    def unmappable(request: httpx.Request) -> httpx.Response:
        body = D.instance(
            D.ID_LAUNCHED, status="booting", type_name="gpu_1x_a10", region_name="us-east-1"
        )
        broken = copy.deepcopy(body)
        broken["instance_type"]["name"] = 5  # parses, but is no instance-type name
        return httpx.Response(200, json={"data": broken})

    account, handler = _after_launch(unmappable)
    async with Driver(mode, handler) as call:
        with pytest.raises(UnexpectedResponseError) as caught:
            await call("launch_instance", launch_request())
    error = caught.value
    assert (error.maybe_submitted, error.is_retryable, error.instance_id) == (
        True,
        False,
        D.ID_LAUNCHED,
    )
    assert D.ID_LAUNCHED in error.message
    assert account.count("POST", "/instance-operations/launch") == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(200, text="<html>OK</html>"),
        lambda r: httpx.Response(200, text='{"data": {"instance_ids": ["abc"'),
        lambda r: httpx.Response(200, json={"data": {"instance_ids": "not-a-list"}}),
    ],
    ids=["html-200", "truncated-json", "wrong-type"],
)
async def test_a_launch_answer_we_cannot_read_may_have_launched(mode: str, answer: Any) -> None:
    from .test_mapping import with_launch

    account, handler = with_launch(answer)
    async with Driver(mode, handler, max_retries=3) as call:
        with pytest.raises(UnexpectedResponseError) as caught:
            await call("launch_instance", launch_request())
    assert (caught.value.maybe_submitted, caught.value.is_retryable) == (True, False)
    assert account.count("POST", "/instance-operations/launch") == 1


# -- cancellation (async) -------------------------------------------------------------------


def _async_client(handler: Any, sleep: Any) -> Any:
    clock = FakeClock()
    client = create_async_provider("lambda", api_key=KEY, transport=httpx.MockTransport(handler))
    return attach(client, clock, sleep)


@pytest.mark.anyio
async def test_cancelled_during_the_read_back_logs_the_instance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = D.DocumentedLambda()
    in_flight = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(f"/instances/{D.ID_LAUNCHED}"):
            in_flight.set()
            await asyncio.Event().wait()  # the answer never comes
        return account(request)

    async def no_sleep(seconds: float) -> None:
        return None

    caplog.set_level(logging.WARNING, logger="gpu_providers")
    client = _async_client(handler, no_sleep)
    task = asyncio.ensure_future(client.launch_instance(launch_request()))
    # Wait for the request to be in flight, or for the call to end first (a failure, never
    # a hang: the handler blocks only once the request is out).
    sent = asyncio.ensure_future(in_flight.wait())
    await asyncio.wait({task, sent}, return_when=asyncio.FIRST_COMPLETED)
    assert in_flight.is_set(), f"the call ended before its request went out: {task}"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (record,) = [r for r in caplog.records if D.ID_LAUNCHED in r.getMessage()]
    assert record.__dict__["maybe_submitted"] is True
    assert record.__dict__["instance_id"] == D.ID_LAUNCHED
    # The account's breaker and limiter are still usable.
    assert len(await client.list_instances()) == 5
    await client.aclose()


@pytest.mark.anyio
async def test_cancelled_in_the_limiter_wait_before_the_launch_leaves_no_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = D.DocumentedLambda()
    sleeps: list[float] = []

    async def cancel_before_launch(seconds: float) -> None:
        sleeps.append(seconds)
        if account.count("GET", "/instance-types") == 1 and len(sleeps) == 1:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)

    caplog.set_level(logging.DEBUG, logger="gpu_providers")
    client = _async_client(account, cancel_before_launch)
    with pytest.raises(asyncio.CancelledError):
        await client.launch_instance(launch_request())
    assert sleeps  # the cancel came in the limiter's wait for the launch slot
    assert account.count("POST", "/instance-operations/launch") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert client._account.breaker.state == "closed"
    assert len(await client.list_instances()) == 4
    await client.aclose()


# -- terminate: only the vendor's proof is "already gone" -----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(404, text="<html><h1>404 Not Found</h1></html>"),
        lambda r: httpx.Response(404, json={"detail": "Not Found"}),
        lambda r: httpx.Response(404, json={"error": {"code": "global/route-not-found"}}),
    ],
    ids=["html", "json-without-envelope", "other-code"],
)
async def test_terminate_with_a_bare_404_raises(mode: str, answer: Any) -> None:
    async with Driver(mode, answer) as call:
        with pytest.raises(UnexpectedResponseError) as caught:
            await call("terminate_instance", D.ID_ACTIVE)
    assert caught.value.status_code == 404
