"""TensorDock: factory entry, credentials, GPU names, the price formula, error classes,
static facts and readiness (offline)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpu_providers import (
    ProviderFeature,
    create_async_provider,
    create_provider,
)
from gpu_providers._credentials import TENSORDOCK, resolve_api_key
from gpu_providers.errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InstanceNotReadyError,
    InvalidRequestError,
    MissingCredentialsError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
    WaitTimeoutError,
)
from gpu_providers.factory import _lookup
from gpu_providers.tensordock import AsyncTensorDockProvider, TensorDockProvider
from gpu_providers.tensordock import _mapping as mapping
from tests.providers.timekeeping import FakeClock, attach

from . import documented as D

SENTINEL = "SENTINEL-tensordock-token-41b7"


@pytest.mark.parametrize(
    "alias", ["tensordock", "TensorDock", "tensor-dock", "tensor_dock", "tensordock-v2"]
)
def test_factory_names(alias: str) -> None:
    assert _lookup(alias).name == "tensordock"
    client = create_provider(alias, api_key="k")
    assert isinstance(client, TensorDockProvider)
    client.close()
    assert isinstance(create_async_provider(alias, api_key="k"), AsyncTensorDockProvider)


def test_credentials_come_from_the_argument_then_the_environment(tmp_path: Path) -> None:
    env = {"TENSORDOCK_API_TOKEN": "from-env"}
    assert (
        resolve_api_key("tensordock", "arg", TENSORDOCK, env=env, home=tmp_path).get_secret_value()
        == "arg"
    )
    assert (
        resolve_api_key("tensordock", None, TENSORDOCK, env=env, home=tmp_path).get_secret_value()
        == "from-env"
    )
    with pytest.raises(MissingCredentialsError) as caught:
        resolve_api_key("tensordock", None, TENSORDOCK, env={}, home=tmp_path)
    # TensorDock has no config file of its own: the message names only what exists
    assert "TENSORDOCK_API_TOKEN" in str(caught.value)
    assert "~/" not in str(caught.value)


def test_the_token_stays_out_of_repr_and_errors() -> None:
    client = create_provider(
        "tensordock",
        api_key=SENTINEL,
        transport=D.DocumentedTensorDock(
            inject={("GET", "/instances"): [D.error(401, "Unauthorized", "bad token")]}
        ).transport(),
    )
    assert SENTINEL not in repr(client)
    with pytest.raises(AuthenticationError) as caught:
        client.list_instances()
    assert SENTINEL not in str(caught.value) and SENTINEL not in repr(caught.value)
    client.close()


def test_requests_carry_bearer_and_json_headers() -> None:
    documented = D.DocumentedTensorDock()
    with create_provider("tensordock", api_key=SENTINEL, transport=documented.transport()) as c:
        c.list_instances()
    (request,) = documented.requests
    assert request.headers["authorization"] == f"Bearer {SENTINEL}"
    assert request.headers["accept"] == "application/json"
    assert str(request.url) == "https://dashboard.tensordock.com/api/v2/instances"
    assert SENTINEL not in str(request.url)


@pytest.mark.parametrize(
    ("v0_name", "canonical"),
    [
        ("h100-sxm5-80gb", "H100"),
        ("geforcertx4090-pcie-24gb", "RTX4090"),
        ("a100-pcie-80gb", "A100-80GB"),
        ("a100-pcie-40gb", "A100"),
        ("rtxa6000-pcie-48gb", "A6000"),
        ("V100-SXM2-32GB", "V100-32GB"),
        ("mi300x-oam-192gb", None),
        ("a100-pcie-24gb", None),  # no A100 of that size
        ("h100", None),
        ("", None),
    ],
)
def test_gpu_names(v0_name: str, canonical: str | None) -> None:
    spec = mapping.gpu_of(v0_name)
    assert (spec.name if spec else None) == canonical


def test_every_v0_name_we_send_maps_back_to_its_gpu() -> None:
    for canonical, v0_name in mapping.V0_NAMES.items():
        spec = mapping.gpu_of(v0_name)
        assert spec is not None and spec.name == canonical
    client = create_provider("tensordock", api_key="k")
    assert client.translate_gpu_type("h100") == "h100-sxm5-80gb"
    with pytest.raises(InvalidRequestError):
        client.translate_gpu_type("GH200")
    client.close()


def test_the_price_formula() -> None:
    """FACTS.md: count*price_per_hr + vcpus*per_vcpu_hr + ram_gb*per_gb_ram_hr +
    storage_gb*per_gb_storage_hr."""

    class Unit:
        per_vcpu_hr, per_gb_ram_hr, per_gb_storage_hr = 0.01, 0.005, 0.0001

    config = mapping.config_for(3, storage_gb=500)
    assert config == mapping.Config(12, 48, 500)
    total, parts = mapping.price(3, 0.5, Unit(), config, "test")
    assert parts == {"gpu": 1.5, "vcpu": 0.12, "ram": 0.24, "storage": 0.05}
    assert total == pytest.approx(1.91)
    # a missing unit price: the total is unknown, not a guess
    Unit.per_gb_ram_hr = None  # type: ignore[assignment]
    assert mapping.price(3, 0.5, Unit(), config, "test") == (None, None)
    assert mapping.price(3, None, Unit(), config, "test") == (None, None)


def test_the_configuration_stays_within_the_limits() -> None:
    assert mapping.config_for(8, max_vcpus=20, max_ram_gb=100) == mapping.Config(20, 96, 100)
    assert mapping.config_for(1, max_vcpus=1, max_ram_gb=4) == mapping.Config(2, 8, 100)


def _body(detail: str) -> dict[str, Any]:
    return D.error_body(400, "Bad Request", detail)


@pytest.mark.parametrize(
    ("status", "body", "operation", "expected"),
    [
        (401, _body("Invalid token"), "list_instances", AuthenticationError),
        (403, None, "list_instances", AuthenticationError),
        (429, None, "list_instances", RateLimitError),
        (402, None, "launch", BillingError),
        (400, _body("Insufficient balance"), "launch", BillingError),
        (400, {"error": "Please add credit to your account"}, "launch", BillingError),
        (400, _body("Not enough GPUs available"), "launch", CapacityError),
        (409, {"message": "Hostnode out of stock"}, "launch", CapacityError),
        (400, _body("storage_gb must be at least 100"), "launch", InvalidRequestError),
        (404, _body("Instance not found"), "get_instance", InstanceNotFoundError),
        (404, {"error": "Instance not found"}, "terminate", InstanceNotFoundError),
        (404, {"message": "Not Found"}, "terminate", UnexpectedResponseError),  # a gateway
        (404, _body("Location not found"), "launch", InvalidRequestError),
        (404, None, "get_instance", UnexpectedResponseError),  # no proof: a proxy, a typo
        (404, {"detail": 5}, "terminate", UnexpectedResponseError),
        (400, None, "launch", InvalidRequestError),
        (500, _body("boom"), "get_instance", ProviderServerError),
        (503, None, "launch", ProviderServerError),
    ],
)
def test_error_classes(status: int, body: Any, operation: str, expected: type) -> None:
    error = mapping.classify(status, body, operation)
    assert type(error) is expected
    assert error.status_code == status


def test_static_facts() -> None:
    client = create_provider("tensordock", api_key="k")
    info = client.get_provider_info()
    assert info.api_base_url == "https://dashboard.tensordock.com/api/v2"
    assert any("v0" in note and "not supported" in note for note in info.notes)
    limits = client.get_rate_limits()
    assert limits.requests_per_second == pytest.approx(100 / 60)
    assert limits.documented
    assert "100 requests/minute per organization" in limits.source
    assert client.supports_feature(ProviderFeature.STOP_START)
    assert client.supports_feature(ProviderFeature.SSH_PUBLIC_KEY)
    assert not client.supports_feature(ProviderFeature.SPOT_INSTANCES)
    assert not client.supports_feature(ProviderFeature.INSTANCE_TAGS)
    client.close()


def test_the_rate_budget_belongs_to_the_token() -> None:
    first = create_provider("tensordock", api_key="token-a")
    second = create_async_provider("tensordock", api_key="token-a")
    other = create_provider("tensordock", api_key="token-b")
    assert first._account is second._account  # type: ignore[attr-defined]
    assert first._account is not other._account  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wait_until_ready(mode: str) -> None:
    def run(method: str, *args: Any) -> Any:
        clock = FakeClock()
        transport = httpx.MockTransport(D.DocumentedTensorDock())
        if mode == "sync":
            with attach(
                create_provider("tensordock", api_key="k", transport=transport),
                clock,
                clock.sleep,
            ) as client:
                return getattr(client, method)(*args)

        async def main() -> Any:
            async with attach(
                create_async_provider("tensordock", api_key="k", transport=transport),
                clock,
                clock.asleep,
            ) as client:
                return await getattr(client, method)(*args)

        return asyncio.run(main())

    assert run("wait_until_ready", D.ID_PORTS).ssh_port == 20001
    with pytest.raises(WaitTimeoutError):
        run("wait_until_ready", D.ID_STARTING, 60)
    with pytest.raises(InstanceNotReadyError):
        run("wait_until_ready", D.ID_DISASSOCIATED)
