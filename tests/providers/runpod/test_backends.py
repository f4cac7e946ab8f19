"""One provider test suite for both RunPod backends: GraphQL (the default) and REST API v2
(``api="rest"``), each through the sync and the async client, over its documented responder
on fake time (nothing really sleeps, nothing reaches RunPod).

Everything here goes through the public API (``create_provider``/``create_async_provider`` or
the classes); what only one backend has (GraphQL variables, spot bids) stays in the other
RunPod test modules.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gpu_providers import GPUFilters, LaunchRequest, create_async_provider, create_provider
from gpu_providers.errors import (
    AuthenticationError,
    CapacityError,
    InstanceNotFoundError,
    InstanceNotReadyError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    UnsupportedFeatureError,
    WaitTimeoutError,
)
from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider
from gpu_providers.runpod import _mapping as M
from gpu_providers.runpod.rest import AsyncRunPodRestProvider, RunPodRestProvider
from gpu_providers.types import InstanceState, ProviderFeature

from ..paperspace.harness import FakeTime
from . import documented as G
from . import documented_rest as R

KEY = "SENTINEL-runpod-backends-key-7c21"
NEW_ID = G.NEW_IDS[0]
ON_DEMAND = LaunchRequest(gpu_type="H100", name="suite")


@dataclass(frozen=True)
class Backend:
    """How one backend's documented responder is driven and inspected."""

    api: str
    #: Our operation names -> the responder's (GraphQL operationName, REST operationId).
    ops: Mapping[str, str]
    make: Callable[..., Any]
    spot: bool
    #: A launch answer that refuses for lack of capacity / for money, per backend.
    capacity: Callable[[], httpx.Response]
    billing: Callable[[], httpx.Response]
    rate_limited: Callable[[str], httpx.Response]

    def responder(self, **inject: list[Any]) -> Any:
        return self.make(inject={self.ops[op]: answers for op, answers in inject.items()})

    def operation(self, request: httpx.Request) -> str | None:
        """Our name of the operation a request is."""
        if self.api == "graphql":
            name = json.loads(request.content).get("operationName")
        else:
            routed = R._route(request)
            name = routed[0] if routed else None
        return next((ours for ours, theirs in self.ops.items() if theirs == name), None)

    def count(self, responder: Any, op: str) -> int:
        return sum(1 for r in responder.requests if self.operation(r) == op)

    def created(self, responder: Any) -> dict[str, Any]:
        """What the launch sent, as (env, start command, CUDA floor, placement)."""
        (request,) = [r for r in responder.requests if self.operation(r) == "launch"]
        body = json.loads(request.content)
        if self.api == "graphql":
            fields = body["variables"]["input"]
            return {
                "env": {e["key"]: e["value"] for e in fields.get("env") or []},
                "start": fields.get("dockerArgs"),
                "cuda": fields.get("minCudaVersion"),
                "placement": fields.get("dataCenterId") or fields.get("countryCode"),
            }
        return {
            "env": body.get("env") or {},
            "start": body.get("args"),
            "cuda": body["gpu"].get("minCudaVersion"),
            "placement": body.get("dataCenterIds"),
        }


