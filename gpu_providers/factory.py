"""Create provider clients by name: ``create_provider("lambda", api_key=...)``.

Third parties register providers in the entry point group ``gpu_providers.providers``; the
entry point's object is a ``ProviderEntry``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

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
    ``import gpu_providers`` stays fast.
    """

    name: str
    sync_class: str
    async_class: str
    aliases: tuple[str, ...] = ()


BUILTIN: tuple[ProviderEntry, ...] = (
    ProviderEntry(
        "lambda",
        "gpu_providers.lambda_cloud:LambdaProvider",
        "gpu_providers.lambda_cloud:AsyncLambdaProvider",
        ("lambdalabs", "lambda-labs", "lambda_labs", "lambda-cloud", "lambda_cloud"),
    ),
    ProviderEntry(
        "paperspace",
        "gpu_providers.paperspace:PaperspaceProvider",
        "gpu_providers.paperspace:AsyncPaperspaceProvider",
    ),
    ProviderEntry(
        "runpod",
        "gpu_providers.runpod:RunPodProvider",
        "gpu_providers.runpod:AsyncRunPodProvider",
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


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_provider(name: str, **options: Any) -> ProviderClient:
    """A blocking client for provider ``name`` (aliases allowed: ``lambdalabs``, ...).

    ``options`` go to the client: ``api_key=``, ``timeout=``, ``max_retries=``, ...; without
    ``api_key`` the key comes from the environment, then the vendor tool's config file.
    """
    client: ProviderClient = _load(_lookup(name).sync_class)(**options)
    return client


def create_async_provider(name: str, **options: Any) -> AsyncProviderClient:
    """The async twin of ``create_provider``."""
    client: AsyncProviderClient = _load(_lookup(name).async_class)(**options)
    return client
