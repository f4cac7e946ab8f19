"""Lambda mapping and classification tables, local validation, and the resilience rules.

Everything runs offline against ``documented.DocumentedLambda`` (or a handler built for the
test) through ``httpx.MockTransport``; time is a fake clock that moves only when the client
sleeps, so nothing really waits. Tests that drive a client run with the sync and the async
client (``mode``) and must behave the same.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import httpx
import pydantic
import pytest

from gpu_providers import GPUFilters, LaunchRequest, create_async_provider, create_provider
from gpu_providers._core import BreakerSpec
from gpu_providers.errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    CircuitOpenError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from gpu_providers.lambda_cloud import _mapping as M
from gpu_providers.lambda_cloud._generated.models import Instance, InstanceTypes
from gpu_providers.types import InstanceState, ProviderFeature
from tests.providers.timekeeping import FakeClock, attach

from . import documented as D
from .reference import vendor_error_codes

KEY = "SENTINEL-lambda-unit-key-41c7"
Handler = Callable[[httpx.Request], httpx.Response]


# -- error classification -------------------------------------------------------------------

# (status, code, operation) -> class. Codes and statuses as the vendor spec pins them
# (FACTS.md "Error codes"); the operation matters where the same code means two things.
CLASSIFICATION: list[tuple[int, str, str, type[ProviderError]]] = [
    (401, "global/invalid-api-key", "list_instances", AuthenticationError),
    (403, "global/account-inactive", "list_instances", AuthenticationError),
    (403, "global/invalid-address", "launch", BillingError),
    (400, "global/invalid-parameters", "add_ssh_key", InvalidRequestError),
    (404, "global/object-does-not-exist", "get_instance", InstanceNotFoundError),
    (404, "global/object-does-not-exist", "terminate", InstanceNotFoundError),
    # on launch the code names a missing SSH key / instance type / file system
    (404, "global/object-does-not-exist", "launch", InvalidRequestError),
    (400, "global/object-does-not-exist", "launch", InvalidRequestError),
    (400, "instance-operations/launch/insufficient-capacity", "launch", CapacityError),
    (400, "instance-operations/launch/file-system-in-wrong-region", "launch", InvalidRequestError),
    (400, "global/quota-exceeded", "launch", QuotaExceededError),
    (400, "global/duplicate", "add_ssh_key", InvalidRequestError),
    (400, "filesystems/filesystem-in-use", "delete_filesystem", InvalidRequestError),
    (400, "firewall-rulesets/firewall-ruleset-in-use", "delete_ruleset", InvalidRequestError),
    (409, "global/internal-error", "update_ruleset", ProviderServerError),
    # upstream-provider errors: "provider/" prefix, whatever the status
    (503, "provider/internal-unavailable", "list_instance_types", ProviderServerError),
    (400, "provider/internal-unavailable", "launch", ProviderServerError),
    # codes we do not know fall back to the HTTP status
    (400, "global/something-new", "launch", InvalidRequestError),
    (401, "global/something-new", "launch", AuthenticationError),
    (403, "global/something-new", "launch", AuthenticationError),
    # Only the documented not-found code proves absence; an unknown code with 404 does not.
    (404, "global/something-new", "get_instance", UnexpectedResponseError),
    (429, "global/something-new", "list_instances", RateLimitError),
    (500, "global/something-new", "list_instances", ProviderServerError),
    (502, "global/something-new", "list_instances", ProviderServerError),
]


@pytest.mark.parametrize(
    ("status", "code", "operation", "expected"),
    CLASSIFICATION,
    ids=[f"{s}-{c}-{o}" for s, c, o, _ in CLASSIFICATION],
)
def test_error_code_classification(
    status: int, code: str, operation: str, expected: type[ProviderError]
) -> None:
    body = D.error(code, "What happened.", "What to do.")
    error = M.classify(status, body, operation)
    assert type(error) is expected
    assert (error.status_code, error.code, error.provider) == (status, code, "lambda")
    assert "What happened." in error.message and "What to do." in error.message
    assert error.body == body


def test_every_documented_error_code_is_in_the_table() -> None:
    tabled = {code for _, code, _, _ in CLASSIFICATION}
    documented = set(vendor_error_codes().values())
    assert documented - tabled == set()
    assert set(M.ERROR_CODES) - tabled == set(), "a code the client knows is not tested"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, None, ProviderServerError),
        (502, "<html>Bad gateway</html>", ProviderServerError),
        (404, {"error": "not an object"}, UnexpectedResponseError),  # no proof of absence
        (400, {"error": {"code": 5, "message": None}}, InvalidRequestError),
        (401, {"unexpected": True}, AuthenticationError),
        (429, [], RateLimitError),
    ],
)
def test_classification_without_a_usable_error_body(
    status: int, body: Any, expected: type[ProviderError]
) -> None:
    error = M.classify(status, body, "list_instances")
    assert type(error) is expected
    assert error.code is None
    assert f"HTTP {status}" in error.message


def test_retryable_classes() -> None:
    assert M.classify(503, D.error("provider/internal-unavailable", "x"), "op").is_retryable
    assert M.classify(429, None, "op").is_retryable
    for status, code in [(400, "instance-operations/launch/insufficient-capacity"), (401, "x")]:
        assert not M.classify(status, D.error(code, "x"), "launch").is_retryable


# -- instance-type names, states, prices ----------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("gpu_1x_a10", ("A10", 1)),
        ("gpu_1x_a100", ("A100", 1)),
        ("gpu_1x_a100_sxm4", ("A100", 1)),
        ("gpu_8x_a100_80gb_sxm4", ("A100-80GB", 8)),
        ("gpu_2x_a100_80gb", ("A100-80GB", 2)),
        ("gpu_1x_h100_pcie", ("H100", 1)),
        ("gpu_8x_h100_sxm5", ("H100", 8)),
        ("gpu_8x_h100_sxm5gdr", ("H100", 8)),
        ("gpu_1x_gh200", ("GH200", 1)),
        ("gpu_8x_b200_sxm6", ("B200", 8)),
        ("gpu_4x_a6000", ("A6000", 4)),
        ("gpu_1x_rtx6000", ("RTX6000", 1)),
        ("gpu_8x_v100", ("V100", 8)),
        ("gpu_1x_a10g", None),  # AWS's A10G is not Lambda's a10
        ("gpu_1x_a1000", None),
        ("gpu_1x_tpu9", None),
        ("cpu_4x_general", None),
        ("gpu_x_a10", None),
        ("", None),
    ],
)
def test_instance_type_names(type_name: str, expected: tuple[str, int] | None) -> None:
    found = M.gpu_of_type(type_name)
    assert (None if found is None else (found[0].name, found[1])) == expected


def test_instance_type_with_zero_gpus_is_not_a_gpu_offer() -> None:
    assert M.gpu_of_type("gpu_0x_a10") is None


STATES = [
    ("booting", InstanceState.PENDING),
    ("active", InstanceState.RUNNING),
    ("unhealthy", InstanceState.RUNNING),
    ("terminating", InstanceState.TERMINATING),
    ("terminated", InstanceState.TERMINATED),
    ("preempted", InstanceState.PREEMPTED),
    ("hibernating", InstanceState.UNKNOWN),  # a status added after 1.8.3 is tolerated
]


def test_state_table_covers_the_vendor_enum() -> None:
    from .reference import vendor_spec

    documented = set(vendor_spec()["components"]["schemas"]["InstanceStatus"]["enum"])
    assert documented == set(M.STATES)
    assert documented <= {name for name, _ in STATES}


@pytest.mark.parametrize(("status", "state"), STATES)
def test_instance_states(status: str, state: InstanceState) -> None:
    ip = None if status == "booting" else "203.0.113.5"
    payload = D.instance(
        D.ID_ACTIVE, status=status, type_name="gpu_1x_a10", region_name="us-east-1", ip=ip
    )
    parsed = Instance.from_dict(payload)
    status_info = M.status_from_api(parsed)
    assert (status_info.state, status_info.provider_state) == (state, status)
    assert status_info.ready is (status == "active")
    assert status_info.public_ip == ip
    assert M.instance_from_api(parsed).state is state


def test_instance_mapping_of_an_unknown_region_and_tags() -> None:
    payload = D.instance(
        D.ID_ACTIVE,
        status="active",
        type_name="gpu_8x_a100_80gb_sxm4",
        region_name=D.UNKNOWN_REGION,
        name="n",
        ip="203.0.113.9",
        tags={"team": "ml"},
    )
    mapped = M.instance_from_api(Instance.from_dict(payload))
    assert mapped.region == D.UNKNOWN_REGION
    assert (mapped.gpu_type, mapped.gpu_count, mapped.hourly_price) == ("A100-80GB", 8, 14.32)
    assert mapped.labels == {"team": "ml"}
    assert (mapped.public_ip, mapped.ssh_port) == ("203.0.113.9", 22)


def _offers(types: dict[str, tuple[int, list[str]]]) -> dict[tuple[str, str | None], Any]:
    data = {
        name: {
            "instance_type": D.instance_type(name, name, name, cents, 8, 64, 512, _gpu_count(name)),
            "regions_with_capacity_available": [D.region(r) for r in regions],
        }
        for name, (cents, regions) in types.items()
    }
    parsed = InstanceTypes.from_dict(data)
    offers = M.offers_from_types(parsed.additional_properties.values())
    return {(o.offer_id, o.region): o for o in offers}


def _gpu_count(name: str) -> int:
    found = M.gpu_of_type(name)
    return found[1] if found else 0


def test_prices_per_gpu() -> None:
    offers = _offers(
        {
            "gpu_8x_a100_80gb_sxm4": (1432, ["us-west-2"]),
            "gpu_2x_a100": (259, ["us-east-1"]),
            "gpu_8x_h100_sxm5": (1999, []),
            "gpu_1x_a10": (75, ["us-east-1", D.UNKNOWN_REGION]),
            "cpu_4x_general": (9, ["us-south-1"]),
        }
    )
    priced = {k: (o.hourly_price, o.price_per_gpu, o.available) for k, o in offers.items()}
    assert priced == {
        ("gpu_8x_a100_80gb_sxm4", "us-west-2"): (14.32, 1.79, True),
        ("gpu_2x_a100", "us-east-1"): (2.59, 1.295, True),
        # no capacity: listed, unavailable; 19.99 / 8 rounded to 4 places
        ("gpu_8x_h100_sxm5", None): (19.99, pytest.approx(2.49875, abs=5e-5), False),
        ("gpu_1x_a10", "us-east-1"): (0.75, 0.75, True),
        ("gpu_1x_a10", D.UNKNOWN_REGION): (0.75, 0.75, True),
    }  # the CPU type is not a GPU offer


# -- the client, sync and async -------------------------------------------------------------


class Driver:
    """One Lambda client (sync or async) over a handler, with a fake clock."""

    def __init__(
        self,
        mode: str,
        handler: Handler,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        self.mode = mode
        self.clock = FakeClock()
        options.setdefault("api_key", KEY)
        transport = httpx.MockTransport(handler)
        breaker = BreakerSpec(failure_threshold, recovery_timeout)
        if mode == "sync":
            client: Any = create_provider("lambda", transport=transport, **options)
            self.client: Any = attach(client, self.clock, self.clock.sleep, breaker)
        else:
            client = create_async_provider("lambda", transport=transport, **options)
            self.client = attach(client, self.clock, self.clock.asleep, breaker)

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        if self.mode == "async":
            result = await result
        return result

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.mode == "sync":
            self.client.close()
        else:
            await self.client.aclose()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def refuse(request: httpx.Request) -> httpx.Response:
    """A handler for calls that must be rejected before any request."""
    pytest.fail(f"unexpected request {request.method} {request.url.path}")


def launch_request(**overrides: Any) -> LaunchRequest:
    fields: dict[str, Any] = {"gpu_type": "A10", "ssh_key_names": [D.SSH_KEY_NAME]}
    fields.update(overrides)
    return LaunchRequest(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"gpu_type": "Z999"},
        {"gpu_type": ""},
        {"gpu_count": 0},
        {"gpu_count": -1},
        {"gpu_count": 65},
        {"image": ""},
        {"image": "   "},
        {"bid_price": 1.0},  # a bid without spot
        {"name": ""},
    ],
)
def test_launch_request_rejects_bad_values(fields: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        launch_request(**fields)


def test_filters_reject_unknown_gpu_types() -> None:
    with pytest.raises(pydantic.ValidationError):
        GPUFilters(gpu_types=["Z999"])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "args", "error"),
    [
        ("launch_instance", (launch_request(spot=True),), UnsupportedFeatureError),
        ("launch_instance", (launch_request(spot=True, bid_price=0.5),), UnsupportedFeatureError),
        ("launch_instance", (launch_request(disk_gb=500),), UnsupportedFeatureError),
        ("launch_instance", (launch_request(ssh_key_names=[]),), InvalidRequestError),
        ("launch_instance", (launch_request(ssh_key_names=["a", "b"]),), InvalidRequestError),
        (
            "launch_instance",
            (launch_request(ssh_key_names=[], ssh_public_key=D.PUBLIC_KEY),),
            InvalidRequestError,
        ),
        ("get_normalized_pricing", ("Z999",), InvalidRequestError),
        ("get_instance_status", ("",), InvalidRequestError),
        ("get_instance_status", ("   ",), InvalidRequestError),
        ("terminate_instance", ("",), InvalidRequestError),
        ("add_ssh_key", ("", D.PUBLIC_KEY), InvalidRequestError),
        ("add_ssh_key", ("name", " "), InvalidRequestError),
    ],
)
async def test_bad_inputs_are_rejected_before_any_request(
    mode: str, method: str, args: tuple[Any, ...], error: type[ProviderError]
) -> None:
    async with Driver(mode, refuse) as call:
        with pytest.raises(error):
            await call(method, *args)


def test_translations_reject_locally() -> None:
    client = create_provider("lambda", api_key=KEY, transport=httpx.MockTransport(refuse))
    assert client.translate_gpu_type("a100-80gb") == "a100_80gb"
    assert client.translate_gpu_type("A10") == "a10"
    with pytest.raises(InvalidRequestError, match="unknown GPU type"):
        client.translate_gpu_type("Z999")
    with pytest.raises(InvalidRequestError, match="does not offer RTX4090"):
        client.translate_gpu_type("RTX4090")
    with pytest.raises(InvalidRequestError):
        client.translate_region(" ")
    assert client.translate_region("us-east") == "us-east-1"
    assert client.translate_region(D.UNKNOWN_REGION) == D.UNKNOWN_REGION
    assert not client.supports_feature(ProviderFeature.SPOT_INSTANCES)
    assert not client.supports_feature(ProviderFeature.STOP_START)
    limits = client.get_rate_limits()
    assert (limits.requests_per_second, limits.launch_min_interval_seconds) == (1.0, 12.0)


@pytest.mark.anyio
async def test_launch_of_a_gpu_lambda_never_offers_is_rejected_locally(mode: str) -> None:
    async with Driver(mode, refuse) as call:
        with pytest.raises(InvalidRequestError):
            await call("launch_instance", launch_request(gpu_type="RTX4090"))


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["restart_instance", "delete_ssh_key"])
async def test_empty_ids_are_rejected_for_restart_and_key_delete(mode: str, method: str) -> None:
    async with Driver(mode, refuse) as call:
        with pytest.raises(InvalidRequestError):
            await call(method, "")


def with_launch(answer: Handler) -> tuple[D.DocumentedLambda, Handler]:
    """A documented account whose launch endpoint answers with ``answer``."""
    account = D.DocumentedLambda()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/instance-operations/launch"):
            account.requests.append(request)
            return answer(request)
        return account(request)

    return account, handler


def _read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out reading the answer", request=request)


def _status(code: int) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, json=D.error("provider/internal-unavailable", "x"))

    return answer


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_read_timeout, ProviderTimeoutError),
        (_status(500), ProviderServerError),
        (_status(502), ProviderServerError),
        (_status(504), ProviderServerError),
        (lambda r: httpx.Response(200, json={"data": {}}), UnexpectedResponseError),
    ],
    ids=["read-timeout", "500", "502", "504", "malformed-200"],
)
async def test_launch_is_not_replayed_once_it_may_have_arrived(
    mode: str, answer: Handler, error: type[ProviderError]
) -> None:
    account, handler = with_launch(answer)
    async with Driver(mode, handler, max_retries=3) as call:
        with pytest.raises(error) as caught:
            await call("launch_instance", launch_request())
    assert account.count("POST", "/instance-operations/launch") == 1
    assert caught.value.maybe_submitted is True
    assert caught.value.is_retryable is False
    assert "list instances" in caught.value.message


@pytest.mark.anyio
async def test_launch_answer_without_instance_ids_is_a_typed_error(mode: str) -> None:
    account, handler = with_launch(
        lambda r: httpx.Response(200, json={"data": {"instance_ids": []}})
    )
    async with Driver(mode, handler) as call:
        with pytest.raises(UnexpectedResponseError) as caught:
            await call("launch_instance", launch_request())
    assert caught.value.maybe_submitted is True
    assert account.count("POST", "/instance-operations/launch") == 1


@pytest.mark.anyio
async def test_restart_answer_without_instances_is_a_typed_error(mode: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"restarted_instances": []}})

    async with Driver(mode, handler) as call:
        with pytest.raises(UnexpectedResponseError):
            await call("restart_instance", D.ID_ACTIVE)


@pytest.mark.anyio
async def test_launch_is_retried_after_a_connect_error(mode: str) -> None:
    attempts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return D.DocumentedLambda()(request)

    account, handler = with_launch(answer)
    async with Driver(mode, handler, max_retries=3) as call:
        launched = await call("launch_instance", launch_request())
    assert account.count("POST", "/instance-operations/launch") == 2
    assert launched.instance_id == D.ID_LAUNCHED


@pytest.mark.anyio
async def test_launch_is_retried_after_429_honouring_retry_after(mode: str) -> None:
    arrivals: list[float] = []
    driver_clock: list[FakeClock] = []

    def answer(request: httpx.Request) -> httpx.Response:
        arrivals.append(driver_clock[0]())
        if len(arrivals) == 1:
            return httpx.Response(429, headers={"Retry-After": "3"}, text="Too Many Requests")
        return D.DocumentedLambda()(request)

    account, handler = with_launch(answer)
    async with Driver(mode, handler, max_retries=3) as call:
        driver_clock.append(call.clock)
        launched = await call("launch_instance", launch_request())
        assert launched.instance_id == D.ID_LAUNCHED
        sleeps = call.clock.sleeps
    assert account.count("POST", "/instance-operations/launch") == 2
    assert 3.0 in sleeps  # Retry-After honoured (not a jittered backoff)
    assert arrivals[1] - arrivals[0] == 12.0  # and the launch interval still applies


@pytest.mark.anyio
async def test_rate_limiter_spaces_launches_12_seconds_apart(mode: str) -> None:
    arrivals: dict[str, list[float]] = {"launch": [], "other": []}
    clocks: list[FakeClock] = []
    account = D.DocumentedLambda()

    def handler(request: httpx.Request) -> httpx.Response:
        kind = "launch" if request.url.path.endswith("/launch") else "other"
        arrivals[kind].append(clocks[0]())
        return account(request)

    async with Driver(mode, handler) as call:
        clocks.append(call.clock)
        for _ in range(3):
            await call("launch_instance", launch_request())
    launches = arrivals["launch"]
    assert [b - a for a, b in pairwise(launches)] == [12.0, 12.0]
    assert len(arrivals["other"]) == 6  # instance types + get, per launch


@pytest.mark.anyio
async def test_requests_after_a_delayed_launch_keep_one_per_second(mode: str) -> None:
    arrivals: list[float] = []
    clocks: list[FakeClock] = []
    account = D.DocumentedLambda()

    def handler(request: httpx.Request) -> httpx.Response:
        arrivals.append(clocks[0]())
        return account(request)

    async with Driver(mode, handler) as call:
        clocks.append(call.clock)
        for _ in range(2):
            await call("launch_instance", launch_request())
    assert all(b - a >= 1.0 for a, b in pairwise(arrivals)), arrivals


@pytest.mark.anyio
async def test_terminate_of_a_missing_instance_succeeds(mode: str) -> None:
    account = D.DocumentedLambda()
    async with Driver(mode, account) as call:
        assert await call("terminate_instance", D.ID_MISSING) is None
        assert await call("terminate_instance", D.ID_TERMINATED) is None
        assert await call("terminate_instance", D.ID_ACTIVE) is None
    assert account.count("POST", "/instance-operations/terminate") == 3


@pytest.mark.anyio
async def test_terminate_does_not_swallow_other_errors(mode: str) -> None:
    async with Driver(mode, lambda r: httpx.Response(401, json=D.UNAUTHORIZED)) as call:
        with pytest.raises(AuthenticationError):
            await call("terminate_instance", D.ID_ACTIVE)


@pytest.mark.anyio
async def test_reads_are_retried_after_5xx(mode: str) -> None:
    account = D.DocumentedLambda()
    failures = [503, 502]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            return httpx.Response(failures.pop(0), text="upstream trouble")
        return account(request)

    async with Driver(mode, handler, max_retries=3) as call:
        instances = await call("list_instances")
    assert len(instances) == 4
    assert account.count("GET", "/instances") == 1


@pytest.mark.anyio
async def test_circuit_opens_after_repeated_5xx_and_fails_fast(mode: str) -> None:
    sent: list[httpx.Request] = []
    healthy = D.DocumentedLambda()
    broken = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if broken[0]:
            return httpx.Response(500, json=D.error("global/internal-error", "boom"))
        return healthy(request)

    async with Driver(
        mode, handler, max_retries=0, failure_threshold=3, recovery_timeout=30.0
    ) as call:
        for _ in range(3):
            with pytest.raises(ProviderServerError):
                await call("list_instances")
        with pytest.raises(CircuitOpenError) as caught:
            await call("list_instances")
        assert len(sent) == 3  # failed fast: no request
        assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 30.0
        assert not caught.value.is_retryable
        call.clock.now += 30.0  # recovery timeout over: one trial goes through
        broken[0] = False
        assert len(await call("list_instances")) == 4
    assert len(sent) == 4


@pytest.mark.anyio
async def test_circuit_open_stops_the_retries_of_a_call(mode: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, text="unavailable")

    async with Driver(mode, handler, max_retries=5, failure_threshold=3) as call:
        with pytest.raises(CircuitOpenError):
            await call("list_available_gpus")
    assert len(sent) == 3


@pytest.mark.anyio
async def test_rate_limit_error_carries_retry_after(mode: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")

    async with Driver(mode, handler, max_retries=0) as call:
        with pytest.raises(RateLimitError) as caught:
            await call("list_instances")
    assert (caught.value.status_code, caught.value.retry_after) == (429, 7.0)


@pytest.mark.anyio
async def test_errors_never_contain_the_api_key(mode: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=D.UNAUTHORIZED)

    async with Driver(mode, handler, max_retries=0) as call:
        with pytest.raises(AuthenticationError) as caught:
            await call("list_instances")
        assert KEY not in repr(call.client)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


@pytest.mark.anyio
async def test_launch_reports_a_pending_instance_not_yet_visible(mode: str) -> None:
    account = D.DocumentedLambda()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(D.ID_LAUNCHED):
            account.requests.append(request)
            return httpx.Response(404, json=D.INSTANCE_NOT_FOUND)
        return account(request)

    async with Driver(mode, handler) as call:
        launched = await call("launch_instance", launch_request(name="job-1", labels={"team": "b"}))
    assert (launched.instance_id, launched.state) == (D.ID_LAUNCHED, InstanceState.PENDING)
    assert (launched.gpu_type, launched.region, launched.hourly_price) == ("A10", "us-east-1", 0.75)
    assert (launched.name, launched.labels) == ("job-1", {"team": "b"})
    assert account.count("POST", "/instance-operations/launch") == 1
