"""The two bases of every model: results read from the server, inputs built by callers.

Both defer building their pydantic schema to first use (``defer_build``), so defining a
model costs little at import time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Keys whose values are base64 Python pickles or secrets: never kept on our models.
_OPAQUE_KEYS = ("handle", "credentials", "entrypoint", "request_body", "error", "pid")


class _Result(BaseModel):
    """Base of result models: extra server fields are kept, pickles/secrets dropped."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_opaque(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _OPAQUE_KEYS}
        return data


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
