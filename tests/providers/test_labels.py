"""Labels on every provider: the neutral rules, the name encoding (round trip), and each
provider's transport (Lambda tags; Paperspace, RunPod on both backends, TensorDock and
Vast.ai in the name), sync and async, against the documented responders."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_providers import LaunchRequest, ProviderFeature
from gpu_providers.errors import InvalidRequestError, MissingCredentialsError
from gpu_providers.labels import (
    MAX_LABELS,
    LabelTransport,
    check_labels,
    decode_name,
    encode_name,
    matches,
    parse_label,
)
from gpu_providers.lambda_cloud import AsyncLambdaProvider, LambdaProvider
from gpu_providers.paperspace import AsyncPaperspaceProvider, PaperspaceProvider
from gpu_providers.runpod import AsyncRunPodProvider, RunPodProvider
from gpu_providers.runpod.rest import AsyncRunPodRestProvider, RunPodRestProvider
from gpu_providers.tensordock import AsyncTensorDockProvider, TensorDockProvider
from gpu_providers.vastai import AsyncVastAIProvider, VastAIProvider
from tests.providers.lambda_cloud import documented as LD
from tests.providers.paperspace import documented as PD
from tests.providers.runpod import documented as RD
from tests.providers.runpod import documented_rest as RRD
from tests.providers.tensordock import documented as TD
from tests.providers.tensordock.scenarios import PUBLIC_KEY as TENSORDOCK_KEY
from tests.providers.vastai import documented as VD

KEY = "SENTINEL-labels-test-key-77aa"
KINDS = ["sync", "async"]

keys = st.from_regex(r"[a-z][a-z0-9-]{1,31}", fullmatch=True)
values = st.from_regex(r"[A-Za-z0-9_-]{0,63}", fullmatch=True)
names = st.none() | st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}", fullmatch=True)


@given(names, st.dictionaries(keys, values, min_size=1, max_size=MAX_LABELS))
def test_the_name_encoding_round_trips(name: str | None, labels: dict[str, str]) -> None:
    if name is not None and ".gpl." in f".{name}.":
        with pytest.raises(ValueError, match="marker"):
            encode_name(name, labels)
        return
    encoded = encode_name(name, labels)
    assert encoded is not None
    assert all(c.isalnum() or c in "._-" for c in encoded)
    assert decode_name(encoded) == (name or None, labels)


def test_the_encoding_is_readable_and_sorted() -> None:
    assert encode_name("demo", {"team": "ml", "owner": "ada"}) == "demo.gpl.owner_ada.team_ml"
    assert encode_name(None, {"job": "a_b"}) == "gpl.job_a_b"
    assert encode_name("demo", {}) == "demo"
    assert decode_name("gpl.job_a_b") == (None, {"job": "a_b"})


@pytest.mark.parametrize(
    "name", ["plain", "v1.2.3", "x.gpl", "x.gpl.noseparator", "x.gpl.Bad_key", None, ""]
)
def test_names_without_labels_come_back_unchanged(name: str | None) -> None:
    assert decode_name(name) == (name, {})


@pytest.mark.parametrize(
    "labels",
    [
        {"T": "x"},
        {"t": "x"},  # one character: Lambda's tag keys need two
        {"team_a": "x"},
        {"k" * 33: "x"},
        {"team": "a.b"},
        {"team": "v" * 64},
        {"team": "with space"},
        {f"key{i}": "v" for i in range(MAX_LABELS + 1)},
    ],
)
def test_labels_breaking_the_rules_are_refused_at_construction(labels: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="label"):
        check_labels(labels)
    with pytest.raises(pydantic.ValidationError):
        LaunchRequest(gpu_type="H100", labels=labels)


def test_parse_and_match() -> None:
    assert parse_label("team=ml") == ("team", "ml")
    assert parse_label("team=") == ("team", "")
    with pytest.raises(ValueError, match="key=value"):
        parse_label("team")
    assert matches({"a": "1", "b": "2"}, {"a": "1"})
    assert not matches({"a": "1"}, {"a": "2"})
    assert matches({}, None)


# -- each provider -------------------------------------------------------------------------

#: Provider -> (sync class, async class, transport). RunPod twice: its labels travel the same
#: way through both backends (GraphQL, and REST v2 selected with ``api="rest"``).
PROVIDERS: dict[str, tuple[type[Any], type[Any], LabelTransport]] = {
    "lambda": (LambdaProvider, AsyncLambdaProvider, LabelTransport.TAGS),
    "paperspace": (PaperspaceProvider, AsyncPaperspaceProvider, LabelTransport.NAME),
    "runpod": (RunPodProvider, AsyncRunPodProvider, LabelTransport.NAME),
    "runpod-rest": (RunPodRestProvider, AsyncRunPodRestProvider, LabelTransport.NAME),
    "tensordock": (TensorDockProvider, AsyncTensorDockProvider, LabelTransport.NAME),
    # Vast.ai's `label` is its instance's one free-text name: no key=value tags.
    "vastai": (VastAIProvider, AsyncVastAIProvider, LabelTransport.NAME),
}
NAME_ENCODED = sorted(p for p, entry in PROVIDERS.items() if entry[2] is LabelTransport.NAME)


def _responder(provider: str) -> Any:
    if provider == "lambda":
        account = LD.DocumentedLambda()
        account.ssh_keys.append({"id": "1" * 32, "name": "laptop", "public_key": "ssh-ed25519 A"})
        return account
    return {
        "paperspace": PD.DocumentedPaperspace,
        "runpod": RD.DocumentedRunPod,
        "runpod-rest": RRD.DocumentedRunPodRest,
        "tensordock": TD.DocumentedTensorDock,
        "vastai": VD.DocumentedVast,
    }[provider]()


def _request(provider: str, **fields: Any) -> LaunchRequest:
    gpus = {"lambda": "A10", "paperspace": "A6000", "tensordock": "RTX4090", "vastai": "RTX4090"}
    gpu = gpus.get(provider, "H100")
    extras: dict[str, dict[str, Any]] = {
        "lambda": {"ssh_key_names": ["laptop"]},
        "tensordock": {"ssh_public_key": TENSORDOCK_KEY},
    }
    extra = extras.get(provider, {})
    return LaunchRequest(gpu_type=gpu, **extra, **fields)


def _client(provider: str, kind: str, **options: Any) -> Any:
    sync_class, async_class, _ = PROVIDERS[provider]
    if provider == "runpod-rest":  # selected the way users select it
        base = RunPodProvider if kind == "sync" else AsyncRunPodProvider
        client = base(api="rest", **options)
        assert isinstance(client, sync_class if kind == "sync" else async_class)
        return client
    return (sync_class if kind == "sync" else async_class)(**options)


def _run(kind: str, provider: str, responder: Any, script: Any) -> Any:
    transport = httpx.MockTransport(responder)
    if kind == "sync":
        with _client(provider, kind, api_key=KEY, transport=transport) as client:
            return script(client)

    async def main() -> Any:
        async with _client(provider, kind, api_key=KEY, transport=transport) as client:
            return await script(client)

    return asyncio.run(main())


def _launch_body(provider: str, responder: Any) -> dict[str, Any]:
    """What the launch sent: ``name`` (and Lambda's ``tags``)."""
    for request in responder.requests:
        body = json.loads(request.content or b"{}")
        if provider == "vastai" and request.method == "PUT" and "/asks/" in request.url.path:
            return {"name": body["label"]}  # Vast.ai's name is its label
        if provider == "runpod" and "Deploy" in body.get("query", ""):
            return dict(body["variables"]["input"])
        if provider == "tensordock" and request.method == "POST":
            return dict(body["data"]["attributes"])
        if request.method == "POST" and request.url.path.endswith(
            ("/instance-operations/launch", "/machines", "/v2/pods")
        ):
            return dict(body)
    raise AssertionError("no launch was sent")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_labels_travel_and_come_back(kind: str, provider: str) -> None:
    responder = _responder(provider)
    labels = {"managed-by": "gpu-providers", "run": "r-42"}
    request = _request(provider, name="job", labels=labels)

    def script(client: Any) -> Any:
        if kind == "sync":
            launched = client.launch_instance(request)
            return launched, client.list_instances(labels={"run": "r-42"}), client.list_instances()

        async def go() -> Any:
            launched = await client.launch_instance(request)
            found = await client.list_instances(labels={"run": "r-42"})
            return launched, found, await client.list_instances()

        return go()

    launched, found, everything = _run(kind, provider, responder, script)
    assert (launched.name, launched.labels) == ("job", labels)
    assert [(i.instance_id, i.name, i.labels) for i in found] == [
        (launched.instance_id, "job", labels)
    ]
    assert len(everything) > len(found)
    body = _launch_body(provider, responder)
    if PROVIDERS[provider][2] is LabelTransport.TAGS:
        assert body["name"] == "job"
        assert {t["key"]: t["value"] for t in body["tags"]} == labels
    else:
        assert body["name"] == "job.gpl.managed-by_gpu-providers.run_r-42"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("provider", NAME_ENCODED)
def test_name_prefix_matches_the_decoded_name(kind: str, provider: str) -> None:
    responder = _responder(provider)
    request = _request(provider, labels={"team": "ml"})  # no name: only the labels

    def script(client: Any) -> Any:
        if kind == "sync":
            client.launch_instance(request)
            return client.list_instances(name_prefix="gpl")

        async def go() -> Any:
            await client.launch_instance(request)
            return await client.list_instances(name_prefix="gpl")

        return go()

    assert _run(kind, provider, responder, script) == []


def test_supports_feature_says_labels_everywhere() -> None:
    for sync_class, async_class, transport in PROVIDERS.values():
        for cls in (sync_class, async_class):
            client = cls(api_key=KEY)
            assert client.supports_feature(ProviderFeature.LABELS)
            assert cls.label_transport is transport


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_bad_label_filter_is_refused_before_sending(provider: str) -> None:
    responder = _responder(provider)
    with pytest.raises(InvalidRequestError, match="label key"):
        _run("sync", provider, responder, lambda c: c.list_instances(labels={"Bad": "x"}))
    assert responder.requests == []


# -- the keyless catalog ---------------------------------------------------------------------


def _keyless_runpod(request: httpx.Request) -> httpx.Response:
    """The documented RunPod, answering gpuTypes without a key (FACTS.md: gpuhunt)."""
    assert "authorization" not in request.headers
    body = json.loads(request.content)
    assert "gpuTypes" in body["query"]
    responder = RD.DocumentedRunPod()
    signed = httpx.Request(
        request.method,
        request.url,
        headers={**request.headers, "Authorization": "Bearer anonymous"},
        content=request.content,
    )
    return responder(signed)


@pytest.mark.parametrize("kind", KINDS)
def test_an_anonymous_runpod_client_reads_the_catalog_and_nothing_else(kind: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return _keyless_runpod(request)

    transport = httpx.MockTransport(handler)
    if kind == "sync":
        with RunPodProvider(anonymous=True, transport=transport) as client:
            offers = client.list_available_gpus()
            with pytest.raises(MissingCredentialsError, match="needs an API key"):
                client.list_instances()
    else:

        async def main() -> Any:
            async with AsyncRunPodProvider(anonymous=True, transport=transport) as client:
                found = await client.list_available_gpus()
                with pytest.raises(MissingCredentialsError, match="needs an API key"):
                    await client.list_instances()
                return found

        offers = asyncio.run(main())
    assert offers and all(o.provider == "runpod" for o in offers)
    assert len(sent) == 1
    assert RunPodProvider(anonymous=True).supports_feature(ProviderFeature.PUBLIC_CATALOG)


def test_providers_without_a_public_catalog_refuse_anonymous_clients() -> None:
    # RunPod's REST v2 wants a key for its catalog too (the document's global security).
    for cls in (LambdaProvider, PaperspaceProvider, TensorDockProvider, RunPodRestProvider):
        with pytest.raises(MissingCredentialsError, match="nothing without an API key"):
            cls(anonymous=True)
        assert not cls(api_key=KEY).supports_feature(ProviderFeature.PUBLIC_CATALOG)
        assert ProviderFeature.PUBLIC_CATALOG not in cls.features
    with pytest.raises(MissingCredentialsError, match="nothing without an API key"):
        RunPodProvider(api="rest", anonymous=True)
