"""Create provider clients by name: ``create_provider("lambda", api_key=...)``.

Third parties register providers in the entry point group ``gpu_providers.providers``; the
entry point's object is a ``ProviderEntry``.

A built-in provider whose extra is not installed (``pip install 'skypilot-sdk[runpod]'``)
raises ``MissingDependencyError`` naming the extra, before anything is imported or sent.
"""

from __future__ import annotations

import importlib
import logging
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

logger = logging.getLogger("gpu_providers")


@dataclass(frozen=True, kw_only=True)
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
        name="lambda",
        sync_class="gpu_providers.lambda_cloud:LambdaProvider",
        async_class="gpu_providers.lambda_cloud:AsyncLambdaProvider",
        aliases=("lambdalabs", "lambda-labs", "lambda_labs", "lambda-cloud", "lambda_cloud"),
        extra="lambda",
    ),
    ProviderEntry(
        name="paperspace",
        sync_class="gpu_providers.paperspace:PaperspaceProvider",
        async_class="gpu_providers.paperspace:AsyncPaperspaceProvider",
        extra="paperspace",
    ),
    ProviderEntry(
        name="runpod",
        sync_class="gpu_providers.runpod:RunPodProvider",
        async_class="gpu_providers.runpod:AsyncRunPodProvider",
        extra="runpod",
    ),
    ProviderEntry(
        name="tensordock",
        sync_class="gpu_providers.tensordock:TensorDockProvider",
        async_class="gpu_providers.tensordock:AsyncTensorDockProvider",
        aliases=("tensor-dock", "tensor_dock", "tensordock-v2", "tensordock_v2"),
        extra="tensordock",
    ),
    ProviderEntry(
        name="vastai",
        sync_class="gpu_providers.vastai:VastAIProvider",
        async_class="gpu_providers.vastai:AsyncVastAIProvider",
        aliases=("vast", "vast.ai", "vast-ai", "vast_ai"),
        extra="vastai",
    ),
)


def _matches(entry: ProviderEntry, key: str) -> bool:
    return key == entry.name or key in entry.aliases


def _plugins() -> tuple[dict[str, ProviderEntry], dict[str, BaseException]]:
    """Providers registered by other packages, and the entry points that failed to load.

    A broken plugin is logged and skipped: it must not take the built-ins (or other plugins)
    down with it. It fails only when it is asked for by name.
    """
    loaded: dict[str, ProviderEntry] = {}
    broken: dict[str, BaseException] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry = point.load()
        except Exception as exc:  # any import-time failure of third-party code
            logger.warning(
                "gpu_providers plugin %r (%s) failed to load and is skipped: %s: %s",
                point.name,
                point.value,
                type(exc).__name__,
                exc,
            )
            broken[point.name.strip().lower()] = exc
            continue
        if not isinstance(entry, ProviderEntry):
            logger.warning(
                "gpu_providers plugin %r (%s) is not a ProviderEntry; skipped",
                point.name,
                point.value,
            )
            continue
        if entry.name not in {b.name for b in BUILTIN}:
            loaded.setdefault(entry.name, entry)
    return loaded, broken


def _lookup(name: str) -> ProviderEntry:
    if not isinstance(name, str):
        raise UnsupportedProviderError(f"provider name must be a string, got {name!r}")
    key = name.strip().lower()
    for entry in BUILTIN:  # built-ins resolve without loading any plugin
        if _matches(entry, key):
            return entry
    plugins, broken = _plugins()
    for entry in plugins.values():
        if _matches(entry, key):
            return entry
    if key in broken:
        error = broken[key]
        raise UnsupportedProviderError(
            f"provider {name!r} is registered by a plugin that failed to load: "
            f"{type(error).__name__}: {error}"
        ) from error
    known = ", ".join(sorted({e.name for e in BUILTIN} | set(plugins)))
    raise UnsupportedProviderError(f"unknown provider {name!r}; known providers: {known}")


def available_providers() -> list[str]:
    """Names of the registered providers (built-in and from entry points that load)."""
    return sorted({entry.name for entry in BUILTIN} | set(_plugins()[0]))


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
