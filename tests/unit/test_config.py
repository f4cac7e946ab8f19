"""Configuration precedence and validation (argument > env > ~/.sky/config.yaml > default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skypilot_client import SkyPilotClient
from skypilot_client._config import parse_duration, resolve_settings
from skypilot_client.errors import ConfigurationError
from tests.conftest import SENTINEL_TOKEN

NONE: dict[str, Any] = {
    "base_url": None,
    "token": None,
    "timeout": None,
    "max_retries": None,
    "retry_delay": None,
    "retry_max_delay": None,
}


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (" 5M ", 300.0),
        (7, 7.0),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text, name="X") == seconds


@pytest.mark.parametrize("text", ["", "abc", "10 minutes", "-5", "0", "5d", "nan", "inf", "1h-"])
def test_bad_durations_name_the_setting(text: str) -> None:
    with pytest.raises(ConfigurationError, match="SKYPILOT_REQUEST_TIMEOUT"):
        parse_duration(text, name="SKYPILOT_REQUEST_TIMEOUT")


def test_defaults(tmp_path: Path) -> None:
    s = resolve_settings(**NONE, env={}, config_path=tmp_path / "missing.yaml")
    assert s.base_url == "http://127.0.0.1:46580"
    assert s.token is None
    assert (s.timeout, s.max_retries, s.retry_delay, s.retry_max_delay) == (30.0, 3, 1.0, 60.0)
    assert (s.launch_timeout, s.terminate_timeout, s.status_timeout) == (600.0, 300.0, 30.0)


def test_precedence_argument_env_file(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        "api_server:\n  endpoint: http://file-host:1\n  service_account_token: sky_file\n",
    )
    from_file = resolve_settings(**NONE, env={}, config_path=cfg)
    assert from_file.base_url == "http://file-host:1"
    assert from_file.token is not None and from_file.token.get_secret_value() == "sky_file"

    env = {
        "SKYPILOT_API_SERVER_ENDPOINT": "http://official-env:2",
        "SKYPILOT_SERVICE_ACCOUNT_TOKEN": "sky_env",
        "SKYPILOT_REQUEST_TIMEOUT": "1m",
        "SKYPILOT_MAX_RETRIES": "5",
        "SKYPILOT_RETRY_DELAY": "2s",
        "SKYPILOT_LAUNCH_TIMEOUT": "1h",
        "SKYPILOT_TERMINATE_TIMEOUT": "90",
        "SKYPILOT_STATUS_TIMEOUT": "10s",
    }
    from_env = resolve_settings(**NONE, env=env, config_path=cfg)
    assert from_env.base_url == "http://official-env:2"
    assert from_env.token is not None and from_env.token.get_secret_value() == "sky_env"
    assert (from_env.timeout, from_env.max_retries, from_env.retry_delay) == (60.0, 5, 2.0)
    assert (from_env.launch_timeout, from_env.terminate_timeout, from_env.status_timeout) == (
        3600.0,
        90.0,
        10.0,
    )

    ours = resolve_settings(
        **NONE, env={**env, "SKYPILOT_API_SERVER_URL": "http://ours:3"}, config_path=cfg
    )
    assert ours.base_url == "http://ours:3"  # our name wins over the official one

    explicit = resolve_settings(
        **{**NONE, "base_url": "http://arg:4/", "token": "sky_arg", "timeout": 3, "max_retries": 0},
        env=env,
        config_path=cfg,
    )
    assert explicit.base_url == "http://arg:4"
    assert explicit.token is not None and explicit.token.get_secret_value() == "sky_arg"
    assert (explicit.timeout, explicit.max_retries) == (3.0, 0)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SKYPILOT_API_SERVER_URL": "ftp://x"}, "SKYPILOT_API_SERVER_URL"),
        ({"SKYPILOT_API_SERVER_URL": "http://h:notaport"}, "SKYPILOT_API_SERVER_URL"),
        ({"SKYPILOT_SERVICE_ACCOUNT_TOKEN": "not-a-sky-token"}, "SKYPILOT_SERVICE_ACCOUNT_TOKEN"),
        ({"SKYPILOT_MAX_RETRIES": "-1"}, "SKYPILOT_MAX_RETRIES"),
        ({"SKYPILOT_MAX_RETRIES": "three"}, "SKYPILOT_MAX_RETRIES"),
        ({"SKYPILOT_RETRY_DELAY": "soon"}, "SKYPILOT_RETRY_DELAY"),
        ({"SKYPILOT_LAUNCH_TIMEOUT": "-10m"}, "SKYPILOT_LAUNCH_TIMEOUT"),
        ({"SKYPILOT_STATUS_TIMEOUT": "0s"}, "SKYPILOT_STATUS_TIMEOUT"),
    ],
)
def test_invalid_env_fails_at_construction(
    env: dict[str, str], needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(env):
        monkeypatch.setenv(key, env[key])
    with pytest.raises(ConfigurationError, match=needle):
        SkyPilotClient()


def test_invalid_arguments_fail_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        SkyPilotClient("http://127.0.0.1:1", timeout=-1)
    with pytest.raises(ConfigurationError, match="max_retries"):
        SkyPilotClient("http://127.0.0.1:1", max_retries=-2)
    with pytest.raises(ConfigurationError, match="retry_max_delay"):
        SkyPilotClient("http://127.0.0.1:1", retry_delay=10, retry_max_delay=1)


def test_bad_config_file_is_reported(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "api_server: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        resolve_settings(**NONE, env={}, config_path=cfg)


def test_url_credentials_are_split_off_and_never_shown() -> None:
    s = resolve_settings(**{**NONE, "base_url": "http://alice:s3cr3t-pw@host:46580"}, env={})
    assert s.base_url == "http://host:46580"
    assert s.basic_auth is not None and s.basic_auth[0] == "alice"
    assert s.basic_auth[1].get_secret_value() == "s3cr3t-pw"
    assert "s3cr3t" not in repr(s)
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(**{**NONE, "base_url": "ftp://alice:s3cr3t-pw@host"}, env={})
    assert "s3cr3t" not in str(info.value)


def test_token_never_in_repr() -> None:
    client = SkyPilotClient("http://127.0.0.1:1", token=SENTINEL_TOKEN)
    assert SENTINEL_TOKEN not in repr(client)
    assert "token=set" in repr(client)
    assert SENTINEL_TOKEN not in repr(client._settings)
    client.close()
