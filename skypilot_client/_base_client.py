"""What the sync and async clients share: settings, request building, classification, and
every operation written once as a *flow*.

A flow is a generator that yields effects (``Call``, ``Wait``, ``Collect``) and receives
their results. ``SkyPilotClient`` runs flows with blocking I/O, ``AsyncSkyPilotClient`` with
``await``; neither contains protocol logic of its own.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from . import _constants as C
from ._config import ClientSettings, parse_duration, resolve_settings
from ._deadline import GRACE, Deadline
from ._protocol import (
    RequestOutcome,
    base_headers,
    clean_output,
    decode_record,
    error_from_response,
    expect_dict,
    expect_list,
    malformed,
    outcome_of_get,
    parse_answer,
    parse_json,
    request_body,
    request_id_of,
    server_api_version,
    user_identity,
    version_problem,
)
from ._redact import Redactor
from ._tasks import (
    cheapest,
    command_task,
    offers_from_list_accelerators,
    prepare_launch_task,
    resource_spec,
)
from .errors import (
    APIConnectionError,
    APITimeoutError,
    ClusterNotFoundError,
    InvalidInputError,
    MalformedResponseError,
    NotFoundError,
    SkyPilotError,
    WaitTimeoutError,
)
from .retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from pydantic import BaseModel

    from .models import (
        AcceleratorOffer,
        CloudCredentials,
        ClusterList,
        ClusterStatus,
        CostEstimate,
        EstimateCostRequest,
        ExecuteRequest,
        ExecuteResult,
        HealthStatus,
        Job,
        JobLogs,
        JobState,
        LaunchRequest,
        LaunchResult,
        LogsRequest,
        RequestStatus,
    )

logger = logging.getLogger("skypilot_client")
logger.addHandler(logging.NullHandler())

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")
HttpClientT = TypeVar("HttpClientT", httpx.Client, httpx.AsyncClient)


# ---------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Call:
    """One HTTP exchange that answers JSON (retried per the policy)."""

    method: str
    path: str
    operation: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    #: A POST that makes the server do work: never replayed once it may have arrived.
    submits_work: bool = False
    #: Statuses handed back to the flow instead of raised (``/api/get`` answers 500 + record).
    pass_statuses: frozenset[int] = frozenset()
    #: Read timeout for this call; None = the client's timeout.
    read_timeout: float | None = None
    #: A server long poll: its read timeout is not an error to retry, the waiter re-polls.
    long_poll: bool = False
    cluster_name: str | None = None
    #: The public call's deadline: bounds this call's read timeout (streams included).
    deadline: Deadline | None = None
    #: This request's own credentials, redacted from its errors (besides the client's token).
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A successful JSON response."""

    status_code: int
    data: Any
    request_id: str | None
    headers: Mapping[str, str]
    content: bytes = b""


@dataclass(frozen=True)
class Wait:
    """Wait (server long poll) until a request ends, at the latest by ``deadline``."""

    request_id: str
    deadline: Deadline
    operation: str
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collect:
    """Read a whole text stream (``POST /logs``), payload lines filtered, by the call's
    deadline."""

    call: Call


@dataclass(frozen=True)
class Collected:
    """What a ``Collect`` read: output lines and the request id of the stream."""

    lines: list[str]
    request_id: str | None


Effect = Call | Wait | Collect
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class RequestMetrics:
    """One HTTP attempt, as reported to the ``on_request`` hook (for your metrics).

    Attributes:
        operation: Client operation, e.g. ``launch``, ``status``, ``wait``.
        method: HTTP method.
        path: URL path (never the full URL, never a secret).
        status_code: HTTP status, or None when the attempt failed in transport.
        duration: Seconds the attempt took.
        attempt: 1 for the first try, 2 for the first retry, ...
        error: Error class name of a transport failure, else None.
        request_id: The server's request id, when it sent one.
    """

    operation: str
    method: str
    path: str
    status_code: int | None
    duration: float
    attempt: int
    error: str | None
    request_id: str | None


@dataclass
class _Shared:
    """State shared by a client and every ``with_options`` copy of it (one pool).

    No secrets here: each copy redacts its own token, each request its own credentials.
    """

    http: Any
    owns_http: bool
    on_request: Callable[[RequestMetrics], object] | None = None
    server_api_version: int | None = None
    warned_newer_server: bool = False
    closed: bool = False


_NO_CHANGE: Any = object()


