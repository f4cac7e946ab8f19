"""Regenerates the provider clients under ``gpu_providers/<provider>/_generated/`` from ``specs/``.

``python -m codegen`` regenerates everything, ``python -m codegen --check`` fails when the
committed code differs from what the specs and this configuration produce (CI runs it), and
``python -m codegen lambda --spec PATH`` regenerates Lambda from a vendor spec you downloaded.
See ``python -m codegen --help`` and codegen/README.md.

The generators are pinned (:data:`PINNED`): a different installed version is an error, because a
different generator or formatter version produces different code and ``--check`` would fail.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PINNED", "PROVIDERS", "REPO_ROOT", "RUFF_ARGS", "CodegenError"]

#: The repository root (this package lives in ``<root>/codegen``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Exact versions of the generators and the formatter, checked before generating. They work on
#: Python 3.10 to 3.13 (openapi-python-client 0.29 needs 3.11 and emits code that does too).
#: ruff is pinned because it formats the output; ariadne-codegen 0.19.0 needs ruff 0.15.x.
PINNED: dict[str, str] = {
    "openapi-python-client": "0.28.4",
    "ariadne-codegen": "0.19.0",
    "ruff": "0.15.22",
}

#: Provider name on the command line -> (generator, Python sub-package of gpu_providers).
PROVIDERS: dict[str, tuple[str, str]] = {
    "lambda": ("openapi-python-client", "lambda_cloud"),
    "paperspace": ("openapi-python-client", "paperspace"),
    "runpod": ("ariadne-codegen", "runpod"),
    "tensordock": ("openapi-python-client", "tensordock"),
    # RunPod's REST API v2, the second RunPod backend (api="rest"); its own package so the
    # GraphQL output (runpod/_generated, replaced wholesale on regeneration) stays separate.
    "runpod-rest": ("openapi-python-client", "runpod/rest"),
    "vastai": ("openapi-python-client", "vastai"),
}

#: Settings for the ruff post-hooks over the generated tree. ``--isolated`` ignores every
#: pyproject.toml (the repository's excludes ``_generated/`` from linting), so the result does
#: not depend on where the tree is written.
RUFF_ARGS: tuple[str, ...] = ("--isolated", "--line-length", "100", "--target-version", "py310")


class CodegenError(RuntimeError):
    """Generation failed, or a generator is missing or has the wrong version."""
