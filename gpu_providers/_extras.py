"""Optional dependencies: what each ``skypilot-sdk`` extra installs, and the error when it is not.

``pip install skypilot-sdk`` installs ``skypilot_client`` and the provider-neutral part of
``gpu_providers`` (types, errors, protocol, factory). Each built-in provider's wire client needs
more, installed with the provider's extra: ``pip install 'skypilot-sdk[runpod]'``.

The check looks modules up without importing them, so it can run when a client is created
while the heavy imports (gql, graphql-core) still wait for the first call.
"""

from __future__ import annotations

import importlib.util

from .errors import MissingDependencyError

__all__ = [
    "DISTRIBUTION",
    "EXTRA_MODULES",
    "install_command",
    "missing_dependency_error",
    "missing_modules",
    "require_extra",
]

DISTRIBUTION = "skypilot-sdk"

# The top-level modules each extra of pyproject.toml provides (tests/providers/test_extras.py
# checks this table against pyproject.toml and against what each provider package imports).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "lambda": ("attrs",),
    "paperspace": ("attrs", "dateutil"),
    "runpod": ("gql", "graphql", "attrs"),  # attrs: the REST v2 backend (api="rest")
    "tensordock": ("attrs",),
    "vastai": ("attrs",),
}


def install_command(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'skypilot-sdk[runpod]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a __spec__ (e.g. set up by hand): imported
        return True


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed (empty for an unknown extra)."""
    return [module for module in EXTRA_MODULES.get(extra, ()) if not _installed(module)]


def _error(module: str, extra: str | None, provider: str | None) -> MissingDependencyError:
    # str() prefixes the provider name: "[runpod] missing optional dependency 'gql'; ..."
    if extra is None:
        message = f"missing module {module!r}, which the provider imports"
    else:
        message = (
            f"missing optional dependency {module!r}; install it with: {install_command(extra)}"
        )
    return MissingDependencyError(message, extra=extra, module=module, provider=provider)


def require_extra(extra: str, *, provider: str | None = None) -> None:
    """Raise ``MissingDependencyError`` naming ``extra`` when one of its modules is missing.

    Cheap (nothing is imported): call it when a provider client is created.
    """
    missing = missing_modules(extra)
    if missing:
        raise _error(missing[0], extra, provider)


def missing_dependency_error(
    exc: ModuleNotFoundError, *, extra: str | None = None, provider: str | None = None
) -> MissingDependencyError:
    """Our error for an import that failed with ``exc``; raise it ``from exc``.

    The message names ``extra`` only when the missing module is one the extra provides.
    """
    module = exc.name or "?"
    top = module.partition(".")[0]
    if extra is not None and top not in EXTRA_MODULES.get(extra, ()):
        extra = None
    return _error(module, extra, provider)
