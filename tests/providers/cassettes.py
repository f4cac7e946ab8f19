"""vcrpy configuration and secret scanning shared by the provider cassettes (cassettes/<api>/).

One ``provider_vcr(api, mode)`` serves the recorders (``record_mode="all"``) and the replay
tests (``"none"``), so both filter and match the same way:

* secrets never reach a cassette: credential headers and key-like query parameters are
  dropped, and response fields that grant access (``jupyter_token``, ``private_key``, ...)
  are replaced by ``REDACTED`` before anything is written;
* requests match on method, URL and the *parsed* JSON body (key order does not matter).

``find_secrets(path)`` is what the tests run over every cassette.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import vcr
import yaml

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"

#: Request/response headers that carry credentials (compared lower-case).
SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
)
#: Query parameters that carry credentials at some providers (compared lower-case).
SECRET_QUERY_PARAMETERS = ("api_key", "apikey", "api-key", "key", "token", "access_token")
#: JSON fields of response bodies that grant access to something.
SECRET_BODY_FIELDS = frozenset(
    {"jupyter_token", "private_key", "api_key", "apikey", "password", "access_token", "secret"}
)
REDACTED = "REDACTED"

_SECRET_TEXT = (
    re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"Basic\s+[A-Za-z0-9+/=]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)


def _redact(value: Any) -> tuple[Any, bool]:
    """``value`` with secret fields replaced, and whether anything changed."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.lower() in SECRET_BODY_FIELDS and item not in (None, REDACTED):
                out[key], changed = REDACTED, True
            else:
                out[key], sub = _redact(item)
                changed = changed or sub
        return out, changed
    if isinstance(value, list):
        pairs = [_redact(item) for item in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def _body_bytes(body: Any) -> bytes | None:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return None


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SECRET_HEADERS:
            del headers[name]
    raw = _body_bytes(response.get("body", {}).get("string"))
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return response
        redacted, changed = _redact(parsed)
        if changed:
            text = json.dumps(redacted, separators=(",", ":"))
            response["body"]["string"] = text.encode()
            for name in list(headers):
                if name.lower() == "content-length":
                    headers[name] = [str(len(text.encode()))]
    return response


def json_body_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: bodies are equal as JSON (or as bytes when they are not JSON)."""

    def parsed(body: Any) -> Any:
        raw = _body_bytes(body) or b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw

    left, right = parsed(r1.body), parsed(r2.body)
    if left != right:
        raise AssertionError(f"bodies differ: {left!r} != {right!r}")


def provider_vcr(api: str, record_mode: str) -> vcr.VCR:
    """The vcr configuration of ``cassettes/<api>/`` for recorders and replay tests."""
    config = vcr.VCR(
        cassette_library_dir=str(CASSETTES / api),
        record_mode=record_mode,
        match_on=["method", "scheme", "host", "port", "path", "query", "json_body"],
        filter_headers=list(SECRET_HEADERS),
        filter_query_parameters=list(SECRET_QUERY_PARAMETERS),
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    config.register_matcher("json_body", json_body_matcher)
    return config


def load_interactions(path: Path) -> list[dict[str, Any]]:
    """The interactions of a cassette file, as vcrpy wrote them."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    interactions = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(interactions, list):
        raise ValueError(f"{path}: not a vcrpy cassette")
    return interactions


def body_text(part: dict[str, Any]) -> str:
    """The body of a cassette request (``body``) or response (``body.string``) as text."""
    body = part.get("body")
    if isinstance(body, dict):
        body = body.get("string")
    raw = _body_bytes(body)
    return raw.decode("utf-8", "replace") if raw else ""


def body_json(part: dict[str, Any]) -> Any:
    """The body of a cassette request or response parsed as JSON (None if empty/not JSON)."""
    text = body_text(part)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _secret_fields(value: Any, where: str) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower() in SECRET_BODY_FIELDS and item not in (None, REDACTED):
                yield f"{where}.{key} is not redacted"
            yield from _secret_fields(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_fields(item, f"{where}[{index}]")


def find_secrets(path: Path, known: Iterable[str] = ()) -> list[str]:
    """Everything in a cassette that looks like a credential (empty when clean).

    ``known`` are literal secret values (the keys used while recording) that must not
    appear anywhere in the file.
    """
    problems: list[str] = []
    text = path.read_text(encoding="utf-8")
    problems += [f"contains the secret {s[:4]}..." for s in known if s and s in text]
    problems += [f"matches {p.pattern!r}" for p in _SECRET_TEXT if p.search(text)]
    for index, interaction in enumerate(load_interactions(path)):
        for side in ("request", "response"):
            part = interaction.get(side, {})
            for name in part.get("headers") or {}:
                if name.lower() in SECRET_HEADERS:
                    problems.append(f"interaction {index}: {side} header {name!r}")
            problems += [
                f"interaction {index}: {msg}"
                for msg in _secret_fields(body_json(part), f"{side}.body")
            ]
        query = urlsplit(interaction.get("request", {}).get("uri", "")).query
        for name, _ in parse_qsl(query, keep_blank_values=True):
            if name.lower() in SECRET_QUERY_PARAMETERS:
                problems.append(f"interaction {index}: query parameter {name!r}")
    return problems
