"""Keep secrets out of messages, logs and error bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "**********"

# Env var names whose values are credentials wherever they appear (e.g. in a 422 echo).
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|_KEY$|KEY_ID)", re.I)


class Secret:
    """A string that never shows itself in a repr, str or log (``get_secret_value()`` does)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Redactor:
    """Replaces known secret values in text and nested JSON values.

    Immutable: a client keeps one for its own token and composes a short-lived one per
    request with that request's credentials (``with_secrets``), so nothing accumulates.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(
            sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values this redactor replaces (longest first)."""
        return self._secrets

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A new redactor that also knows ``secrets`` (this one is unchanged)."""
        extra = tuple(secrets)
        return Redactor([*self._secrets, *extra]) if extra else self

    def text(self, value: str) -> str:
        """``value`` with every known secret replaced."""
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return value

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with secrets replaced and secret-named keys masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and _SECRET_NAME.search(k) else self.json(v))
                for k, v in value.items()
            }
        return value
