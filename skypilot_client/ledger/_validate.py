"""Input checks of the ledger: identifiers, lengths, and no secret ever stored.

The API takes no credential field at all; the account is stored as a fingerprint. Names and
labels that look like a credential are rejected (``InvalidInputError``, naming the field and
the kind of secret, never the value). Free text (status messages, error summaries) comes from
servers and vendors: credential-looking parts are masked rather than rejected, so that
recording the outcome of a call that already happened never fails on its wording.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from .._redact import REDACTED
from ..errors import InvalidInputError

__all__ = ["account_fingerprint"]

MAX_NAME = 256
MAX_TEXT = 4000
MAX_LABELS = 64

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_OPERATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_STATUS = re.compile(r"[A-Z][A-Z_]{0,31}")
_ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
_ACCOUNT = re.compile(r"acct_[0-9a-f]{16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Label keys that name a credential (the client's redactor masks the same names).
_SECRET_KEY = re.compile(
    r"(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API[_-]?KEY|ACCESS[_-]?KEY|_KEY$|KEY_ID)",
    re.I,
)

# Shapes of credentials. A bare random string cannot be told from an id, which is why the API
# has no field meant for one; these catch the secrets that carry their own marks.
_SECRET_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("a SkyPilot service-account token", re.compile(r"\bsky_[A-Za-z0-9_.-]{16,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16,}\b")),
    ("a bearer credential", re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{8,}")),
    (
        "a vendor API token",
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|xox[abpr]-[A-Za-z0-9-]{10,})"
        ),
    ),
    ("a URL with a password", re.compile(r"://[^/\s:@]+:[^/\s@]+@")),
    (
        "a credential assignment",
        re.compile(
            r"(?i)\b[\w.-]*(?:secret|token|password|passwd|api[_-]?key|access[_-]?key|"
            r"private[_-]?key|credential)s?[\w.-]*[\"']?\s*[=:]\s*[\"']?[^\s\"',;]{6,}"
        ),
    ),
)


def account_fingerprint(provider: str, api_key: str, *, base_url: str = "") -> str:
    """The ledger's name for an account: ``acct_`` and 16 hex digits of a SHA-256 digest of
    provider, base URL and key. The key itself never reaches the ledger.

    >>> account_fingerprint("lambda", "example-key")
    'acct_...'  # doctest: +SKIP
    """
    if not api_key:
        raise InvalidInputError("account_fingerprint needs the account's API key")
    digest = hashlib.sha256(f"{provider}\0{base_url}\0{api_key}".encode()).hexdigest()
    return f"acct_{digest[:16]}"


def secret_kind(value: str) -> str | None:
    """Which kind of credential ``value`` contains, or None."""
    for kind, pattern in _SECRET_SHAPES:
        if pattern.search(value):
            return kind
    return None


def mask_secrets(value: str) -> str:
    """``value`` with every credential-looking part replaced by the redaction marker."""
    for _, pattern in _SECRET_SHAPES:
        value = pattern.sub(REDACTED, value)
    return value


def _check(field: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = repr(value) if isinstance(value, str) and len(value) <= 64 else "the value"
        # A value that does not fit an id may be a pasted secret: never echo one.
        if isinstance(value, str) and secret_kind(value) is not None:
            shown = "the value"
        raise InvalidInputError(f"ledger: {field} must be {what}; got {shown}")
    return value


def request_id(value: str) -> str:
    return _check("request_id", value, _REQUEST_ID, "a server request id")


def operation(value: str) -> str:
    return _check("operation", value, _OPERATION, "an operation name like 'launch'")


def provider(value: str) -> str:
    return _check("provider", value, _PROVIDER, "a provider name like 'lambda'")


def status(value: str) -> str:
    value = str(value.value if hasattr(value, "value") else value).upper()
    return _check("status", value, _STATUS, "a status like 'RUNNING'")


def error_type(value: str | None) -> str | None:
    return None if value is None else _check("error_type", value, _ERROR_TYPE, "a class name")


def owner(value: str) -> str:
    return _check("owner", value, _OWNER, "a monitor id (letters, digits, '._:@/-')")


def account(value: str) -> str:
    return _check("account", value, _ACCOUNT, "a fingerprint from account_fingerprint()")


def name(field: str, value: str | None) -> str | None:
    """A name stored as given (cluster, workspace, tenant, instance name or id, label)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise InvalidInputError(f"ledger: {field} must be a string of 1 to {MAX_NAME} characters")
    if _CONTROL.search(value):
        raise InvalidInputError(f"ledger: {field} must not contain control characters")
    if (kind := secret_kind(value)) is not None:
        raise InvalidInputError(
            f"ledger: {field} looks like {kind}; the ledger never stores secrets"
        )
    return value


def labels(value: Mapping[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if len(value) > MAX_LABELS:
        raise InvalidInputError(f"ledger: at most {MAX_LABELS} labels")
    checked: dict[str, str] = {}
    for key, item in value.items():
        key = name("a label key", key) or ""
        if _SECRET_KEY.search(key):
            raise InvalidInputError(
                f"ledger: label {key!r} names a credential; the ledger never stores secrets"
            )
        checked[key] = name(f"label {key!r}", item) or ""
    return checked


def text(field: str, value: str | None) -> str | None:
    """Free text from a server or vendor: masked, NUL-free, at most ``MAX_TEXT`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"ledger: {field} must be a string")
    value = mask_secrets(value.replace("\x00", ""))
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def positive(field: str, value: float, *, maximum: float | None = None) -> float:
    if not (value > 0) or (maximum is not None and value > maximum):
        limit = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidInputError(f"ledger: {field} must be positive{limit}; got {value!r}")
    return float(value)
