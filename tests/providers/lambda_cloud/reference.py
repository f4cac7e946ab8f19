"""Lambda's official OpenAPI document from ../shared/reference, when that folder is present.

CI has the folder next to the repository; a user's checkout may not. Tests that need the
document call ``vendor_spec()``, which skips them with a reason saying where it looked.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"
SPEC_PATH = REFERENCE / "lambda" / "openapi-1.8.3.json"


@lru_cache(maxsize=1)
def _load() -> dict[str, Any] | None:
    if not SPEC_PATH.is_file():
        return None
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def vendor_spec() -> dict[str, Any]:
    """The vendor's OpenAPI 1.8.3 document, or skip the test (clearly saying why)."""
    spec = _load()
    if spec is None:
        pytest.skip(
            f"Lambda's vendor spec is not available at {SPEC_PATH.resolve()} "
            "(../shared/reference is only present in CI and the development workspace)"
        )
    return spec


def vendor_error_codes() -> dict[str, str]:
    """Every error ``code`` the vendor spec pins with ``const``, by ``ApiError*`` schema name."""
    schemas = vendor_spec()["components"]["schemas"]
    codes: dict[str, str] = {}
    for name, schema in schemas.items():
        const = schema.get("properties", {}).get("code", {}).get("const")
        if name.startswith("ApiError") and isinstance(const, str):
            codes[name] = const
    return codes
