"""API keys: explicit argument > environment variable > the vendor tool's usual file."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from .errors import MissingCredentialsError

__all__ = ["CredentialSource", "resolve_api_key"]


def _read_lambda_keys(path: Path) -> str | None:
    # ~/.lambda_cloud/lambda_keys holds lines such as "api_key = <key>".
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*api_key\s*[=:]\s*(\S+)\s*$", line)
        if match:
            return match.group(1)
    return None


def _read_paperspace_json(path: Path) -> str | None:
    data = json.loads(path.read_text(encoding="utf-8"))
    value = data.get("apiKey") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _read_runpod_toml(path: Path) -> str | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    # runpod-python writes profiles: [default] api_key = "..."
    for section in (data.get("default"), data):
        if isinstance(section, dict) and isinstance(section.get("api_key"), str):
            return str(section["api_key"])
    return None


def _read_plain_key(path: Path) -> str | None:
    # The Vast.ai CLI (vast-cli vast.py, APIKEY_FILE) stores the bare key in the file.
    return path.read_text(encoding="utf-8").strip() or None


@dataclass(frozen=True)
class CredentialSource:
    """Where a provider's API key may be found."""

    env_var: str
    file: str | None  # relative to the home directory; None when the vendor has no file
    file_format: str
    reader: Callable[[Path], str | None] | None


LAMBDA = CredentialSource(
    "LAMBDA_API_KEY", ".lambda_cloud/lambda_keys", "a line 'api_key = <key>'", _read_lambda_keys
)
PAPERSPACE = CredentialSource(
    "PAPERSPACE_API_KEY", ".paperspace/config.json", '{"apiKey": "<key>"}', _read_paperspace_json
)
RUNPOD = CredentialSource(
    "RUNPOD_API_KEY", ".runpod/config.toml", '[default] api_key = "<key>"', _read_runpod_toml
)
# TensorDock has no CLI or SDK config file for v2 tokens (FACTS.md): argument or env only.
TENSORDOCK = CredentialSource("TENSORDOCK_API_TOKEN", None, "", None)
#: `vastai set api-key` writes $XDG_CONFIG_HOME/vastai/vast_api_key (~/.config by default).
VASTAI = CredentialSource(
    "VAST_API_KEY", ".config/vastai/vast_api_key", "the key alone", _read_plain_key
)


def resolve_api_key(
    provider: str,
    explicit: str | SecretStr | None,
    source: CredentialSource,
    *,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> SecretStr:
    """The API key for ``provider``, or ``MissingCredentialsError`` naming all three places."""
    if explicit is not None:
        value = explicit.get_secret_value() if isinstance(explicit, SecretStr) else explicit
        if not value.strip():
            raise MissingCredentialsError("api_key is empty", provider=provider)
        return SecretStr(value.strip())
    env = os.environ if env is None else env
    if env.get(source.env_var, "").strip():
        return SecretStr(env[source.env_var].strip())
    if source.file is None or source.reader is None:
        raise MissingCredentialsError(
            f"no {provider} API key: pass api_key=... or set {source.env_var}",
            provider=provider,
        )
    path = (home or Path.home()) / source.file
    try:
        value_from_file = source.reader(path) if path.is_file() else None
    except (OSError, ValueError) as exc:
        raise MissingCredentialsError(
            f"cannot read the API key from {path}: {type(exc).__name__}", provider=provider
        ) from None
    if value_from_file and value_from_file.strip():
        return SecretStr(value_from_file.strip())
    raise MissingCredentialsError(
        f"no {provider} API key: pass api_key=..., set {source.env_var}, or write "
        f"~/{source.file} ({source.file_format})",
        provider=provider,
    )
