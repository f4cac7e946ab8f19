"""Create provider clients by name: ``create_provider("lambda", api_key=...)``.

Third parties register providers in the entry point group ``gpu_providers.providers``; the
entry point's object is a ``ProviderEntry``.

A built-in provider whose extra is not installed (``pip install 'skypilot-sdk[runpod]'``)
raises ``MissingDependencyError`` naming the extra, before anything is imported or sent.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ._extras import missing_dependency_error, require_extra
from .errors import UnsupportedProviderError
from .protocol import AsyncProviderClient, ProviderClient

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderEntry",
    "available_providers",
    "create_async_provider",
    "create_provider",
]

ENTRY_POINT_GROUP = "gpu_providers.providers"


@dataclass(frozen=True)
class ProviderEntry:
    """A registered provider: its name, aliases, and where its classes live.

    ``sync_class`` and ``async_class`` are ``"module:Class"`` paths, imported on first use so
    ``import gpu_providers`` stays fast. ``extra`` names the ``skypilot-sdk`` extra the
    provider needs (built-in providers only; third parties declare their own requirements).
    """

    name: str
    sync_class: str
    async_class: str
    aliases: tuple[str, ...] = ()
    extra: str | None = None


BUILTIN: tuple[ProviderEntry, ...] = (
    ProviderEntry(
        "lambda",
        "gpu_providers.lambda_cloud:LambdaProvider",
        "gpu_providers.lambda_cloud:AsyncLambdaProvider",
        ("lambdalabs", "lambda-labs", "lambda_labs", "lambda-cloud", "lambda_cloud"),
        extra="lambda",
    ),
    ProviderEntry(
        "paperspace",
        "gpu_providers.paperspace:PaperspaceProvider",
        "gpu_providers.paperspace:AsyncPaperspaceProvider",
        extra="paperspace",
    ),
    ProviderEntry(
        "runpod",
        "gpu_providers.runpod:RunPodProvider",
        "gpu_providers.runpod:AsyncRunPodProvider",
        extra="runpod",
    ),
)


def _registry() -> dict[str, ProviderEntry]:
    entries: dict[str, ProviderEntry] = {}
    for entry in BUILTIN:
        entries[entry.name] = entry
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        if isinstance(loaded, ProviderEntry) and loaded.name not in entries:
            entries[loaded.name] = loaded
    return entries


def _lookup(name: str) -> ProviderEntry:
    if not isinstance(name, str):
        raise UnsupportedProviderError(f"provider name must be a string, got {name!r}")
    key = name.strip().lower()
    entries = _registry()
    for entry in entries.values():
        if key == entry.name or key in entry.aliases:
            return entry
    known = ", ".join(sorted(entries))
    raise UnsupportedProviderError(f"unknown provider {name!r}; known providers: {known}")


def available_providers() -> list[str]:
    """Names of the registered providers (built-in and from entry points)."""
    return sorted(_registry())


def _load(entry: ProviderEntry, path: str) -> Any:
    # The provider modules import their wire stack lazily, so a missing extra would only show
    # on the first call: check it up front (without importing it).
    if entry.extra is not None:
        require_extra(entry.extra, provider=entry.name)
    module, _, attr = path.partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise missing_dependency_error(exc, extra=entry.extra, provider=entry.name) from exc
    return getattr(loaded, attr)


def create_provider(name: str, **options: Any) -> ProviderClient:
    """A blocking client for provider ``name`` (aliases allowed: ``lambdalabs``, ...).

    ``options`` go to the client: ``api_key=``, ``timeout=``, ``max_retries=``, ...; without
    ``api_key`` the key comes from the environment, then the vendor tool's config file.
    Raises ``UnsupportedProviderError`` for an unknown name and ``MissingDependencyError``
    when the provider's extra is not installed.
    """
    entry = _lookup(name)
    client: ProviderClient = _load(entry, entry.sync_class)(**options)
    return client


def create_async_provider(name: str, **options: Any) -> AsyncProviderClient:
    """The async twin of ``create_provider``."""
    entry = _lookup(name)
    client: AsyncProviderClient = _load(entry, entry.async_class)(**options)
    return client
