"""Factory, credentials precedence, normalized types and the GPU table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pydantic
import pytest
from pydantic import SecretStr

from gpu_providers import (
    GPUFilters,
    GPUOffer,
    LaunchRequest,
    ProviderEntry,
    available_providers,
    create_async_provider,
    create_provider,
)
from gpu_providers._credentials import LAMBDA, PAPERSPACE, RUNPOD, VASTAI, resolve_api_key
from gpu_providers.errors import MissingCredentialsError, UnsupportedProviderError
from gpu_providers.factory import _lookup
from gpu_providers.gpus import GPU_TABLE, canonical_gpu_name

SENTINEL = "SENTINEL-provider-key-77"


def test_available_providers() -> None:
    assert {"lambda", "paperspace", "runpod"} <= set(available_providers())


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("lambda", "lambda"),
        ("LambdaLabs", "lambda"),
        ("lambda-labs", "lambda"),
        (" paperspace ", "paperspace"),
        ("RunPod", "runpod"),
        ("vast.ai", "vastai"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert _lookup(alias).name == name


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedProviderError, match="known providers: lambda, paperspace"):
        create_provider("coreweave", api_key="x")
    with pytest.raises(ValueError, match="unknown provider"):
        create_provider("")


def test_credentials_precedence(tmp_path: Path) -> None:
    (tmp_path / ".lambda_cloud").mkdir()
    (tmp_path / ".lambda_cloud" / "lambda_keys").write_text("# keys\napi_key = from-file\n")
    env = {"LAMBDA_API_KEY": "from-env"}
    assert (
        resolve_api_key("lambda", "explicit", LAMBDA, env=env, home=tmp_path).get_secret_value()
        == "explicit"
    )
    assert (
        resolve_api_key("lambda", None, LAMBDA, env=env, home=tmp_path).get_secret_value()
        == "from-env"
    )
    assert (
        resolve_api_key("lambda", None, LAMBDA, env={}, home=tmp_path).get_secret_value()
        == "from-file"
    )


def test_vendor_config_files(tmp_path: Path) -> None:
    (tmp_path / ".paperspace").mkdir()
    (tmp_path / ".paperspace" / "config.json").write_text('{"apiKey": "ps-key"}')
    (tmp_path / ".runpod").mkdir()
    (tmp_path / ".runpod" / "config.toml").write_text('[default]\napi_key = "rp-key"\n')
    assert (
        resolve_api_key("paperspace", None, PAPERSPACE, env={}, home=tmp_path).get_secret_value()
        == "ps-key"
    )
    assert (
        resolve_api_key("runpod", None, RUNPOD, env={}, home=tmp_path).get_secret_value()
        == "rp-key"
    )


@pytest.mark.parametrize(
    ("source", "env_var", "file"),
    [
        (LAMBDA, "LAMBDA_API_KEY", "~/.lambda_cloud/lambda_keys"),
        (PAPERSPACE, "PAPERSPACE_API_KEY", "~/.paperspace/config.json"),
        (RUNPOD, "RUNPOD_API_KEY", "~/.runpod/config.toml"),
        (VASTAI, "VAST_API_KEY", "~/.config/vastai/vast_api_key"),
    ],
)
def test_missing_credentials_name_all_three_places(
    source: object, env_var: str, file: str, tmp_path: Path
) -> None:
    with pytest.raises(MissingCredentialsError) as info:
        resolve_api_key("p", None, source, env={}, home=tmp_path)  # type: ignore[arg-type]
    message = str(info.value)
    assert "api_key=" in message
    assert env_var in message
    assert file in message


def test_broken_config_file_is_reported_without_its_content(tmp_path: Path) -> None:
    (tmp_path / ".paperspace").mkdir()
    (tmp_path / ".paperspace" / "config.json").write_text('{"apiKey": "' + SENTINEL)
    with pytest.raises(MissingCredentialsError) as info:
        resolve_api_key("paperspace", None, PAPERSPACE, env={}, home=tmp_path)
    assert SENTINEL not in str(info.value)


def test_explicit_secret_and_empty_key() -> None:
    assert resolve_api_key("x", SecretStr("k"), LAMBDA, env={}).get_secret_value() == "k"
    with pytest.raises(MissingCredentialsError, match="empty"):
        resolve_api_key("x", "  ", LAMBDA, env={})


def test_gpu_table_names_are_unique_and_canonical() -> None:
    names = [spec.name for spec in GPU_TABLE]
    assert len(names) == len(set(names))
    assert canonical_gpu_name("h100") == "H100"
    assert canonical_gpu_name("a100-80g") == "A100-80GB"
    with pytest.raises(ValueError, match="unknown GPU type 'H1000'"):
        canonical_gpu_name("H1000")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gpu_type": "NOPE"},
        {"gpu_type": "H100", "gpu_count": 0},
        {"gpu_type": "H100", "gpu_count": -2},
        {"gpu_type": "H100", "image": "  "},
        {"gpu_type": "H100", "name": ""},
        {"gpu_type": "H100", "bid_price": 0.5},
        {"gpu_type": "H100", "spot": True, "bid_price": -1},
        {"gpu_type": "H100", "disk_gb": 0},
        {"gpu_type": "H100", "colour": "blue"},
    ],
)
def test_bad_launch_requests_are_rejected_on_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        LaunchRequest.model_validate(kwargs)


def _offer(**kw: object) -> GPUOffer:
    base: dict[str, object] = {
        "provider": "p",
        "offer_id": "o",
        "gpu_type": "H100",
        "provider_gpu_type": "h100",
        "gpu_count": 1,
        "price_per_gpu": 2.0,
        "region": "us-east-1",
    }
    return GPUOffer.model_validate({**base, **kw})


def test_filters() -> None:
    filters = GPUFilters(gpu_types=["h100"], max_price_per_gpu=2.5, regions=["us-east-1"])
    assert filters.matches(_offer())
    assert not filters.matches(_offer(price_per_gpu=3.0))
    assert not filters.matches(_offer(price_per_gpu=None))
    assert not filters.matches(_offer(gpu_type="A100"))
    assert not filters.matches(_offer(region="eu-west-1"))
    assert not filters.matches(_offer(available=False))
    assert GPUFilters(available_only=False).matches(_offer(available=False))
    assert not GPUFilters(spot=True).matches(_offer())
    assert not GPUFilters(min_gpu_count=2).matches(_offer())


class FakePoint:
    """An entry point of the ``gpu_providers.providers`` group."""

    def __init__(self, name: str, load: Any) -> None:
        self.name, self.value, self._load = name, f"{name}_plugin:ENTRY", load

    def load(self) -> object:
        return self._load()


def _plugins(monkeypatch: pytest.MonkeyPatch, *points: FakePoint) -> list[str]:
    """Register ``points``; returns the log of which entry points were loaded."""
    from gpu_providers import factory

    loads: list[str] = []

    def entry_points(*, group: str) -> list[FakePoint]:
        assert group == "gpu_providers.providers"
        loads.append(group)
        return list(points)

    monkeypatch.setattr(factory, "entry_points", entry_points)
    return loads


ACME = ProviderEntry(
    name="acme",
    sync_class="gpu_providers.lambda_cloud:LambdaProvider",
    async_class="gpu_providers.lambda_cloud:AsyncLambdaProvider",
    aliases=("acme-gpu",),
)


def _broken() -> object:
    raise ModuleNotFoundError("No module named 'acme_sdk'", name="acme_sdk")


def test_third_party_providers_register_through_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _plugins(monkeypatch, FakePoint("acme", lambda: ACME))
    assert "acme" in available_providers()
    client = create_provider("acme-gpu", api_key="k")
    assert type(client).__name__ == "LambdaProvider"
    client.close()


def test_built_in_providers_resolve_without_loading_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads = _plugins(monkeypatch, FakePoint("broken", _broken))
    create_provider("lambda", api_key="k").close()
    create_async_provider("RunPod", api_key="k")
    assert loads == []


def test_a_broken_plugin_is_logged_and_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _plugins(monkeypatch, FakePoint("broken", _broken), FakePoint("acme", lambda: ACME))
    with caplog.at_level(logging.WARNING, logger="gpu_providers"):
        assert available_providers() == [
            "acme",
            "lambda",
            "paperspace",
            "runpod",
            "tensordock",
            "vastai",
        ]
    assert "'broken'" in caplog.text and "acme_sdk" in caplog.text
    create_provider("acme", api_key="k").close()  # the other plugin still works
    with pytest.raises(UnsupportedProviderError, match="failed to load") as caught:
        create_provider("broken", api_key="k")  # asked for by name: now it fails
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
    with pytest.raises(UnsupportedProviderError, match="known providers: acme, lambda"):
        create_provider("nowhere", api_key="k")


def test_subclasses_of_providers_work() -> None:
    """A user's subclass (defined outside the package) finds the generated client."""
    from gpu_providers.lambda_cloud import LambdaProvider
    from tests.providers.lambda_cloud import documented

    class TeamLambda(LambdaProvider):
        def team_instances(self) -> int:
            return len(self.list_instances())

    TeamLambda.__module__ = "__main__"
    with TeamLambda(api_key="k", transport=documented.transport()) as client:
        assert client.team_instances() == 4


@pytest.mark.parametrize("name", ["paperspace", "runpod", "vastai"])
def test_file_systems_are_refused_where_unsupported(name: str) -> None:
    from gpu_providers.errors import UnsupportedFeatureError

    client = create_provider(name, api_key="k")
    request = LaunchRequest(gpu_type="A6000", file_systems=["data"])
    with pytest.raises(UnsupportedFeatureError, match="file_systems"):
        client.launch_instance(request)
    client.close()


def test_lambda_launch_attaches_file_systems() -> None:
    import json

    from tests.providers.lambda_cloud import documented

    account = documented.DocumentedLambda()
    client = create_provider("lambda", api_key="k", transport=documented.transport(account))
    request = LaunchRequest(
        gpu_type="H100", ssh_key_names=[documented.SSH_KEY_NAME], file_systems=["datasets"]
    )
    client.launch_instance(request)
    client.close()
    launch = next(r for r in account.requests if r.url.path.endswith("/launch"))
    assert json.loads(launch.content)["file_system_names"] == ["datasets"]
