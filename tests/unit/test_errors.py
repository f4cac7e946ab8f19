"""Error classification: HTTP statuses, server exception types, and the real error bodies
the SkyPilot 0.14.1 server sends (PROTOCOL.md sections 3, 7 and 10, written inline as bytes).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from skypilot_client import RequestState, errors
from skypilot_client._protocol import error_from_response, outcome_of_get
from skypilot_client._redact import REDACTED, Redactor
from skypilot_client.errors import (
    AccessDeniedError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClusterNotFoundError,
    ClusterNotUpError,
    ClusterSetUpError,
    CommandError,
    ConflictError,
    InternalServerError,
    InvalidCloudCredentialsError,
    InvalidClusterNameError,
    NoCloudAccessError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    PolicyRejectedError,
    RateLimitError,
    RequestCancelledError,
    RequestFailedError,
    RequestInterruptedError,
    ResourcesMismatchError,
    ResourcesUnavailableError,
    ServiceUnavailableError,
    SkyPilotError,
    UnprocessableEntityError,
    VersionMismatchError,
    WorkspaceAccessError,
)

SENTINEL = "sky_SENTINEL-token-6f1d2c"
SENTINEL_AWS_SECRET = "SENTINEL/aws/secret/key/9a8b7c"
REQUEST_ID = "a52becb2-5b0b-483e-af71-03c9374ecb8b"


def no_redaction() -> Redactor:
    return Redactor()


def classify(
    status: int,
    content: bytes,
    headers: dict[str, str] | None = None,
    *,
    redactor: Redactor | None = None,
) -> SkyPilotError:
    return error_from_response(
        status,
        httpx.Headers(headers or {}),
        content,
        redactor=redactor or no_redaction(),
    )


# ---------------------------------------------------------------------------- error_for_status


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (401, AuthenticationError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (409, ConflictError, False),
        (422, UnprocessableEntityError, False),
        (429, RateLimitError, True),
        (500, InternalServerError, False),
        (502, InternalServerError, True),
        (503, ServiceUnavailableError, True),
        (504, InternalServerError, True),
        (418, APIStatusError, False),
        (405, APIStatusError, False),
        (501, InternalServerError, False),
    ],
)
def test_error_for_status(status: int, cls: type[APIStatusError], retryable: bool) -> None:
    error = errors.error_for_status(status, f"HTTP {status}", request_id="rid-1")
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    assert error.message == f"HTTP {status}"
    assert error.request_id == "rid-1"
    assert str(error) == f"HTTP {status} (request id: rid-1)"
    assert error.is_retryable is retryable
    assert error.is_not_found is (status == 404)
    assert error.is_unauthorized is (status == 401)
    assert error.is_rate_limited is (status == 429)


def test_maybe_submitted_status_error_is_never_retryable() -> None:
    for status in (429, 502, 503, 504):
        error = errors.error_for_status(status, "x", maybe_submitted=True)
        assert error.is_retryable is False, status


# ---------------------------------------------------------------------------- request failures

REQUEST_FAILURE_TABLE: list[tuple[str, type[RequestFailedError]]] = [
    ("ClusterDoesNotExist", ClusterNotFoundError),
    ("ClusterNotUpError", ClusterNotUpError),
    ("ClusterSetUpError", ClusterSetUpError),
    ("NoCloudAccessError", NoCloudAccessError),
    ("ResourcesUnavailableError", ResourcesUnavailableError),
    ("KubeAPIUnreachableError", ResourcesUnavailableError),
    ("ResourcesMismatchError", ResourcesMismatchError),
    ("NotSupportedError", NotSupportedError),
    ("CommandError", CommandError),
    ("InvalidClusterNameError", InvalidClusterNameError),
    ("InvalidCloudCredentials", InvalidCloudCredentialsError),
    ("PermissionDeniedError", AccessDeniedError),
    ("ClusterOwnerIdentityMismatchError", AccessDeniedError),
    ("NoWorkspaceAccessError", WorkspaceAccessError),
    ("UserRequestRejectedByPolicy", PolicyRejectedError),
    ("RequestInterruptedError", RequestInterruptedError),
]


def test_request_failure_table_matches_the_mapping() -> None:
    for error_type, cls in REQUEST_FAILURE_TABLE:
        assert errors._REQUEST_FAILURE_CLASSES.get(error_type) is cls, error_type


@pytest.mark.parametrize(("error_type", "cls"), REQUEST_FAILURE_TABLE)
def test_error_for_request_failure(error_type: str, cls: type[RequestFailedError]) -> None:
    error = errors.error_for_request_failure(
        error_type, "sky.launch failed", request_id=REQUEST_ID, cluster_name="c1"
    )
    assert type(error) is cls
    assert isinstance(error, RequestFailedError)
    assert error.error_type == error_type
    assert error.message == "sky.launch failed"
    assert error.request_id == REQUEST_ID
    assert error.cluster_name == "c1"
    # Only an interrupted request (server restart) is safe to submit again.
    assert error.is_retryable is (cls is RequestInterruptedError)


@pytest.mark.parametrize(
    ("error_type", "cls"), sorted(errors._REQUEST_FAILURE_CLASSES.items()), ids=str
)
def test_every_mapped_server_type(error_type: str, cls: type[RequestFailedError]) -> None:
    """Whatever the mapping holds (it grows), each server type builds its own class."""
    error = errors.error_for_request_failure(error_type, "failed", request_name="sky.launch")
    assert type(error) is cls
    assert isinstance(error, RequestFailedError)
    assert error.error_type == error_type
    assert error.request_name == "sky.launch"
    assert str(error) == "failed"


@pytest.mark.parametrize("error_type", ["SomeFutureServerError", "ValueError", "RuntimeError", ""])
def test_unknown_request_failure_type_keeps_its_name(error_type: str) -> None:
    error = errors.error_for_request_failure(error_type, "it broke", request_id=REQUEST_ID)
    assert type(error) is RequestFailedError
    assert error.error_type == error_type
    assert error.message == "it broke"
    assert error.request_id == REQUEST_ID
    assert error.is_retryable is False


def test_cluster_not_found_is_a_request_failure_and_a_not_found() -> None:
    error = errors.error_for_request_failure("ClusterDoesNotExist", "Cluster 'c' does not exist.")
    assert isinstance(error, ClusterNotFoundError)
    assert isinstance(error, RequestFailedError)
    assert isinstance(error, NotFoundError)
    assert isinstance(error, APIStatusError)
    assert error.is_not_found
    assert not error.is_unauthorized


def test_access_denied_errors_are_permission_denied() -> None:
    for error_type in ("PermissionDeniedError", "NoWorkspaceAccessError"):
        error = errors.error_for_request_failure(error_type, "no")
        assert isinstance(error, PermissionDeniedError)
        assert isinstance(error, RequestFailedError)


# ---------------------------------------------------------------------------- error bodies


@pytest.mark.parametrize(
    "content",
    [b'"Authentication required"', b'"Invalid credentials"', b'"Invalid basic auth"'],
)
def test_401_bare_json_string(content: bytes) -> None:
    error = classify(
        401,
        content,
        {"WWW-Authenticate": 'Basic realm="SkyPilot"', "X-Skypilot-Request-ID": REQUEST_ID},
    )
    text = content.decode().strip('"')
    assert type(error) is AuthenticationError
    assert error.is_unauthorized
    assert error.status_code == 401
    assert error.message == f"HTTP 401: {text}"
    assert error.body == text
    assert error.request_id == REQUEST_ID


def test_401_detail() -> None:
    error = classify(401, b'{"detail":"Invalid or expired service account token"}')
    assert type(error) is AuthenticationError
    assert error.message == "HTTP 401: Invalid or expired service account token"
    assert error.body == {"detail": "Invalid or expired service account token"}
    assert error.request_id is None


# A 422 as the server sends it: `input` echoes the body after the server filled in defaults,
# including env vars (here a cloud secret) -- it must never survive into the error.
BODY_422 = (
    b'{"detail":[{"type":"missing","loc":["body","cluster_name"],"msg":"Field required",'
    b'"input":{"task":"run: echo hi","env_vars":{"SKYPILOT_USER_ID":"fcd1e5cf",'
    b'"SKYPILOT_USER":"alice","AWS_SECRET_ACCESS_KEY":"SENTINEL/aws/secret/key/9a8b7c"},'
    b'"retry_until_up":false}},'
    b'{"type":"enum","loc":["body","refresh"],"msg":"Input should be \'NONE\', \'AUTO\' or '
    b'\'FORCE\'","input":"SOMETIMES","ctx":{"expected":"\'NONE\', \'AUTO\' or \'FORCE\'"}}]}'
)


def test_422_fastapi_validation_list() -> None:
    error = classify(422, BODY_422, {"X-Skypilot-Request-ID": REQUEST_ID})
    assert isinstance(error, UnprocessableEntityError)
    assert error.status_code == 422
    assert error.request_id == REQUEST_ID
    assert error.message == (
        "HTTP 422: cluster_name: Field required; refresh: Input should be 'NONE', 'AUTO' or 'FORCE'"
    )
    assert error.errors == [
        {"type": "missing", "loc": ["body", "cluster_name"], "msg": "Field required"},
        {
            "type": "enum",
            "loc": ["body", "refresh"],
            "msg": "Input should be 'NONE', 'AUTO' or 'FORCE'",
            "ctx": {"expected": "'NONE', 'AUTO' or 'FORCE'"},
        },
    ]
    assert isinstance(error.body, dict)
    assert all("input" not in item for item in error.body["detail"])
    assert SENTINEL_AWS_SECRET not in repr(error.body)
    assert "SOMETIMES" not in repr(error.body)
    assert SENTINEL_AWS_SECRET not in str(error)


def test_422_errors_empty_for_other_shapes() -> None:
    error = classify(422, b'{"detail":"bad"}')
    assert isinstance(error, UnprocessableEntityError)
    assert error.errors == []


# Section 3: what the server answers a client whose API version is below 24 (ANSI colours in).
BODY_VERSION_MISMATCH = (
    rb'{"error":"version_mismatch","message":"\u001b[33mYour SkyPilot client version is too '
    rb"old:0.9.0\nThe server's minimum compatible version is 0.11.0.\nUpgrade your client "
    rb'with:\n\u001b[1mpip install -U \"skypilot==0.14.1\"\u001b[0m\u001b[0m"}'
)


def test_400_version_mismatch_with_ansi() -> None:
    error = classify(400, BODY_VERSION_MISMATCH, {"X-SkyPilot-API-Version": "62"})
    assert type(error) is VersionMismatchError
    assert error.status_code == 400
    assert error.server_api_version == 62
    assert "\x1b" not in error.message
    assert "[33m" not in error.message
    assert error.message.startswith("Your SkyPilot client version is too old:0.9.0\n")
    assert 'pip install -U "skypilot==0.14.1"' in error.message


def test_400_detail_string() -> None:
    error = classify(400, b'{"detail":"Request ID prefix \'a5\' matches multiple requests"}')
    assert type(error) is BadRequestError
    assert error.message == "HTTP 400: Request ID prefix 'a5' matches multiple requests"


def test_400_detail_dict_from_validate() -> None:
    error = classify(
        400,
        b'{"detail":{"type":"ValueError","message":"Invalid task YAML: \\u001b[1mrun\\u001b[0m '
        b'must be a string","args":[],"attributes":{},"stacktrace":"Traceback ..."}}',
    )
    assert type(error) is BadRequestError
    assert error.message == "HTTP 400: Invalid task YAML: run must be a string"


BODY_TRACEBACK = (
    b"Traceback (most recent call last):\n"
    b'  File "/opt/sky/lib/python3.11/site-packages/uvicorn/protocols/http/h11_impl.py", '
    b"line 403, in run_asgi\n"
    b"    result = await app(  # type: ignore[func-returns-value]\n"
    b'  File "/opt/sky/lib/python3.11/site-packages/sky/server/versions.py", line 102, in '
    b"check_compatibility_at_server\n"
    b"    remote_api_version = int(headers[constants.API_VERSION_HEADER])\n"
    b"ValueError: invalid literal for int() with base 10: 'abc'\n"
)


def test_500_text_plain_traceback_uses_last_line() -> None:
    error = classify(500, BODY_TRACEBACK, {"Content-Type": "text/plain; charset=utf-8"})
    assert type(error) is InternalServerError
    assert error.message == "HTTP 500: ValueError: invalid literal for int() with base 10: 'abc'"
    assert error.body is None
    assert error.request_id is None
    assert not error.is_retryable


def test_404_request_not_found() -> None:
    error = classify(
        404, b'{"detail":"Request \'x\' not found"}', {"X-Skypilot-Request-ID": REQUEST_ID}
    )
    assert type(error) is NotFoundError
    assert error.is_not_found
    assert error.message == "HTTP 404: Request 'x' not found"
    assert error.body == {"detail": "Request 'x' not found"}


def test_404_unknown_endpoint_says_so() -> None:
    error = classify(404, b'{"detail":"Not Found"}')
    assert type(error) is NotFoundError
    assert "this server does not have that endpoint" in error.message


def test_503_shutting_down() -> None:
    error = classify(503, b'{"detail":"Server is shutting down, please try again later."}')
    assert type(error) is ServiceUnavailableError
    assert error.message == "HTTP 503: Server is shutting down, please try again later."
    assert error.is_retryable


def test_empty_body_uses_status() -> None:
    error = classify(502, b"")
    assert type(error) is InternalServerError
    assert error.message == "HTTP 502: HTTP 502"


# ---------------------------------------------------------------------------- /api/get outcomes

RECORD_SUCCEEDED = (
    b'{"request_id":"a52becb2-5b0b-483e-af71-03c9374ecb8b","name":"sky.launch",'
    b'"entrypoint":"gASVFwAAAAAAAACMCHNreS5jb3JllIwGc3RhdHVzlJOULg==",'
    b'"request_body":"gASVFAMAAAAAAACMHHNreS5zZXJ2ZXIucmVxdWVzdHMucGF5bG9hZHOU",'
    b'"status":"SUCCEEDED","created_at":1795433897.31,"user_id":"fcd1e5cf",'
    b'"return_value":"{\\"job_id\\": 1, \\"handle\\": \\"gAROLg==\\"}","error":"null",'
    b'"pid":7143,"schedule_type":"long","user_name":null,"cluster_name":"c1",'
    b'"status_msg":null,"should_retry":false,"finished_at":1795433897.36,'
    b'"file_mounts_blob_id":null}'
)

RECORD_CANCELLED = (
    b'{"request_id":"a52becb2-5b0b-483e-af71-03c9374ecb8b","name":"sky.launch",'
    b'"entrypoint":"gASV","request_body":"gASV","status":"CANCELLED",'
    b'"created_at":1795433897.31,"user_id":"fcd1e5cf","return_value":"null","error":"null",'
    b'"pid":7143,"schedule_type":"long","user_name":null,"cluster_name":"c1",'
    b'"status_msg":null,"should_retry":false,"finished_at":1795433899.0,'
    b'"file_mounts_blob_id":null}'
)

# A failed request: the record wrapped in {"detail": ...}; `error` is a JSON string whose
# message carries ANSI colour codes.
BODY_FAILED_NOT_UP = (
    b'{"detail":{"request_id":"a52becb2-5b0b-483e-af71-03c9374ecb8b","name":"sky.logs",'
    b'"entrypoint":"gASV","request_body":"gASV","status":"FAILED",'
    b'"created_at":1795433897.31,"user_id":"fcd1e5cf","return_value":"null",'
    b'"error":"{\\"object\\": \\"gASVbQAAAAAAAAB9lCiMBHR5cGWU\\", '
    b'\\"type\\": \\"ClusterNotUpError\\", \\"message\\": '
    b'\\"\\\\u001b[33mCluster \'c1\' is not up (status: STOPPED).\\\\u001b[0m\\"}",'
    b'"pid":7143,"schedule_type":"short","user_name":null,"cluster_name":"c1",'
    b'"status_msg":null,"should_retry":false,"finished_at":1795433897.36,'
    b'"file_mounts_blob_id":null}}'
)


def get_outcome(status: int, content: bytes, *, redactor: Redactor | None = None) -> Any:
    return outcome_of_get(
        status,
        httpx.Headers({"X-Skypilot-Request-ID": "poll-id"}),
        content,
        request_id=REQUEST_ID,
        redactor=redactor or no_redaction(),
    )


def test_outcome_succeeded_decodes_return_value_twice() -> None:
    outcome = get_outcome(200, RECORD_SUCCEEDED)
    assert outcome.return_value == {"job_id": 1, "handle": "gAROLg=="}
    status = outcome.status
    assert status.request_id == REQUEST_ID
    assert status.name == "sky.launch"
    assert status.status is RequestState.SUCCEEDED
    assert status.cluster_name == "c1"
    # Pickles never reach the model.
    assert status.return_value == {"job_id": 1}
    dumped = status.model_dump()
    for key in ("entrypoint", "request_body", "error", "pid"):
        assert key not in dumped


def test_outcome_cancelled_raises() -> None:
    with pytest.raises(RequestCancelledError) as info:
        get_outcome(200, RECORD_CANCELLED)
    assert info.value.request_id == REQUEST_ID
    assert "sky.launch" in info.value.message


def test_outcome_failed_500_is_classified() -> None:
    with pytest.raises(ClusterNotUpError) as info:
        get_outcome(500, BODY_FAILED_NOT_UP)
    error = info.value
    assert error.message == (
        "sky.logs failed: ClusterNotUpError: Cluster 'c1' is not up (status: STOPPED)."
    )
    assert "\x1b" not in str(error)
    assert error.request_id == REQUEST_ID
    assert error.error_type == "ClusterNotUpError"
    assert error.request_name == "sky.logs"
    assert error.cluster_name == "c1"
    assert error.status_code is None
    assert not error.is_retryable


def test_outcome_404_request_not_found() -> None:
    with pytest.raises(NotFoundError) as info:
        get_outcome(404, b'{"detail":"Request \'x\' not found"}')
    assert info.value.message == "HTTP 404: Request 'x' not found"


def test_outcome_500_traceback_is_internal_server_error() -> None:
    with pytest.raises(InternalServerError) as info:
        get_outcome(500, BODY_TRACEBACK)
    assert info.value.message.endswith("ValueError: invalid literal for int() with base 10: 'abc'")


# ---------------------------------------------------------------------------- redaction


def sentinel_redactor() -> Redactor:
    return Redactor([SENTINEL, "abc"])  # secrets shorter than 4 characters are ignored


def test_redactor_text_and_json() -> None:
    redactor = sentinel_redactor()
    assert redactor.text(f"token={SENTINEL}!") == f"token={REDACTED}!"
    assert redactor.text("abcabc") == "abcabc"
    assert redactor.json(
        {"a": [f"x {SENTINEL}", 1, None], "AWS_SECRET_ACCESS_KEY": "plain", "MY_TOKEN": 3}
    ) == {"a": [f"x {REDACTED}", 1, None], "AWS_SECRET_ACCESS_KEY": REDACTED, "MY_TOKEN": REDACTED}


def test_redactor_prefers_longest_secret() -> None:
    redactor = Redactor(["sky_abcd", "sky_abcd-longer"])
    assert redactor.text("sky_abcd-longer") == REDACTED


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (400, b'{"detail":"Invalid token sky_SENTINEL-token-6f1d2c in header"}'),
        (401, b'"Invalid token sky_SENTINEL-token-6f1d2c"'),
        (500, b"Traceback (most recent call last):\nKeyError: 'sky_SENTINEL-token-6f1d2c'\n"),
        (
            422,
            b'{"detail":[{"type":"missing","loc":["body","x"],'
            b'"msg":"bad sky_SENTINEL-token-6f1d2c","ctx":{"v":"sky_SENTINEL-token-6f1d2c"}}]}',
        ),
        pytest.param(
            400,
            b'{"error":"version_mismatch","message":"client sky_SENTINEL-token-6f1d2c too old"}',
            id="version-mismatch",
        ),
    ],
)
def test_error_from_response_redacts_message_and_body(status: int, content: bytes) -> None:
    error = classify(status, content, redactor=sentinel_redactor())
    assert SENTINEL not in str(error)
    assert SENTINEL not in repr(error)
    assert SENTINEL not in repr(error.body)
    assert REDACTED in error.message


def test_request_failure_message_is_redacted() -> None:
    body = BODY_FAILED_NOT_UP.replace(b"is not up", SENTINEL.encode())
    with pytest.raises(ClusterNotUpError) as info:
        get_outcome(500, body, redactor=sentinel_redactor())
    assert SENTINEL not in str(info.value)
    assert REDACTED in info.value.message
