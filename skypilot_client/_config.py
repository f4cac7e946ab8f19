"""Configuration: explicit argument > environment variable > ~/.sky/config.yaml > default."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import _constants as constants
from ._redact import Secret
from .errors import ConfigurationError

ENV_URL = "SKYPILOT_API_SERVER_URL"
ENV_ENDPOINT = "SKYPILOT_API_SERVER_ENDPOINT"  # the official SDK's name
ENV_TOKEN = "SKYPILOT_SERVICE_ACCOUNT_TOKEN"  # noqa: S105 (a variable name)
ENV_TIMEOUT = "SKYPILOT_REQUEST_TIMEOUT"
ENV_MAX_RETRIES = "SKYPILOT_MAX_RETRIES"
ENV_RETRY_DELAY = "SKYPILOT_RETRY_DELAY"
ENV_LAUNCH_TIMEOUT = "SKYPILOT_LAUNCH_TIMEOUT"
ENV_TERMINATE_TIMEOUT = "SKYPILOT_TERMINATE_TIMEOUT"
ENV_STATUS_TIMEOUT = "SKYPILOT_STATUS_TIMEOUT"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | float | int, *, name: str) -> float:
    """Parse ``30s``, ``10m``, ``1h30m``, ``250ms`` or plain seconds into positive seconds.

    ``name`` is the setting being parsed; it appears in the error message.
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ConfigurationError(
                    f"{name}={value!r} is not a duration: use seconds or forms such as "
                    "'30s', '10m', '1h'"
                ) from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive duration, got {value!r}")
    return seconds


def parse_non_negative_int(value: str | int, *, name: str) -> int:
    """Parse a retry count (0 or more)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or number < 0:
        raise ConfigurationError(f"{name} must be 0 or more, got {value!r}")
    return number


@dataclass(frozen=True)
class ServerURL:
    """A validated server URL; credentials embedded in it are split off (never logged)."""

    url: str
    basic_auth: tuple[str, Secret] | None = None


def parse_server_url(value: str, *, name: str) -> ServerURL:
    """Validate an API server URL such as ``http://127.0.0.1:46580``."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{name} must be an http(s) URL such as http://127.0.0.1:46580, got "
            f"{_redact_userinfo(value)!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            f"{name} has an invalid port: {_redact_userinfo(value)!r}"
        ) from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    auth = None
    if parts.username is not None:
        auth = (parts.username, Secret(parts.password or ""))
    return ServerURL(clean, auth)


def _redact_userinfo(value: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", value)


def parse_token(value: str, *, name: str) -> Secret:
    """Validate a service-account token (the server only accepts ``sky_...`` tokens)."""
    token = value.strip()
    if not token.startswith("sky_"):
        raise ConfigurationError(
            f"{name} is not a SkyPilot service-account token (they start with 'sky_')"
        )
    return Secret(token)


def read_sky_config(path: Path | None = None) -> dict[str, Any]:
    """Read ``~/.sky/config.yaml`` (empty when absent). Invalid YAML is a ConfigurationError."""
    path = path or Path.home() / ".sky" / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    import yaml  # deferred: only needed when the file exists

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class ClientSettings:
    """Everything the client needs to know, resolved once at construction."""

    base_url: str
    token: Secret | None
    basic_auth: tuple[str, Secret] | None
    timeout: float
    max_retries: int
    retry_delay: float
    retry_max_delay: float
    launch_timeout: float
    terminate_timeout: float
    status_timeout: float


def resolve_settings(
    *,
    base_url: str | None,
    token: str | None,
    timeout: float | None,
    max_retries: int | None,
    retry_delay: float | None,
    retry_max_delay: float | None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> ClientSettings:
    """Resolve settings with the precedence argument > env > config file > default."""
    env = os.environ if env is None else env
    file_cfg: dict[str, Any] | None = None

    def from_file(key: str) -> Any:
        nonlocal file_cfg
        if file_cfg is None:
            file_cfg = read_sky_config(config_path)
        section = file_cfg.get("api_server")
        return section.get(key) if isinstance(section, dict) else None

    if base_url is not None:
        server = parse_server_url(base_url, name="base_url")
    elif env.get(ENV_URL):
        server = parse_server_url(env[ENV_URL], name=ENV_URL)
    elif env.get(ENV_ENDPOINT):
        server = parse_server_url(env[ENV_ENDPOINT], name=ENV_ENDPOINT)
    elif isinstance(endpoint := from_file("endpoint"), str) and endpoint:
        server = parse_server_url(endpoint, name="api_server.endpoint in ~/.sky/config.yaml")
    else:
        server = ServerURL(constants.DEFAULT_BASE_URL)

    secret: Secret | None
    if token is not None:
        secret = parse_token(token, name="token")
    elif env.get(ENV_TOKEN):
        secret = parse_token(env[ENV_TOKEN], name=ENV_TOKEN)
    elif isinstance(file_token := from_file("service_account_token"), str) and file_token:
        secret = parse_token(
            file_token, name="api_server.service_account_token in ~/.sky/config.yaml"
        )
    else:
        secret = None

    def duration(arg: float | None, arg_name: str, env_name: str, default: float) -> float:
        if arg is not None:
            return parse_duration(arg, name=arg_name)
        if env.get(env_name):
            return parse_duration(env[env_name], name=env_name)
        return default

    if max_retries is not None:
        retries = parse_non_negative_int(max_retries, name="max_retries")
    elif env.get(ENV_MAX_RETRIES):
        retries = parse_non_negative_int(env[ENV_MAX_RETRIES], name=ENV_MAX_RETRIES)
    else:
        retries = constants.DEFAULT_MAX_RETRIES

    delay = duration(retry_delay, "retry_delay", ENV_RETRY_DELAY, constants.DEFAULT_RETRY_DELAY)
    max_delay = (
        parse_duration(retry_max_delay, name="retry_max_delay")
        if retry_max_delay is not None
        else constants.DEFAULT_RETRY_MAX_DELAY
    )
    if max_delay < delay:
        raise ConfigurationError(
            f"retry_max_delay ({max_delay}s) must not be below retry_delay ({delay}s)"
        )
    return ClientSettings(
        base_url=server.url,
        token=secret,
        basic_auth=server.basic_auth,
        timeout=duration(timeout, "timeout", ENV_TIMEOUT, constants.DEFAULT_TIMEOUT),
        max_retries=retries,
        retry_delay=delay,
        retry_max_delay=max_delay,
        launch_timeout=duration(None, "", ENV_LAUNCH_TIMEOUT, constants.DEFAULT_LAUNCH_TIMEOUT),
        terminate_timeout=duration(
            None, "", ENV_TERMINATE_TIMEOUT, constants.DEFAULT_TERMINATE_TIMEOUT
        ),
        status_timeout=duration(None, "", ENV_STATUS_TIMEOUT, constants.DEFAULT_STATUS_TIMEOUT),
    )