def _graphql_error(message: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(200, json={"data": None, "errors": [{"message": message}]})


BACKENDS = {
    "graphql": Backend(
        api="graphql",
        ops={
            "launch": "PodFindAndDeployOnDemand",
            "spot": "PodRentInterruptable",
            "get": "GetPod",
            "list": "MyPods",
            "terminate": "PodTerminate",
            "stop": "PodStop",
            "start": "PodResume",
            "catalog": "GpuTypes",
        },
        make=G.DocumentedRunPod,
        spot=True,
        capacity=_graphql_error(G.NO_INSTANCES),
        billing=_graphql_error("Your balance is too low to deploy this pod"),
        rate_limited=G.rate_limited,
    ),
    "rest": Backend(
        api="rest",
        ops={
            "launch": "createPod",
            "get": "getPod",
            "list": "listPods",
            "terminate": "deletePod",
            "stop": "podAction",
            "start": "podAction",
            "catalog": "listGpuTypes",
        },
        make=R.DocumentedRunPodRest,
        spot=False,
        capacity=R.no_capacity,
        billing=R.no_balance,
        rate_limited=R.rate_limited,
    ),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[str(request.param)]


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(
    kind: str,
    backend: Backend,
    handler: Callable[[httpx.Request], Any],
    method: str,
    *args: Any,
    time: FakeTime | None = None,
    **options: Any,
) -> Any:
    """``method`` on a fresh client of ``backend`` made by the factory (sync or async)."""
    time = time or FakeTime()
    options = {"api_key": KEY, "transport": httpx.MockTransport(handler), **options}
    if kind == "sync":
        with time.attach_sync(create_provider("runpod", api=backend.api, **options)) as client:
            return getattr(client, method)(*args)

    async def run() -> Any:
        client = create_async_provider("runpod", api=backend.api, **options)
        async with time.attach_async(client) as attached:
            return await getattr(attached, method)(*args)

    return asyncio.run(run())


# -- choosing the backend ----------------------------------------------------------------------


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request expected, got {request.method} {request.url}")


def test_the_factory_and_the_classes_pick_the_backend() -> None:
    graphql: Any = create_provider("runpod", api_key=KEY)
    rest: Any = create_provider("runpod", api="rest", api_key=KEY)
    assert (type(graphql), graphql.api) == (RunPodProvider, "graphql")  # the default
    assert (type(rest), rest.api) == (RunPodRestProvider, "rest")
    assert isinstance(rest, RunPodProvider)
    assert type(RunPodProvider(api_key=KEY, api="REST")) is RunPodRestProvider
    assert type(AsyncRunPodProvider(api_key=KEY, api="rest")) is AsyncRunPodRestProvider
    async_graphql: Any = create_async_provider("runpod", api="graphql", api_key=KEY)
    assert type(async_graphql) is AsyncRunPodProvider
    assert rest.get_provider_info().api_base_url == "https://api.runpod.io"
    assert graphql.get_provider_info().api_base_url == "https://api.runpod.io/graphql"


@pytest.mark.parametrize("api", ["soap", "", "graphql2", None, 2])
def test_an_unknown_api_is_refused_before_any_request(api: Any) -> None:
    options: dict[str, Any] = {"api_key": KEY, "transport": httpx.MockTransport(_no_network)}
    if api is None:  # None is the default (GraphQL), not an error
        default: Any = create_provider("runpod", api=api, **options)
        assert default.api == "graphql"
        return
    for make in (
        lambda: create_provider("runpod", api=api, **options),
        lambda: create_async_provider("runpod", api=api, **options),
        lambda: RunPodProvider(api=api, **options),
        lambda: AsyncRunPodProvider(api=api, **options),
    ):
        with pytest.raises(InvalidRequestError, match="choose 'graphql'"):
            make()


@pytest.mark.parametrize("factory", [create_provider, create_async_provider])
def test_the_rest_backend_names_its_missing_extra(
    monkeypatch: pytest.MonkeyPatch, factory: Any
) -> None:
    import sys

    from gpu_providers.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "attrs", None)  # the generated REST client's dependency
    with pytest.raises(MissingDependencyError, match=r"skypilot-sdk\[runpod\]") as info:
        factory("runpod", api="rest", api_key=KEY)
    assert info.value.name == "attrs"


def test_a_backend_class_refuses_the_other_api() -> None:
    with pytest.raises(InvalidRequestError, match="speaks RunPod's rest API"):
        RunPodRestProvider(api_key=KEY, api="graphql")


def test_the_rest_backend_replaces_every_graphql_flow() -> None:
    from gpu_providers.runpod._client import _RunPodCore
    from gpu_providers.runpod.rest._client import _RunPodRestCore

    shared = {"_flow_available"}  # region codes -> filters: no wire call of its own
    graphql_flows = {name for name in vars(_RunPodCore) if name.startswith("_flow_")} - shared
    assert graphql_flows and graphql_flows <= set(vars(_RunPodRestCore))


def test_the_rest_backend_says_what_it_cannot_do(backend: Backend) -> None:
    client = create_provider("runpod", api=backend.api, api_key=KEY)
    assert client.supports_feature(ProviderFeature.SPOT_INSTANCES) is backend.spot
    for feature in (
        ProviderFeature.STOP_START,
        ProviderFeature.STARTUP_SCRIPT,
        ProviderFeature.ENVIRONMENT,
        ProviderFeature.SSH_PUBLIC_KEY,
    ):
        assert client.supports_feature(feature)
    assert client.translate_gpu_type("H100") == G.H100
    assert client.translate_region("us-east") == "US"


# -- lifecycle -------------------------------------------------------------------------------------


def test_launch_on_demand(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    instance = call(kind, backend, responder, "launch_instance", ON_DEMAND)
    assert (instance.instance_id, instance.name, instance.gpu_type) == (NEW_ID, "suite", "H100")
    assert instance.state == InstanceState.PENDING and instance.spot is False
    assert instance.hourly_price == 2.69  # the cheapest cloud in stock: community
    assert backend.count(responder, "launch") == 1
    assert NEW_ID in responder.pods


def test_launch_spot(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    request = LaunchRequest(gpu_type="H100", name="suite", spot=True)
    if backend.spot:
        instance = call(kind, backend, responder, "launch_instance", request)
        assert (instance.instance_id, instance.spot) == (NEW_ID, True)
        return
    with pytest.raises(UnsupportedFeatureError, match="no spot"):
        call(kind, backend, responder, "launch_instance", request)
    assert responder.requests == []  # refused before anything was sent


def test_wait_until_ready(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    time = FakeTime()
    launched = call(kind, backend, responder, "launch_instance", ON_DEMAND, time=time)
    status = call(kind, backend, responder, "wait_until_ready", launched.instance_id, time=time)
    assert status.ready and status.state == InstanceState.RUNNING
    assert (status.public_ip, status.ssh_port) == (G.POD_PUBLIC_IP, 10400)
    assert time.sleeps and all(s > 0 for s in time.sleeps)  # it polled, on fake time


def test_wait_until_ready_gives_up_on_a_stopped_pod(kind: str, backend: Backend) -> None:
    with pytest.raises(InstanceNotReadyError) as info:
        call(kind, backend, backend.responder(), "wait_until_ready", G.ID_EXITED)
    assert info.value.status.state == InstanceState.STOPPED


def test_status(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    ready = call(kind, backend, responder, "get_instance_status", G.ID_READY)
    assert (ready.ready, ready.public_ip, ready.ssh_port) == (True, G.POD_PUBLIC_IP, 10341)
    booting = call(kind, backend, responder, "get_instance_status", G.ID_BOOTING)
    assert booting.state == InstanceState.PENDING and not booting.ready
    exited = call(kind, backend, responder, "get_instance_status", G.ID_EXITED)
    assert exited.state == InstanceState.STOPPED and not exited.ready


def test_list_by_name_prefix(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    everything = call(kind, backend, responder, "list_instances")
    mine = call(kind, backend, responder, "list_instances", "sky-")
    assert {"sky-train-1", "sky-boot-1", "notebook-old"} <= {i.name for i in everything}
    assert {"sky-train-1", "sky-boot-1"} <= {i.name for i in mine}
    assert all(i.name.startswith("sky-") for i in mine)
    assert backend.count(responder, "list") == 2


def test_terminate_is_idempotent_on_runpods_proof(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    call(kind, backend, responder, "terminate_instance", G.ID_EXITED)
    call(kind, backend, responder, "terminate_instance", G.ID_EXITED)  # gone: success
    assert G.ID_EXITED not in responder.pods
    assert backend.count(responder, "terminate") == 2
    with pytest.raises(InstanceNotFoundError):
        call(kind, backend, responder, "get_instance_status", G.ID_EXITED)


def test_terminate_is_not_idempotent_on_a_bare_404(kind: str, backend: Backend) -> None:
    bare = httpx.Response(404, text="<html>404 Not Found</html>")
    responder = backend.responder(terminate=[bare])
    with pytest.raises(ProviderError) as info:
        call(kind, backend, responder, "terminate_instance", G.ID_READY)
    assert not isinstance(info.value, InstanceNotFoundError)  # it may still be running
    assert G.ID_READY in responder.pods


def test_stop_and_resume(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    stopped = call(kind, backend, responder, "stop_instance", G.ID_READY)
    assert stopped.state == InstanceState.STOPPED
    resumed = call(kind, backend, responder, "start_instance", G.ID_READY)
    assert resumed.state in (InstanceState.PENDING, InstanceState.RUNNING)
    assert responder.pods[G.ID_READY]  # still there


def test_wait_until_ready_times_out_on_fake_time(kind: str, backend: Backend) -> None:
    time = FakeTime()  # ID_BOOTING never comes up
    with pytest.raises(WaitTimeoutError) as info:
        call(kind, backend, backend.responder(), "wait_until_ready", G.ID_BOOTING, 60.0, time=time)
    assert info.value.instance_id == G.ID_BOOTING
    assert sum(time.sleeps) == pytest.approx(60.0)  # every wait was fake


# -- work at start: env, SSH key, startup script, CUDA floor, placement ------------------------

SECRET_VALUE = "s3cr3t-token-value-never-logged"
SECRET_SCRIPT = "#!/bin/bash\nexport HF_TOKEN=hf_script_secret_0000\necho started\n"


def test_env_key_and_script_reach_the_pod_the_same_way(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    request = LaunchRequest(
        gpu_type="H100",
        name="work",
        env={"A_TOKEN": SECRET_VALUE},
        ssh_public_key="ssh-ed25519 AAAA suite",
        startup_script=SECRET_SCRIPT,
        min_cuda_version="12.8",
    )
    call(kind, backend, responder, "launch_instance", request)
    sent = backend.created(responder)
    assert sent["env"] == {
        "A_TOKEN": SECRET_VALUE,
        "PUBLIC_KEY": "ssh-ed25519 AAAA suite",
        "SSH_PUBLIC_KEY": "ssh-ed25519 AAAA suite",
    }
    assert sent["start"] == M.start_command(SECRET_SCRIPT)  # one start command for both
    assert base64.b64encode(SECRET_SCRIPT.encode()).decode() in sent["start"]
    assert sent["cuda"] == "12.8"


def test_the_default_cuda_floor(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    call(kind, backend, responder, "launch_instance", ON_DEMAND)
    assert backend.created(responder)["cuda"] == "12.4"
    assert backend.created(responder)["start"] is None  # no script: the image's own start


def test_a_data_center_region_is_sent_as_is(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    request = LaunchRequest(gpu_type="H100", name="dc", region="US-TX-3")
    instance = call(kind, backend, responder, "launch_instance", request)
    assert backend.created(responder)["placement"] in ("US-TX-3", ["US-TX-3"])
    assert instance.region == "US-TX-3"


@pytest.mark.parametrize("name", ["PUBLIC_KEY", "SSH_PUBLIC_KEY"])
def test_a_key_given_twice_is_refused_before_any_request(
    kind: str, backend: Backend, name: str
) -> None:
    responder = backend.responder()
    request = LaunchRequest(
        gpu_type="H100", env={name: "ssh-rsa A"}, ssh_public_key="ssh-ed25519 B"
    )
    with pytest.raises(InvalidRequestError):
        call(kind, backend, responder, "launch_instance", request)
    assert responder.requests == []


def test_a_script_too_long_is_refused_without_echoing_it(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    script = "echo " + "x" * 120_000 + " " + SECRET_VALUE
    with pytest.raises(InvalidRequestError) as info:
        call(
            kind,
            backend,
            responder,
            "launch_instance",
            LaunchRequest(gpu_type="H100", startup_script=script),
        )
    assert responder.requests == []
    assert SECRET_VALUE not in str(info.value) and "xxxx" not in str(info.value)


def test_ssh_key_names_and_file_systems_are_refused(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    for request, error in (
        (LaunchRequest(gpu_type="H100", ssh_key_names=["laptop"]), InvalidRequestError),
        (LaunchRequest(gpu_type="H100", file_systems=["data"]), UnsupportedFeatureError),
    ):
        with pytest.raises(error):
            call(kind, backend, responder, "launch_instance", request)
    assert responder.requests == []


def test_secrets_stay_out_of_logs(
    kind: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    request = LaunchRequest(
        gpu_type="H100", name="secret", env={"A_TOKEN": SECRET_VALUE}, startup_script=SECRET_SCRIPT
    )
    responder = backend.responder(launch=[G.bad_gateway()])
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        call(kind, backend, responder, "launch_instance", request)
    encoded = base64.b64encode(SECRET_SCRIPT.encode()).decode()
    for secret in (SECRET_VALUE, "HF_TOKEN", encoded, KEY):
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert secret not in caplog.text


# -- offers and pricing ------------------------------------------------------------------------


def test_offers_and_pricing(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    offers = call(kind, backend, responder, "list_available_gpus", GPUFilters(gpu_types=["H100"]))
    assert offers and {o.gpu_type for o in offers} == {"H100"}
    prices = [o.price_per_gpu for o in offers]
    assert prices == sorted(prices) and all(p and p > 0 for p in prices)
    assert all(o.available and o.price_source for o in offers)
    assert any(not o.spot and o.price_per_gpu == 2.69 for o in offers)
    assert any(o.spot for o in offers) is backend.spot
    pricing = call(kind, backend, responder, "get_normalized_pricing", "H100")
    assert pricing.on_demand_per_gpu_hour == 2.69
    assert (pricing.spot_per_gpu_hour is not None) is backend.spot


def test_out_of_stock_offers_are_listed_only_on_request(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    wanted = GPUFilters(gpu_types=["RTX4090"], available_only=False)
    every = call(kind, backend, responder, "list_available_gpus", wanted)
    assert every and not any(o.available for o in every)
    available = GPUFilters(gpu_types=["RTX4090"])
    assert call(kind, backend, responder, "list_available_gpus", available) == []


# -- errors ------------------------------------------------------------------------------------


def test_a_revoked_key_is_an_authentication_error(kind: str, backend: Backend) -> None:
    responder = backend.responder()
    with pytest.raises(AuthenticationError) as info:
        call(kind, backend, responder, "list_instances", api_key=G.REVOKED_KEY)
    assert info.value.status_code == 401 and not info.value.is_retryable
    assert G.REVOKED_KEY not in str(info.value)


def test_a_429_is_waited_out_then_retried(kind: str, backend: Backend) -> None:
    responder = backend.responder(list=[backend.rate_limited("2")])
    time = FakeTime()
    pods = call(kind, backend, responder, "list_instances", time=time)
    assert pods and backend.count(responder, "list") == 2
    assert 2.0 in time.sleeps


def test_a_day_long_retry_after_is_raised_not_slept(kind: str, backend: Backend) -> None:
    responder = backend.responder(list=[backend.rate_limited("86400")])
    time = FakeTime()
    with pytest.raises(RateLimitError) as info:
        call(kind, backend, responder, "list_instances", time=time)
    assert info.value.retry_after == 86400 and max(time.sleeps, default=0) < 300


def test_no_capacity_is_a_refusal(kind: str, backend: Backend) -> None:
    # No stock where asked: refused (RunPod's null pod, or the catalog before any create).
    responder = backend.responder()
    request = LaunchRequest(gpu_type="RTX4090", gpu_count=2, name="suite", region="EU-RO-1")
    with pytest.raises(CapacityError) as info:
        call(kind, backend, responder, "launch_instance", request)
    assert not info.value.maybe_submitted and NEW_ID not in responder.pods


def test_a_capacity_answer_to_the_create_is_a_refusal(kind: str, backend: Backend) -> None:
    responder = backend.responder(launch=[backend.capacity()])
    with pytest.raises(CapacityError) as info:
        call(kind, backend, responder, "launch_instance", ON_DEMAND)
    assert not info.value.maybe_submitted and info.value.instance_id is None
    assert backend.count(responder, "launch") == 1


def test_billing_refusal(kind: str, backend: Backend) -> None:
    responder = backend.responder(launch=[backend.billing()])
    with pytest.raises(QuotaExceededError) as info:
        call(kind, backend, responder, "launch_instance", ON_DEMAND)
    assert not info.value.maybe_submitted and not info.value.is_retryable


def test_not_found(kind: str, backend: Backend) -> None:
    with pytest.raises(InstanceNotFoundError):
        call(kind, backend, backend.responder(), "get_instance_status", G.ID_MISSING)


def test_a_gateway_page_is_retried(kind: str, backend: Backend) -> None:
    responder = backend.responder(get=[G.bad_gateway()])
    status = call(kind, backend, responder, "get_instance_status", G.ID_READY)
    assert status.ready and backend.count(responder, "get") == 2


# -- money invariants ------------------------------------------------------------------------


def _after_the_create(
    backend: Backend, failure: Callable[[], BaseException]
) -> tuple[Any, Callable[[httpx.Request], httpx.Response]]:
    """A responder that creates the pod, then fails instead of answering."""
    responder = backend.responder()

    def handler(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = responder(request)
        if backend.operation(request) == "launch":
            raise failure()
        return answer

    return responder, handler


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (lambda: httpx.ReadTimeout("timed out after the pod was made"), ProviderTimeoutError),
        (lambda: httpx.RemoteProtocolError("connection reset"), ProviderError),
    ],
    ids=["read-timeout", "reset"],
)
def test_a_launch_that_may_have_arrived_is_never_retried(
    kind: str, backend: Backend, failure: Callable[[], BaseException], expected: type[Exception]
) -> None:
    responder, handler = _after_the_create(backend, failure)
    with pytest.raises(expected) as info:
        call(kind, backend, handler, "launch_instance", ON_DEMAND, max_retries=3)
    assert isinstance(info.value, ProviderError)
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert backend.count(responder, "launch") == 1  # never replayed
    assert NEW_ID in responder.pods  # it really exists


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc.__cause__ is not None:
        exc = exc.__cause__
        chain.append(exc)
    return chain


def test_a_foreign_exception_after_the_create_is_never_retried(kind: str, backend: Backend) -> None:
    # A bug in a custom transport or hook: our ProviderConnectionError on both wires (gql
    # wraps it, the OpenAPI wire classifies it the same way), the bug chained as its cause.
    responder, handler = _after_the_create(backend, lambda: RuntimeError("hook bug"))
    with pytest.raises(ProviderConnectionError) as info:
        call(kind, backend, handler, "launch_instance", ON_DEMAND, max_retries=3)
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert any(isinstance(c, RuntimeError) for c in _causes(info.value))
    assert backend.count(responder, "launch") == 1 and NEW_ID in responder.pods


def test_a_5xx_to_the_create_is_maybe_submitted(kind: str, backend: Backend) -> None:
    responder = backend.responder(launch=[G.bad_gateway()])
    with pytest.raises(ProviderServerError) as info:
        call(kind, backend, responder, "launch_instance", ON_DEMAND, max_retries=3)
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert backend.count(responder, "launch") == 1


def test_a_create_is_replayed_only_when_it_never_left(kind: str, backend: Backend) -> None:
    refused = httpx.ConnectError("connection refused")
    responder = backend.responder(launch=[refused, backend.rate_limited("1")])
    instance = call(kind, backend, responder, "launch_instance", ON_DEMAND, max_retries=3)
    assert instance.instance_id == NEW_ID
    assert backend.count(responder, "launch") == 3 and len(responder.pods) >= 1


def _created_answer(
    backend: Backend, operation: str, change: Callable[[dict[str, Any]], None]
) -> Any:
    """A responder that makes the pod, then answers its create with ``change`` applied."""
    responder = backend.responder()

    def handler(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = responder(request)
        if backend.operation(request) != operation:
            return answer
        body = json.loads(answer.content)
        field = {"launch": "podFindAndDeployOnDemand", "spot": "podRentInterruptable"}
        change(body["data"][field[operation]] if backend.api == "graphql" else body)
        return httpx.Response(answer.status_code, json=body, headers=answer.headers)

    return responder, handler


@pytest.mark.parametrize("spot", [False, True], ids=["on-demand", "spot"])
def test_a_create_answer_we_cannot_read_still_names_the_pod(
    kind: str, backend: Backend, spot: bool
) -> None:
    # The pod was made and its id is in the answer; the rest of the answer is off schema.
    # Both backends read the id from the raw answer first (REST spec D6; GraphQL before its
    # result model): the pod comes back pending with its id, as a failed read-back does.
    if spot and not backend.spot:
        pytest.skip("REST v2 has no spot pods")
    operation = "spot" if spot else "launch"

    def off_schema(pod: dict[str, Any]) -> None:
        pod["costPerHr" if backend.api == "graphql" else "cost"] = "a lot"

    responder, handler = _created_answer(backend, operation, off_schema)
    request = LaunchRequest(gpu_type="H100", name="suite", spot=spot, region="US-TX-3")
    instance = call(kind, backend, handler, "launch_instance", request, max_retries=3)
    assert (instance.instance_id, instance.state) == (NEW_ID, InstanceState.PENDING)
    assert (instance.name, instance.gpu_type, instance.gpu_count) == ("suite", "H100", 1)
    assert (instance.region, instance.spot) == ("US-TX-3", spot)
    assert backend.count(responder, operation) == 1 and NEW_ID in responder.pods


def test_a_create_answer_without_an_id_is_maybe_submitted(kind: str, backend: Backend) -> None:
    # No id to read: the error says the launch may have been accepted, and names nothing.
    def no_id(pod: dict[str, Any]) -> None:
        pod["id"] = None

    responder, handler = _created_answer(backend, "launch", no_id)
    with pytest.raises(ProviderError) as info:
        call(kind, backend, handler, "launch_instance", ON_DEMAND, max_retries=3)
    assert (info.value.maybe_submitted, info.value.is_retryable) == (True, False)
    assert info.value.instance_id is None
    assert backend.count(responder, "launch") == 1


def test_an_interrupt_after_the_create_warns(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    responder, handler = _after_the_create(backend, KeyboardInterrupt)
    client = create_provider(
        "runpod", api=backend.api, api_key=KEY, transport=httpx.MockTransport(handler)
    )
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        with FakeTime().attach_sync(client) as attached, pytest.raises(KeyboardInterrupt):
            attached.launch_instance(ON_DEMAND)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "after the launch may have reached RunPod" in record.getMessage()
    assert record.getMessage().startswith("launch interrupted")  # the create, not the pricing
    assert record.maybe_submitted is True  # type: ignore[attr-defined]
    assert record.operation == "launch"  # type: ignore[attr-defined]
    assert NEW_ID in responder.pods


def test_cancelling_an_async_launch_in_flight_warns(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    responder = backend.responder()

    async def run() -> None:
        arrived, never = asyncio.Event(), asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            answer: httpx.Response = responder(request)
            if backend.operation(request) == "launch":
                arrived.set()  # the pod exists; the answer never comes back
                await never.wait()
            return answer

        client = create_async_provider(
            "runpod", api=backend.api, api_key=KEY, transport=httpx.MockTransport(handler)
        )
        async with FakeTime().attach_async(client) as attached:
            task = asyncio.create_task(attached.launch_instance(ON_DEMAND))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        asyncio.run(run())
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "after the launch may have reached RunPod" in record.getMessage()
    assert record.getMessage().startswith("launch interrupted")  # the create, not the pricing
    assert record.maybe_submitted is True  # type: ignore[attr-defined]
    assert record.operation == "launch"  # type: ignore[attr-defined]
    assert NEW_ID in responder.pods


def test_secrets_stay_out_of_errors_and_reprs(kind: str, backend: Backend) -> None:
    secret_env = "s3cr3t-value-never-shown"
    request = LaunchRequest(gpu_type="H100", name="suite", env={"TOKEN": secret_env})
    responder = backend.responder(launch=[G.bad_gateway()])
    with pytest.raises(ProviderError) as info:
        call(kind, backend, responder, "launch_instance", request)
    text = f"{info.value} {info.value!r}"
    assert secret_env not in text and KEY not in text
    assert KEY not in repr(create_provider("runpod", api=backend.api, api_key=KEY))