class BaseClient(Generic[HttpClientT]):
    """Shared configuration, request building, classification and flows."""

    _shared: _Shared
    _settings: ClientSettings
    _workspace: str | None

    def _init_common(
        self,
        base_url: str | None,
        token: str | None,
        *,
        timeout: float | None,
        max_retries: int | None,
        retry_delay: float | None,
        retry_max_delay: float | None,
        max_connections: int | None,
        http_client: HttpClientT | None,
        workspace: str | None,
        on_request: Callable[[RequestMetrics], object] | None,
    ) -> None:
        self._settings = resolve_settings(
            base_url=base_url,
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            retry_delay=retry_delay,
            retry_max_delay=retry_max_delay,
        )
        if max_connections is not None and max_connections < 1:
            raise InvalidInputError(f"max_connections must be 1 or more, got {max_connections}")
        self._workspace = workspace
        self._identity = user_identity()
        self._redactor = self._own_redactor()
        owns = http_client is None
        http = (
            http_client
            if http_client is not None
            else self._make_http(
                httpx.Limits(
                    max_connections=max_connections or C.DEFAULT_MAX_CONNECTIONS,
                    max_keepalive_connections=C.DEFAULT_MAX_KEEPALIVE,
                )
            )
        )
        self._shared = _Shared(http=http, owns_http=owns, on_request=on_request)

    def _own_redactor(self) -> Redactor:
        """Redacts this client's own secrets (token, basic-auth password) and nothing else."""
        secrets = []
        if self._settings.token:
            secrets.append(self._settings.token.get_secret_value())
        if self._settings.basic_auth:
            secrets.append(self._settings.basic_auth[1].get_secret_value())
        return Redactor(secrets)

    def _redactor_for(self, secrets: tuple[str, ...]) -> Redactor:
        """The client's redactor plus one request's credentials (lives as long as the call)."""
        return self._redactor.with_secrets(secrets)

    def _make_http(self, limits: httpx.Limits) -> HttpClientT:
        raise NotImplementedError

    # -- public configuration ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API server URL (never includes credentials)."""
        return self._settings.base_url

    @property
    def timeout(self) -> float:
        """Timeout in seconds for one ordinary HTTP call."""
        return self._settings.timeout

    @property
    def max_retries(self) -> int:
        """How many times a retryable failure is retried."""
        return self._settings.max_retries

    @property
    def workspace(self) -> str | None:
        """The SkyPilot workspace requests run in (None = the server's default)."""
        return self._workspace

    @property
    def server_api_version(self) -> int | None:
        """The server's API version, once a response has told us."""
        return self._shared.server_api_version

    def __repr__(self) -> str:
        token = "set" if self._settings.token else "none"
        ws = f", workspace={self._workspace!r}" if self._workspace else ""
        return f"{type(self).__name__}(base_url={self.base_url!r}, token={token}{ws})"

    def _copy(
        self,
        *,
        token: str | None,
        workspace: str | None,
        timeout: float | None,
        max_retries: int | None,
    ) -> Any:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        settings = self._settings
        changes: dict[str, Any] = {}
        if token is not _NO_CHANGE:
            from ._config import parse_token

            changes["token"] = None if token is None else parse_token(token, name="token")
        if timeout is not _NO_CHANGE and timeout is not None:
            changes["timeout"] = parse_duration(timeout, name="timeout")
        if max_retries is not _NO_CHANGE and max_retries is not None:
            from ._config import parse_non_negative_int

            changes["max_retries"] = parse_non_negative_int(max_retries, name="max_retries")
        if changes:
            clone._settings = replace(settings, **changes)
            clone._redactor = clone._own_redactor()
        if workspace is not _NO_CHANGE:
            clone._workspace = workspace
        return clone

    # -- request building (no I/O) ------------------------------------------------------

    @property
    def _policy(self) -> RetryPolicy:
        s = self._settings
        return RetryPolicy(
            max_retries=s.max_retries, initial_delay=s.retry_delay, max_delay=s.retry_max_delay
        )

    def _headers(self) -> dict[str, str]:
        headers = base_headers()
        if self._settings.token is not None:
            headers["Authorization"] = f"Bearer {self._settings.token.get_secret_value()}"
        elif self._settings.basic_auth is not None:
            user, password = self._settings.basic_auth
            raw = f"{user}:{password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return headers

    def _timeout_for(self, call: Call) -> httpx.Timeout:
        read = call.read_timeout if call.read_timeout is not None else self._settings.timeout
        if call.deadline is not None:  # never read (or sit silent on a stream) past it
            read = max(min(read, call.deadline.remaining()), GRACE)
        # Waiting for a pooled connection is local queueing behind other calls, which may
        # hold theirs for a whole long poll: allow that much, not just one call's timeout.
        pool = read if call.long_poll else self._settings.timeout + C.LONG_POLL_READ_TIMEOUT
        return httpx.Timeout(
            self._settings.timeout,
            connect=min(C.DEFAULT_CONNECT_TIMEOUT, self._settings.timeout),
            read=read,
            pool=pool,
        )

    def _url(self, path: str) -> str:
        return self._settings.base_url + path

    def _body(
        self, fields: Mapping[str, Any], credentials: CloudCredentials | None = None
    ) -> dict[str, Any]:
        extra_env = credentials.to_env_vars() if credentials is not None else None
        return request_body(
            fields, identity=self._identity, extra_env=extra_env, workspace=self._workspace
        )

    @staticmethod
    def _secrets_of(credentials: CloudCredentials | None) -> tuple[str, ...]:
        return tuple(credentials.secret_values()) if credentials is not None else ()

    def _submit(
        self,
        path: str,
        fields: Mapping[str, Any],
        *,
        operation: str,
        submits_work: bool,
        credentials: CloudCredentials | None = None,
        cluster_name: str | None = None,
    ) -> Call:
        return Call(
            "POST",
            path,
            operation,
            json=self._body(fields, credentials),
            submits_work=submits_work,
            cluster_name=cluster_name,
            secrets=self._secrets_of(credentials),
        )

    # -- classification (no I/O) --------------------------------------------------------

    def _note_response(self, headers: Mapping[str, str]) -> None:
        version = server_api_version(headers)
        if version is None:
            return
        self._shared.server_api_version = version
        if version > C.API_VERSION and not self._shared.warned_newer_server:
            self._shared.warned_newer_server = True
            logger.warning(
                "server API version %d is newer than this client's %d; newer server fields "
                "are kept but not typed",
                version,
                C.API_VERSION,
            )

    def _status_error(self, call: Call, response: httpx.Response) -> SkyPilotError:
        status = response.status_code
        error = error_from_response(
            status,
            response.headers,
            response.content,
            redactor=self._redactor_for(call.secrets),
            retry_after=parse_retry_after(response.headers),
        )
        # Only a 4xx refusal (429 included) or a 503 provably did no work; any other answer
        # (5xx, a proxy's 52x, a redirect, ...) to a submission may come after it was acted on.
        if call.submits_work and not (400 <= status < 500 or status == 503):
            self._mark_maybe_submitted(error, call)
        error.cluster_name = error.cluster_name or call.cluster_name
        return error

    def _mark_maybe_submitted(self, error: SkyPilotError, call: Call) -> None:
        error.maybe_submitted = True
        error.message += self._maybe_submitted_hint(call)

    def _deadline_error(
        self, operation: str, deadline: Deadline, request_id: str | None
    ) -> WaitTimeoutError:
        return WaitTimeoutError(
            f"{operation}: request did not finish within {deadline.seconds:g}s; it may "
            "still be running on the server (wait again, or cancel it)",
            request_id=request_id,
        )

    def _check_deadline(self, call: Call, request_id: str | None) -> None:
        """Raise WaitTimeoutError once the call's deadline has passed (streams check often)."""
        if call.deadline is not None and call.deadline.passed():
            raise self._deadline_error(call.operation, call.deadline, request_id)

    def _transport_error(
        self, call: Call, exc: Exception, request_id: str | None = None
    ) -> SkyPilotError:
        not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        what = f"{call.method} {call.path}"
        about = request_id or self._request_id_param(call)
        if (
            call.deadline is not None
            and isinstance(exc, httpx.TimeoutException)
            and not call.submits_work
            and call.deadline.passed(GRACE)
        ):  # the read timeout was bounded by the deadline: the deadline it is
            return self._deadline_error(call.operation, call.deadline, about)
        if isinstance(exc, httpx.TimeoutException):
            error: SkyPilotError = APITimeoutError(
                f"{call.operation}: {what} timed out ({type(exc).__name__})"
            )
        else:
            reason = self._redactor_for(call.secrets).text(str(exc)) or type(exc).__name__
            error = APIConnectionError(
                f"{call.operation}: cannot reach the SkyPilot API server at {self.base_url} "
                f"({reason})"
            )
        if call.long_poll and isinstance(exc, httpx.ReadTimeout):
            error.retryable = False  # the waiter polls again within its own deadline
        if call.submits_work and not not_sent:
            self._mark_maybe_submitted(error, call)
        error.cluster_name = call.cluster_name
        return error

    @staticmethod
    def _request_id_param(call: Call) -> str | None:
        params = call.params or {}
        value = params.get("request_id") or params.get("request_ids")
        return value if isinstance(value, str) else None

    @staticmethod
    def _maybe_submitted_hint(call: Call) -> str:
        scope = f"cluster_name={call.cluster_name!r}" if call.cluster_name else ""
        return (
            f". The {call.operation} request may have been submitted: it was not retried. "
            f"Check client.list_requests({scope}) and client.list_clusters() before "
            "submitting again"
        )

    def _reply(self, call: Call, response: httpx.Response) -> Reply:
        """Turn a read response into a Reply, or raise its classified error."""
        self._note_response(response.headers)
        ok = 200 <= response.status_code < 300
        if not ok and response.status_code not in call.pass_statuses:
            raise self._status_error(call, response)
        try:
            data = parse_json(response.content)
        except ValueError as exc:
            if response.status_code in call.pass_statuses:
                data = None
            else:
                error = MalformedResponseError(
                    f"{call.operation}: the server sent malformed JSON "
                    f"(HTTP {response.status_code})",
                    request_id=request_id_of(response.headers),
                    status_code=response.status_code,
                )
                if call.submits_work:  # accepted, perhaps: we cannot tell
                    self._mark_maybe_submitted(error, call)
                raise error from exc
        return Reply(
            response.status_code,
            data,
            request_id_of(response.headers),
            response.headers,
            response.content,
        )

    def _build_request(self, call: Call, *, stream: bool) -> httpx.Request:
        self._check_deadline(call, self._request_id_param(call))
        headers = self._headers()
        if stream:
            headers["Accept"] = "text/plain"
        # build_request (same on Client and AsyncClient) merges a user-given client's defaults.
        request: httpx.Request = self._shared.http.build_request(
            call.method,
            self._url(call.path),
            params=call.params,
            json=call.json,
            headers=headers,
            timeout=self._timeout_for(call),
        )
        return request

    def _observe(
        self,
        call: Call,
        attempt: int,
        started: float,
        response: httpx.Response | None,
        error: SkyPilotError | None = None,
    ) -> None:
        """Log one HTTP attempt and report it to the metrics hook."""
        duration = time.monotonic() - started
        status = response.status_code if response is not None else None
        request_id = request_id_of(response.headers) if response is not None else None
        logger.debug(
            "%s %s -> %s (%.1f ms, attempt %d)",
            call.method,
            call.path,
            status if status is not None else type(error).__name__,
            duration * 1000,
            attempt,
            extra={
                "operation": call.operation,
                "request_id": request_id,
                "status": status,
                "attempt": attempt,
            },
        )
        hook = self._shared.on_request
        if hook is None:
            return
        try:
            hook(
                RequestMetrics(
                    operation=call.operation,
                    method=call.method,
                    path=call.path,
                    status_code=status,
                    duration=duration,
                    attempt=attempt,
                    error=type(error).__name__ if error is not None else None,
                    request_id=request_id,
                )
            )
        except Exception:  # a broken hook must not break the call
            logger.exception("the on_request hook raised")

    def _failed_attempt(
        self, call: Call, attempt: int, started: float, exc: Exception
    ) -> SkyPilotError:
        error = self._transport_error(call, exc)
        self._observe(call, attempt, started, None, error)
        return error

    def _get_call(self, effect: Wait, read_timeout: float) -> Call:
        return Call(
            "GET",
            "/api/get",
            "wait",
            params={"request_id": effect.request_id},
            pass_statuses=frozenset({500}),
            read_timeout=read_timeout,
            long_poll=True,
            secrets=effect.secrets,
        )

    def _outcome(self, reply: Reply, effect: Wait) -> RequestOutcome:
        return outcome_of_get(
            reply.status_code,
            reply.headers,
            reply.content,
            request_id=effect.request_id,
            redactor=self._redactor_for(effect.secrets),
            operation=effect.operation,
        )

    def _wait_timeout(self, effect: Wait) -> WaitTimeoutError:
        return self._deadline_error(effect.operation, effect.deadline, effect.request_id)

    def _stream_call(
        self,
        request_id: str | None,
        *,
        follow: bool,
        tail: int | None,
        deadline: Deadline | None = None,
    ) -> Call:
        params: dict[str, Any] = {"format": "console", "follow": str(follow).lower()}
        if request_id is not None:
            params["request_id"] = request_id
        if tail is not None:
            params["tail"] = tail
        return Call(
            "GET",
            "/api/stream",
            "stream",
            params=params,
            read_timeout=C.STREAM_READ_TIMEOUT,
            deadline=deadline,
        )

    @staticmethod
    def _wait_timeout_arg(timeout: float | None, default: float, name: str = "timeout") -> float:
        if timeout is None:
            return default
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidInputError(f"{name} must be a positive number of seconds, got {timeout!r}")
        return float(timeout)

    @staticmethod
    def _cluster_name(name: str) -> str:
        if not isinstance(name, str) or not C.CLUSTER_NAME_RE.fullmatch(name):
            raise InvalidInputError(
                f"invalid cluster name {name!r}: SkyPilot names start with a letter, end with a "
                "letter or digit, and contain only letters, digits, '-', '_' and '.'"
            )
        return name

    @staticmethod
    def _request_id(request_id: str) -> str:
        if not isinstance(request_id, str) or not request_id.strip():
            raise InvalidInputError("request_id must be a non-empty string")
        return request_id.strip()

    # -- flows: every operation, written once -------------------------------------------

    def _require_version(
        self, operation: str, min_version: int = C.MIN_SERVER_API_VERSION
    ) -> Flow[None]:
        if self._shared.server_api_version is None:
            yield Call("GET", "/api/health", "health")  # its headers tell the version
        problem = version_problem(
            self._shared.server_api_version, operation=operation, min_version=min_version
        )
        if problem is not None:
            raise problem

    def _submit_and_wait(self, call: Call, deadline: Deadline) -> Flow[RequestOutcome]:
        yield from self._require_version(call.operation)
        reply = yield call
        request_id = self._submitted_id(call, reply)
        outcome: RequestOutcome = yield Wait(request_id, deadline, call.operation, call.secrets)
        return outcome

    def _status_deadline(self) -> Deadline:
        return Deadline.after(self._settings.status_timeout)

    def _submitted_id(self, call: Call, reply: Reply) -> str:
        if not reply.request_id:
            error = MalformedResponseError(
                f"{call.operation}: the server accepted the request but sent no "
                "X-Skypilot-Request-ID header (is a proxy stripping it?)",
                field="X-Skypilot-Request-ID",
                status_code=reply.status_code,
            )
            if call.submits_work:
                self._mark_maybe_submitted(error, call)
            raise error
        return reply.request_id

    def _flow_health(self) -> Flow[HealthStatus]:
        from .models import HealthStatus

        reply = yield Call("GET", "/api/health", "health")
        health = parse_answer(
            HealthStatus,
            expect_dict(reply.data, operation="health", where="health"),
            operation="health",
            where="health",
            request_id=reply.request_id,
        )
        header_version = server_api_version(reply.headers)
        problem = version_problem(
            header_version if header_version is not None else health.api_version,
            operation="health",
            min_version=C.MIN_SERVER_API_VERSION,
        )
        if problem is not None:
            raise problem
        return health

    def _flow_submit(self, call: Call) -> Flow[str]:
        yield from self._require_version(call.operation)
        reply = yield call
        return self._submitted_id(call, reply)

    def _launch_call(self, request: LaunchRequest) -> Call:
        task = prepare_launch_task(
            request.task,
            envs=request.envs,
            idle_minutes_to_stop=request.idle_minutes_to_stop,
            down=request.down,
        )
        fields = {
            "task": task,
            "cluster_name": request.cluster_name,
            "retry_until_up": request.retry_until_up,
            "dryrun": request.dryrun,
        }
        return self._submit(
            "/launch",
            fields,
            operation="launch",
            submits_work=True,
            credentials=request.credentials,
            cluster_name=request.cluster_name,
        )

    def _flow_finish_wait(self, request_id: str, deadline: Deadline) -> Flow[None]:
        yield Wait(request_id, deadline, "start")

    def _flow_launch_result(
        self, request: LaunchRequest, request_id: str, deadline: Deadline
    ) -> Flow[LaunchResult]:
        """The launch's result; with ``detach=False`` also its job's, all by one deadline."""
        from .models import LaunchResult, LogsRequest

        secrets = self._secrets_of(request.credentials)
        outcome: RequestOutcome = yield Wait(request_id, deadline, "launch", secrets)
        value = expect_dict(
            outcome.return_value, operation="launch", where="return_value", request_id=request_id
        )
        result = parse_answer(
            LaunchResult,
            {
                "request_id": request_id,
                "cluster_name": request.cluster_name,
                "job_id": value.get("job_id"),
                "dryrun": request.dryrun,
            },
            operation="launch",
            where="return_value",
            request_id=request_id,
        )
        if not request.detach and result.job_id is not None and not request.dryrun:
            logs = yield from self._flow_logs(
                LogsRequest(cluster_name=request.cluster_name, job_id=result.job_id), deadline
            )
            result = result.model_copy(update={"exit_code": logs.exit_code, "output": logs.output})
        return result

    def _flow_execute(self, request: ExecuteRequest, deadline: Deadline) -> Flow[ExecuteResult]:
        from .models import ExecuteResult, LogsRequest

        if request.command is not None:
            task = command_task(request.command, request.envs)
        else:
            assert request.task is not None  # checked by the model
            task = prepare_launch_task(
                request.task, envs=request.envs, idle_minutes_to_stop=None, down=False
            )
        call = self._submit(
            "/exec",
            {"task": task, "cluster_name": request.cluster_name},
            operation="execute",
            submits_work=True,
            credentials=request.credentials,
            cluster_name=request.cluster_name,
        )
        outcome = yield from self._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        value = expect_dict(
            outcome.return_value, operation="execute", where="return_value", request_id=rid
        )
        job_id = value.get("job_id")
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            error = malformed(
                "execute",
                "return_value.job_id",
                f"expected the job id (an integer), got {type(job_id).__name__}",
                request_id=rid,
            )
            self._mark_maybe_submitted(error, call)  # the command may be running
            raise error
        logs = yield from self._flow_logs(
            LogsRequest(cluster_name=request.cluster_name, job_id=job_id), deadline
        )
        statuses = yield from self._flow_job_status(request.cluster_name, [job_id], deadline)
        return ExecuteResult(
            request_id=outcome.status.request_id,
            cluster_name=request.cluster_name,
            job_id=job_id,
            exit_code=logs.exit_code,
            output=logs.output,
            job_status=statuses.get(job_id),
        )

    def _logs_call(self, request: LogsRequest) -> Call:
        fields = {
            "cluster_name": request.cluster_name,
            "job_id": request.job_id,
            "follow": request.follow,
            "tail": request.tail,
        }
        call = self._submit(
            "/logs", fields, operation="logs", submits_work=False, cluster_name=request.cluster_name
        )
        return replace(call, read_timeout=C.STREAM_READ_TIMEOUT)

    def _flow_logs(self, request: LogsRequest, deadline: Deadline) -> Flow[JobLogs]:
        from .models import JobLogs

        yield from self._require_version("logs")
        call = replace(self._logs_call(request), deadline=deadline)
        collected: Collected = yield Collect(call)
        if not collected.request_id:
            raise MalformedResponseError(
                "logs: the server sent no request id for the log stream",
                field="X-Skypilot-Request-ID",
            )
        outcome: RequestOutcome = yield Wait(collected.request_id, deadline, "logs")
        value = outcome.return_value
        # Not reported (or not a number) is unknown, never a plausible 0.
        exit_code = value if isinstance(value, int) and not isinstance(value, bool) else None
        return JobLogs(
            request_id=collected.request_id,
            cluster_name=request.cluster_name,
            job_id=request.job_id,
            output=clean_output(collected.lines),
            exit_code=exit_code,
        )

    def _flow_job_status(
        self, cluster_name: str, job_ids: list[int] | None, deadline: Deadline
    ) -> Flow[dict[int, JobState | None]]:
        from .models import JobState

        call = self._submit(
            "/job_status",
            {"cluster_name": cluster_name, "job_ids": job_ids},
            operation="job_status",
            submits_work=False,
            cluster_name=cluster_name,
        )
        outcome = yield from self._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        where = "return_value"
        value = expect_dict(outcome.return_value, operation="job_status", where=where)
        states: dict[int, JobState | None] = {}
        for key, state in value.items():
            if not (isinstance(key, str) and key.isdigit()) or not isinstance(state, str | None):
                problem = "expected {job id: job status}"
                raise malformed("job_status", f"{where}[{key!r}]", problem, request_id=rid)
            states[int(key)] = JobState(state) if state else None
        return states

    def _status_call(self, names: list[str] | None, *, refresh: bool, all_users: bool) -> Call:
        fields = {
            "cluster_names": names,
            "refresh": "AUTO" if refresh else "NONE",
            "all_users": all_users,
            "include_credentials": False,  # the server default returns SSH private keys
            "include_handle": False,
        }
        return self._submit("/status", fields, operation="status", submits_work=False)

    def _records(
        self, outcome: RequestOutcome, model: type[M], operation: str
    ) -> Generator[tuple[dict[str, Any], M], None, None]:
        """Each record of a list-valued request result with its model (unreadable: raised)."""
        rid = outcome.status.request_id
        where = "return_value"
        records = expect_list(
            outcome.return_value, operation=operation, where=where, request_id=rid
        )
        for i, record in enumerate(records):
            at = f"{where}[{i}]"
            record = expect_dict(record, operation=operation, where=at, request_id=rid)
            yield record, parse_answer(model, record, operation=operation, where=at, request_id=rid)

    def _flow_list_clusters(self, *, refresh: bool, all_users: bool) -> Flow[ClusterList]:
        from .models import ClusterList, ClusterStatus

        call = self._status_call(None, refresh=refresh, all_users=all_users)
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        clusters = [c for _, c in self._records(outcome, ClusterStatus, "status")]
        return ClusterList(clusters=clusters)

    def _flow_get_status(self, name: str, *, refresh: bool, all_users: bool) -> Flow[ClusterStatus]:
        from .models import ClusterStatus

        call = self._status_call([self._cluster_name(name)], refresh=refresh, all_users=all_users)
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        for _, cluster in self._records(outcome, ClusterStatus, "status"):
            if cluster.name == name:
                return cluster
        raise ClusterNotFoundError(
            f"Cluster {name!r} does not exist.",
            request_id=outcome.status.request_id,
            cluster_name=name,
            error_type="ClusterDoesNotExist",
        )

    def _flow_cluster_op(
        self, path: str, operation: str, fields: dict[str, Any], deadline: Deadline
    ) -> Flow[None]:
        name = self._cluster_name(fields["cluster_name"])
        call = self._submit(path, fields, operation=operation, submits_work=True, cluster_name=name)
        yield from self._submit_and_wait(call, deadline)

    def _start_call(
        self,
        name: str,
        *,
        idle_minutes_to_stop: int | None,
        down: bool,
        retry_until_up: bool,
        force: bool,
    ) -> Call:
        fields: dict[str, Any] = {
            "cluster_name": self._cluster_name(name),
            "retry_until_up": retry_until_up,
            "down": down,
            "force": force,
        }
        if idle_minutes_to_stop is not None:
            if idle_minutes_to_stop < 0:
                raise InvalidInputError("idle_minutes_to_stop must be 0 or more")
            fields["idle_minutes_to_autostop"] = idle_minutes_to_stop
        return self._submit(
            "/start", fields, operation="start", submits_work=True, cluster_name=name
        )

    def _autostop_fields(self, name: str, idle_minutes: int | None, down: bool) -> dict[str, Any]:
        if idle_minutes is not None and (isinstance(idle_minutes, bool) or idle_minutes < 0):
            raise InvalidInputError("idle_minutes must be 0 or more (None cancels autostop)")
        return {
            "cluster_name": self._cluster_name(name),
            "idle_minutes": -1 if idle_minutes is None else idle_minutes,
            "down": down,
        }

    def _flow_queue(self, name: str, *, skip_finished: bool, all_users: bool) -> Flow[list[Job]]:
        from .models import Job

        call = self._submit(
            "/queue",
            {
                "cluster_name": self._cluster_name(name),
                "skip_finished": skip_finished,
                "all_users": all_users,
            },
            operation="queue",
            submits_work=False,
            cluster_name=name,
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        return [job for _, job in self._records(outcome, Job, "queue")]

    def _flow_list_accelerators(
        self,
        *,
        name_filter: str | None,
        clouds: list[str] | None,
        region_filter: str | None,
        quantity_filter: int | None,
        gpus_only: bool,
        all_regions: bool,
    ) -> Flow[list[AcceleratorOffer]]:
        if quantity_filter is not None and quantity_filter < 1:
            raise InvalidInputError("quantity_filter must be 1 or more")
        fields = {
            "gpus_only": gpus_only,
            "name_filter": name_filter,
            "region_filter": region_filter,
            "quantity_filter": quantity_filter,
            "clouds": clouds,
            "all_regions": all_regions,
            "require_price": True,
            "case_sensitive": False,
        }
        call = self._submit(
            "/list_accelerators", fields, operation="list_accelerators", submits_work=False
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        return offers_from_list_accelerators(
            outcome.return_value,
            operation="list_accelerators",
            request_id=outcome.status.request_id,
        )

    def _flow_enabled_clouds(self, workspace: str | None) -> Flow[list[str]]:
        yield from self._require_version("enabled_clouds")
        params: dict[str, Any] = {"expand": "false"}
        ws = workspace if workspace is not None else self._workspace
        if ws is not None:
            params["workspace"] = ws
        call = Call("GET", "/enabled_clouds", "enabled_clouds", params=params)
        reply = yield call
        outcome: RequestOutcome = yield Wait(
            self._submitted_id(call, reply), self._status_deadline(), "enabled_clouds"
        )
        rid = outcome.status.request_id
        where = "return_value"
        clouds = expect_list(
            outcome.return_value, operation="enabled_clouds", where=where, request_id=rid
        )
        return [str(c) for c in clouds]

    def _flow_estimate_cost(self, request: EstimateCostRequest) -> Flow[CostEstimate]:
        spec = resource_spec(request.task, spot=request.spot)
        if spec.cloud:
            clouds = [spec.cloud]
        else:
            clouds = yield from self._flow_enabled_clouds(None)
            if not clouds:
                raise InvalidInputError(
                    "estimate_cost: the task names no cloud and the server has none enabled"
                )
        offers = yield from self._flow_list_accelerators(
            name_filter=spec.accelerator,
            clouds=clouds,
            region_filter=spec.region,
            quantity_filter=None,
            gpus_only=spec.accelerator is not None,
            all_regions=True,
        )
        return cheapest(spec, offers, request.hours)

    def _flow_get_request(
        self, request_id: str, deadline: Deadline | None = None
    ) -> Flow[RequestStatus]:
        request_id = self._request_id(request_id)
        reply = yield Call(
            "GET",
            "/api/status",
            "get_request",
            params={"request_ids": request_id, "all_status": "true"},
            deadline=deadline,
        )
        items = expect_list(reply.data, operation="get_request", where="/api/status answer")
        if not items:
            raise NotFoundError(
                f"Request {request_id!r} not found", status_code=404, request_id=request_id
            )
        return decode_record(items[0], operation="get_request", where="/api/status[0]")[0]

    def _flow_list_requests(
        self, *, cluster_name: str | None, all_status: bool, limit: int | None
    ) -> Flow[list[RequestStatus]]:
        params: dict[str, Any] = {"all_status": str(all_status).lower()}
        if cluster_name is not None:
            params["cluster_name"] = self._cluster_name(cluster_name)
        if limit is not None:
            if limit < 1:
                raise InvalidInputError("limit must be 1 or more")
            params["limit"] = limit
        reply = yield Call("GET", "/api/status", "list_requests", params=params)
        items = expect_list(reply.data, operation="list_requests", where="/api/status answer")
        return [
            decode_record(item, operation="list_requests", where=f"/api/status[{i}]")[0]
            for i, item in enumerate(items)
        ]

    def _flow_wait_for_request(self, request_id: str, deadline: Deadline) -> Flow[RequestStatus]:
        outcome: RequestOutcome = yield Wait(self._request_id(request_id), deadline, "wait")
        return outcome.status

    def _flow_cancel_request(self, request_id: str) -> Flow[list[str]]:
        call = self._submit(
            "/api/cancel",
            {"request_ids": [self._request_id(request_id)]},
            operation="cancel_request",
            submits_work=False,
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        rid = outcome.status.request_id
        where = "return_value"
        ids = expect_list(
            outcome.return_value, operation="cancel_request", where=where, request_id=rid
        )
        return [str(v) for v in ids]


__all__ = [
    "BaseClient",
    "Call",
    "Collect",
    "Collected",
    "Deadline",
    "Flow",
    "Reply",
    "RequestMetrics",
    "Wait",
]
