"""Sans-IO core of the SkyPilot wire protocol: no sockets here, only bytes and dicts.

Everything both clients share lives here: headers, identity, request bodies, decoding of
request records (``return_value``/``error`` are JSON strings inside JSON), error
classification and the log-stream filter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import _constants as constants
from ._redact import Redactor
from .errors import (
    MalformedResponseError,
    RequestCancelledError,
    RequestFailedError,
    SkyPilotError,
    VersionMismatchError,
    error_for_request_failure,
    error_for_status,
)

if TYPE_CHECKING:  # pydantic models load on first use
    from pydantic import BaseModel

    from .models import RequestStatus

M = TypeVar("M", bound="BaseModel")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_PAYLOAD = re.compile(r"<sky-payload(?:[^>]*)>(.*?)</sky-payload>")
_PAYLOAD_TAG = re.compile(r"^<(\w+)>(.*)</\1>$", re.S)
_RICH_MARKUP = re.compile(r"\[/?[a-z #0-9_.-]*\]")
_USER_HASH = re.compile(r"[0-9a-f]{8}")


def strip_ansi(text: str) -> str:
    """Remove terminal colour/style escape codes."""
    return _ANSI.sub("", text)


# ---------------------------------------------------------------------------- identity


def user_identity() -> dict[str, str]:
    """``SKYPILOT_USER_ID`` / ``SKYPILOT_USER`` for request bodies.

    The user id is the one the official CLI cached in ``~/.sky/user_hash`` when present (so
    clusters are shared with the CLI), else a stable hash of the login name and machine.
    """
    import getpass  # here, not at import: once per client, and uuid loads platform
    import uuid

    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    user_hash = None
    try:
        cached = (Path.home() / ".sky" / "user_hash").read_text(encoding="utf-8").strip()
        if _USER_HASH.fullmatch(cached):
            user_hash = cached
    except OSError:
        pass
    if user_hash is None:
        seed = f"{user}-{uuid.getnode()}".encode()
        user_hash = hashlib.md5(seed, usedforsecurity=False).hexdigest()[:8]
    return {"SKYPILOT_USER_ID": user_hash, "SKYPILOT_USER": user}


def base_headers() -> dict[str, str]:
    """Headers on every call: the server checks the API version and echoes its own."""
    from ._version import __version__

    return {
        constants.HEADER_API_VERSION: str(constants.API_VERSION),
        constants.HEADER_VERSION: constants.SERVER_VERSION,
        "User-Agent": f"skypilot-sdk/{__version__}",
        "Accept": "application/json",
    }


def request_body(
    fields: Mapping[str, Any],
    *,
    identity: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    workspace: str | None = None,
) -> dict[str, Any]:
    """A request body: the operation's fields plus identity ``env_vars`` and workspace."""
    body = {k: v for k, v in fields.items() if v is not None or k in _NULLABLE_KEYS}
    body["env_vars"] = {**(extra_env or {}), **identity}
    if workspace is not None:
        body["override_skypilot_config"] = {"active_workspace": workspace}
    return body


# Keys the server requires to be present even when null.
_NULLABLE_KEYS = frozenset({"job_ids", "job_id", "request_options", "request_ids"})


# ---------------------------------------------------------------------------- responses


def server_api_version(headers: Mapping[str, str]) -> int | None:
    """The server's API version from response headers (None when it sent none)."""
    value = headers.get(constants.HEADER_API_VERSION.lower()) or headers.get(
        constants.HEADER_API_VERSION
    )
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The request id the server minted for this call."""
    return headers.get(constants.HEADER_REQUEST_ID.lower()) or headers.get(
        constants.HEADER_REQUEST_ID
    )


def parse_json(content: bytes) -> Any:
    """Decode a JSON body; raises ValueError for malformed JSON."""
    return json.loads(content.decode("utf-8")) if content else None


# ---------------------------------------------------------------------------- reading answers
#
# Every server answer becomes our models through these helpers, so a value of the wrong shape
# is a MalformedResponseError naming the field, never a raw pydantic/KeyError/TypeError.


def malformed(
    operation: str,
    field: str,
    problem: str,
    *,
    request_id: str | None = None,
    status_code: int | None = None,
) -> MalformedResponseError:
    """The error for a server answer whose ``field`` we cannot read."""
    return MalformedResponseError(
        f"{operation}: cannot read the server's answer: {field}: {problem}",
        field=field,
        request_id=request_id,
        status_code=status_code,
    )


def parse_answer(
    model: type[M], data: Any, *, operation: str, where: str, request_id: str | None = None
) -> M:
    """``model`` validated from server data at ``where``; MalformedResponseError if it fails."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise malformed(operation, f"{where}{loc}", first["msg"], request_id=request_id) from exc


