"""Vast.ai pieces without the wire: credentials, the factory, error bodies, GPU names, the
offer query, and launch input refused before any request."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpu_providers import (
    GPUFilters,
    LaunchRequest,
    ProviderFeature,
    available_providers,
    create_async_provider,
    create_provider,
)
from gpu_providers.errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    MissingCredentialsError,
    ProviderServerError,
    RateLimitError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from gpu_providers.vastai import AsyncVastAIProvider, VastAIProvider
from gpu_providers.vastai import _client as client_module
from gpu_providers.vastai import _mapping as M

from . import documented as D

KEY = "SENTINEL-vastai-unit-key-4f2e"


# -- credentials and the factory -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vastai", "vast", "vast.ai", "vast-ai", "VastAI", " Vast.AI "])
def test_the_factory_knows_vastai_by_its_aliases(name: str) -> None:
    assert isinstance(create_provider(name, api_key=KEY), VastAIProvider)
    assert isinstance(create_async_provider(name, api_key=KEY), AsyncVastAIProvider)
    assert "vastai" in available_providers()


def test_the_key_comes_from_argument_then_env_then_the_cli_file(tmp_path: Path) -> None:
    key_file = tmp_path / ".config" / "vastai" / "vast_api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("from-file-key\n", encoding="utf-8")  # as `vastai set api-key` writes
    env = {"VAST_API_KEY": "from-env-key"}

    def key(**options: Any) -> str:
        client: Any = create_provider("vastai", home=tmp_path, **options)
        return str(client._api_key.get_secret_value())

    assert key(api_key="explicit-key", env=env) == "explicit-key"
    assert key(env=env) == "from-env-key"
    assert key(env={}) == "from-file-key"


def test_an_explicit_empty_key_is_an_error_not_anonymous(tmp_path: Path) -> None:
    with pytest.raises(MissingCredentialsError):
        create_provider("vastai", api_key="  ", env={}, home=tmp_path)


def test_the_key_never_shows(tmp_path: Path) -> None:
    client = create_provider("vastai", api_key=KEY)
    assert KEY not in repr(client) and KEY not in str(client)
    assert "api_key=**********" in repr(client)


def test_a_missing_key_is_an_error_unless_asked_for_anonymous(tmp_path: Path) -> None:
    # As on every provider: no key found is MissingCredentialsError at creation, so a search
    # or an orphan check across providers skips Vast.ai instead of failing on it later.
    with pytest.raises(MissingCredentialsError, match="VAST_API_KEY"):
        create_provider("vastai", env={}, home=tmp_path)
    client = create_provider("vastai", anonymous=True)
    assert client.supports_feature(ProviderFeature.PUBLIC_CATALOG)
    assert client.supports_feature(ProviderFeature.LABELS)


def test_without_a_key_only_offer_search_works_and_sends_no_header(tmp_path: Path) -> None:
    responder = D.DocumentedVast()
    client = create_provider(
        "vastai", anonymous=True, home=tmp_path, transport=httpx.MockTransport(responder)
    )
    assert client.list_available_gpus(GPUFilters(gpu_types=["H100"], spot=False))
    assert "authorization" not in responder.requests[0].headers
    calls: list[Callable[[], object]] = [
        lambda: client.list_instances(),
        lambda: client.get_instance_status(D.ID_RUNNING),
        lambda: client.terminate_instance(D.ID_RUNNING),
        lambda: client.launch_instance(LaunchRequest(gpu_type="H100")),
    ]
    for call in calls:
        with pytest.raises(MissingCredentialsError, match="VAST_API_KEY"):
            call()
    assert len(responder.requests) == 1  # nothing else was sent


def test_with_a_key_every_call_sends_it_as_bearer_only() -> None:
    responder = D.DocumentedVast()
    client = create_provider("vastai", api_key=KEY, transport=httpx.MockTransport(responder))
    client.list_available_gpus()
    client.list_instances()
    client.get_instance_status(D.ID_RUNNING)
    for request in responder.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert KEY not in str(request.url)


def test_static_facts() -> None:
    client = create_provider("vastai", api_key=KEY)
    info = client.get_provider_info()
    assert (info.name, info.display_name, info.api_base_url) == (
        "vastai",
        "Vast.ai",
        "https://console.vast.ai",
    )
    assert client.supports_feature(ProviderFeature.SPOT_INSTANCES)
    assert client.supports_feature(ProviderFeature.STOP_START)
    assert not client.supports_feature(ProviderFeature.INSTANCE_TAGS)
    limits = client.get_rate_limits()
    assert (limits.requests_per_second, limits.launch_min_interval_seconds) == (0.5, 4.5)
    assert "Retry-After" in limits.source
    assert client.translate_gpu_type("RTX4090") == "RTX 4090"
    assert client.translate_gpu_type("a100-80gb") == "A100 SXM4"
    with pytest.raises(InvalidRequestError, match="does not offer"):
        client.translate_gpu_type("GH200")
    assert [client.translate_region(r) for r in ("us-east", "de", "US")] == ["US", "DE", "US"]
    with pytest.raises(InvalidRequestError, match="country codes"):
        client.translate_region("europe")


# -- error bodies ---------------------------------------------------------------------------------

ERRORS: list[tuple[int, Any, str, type[Exception], str | None]] = [
    (401, D.INVALID_KEY, "get_instance", AuthenticationError, "auth_error"),
    (404, D.INVALID_KEY, "search_offers", AuthenticationError, "auth_error"),  # the spec's 404
    (429, "API requests too frequent", "search_offers", RateLimitError, None),
    (429, {"detail": "API requests too frequent endpoint threshold=4.5"}, "launch",
     RateLimitError, None),
    (429, {"success": False, "error": "rate_limit_exceeded", "msg": "too frequent"},
     "terminate", RateLimitError, "rate_limit_exceeded"),
    (404, {"success": False, "error": "invalid_args",
           "msg": "error 404/3603: no_such_ask Instance type by id 1 is not available."},
     "launch", CapacityError, "invalid_args"),
    (410, {"success": False, "error": "no_such_ask", "msg": "no longer available"},
     "launch", CapacityError, "no_such_ask"),
    (400, {"success": False, "error": "invalid_price", "msg": "bad"}, "launch",
     InvalidRequestError, "invalid_price"),
    (400, {"success": False, "error": "no_ssh_key_for_vm", "msg": "x"}, "launch",
     InvalidRequestError, "no_ssh_key_for_vm"),
    (403, {"success": False, "error": "invalid_args", "msg": "Offer 1 is not your own."},
     "launch", InvalidRequestError, "invalid_args"),
    (400, {"error": "invalid_token", "msg": "bad cursor"}, "list_instances",
     InvalidRequestError, "invalid_token"),
    (404, D.NOT_FOUND, "terminate", InstanceNotFoundError, "not_found"),
    (400, D.NO_SUCH_INSTANCE, "terminate", InstanceNotFoundError, "no_such_instance"),
    (402, {"success": False, "error": "insufficient_balance", "msg": "Insufficient credit"},
     "launch", BillingError, "insufficient_balance"),
    (411, {"success": False, "msg": "Insufficient credit"}, "launch", BillingError, None),
    (404, {"detail": "Not Found"}, "terminate", UnexpectedResponseError, None),
    (404, "<html>404</html>", "get_instance", UnexpectedResponseError, None),
    (503, "unavailable", "get_instance", ProviderServerError, None),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "operation", "cls", "code"), ERRORS)
def test_documented_error_bodies_are_classified(
    status: int, body: Any, operation: str, cls: type[Exception], code: str | None
) -> None:
    error = M.classify(status, body, operation)
    assert type(error) is cls
    assert (error.status_code, error.code, error.provider) == (status, code, "vastai")


def test_a_not_found_on_launch_is_not_an_instance_error() -> None:
    error = M.classify(400, {"error": "not_found", "msg": "template"}, "launch")
    assert type(error) is InvalidRequestError


# -- GPUs, offers, the query ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ram", "canonical"),
    [
        ("RTX 4090", 24564, "RTX4090"),
        ("A100 SXM4", 81920, "A100-80GB"),
        ("A100 SXM4", 40960, "A100"),
        ("A100 PCIE", None, None),  # two memory sizes and no gpu_ram: no guess
        ("Tesla V100", 32768, "V100-32GB"),
        ("Tesla V100", 16384, "V100"),
        ("H100 NVL", 95830, "H100"),
        ("Imaginary RTX 9999", 24576, None),
        (None, 1, None),
    ],
)
def test_gpu_names(name: Any, ram: Any, canonical: str | None) -> None:
    spec = M.canonical_gpu(name, ram)
    assert (spec.name if spec else None) == canonical


def test_every_canonical_name_of_the_table_exists() -> None:
    from gpu_providers.gpus import gpu_spec

    for canonical in M.GPU_NAMES:
        assert gpu_spec(canonical).name == canonical


def test_the_query_follows_the_filters() -> None:
    filters = GPUFilters(
        gpu_types=["H100", "RTX4090"],
        min_gpu_count=2,
        max_gpu_count=8,
        min_gpu_memory_gb=24,
        min_reliability=0.98,
    )
    query = M.search_query(filters, spot=True, disk_gb=50, regions=["US"], min_cuda="12.4")
    assert query["gpu_name"] == {"in": ["H100 NVL", "H100 PCIE", "H100 SXM", "RTX 4090"]}
    assert query["num_gpus"] == {"gte": 2, "lte": 8}
    assert query["gpu_ram"] == {"gte": 24000}  # GB -> MB as the vendor CLI
    assert query["reliability"] == {"gte": 0.98}
    assert query["verified"] == {"eq": True}
    assert query["geolocation"] == {"in": ["US"]}
    assert query["cuda_max_good"] == {"gte": 12.4}
    assert (query["type"], query["allocated_storage"], query["disk_space"]) == (
        "bid",
        50,
        {"gte": 50},
    )
    assert "verified" not in M.search_query(GPUFilters(verified_only=False), spot=False, disk_gb=10)


def test_a_gpu_vastai_does_not_have_is_no_request() -> None:
    responder = D.DocumentedVast()
    client = create_provider("vastai", api_key=KEY, transport=httpx.MockTransport(responder))
    assert client.list_available_gpus(GPUFilters(gpu_types=["GH200"])) == []
    assert responder.requests == []


def test_an_offer_without_its_price_parts_has_no_price() -> None:
    item = dict(D.catalog()[0])
    del item["storage_cost"]
    offer = M.offer_from_api(item, spot=False, disk_gb=10)
    assert offer is not None
    # Parts are listed only when they add up to a known hourly price.
    assert (offer.price_breakdown, offer.hourly_price, offer.price_per_gpu) == (None, None, None)
    item = {**D.catalog()[0], "dph_base": "0.35"}  # a string is no price
    offer = M.offer_from_api(item, spot=False, disk_gb=10)
    assert offer is not None and offer.hourly_price is None


def test_storage_from_the_monthly_rate_when_no_total_is_stated() -> None:
    offer = M.offer_from_api(D.catalog()[0], spot=False, disk_gb=72)
    assert offer is not None
    assert offer.price_breakdown == {"compute": 0.35, "storage": pytest.approx(0.15 * 72 / 720)}
    assert offer.hourly_price == pytest.approx(0.35 + 0.015)
    assert offer.hourly_price == sum(offer.price_breakdown.values())


# -- launch input refused before any request ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"ssh_key_names": ["laptop"]}, UnsupportedFeatureError, "registered with the account"),
        ({"ssh_public_key": "ssh-ed25519 AAAA x"}, UnsupportedFeatureError, "registered"),
        # labels travel in the label (its name): a name with the marker cannot carry them
        ({"name": "x.gpl.y", "labels": {"team": "ml"}}, InvalidRequestError, "marker"),
        ({"file_systems": ["data"]}, UnsupportedFeatureError, "file_systems"),
        ({"region": "europe"}, InvalidRequestError, "country codes"),
        ({"gpu_type": "GH200"}, InvalidRequestError, "does not offer"),
        ({"env": {"A": "two\nlines"}}, InvalidRequestError, "one line"),
        ({"startup_script": "".join(  # hex digests: they do not compress away
            f"echo {hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(150))},
         InvalidRequestError, "too long"),
    ],
)  # fmt: skip
def test_launch_input_is_refused_before_any_request(
    fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    responder = D.DocumentedVast()
    client = create_provider("vastai", api_key=KEY, transport=httpx.MockTransport(responder))
    request = LaunchRequest(**{"gpu_type": "RTX4090", **fields})
    with pytest.raises(error, match=match):
        client.launch_instance(request)
    assert responder.requests == []


@pytest.mark.parametrize("instance_id", ["abc", "12a", "", " "])
def test_instance_ids_are_numbers(instance_id: str) -> None:
    responder = D.DocumentedVast()
    client = VastAIProvider(api_key=KEY, transport=httpx.MockTransport(responder))
    for call in (client.get_instance_status, client.terminate_instance, client.stop_instance):
        with pytest.raises(InvalidRequestError):
            call(instance_id)
    with pytest.raises(InvalidRequestError):
        client.label_instance(D.ID_RUNNING, "x" * 1025)
    assert responder.requests == []


def test_a_bid_below_every_minimum_rents_nothing() -> None:
    responder = D.DocumentedVast()
    client = create_provider("vastai", api_key=KEY, transport=httpx.MockTransport(responder))
    request = LaunchRequest(gpu_type="RTX4090", spot=True, bid_price=0.05)
    with pytest.raises(CapacityError, match="at or below your bid"):
        client.launch_instance(request)
    assert responder.count("PUT", f"/api/v0/asks/{D.OFFER_4090}/") == 0


def test_a_spot_launch_without_a_bid_bids_the_minimum_of_the_whole_offer() -> None:
    responder = D.DocumentedVast()
    client = create_provider("vastai", api_key=KEY, transport=httpx.MockTransport(responder))
    client.launch_instance(LaunchRequest(gpu_type="RTX4090", gpu_count=2, spot=True))
    (create,) = [r for r in responder.requests if r.method == "PUT"]
    assert create.url.path == f"/api/v0/asks/{D.OFFER_4090X2}/"
    assert b'"price":0.4' in create.content.replace(b" ", b"")


def test_the_startup_script_round_trips_through_onstart() -> None:
    script = "#!/usr/bin/env python3\nprint('hello')\n"
    command = client_module.onstart_command(script)
    packed = re.search(r"echo (\S+) \|", command)
    assert packed is not None
    assert gzip.decompress(base64.b64decode(packed.group(1))).decode() == script
    assert command == client_module.onstart_command(script)  # reproducible (no gzip mtime)
    plain = re.search(r"echo (\S+) \|", client_module.onstart_command("pip install vllm\n"))
    assert plain is not None
    assert gzip.decompress(base64.b64decode(plain.group(1))).decode() == (
        "#!/bin/bash\npip install vllm\n"
    )


def test_the_async_client_refuses_the_same_input() -> None:
    async def main() -> None:
        responder = D.DocumentedVast()
        async with create_async_provider(
            "vastai", api_key=KEY, transport=httpx.MockTransport(responder)
        ) as client:
            with pytest.raises(UnsupportedFeatureError):
                await client.launch_instance(LaunchRequest(gpu_type="RTX4090", ssh_key_names=["k"]))
            assert responder.requests == []

    asyncio.run(main())


def test_waiting_ends_on_states_that_never_run_again() -> None:
    from gpu_providers.errors import InstanceNotReadyError

    responder = D.DocumentedVast()
    client = create_provider("vastai", api_key=KEY, transport=httpx.MockTransport(responder))
    assert client.wait_until_ready(D.ID_RUNNING, timeout=60).ssh_port == 10101
    for instance_id in (D.ID_EXITED, D.ID_OUTBID):
        with pytest.raises(InstanceNotReadyError) as caught:
            client.wait_until_ready(instance_id, timeout=60)
        assert caught.value.status.state.value in ("failed", "preempted")
    assert responder.count("GET", f"/api/v0/instances/{D.ID_EXITED}/") == 1  # no polling on