def expect_list(
    value: Any, *, operation: str, where: str, request_id: str | None = None
) -> list[Any]:
    """``value`` when it is a JSON array, else MalformedResponseError."""
    if not isinstance(value, list):
        problem = f"expected a list, got {type(value).__name__}"
        raise malformed(operation, where, problem, request_id=request_id)
    return value


def expect_dict(
    value: Any, *, operation: str, where: str, request_id: str | None = None
) -> dict[str, Any]:
    """``value`` when it is a JSON object, else MalformedResponseError."""
    if not isinstance(value, dict):
        problem = f"expected an object, got {type(value).__name__}"
        raise malformed(operation, where, problem, request_id=request_id)
    return value


def _message_from_detail(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # FastAPI validation errors
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
        return "; ".join(parts) or "invalid request"
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("type") or detail)
    return str(detail)


def _strip_echoed_inputs(body: Any) -> Any:
    # FastAPI 422s echo the whole request body (env vars included): never keep that.
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return {
            **body,
            "detail": [
                {k: v for k, v in e.items() if k != "input"} if isinstance(e, dict) else e
                for e in body["detail"]
            ],
        }
    return body


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    redactor: Redactor,
    retry_after: float | None = None,
) -> SkyPilotError:
    """Classify an HTTP error response (any shape the server produces)."""
    request_id = request_id_of(headers)
    body: Any
    try:
        body = parse_json(content)
    except ValueError:
        body = None
    if body is None:
        text = strip_ansi(content.decode("utf-8", "replace")).strip()
        # Debug-mode 500s are tracebacks: the last line names the exception.
        lines = [ln for ln in text.splitlines() if ln.strip()]
        message = lines[-1] if lines else f"HTTP {status_code}"
    elif isinstance(body, str):  # basic-auth 401s are bare JSON strings
        message = body
    elif isinstance(body, dict) and body.get("error") == "version_mismatch":
        return VersionMismatchError(
            redactor.text(strip_ansi(str(body.get("message", "version mismatch")))),
            request_id=request_id,
            status_code=status_code,
            body=redactor.json(body),
            server_api_version=server_api_version(headers),
        )
    elif isinstance(body, dict) and "detail" in body:
        message = _message_from_detail(body["detail"])
    else:
        message = str(body)
    body = redactor.json(_strip_echoed_inputs(body))
    message = redactor.text(strip_ansi(message))
    if status_code == 404 and message == "Not Found":
        message = "Not Found: this server does not have that endpoint (is it a SkyPilot server?)"
    return error_for_status(
        status_code,
        f"HTTP {status_code}: {message}",
        request_id=request_id,
        body=body,
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class RequestOutcome:
    """A terminal request record from ``/api/get`` with its decoded return value."""

    status: RequestStatus
    return_value: Any


def _decode_inner(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def decode_record(
    record: Any, *, operation: str = "request", where: str = "request"
) -> tuple[RequestStatus, Any, Any]:
    """Split a request record into (status, return value, error), decoding the inner JSON.

    Raises MalformedResponseError (naming the field) for a record we cannot read.
    """
    from .models import RequestStatus

    record = expect_dict(record, operation=operation, where=where)
    request_id = record.get("request_id") if isinstance(record.get("request_id"), str) else None
    return_value = _decode_inner(record.get("return_value"))
    status = parse_answer(
        RequestStatus,
        {**record, "return_value": drop_pickles(return_value)},
        operation=operation,
        where=where,
        request_id=request_id,
    )
    return status, return_value, _decode_inner(record.get("error"))


def failure_error(status: RequestStatus, error: Any, redactor: Redactor) -> RequestFailedError:
    """The classified error of a FAILED request record (pickles never touched)."""
    if isinstance(error, dict):
        error_type = str(error.get("type") or "UnknownError")
        message = str(error.get("message") or error_type)
    else:
        error_type, message = "UnknownError", f"request {status.name} failed"
    message = redactor.text(strip_ansi(message)).strip()
    return error_for_request_failure(
        error_type,
        f"{status.name} failed: {error_type}: {message}",
        request_id=status.request_id,
        request_name=status.name,
        cluster_name=status.cluster_name,
    )


def outcome_of_get(
    status_code: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    request_id: str,
    redactor: Redactor,
    operation: str = "wait",
) -> RequestOutcome:
    """Interpret an ``/api/get`` response: a result, or the right error raised."""
    from .models import RequestState

    body: Any = None
    if status_code in (200, 500):
        try:
            body = parse_json(content)
        except ValueError:
            body = None
    record = body.get("detail") if status_code == 500 and isinstance(body, dict) else body
    if not isinstance(record, dict) or "status" not in record:
        if 200 <= status_code < 300:  # "succeeded" with something that is not a record
            raise malformed(
                operation,
                f"record of request {request_id}",
                "the /api/get answer is not a request record",
                request_id=request_id,
                status_code=status_code,
            )
        raise error_from_response(status_code, headers, content, redactor=redactor)
    status, return_value, error = decode_record(record, operation=operation)
    if status.status == RequestState.CANCELLED:
        raise RequestCancelledError(
            f"request {status.name} was cancelled", request_id=status.request_id
        )
    if status.status == RequestState.FAILED or status_code == 500:
        raise failure_error(status, error, redactor)
    return RequestOutcome(status, return_value)


def drop_pickles(value: Any) -> Any:
    """Remove base64-pickled handles from a decoded return value."""
    if isinstance(value, dict):
        return {k: drop_pickles(v) for k, v in value.items() if k not in ("handle", "resources")}
    if isinstance(value, list):
        return [drop_pickles(v) for v in value]
    return value


def version_problem(
    server_version: int | None, *, operation: str, min_version: int
) -> VersionMismatchError | None:
    """A clear error when the server is too old for ``operation`` (None when fine)."""
    if server_version is None:
        return VersionMismatchError(
            f"{operation}: the server sent no API version; it predates SkyPilot 0.11 and "
            f"this client needs API version {min_version} or newer. Upgrade the server "
            f'(pip install -U "skypilot=={constants.SERVER_VERSION}").'
        )
    if server_version < min_version:
        return VersionMismatchError(
            f"{operation}: the server's API version is {server_version}, but this operation "
            f"needs {min_version} or newer. Upgrade the server "
            f'(pip install -U "skypilot=={constants.SERVER_VERSION}").',
            server_api_version=server_version,
        )
    return None


# ---------------------------------------------------------------------------- log streams


@dataclass(frozen=True)
class LogLine:
    """A line of output (ANSI codes kept: callers decide)."""

    text: str


@dataclass(frozen=True)
class SpinnerUpdate:
    """Spinner/status text the server sent as a control payload (markup removed)."""

    tag: str
    text: str


StreamEvent = LogLine | SpinnerUpdate


class LogStreamParser:
    """Turns streamed text chunks into lines and spinner updates.

    Control lines ``<sky-payload>"<tag>text</tag>"</sky-payload>`` become ``SpinnerUpdate``;
    heartbeats are dropped; the waiting banner padded with spaces is trimmed.
    """

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, chunk: str) -> Iterator[StreamEvent]:
        """Events for every complete line in ``chunk`` (plus what was buffered)."""
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            yield from self._line(line)

    def close(self) -> Iterator[StreamEvent]:
        """Events for a final line that had no newline."""
        rest, self._buffer = self._buffer, ""
        if rest:
            yield from self._line(rest)

    @staticmethod
    def _line(line: str) -> Iterator[StreamEvent]:
        match = _PAYLOAD.search(line)
        if match is None:
            yield LogLine(line.rstrip(" "))
            return
        try:
            inner = json.loads(match.group(1))
        except ValueError:
            inner = match.group(1)
        tagged = _PAYLOAD_TAG.match(inner) if isinstance(inner, str) else None
        if tagged and tagged.group(1) not in ("heartbeat", "retry"):
            text = strip_ansi(_RICH_MARKUP.sub("", tagged.group(2))).strip()
            yield SpinnerUpdate(tagged.group(1), text)
        outside = (line[: match.start()] + line[match.end() :]).strip()
        if outside:
            yield LogLine(outside)


def clean_output(lines: list[str]) -> str:
    """Join streamed lines into plain output (ANSI codes and carriage returns removed)."""
    # A progress line redraws itself after "\r": keep what was drawn last.
    cleaned = [strip_ansi(line).rstrip("\r").split("\r")[-1] for line in lines]
    return "\n".join(cleaned) + ("\n" if cleaned else "")
