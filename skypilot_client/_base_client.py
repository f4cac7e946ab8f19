"""The core the sync and async clients share: settings, request building, send/parse and
error classification, plus the steps every flow uses (version gate, submit-and-wait, reading
records).

Operations are written once as *flows* (generators yielding the effects of ``_effects.py``),
grouped by resource in ``resources/``. ``SkyPilotClient`` runs flows with blocking I/O,
``AsyncSkyPilotClient`` with ``await``; neither contains protocol logic of its own.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from . import _constants as constants
from ._config import ClientSettings, parse_duration, resolve_settings
from ._deadline import GRACE, Deadline, wait_seconds
from ._effects import Call, Collect, Collected, Effect, Flow, Reply, Wait
from ._protocol import (
    RequestOutcome,
    base_headers,
    error_from_response,
    expect_dict,
    expect_list,
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
from .errors import (
    APIConnectionError,
    APITimeoutError,
    InvalidInputError,
    MalformedResponseError,
    NotFoundError,
    RequestCancelledError,
    RequestFailedError,
    SkyPilotError,
    WaitTimeoutError,
)
from .retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from pydantic import BaseModel

    from ._outage import OutageTracker
    from ._submitted import RequestRecord, SubmittedRequest
    from .ledger import AsyncLedger, Ledger
    from .ledger._model import RequestRecord as LedgerRecord
    from .models import CloudCredentials, HealthStatus

logger = logging.getLogger("skypilot_client")
logger.addHandler(logging.NullHandler())

M = TypeVar("M", bound="BaseModel")
HttpClientT = TypeVar("HttpClientT", httpx.Client, httpx.AsyncClient)


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
    #: Requests this client submitted (a ``_submitted.RequestRecord``: in-process by
    #: default; a persistent ledger can take its place).
    submitted: Any = None
    #: Single flight of identical reads (``_coalesce``; made by the shell on first use).
    flights: Any = None

    def requests(self) -> RequestRecord:
        """The record of submitted requests (in-process unless one was plugged in)."""
        record: RequestRecord = self.submitted
        return record


_NO_CHANGE: Any = object()


class BaseClient(Generic[HttpClientT]):
    """The shared core: settings, request building, send/parse, classification, and the
    steps every flow uses. The flows themselves live in ``resources/``, one file per
    resource."""

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
        coalesce_reads: bool = True,
        read_cache_ttl: float | None = None,
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
        self._coalesce_reads = bool(coalesce_reads)
        self._read_cache_ttl = self._cache_ttl(read_cache_ttl)
        self._identity = user_identity()
        self._redactor = self._own_redactor()
        owns = http_client is None
        http = (
            http_client
            if http_client is not None
            else self._make_http(
                httpx.Limits(
                    max_connections=max_connections or constants.DEFAULT_MAX_CONNECTIONS,
                    max_keepalive_connections=constants.DEFAULT_MAX_KEEPALIVE,
                )
            )
        )
        from ._submitted import SubmittedRequests  # made now: threads share one record

        self._shared = _Shared(
            http=http, owns_http=owns, on_request=on_request, submitted=SubmittedRequests()
        )

    @staticmethod
    def _cache_ttl(value: float | None) -> float | None:
        if value is None or value == 0:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidInputError(
                f"read_cache_ttl must be a positive number of seconds or None, got {value!r}"
            )
        return float(value)

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
        coalesce_reads: bool | None = None,
        read_cache_ttl: float | None = _NO_CHANGE,
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
        if coalesce_reads is not None:
            clone._coalesce_reads = bool(coalesce_reads)
        if read_cache_ttl is not _NO_CHANGE:
            clone._read_cache_ttl = self._cache_ttl(read_cache_ttl)
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
        pool = read if call.long_poll else self._settings.timeout + constants.LONG_POLL_READ_TIMEOUT
        return httpx.Timeout(
            self._settings.timeout,
            connect=min(constants.DEFAULT_CONNECT_TIMEOUT, self._settings.timeout),
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
        if version > constants.API_VERSION and not self._shared.warned_newer_server:
            self._shared.warned_newer_server = True
            logger.warning(
                "server API version %d is newer than this client's %d; newer server fields "
                "are kept but not typed",
                version,
                constants.API_VERSION,
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
        about = self._request_id_param(call)  # e.g. /api/stream of a request
        unknown = status == 404 and self._says_request_unknown(error.body)
        if unknown and about and isinstance(error, NotFoundError):
            return self._lost_or_unknown(about, error)
        return error

    def _submission_of(
        self, effect: object, value: object, submitted: Reply | None
    ) -> Reply | None:
        """The server's answer to the call's work submission, once there is one (recorded
        in a synchronous ledger before the caller sees it; the async shell awaits an
        ``AsyncLedger``'s write itself, with ``_ledger_write``/``_ledger_write_failed``)."""
        if submitted is None and isinstance(effect, Call) and effect.submits_work:
            reply = value if isinstance(value, Reply) else None
            if reply is not None and self._ledger is not None:
                self._record_submission(effect, reply)
            return reply
        return submitted

    # -- the ledger (issue 10): every work submission recorded before the call returns ----

    _ledger: Ledger | None = None
    _async_ledger: AsyncLedger | None = None  # the async client only
    _tenant: str | None = None

    def _use_ledger(
        self, ledger: Any = _NO_CHANGE, tenant: Any = _NO_CHANGE, *, allow_async: bool = False
    ) -> None:
        """Set the ledger and tenant label (``_NO_CHANGE`` keeps them); ``allow_async``
        accepts an ``AsyncLedger`` too (the async client). The ledger package is imported
        only here, when one is given: never at ``import skypilot_client``."""
        is_async = False
        if ledger is not _NO_CHANGE and ledger is not None:
            import inspect

            from .ledger import AsyncLedger, Ledger

            # Protocols check names only: an async ledger has the same ones, awaitable.
            record = getattr(ledger, "record_request", None)
            is_async = inspect.iscoroutinefunction(record)
            if is_async and allow_async:
                valid = isinstance(ledger, AsyncLedger)
            else:
                valid = isinstance(ledger, Ledger) and not is_async
            if not valid:
                kinds = (
                    "a skypilot_client.ledger.Ledger or AsyncLedger (SQLiteLedger, "
                    "PostgresLedger or AsyncPostgresLedger)"
                    if allow_async
                    else "a synchronous skypilot_client.ledger.Ledger (SQLiteLedger or "
                    "PostgresLedger; open_ledger() returns one; AsyncSkyPilotClient also "
                    "takes an AsyncPostgresLedger)"
                )
                raise InvalidInputError(f"ledger must be {kinds}")
        if ledger is not _NO_CHANGE:
            self._ledger = None if is_async else ledger
            self._async_ledger = ledger if is_async else None
        if tenant is not _NO_CHANGE:
            if tenant is not None:  # checked now, not after a submission was accepted
                from .ledger._validate import name

                tenant = name("tenant", tenant)
            self._tenant = tenant

    def _ledger_write(self, call: Call, reply: Reply) -> dict[str, Any] | None:
        """The arguments of ``record_request`` for an accepted submission (either ledger
        kind); None without a request id (``_submitted_id`` raises the malformed answer
        right after)."""
        if not reply.request_id:
            return None
        return {
            "request_id": reply.request_id,
            "operation": call.operation,
            "cluster": call.cluster_name,
            "workspace": self._workspace,
            "tenant": self._tenant,
        }

    @staticmethod
    def _ledger_write_failed(error: SkyPilotError, call: Call, request_id: str) -> None:
        """A failed ledger write raises (the caller must learn that nothing is watching
        this request), naming the request that was submitted."""
        error.request_id = error.request_id or request_id
        error.maybe_submitted = True
        error.retryable = False
        error.message += (
            f". The {call.operation} request {request_id} was submitted but is "
            "not in the ledger: record it or wait for it yourself"
        )

    def _record_submission(self, call: Call, reply: Reply) -> None:
        """Write the accepted submission to the (synchronous) ledger."""
        write = self._ledger_write(call, reply)
        if write is None or self._ledger is None:
            return
        try:
            self._ledger.record_request(**write)
        except SkyPilotError as error:
            self._ledger_write_failed(error, call, write["request_id"])
            raise

    @staticmethod
    def _after_submission(error: SkyPilotError, submitted: Reply | None) -> None:
        """DESIGN rule 9: once the server accepted this call's work, a later failure whose
        outcome is unknown (a wait that ran out, an outage, an answer we cannot read) says
        the work was submitted and names the request. The server's own verdicts (failed,
        cancelled) are outcomes, not unknowns."""
        if submitted is None or isinstance(error, (RequestFailedError, RequestCancelledError)):
            return
        if not error.maybe_submitted:
            error.maybe_submitted = True
            error.message += (
                f". The request {submitted.request_id} was submitted and may still run: "
                "wait for it again (client.wait_for_request) or cancel it"
            )
        error.request_id = error.request_id or submitted.request_id

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
        if call.binary:
            rid = request_id_of(response.headers)
            return Reply(response.status_code, None, rid, response.headers, response.content)
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
        if call.content is not None:  # uploads: a file slice streamed as the body
            raw = request.headers.copy()  # case-insensitive: replaces Content-Length
            raw["Content-Type"] = "application/octet-stream"
            raw["Content-Length"] = str(len(call.content))  # type: ignore[arg-type]
            request = httpx.Request(
                call.method,
                request.url,
                headers=raw,
                stream=call.content,
                extensions=request.extensions,
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
            # 500 carries a failed request's record; 404 may be a request the server forgot.
            pass_statuses=frozenset({404, 500}),
            read_timeout=read_timeout,
            long_poll=True,
            secrets=effect.secrets,
        )

    def _outcome(self, reply: Reply, effect: Wait) -> RequestOutcome:
        try:
            return outcome_of_get(
                reply.status_code,
                reply.headers,
                reply.content,
                request_id=effect.request_id,
                redactor=self._redactor_for(effect.secrets),
                operation=effect.operation,
            )
        except NotFoundError as exc:
            if reply.status_code != 404 or not self._says_request_unknown(reply.data):
                raise
            raise self._lost_or_unknown(effect.request_id, exc) from exc

    @staticmethod
    def _says_request_unknown(data: Any) -> bool:
        """The server's own words for an unknown request: ``Request '<id>' not found``."""
        detail = data.get("detail") if isinstance(data, dict) else None
        return isinstance(detail, str) and detail.startswith("Request ")

    # -- requests this client submitted (no I/O) ------------------------------------------

    def _remember(self, request_id: str, call: Call) -> None:
        """Record a request this client submitted, to name it if the server forgets it."""
        from ._submitted import submitted_now

        self._shared.requests().record(
            submitted_now(request_id, call.operation, call.cluster_name, call.submits_work)
        )

    def _lost_or_unknown(self, request_id: str, error: NotFoundError) -> NotFoundError:
        """``RequestLostError`` for a request this client submitted, else ``error`` as is.
        With an ``AsyncLedger`` the error is marked for the async shell to look the id up
        (``_unnamed_request_id``): this path is synchronous."""
        entry = self._shared.requests().lookup(request_id) or self._ledger_entry(request_id)
        if entry is None:
            if self._async_ledger is not None:
                error._unnamed_request_id = request_id
            return error  # never ours (or too old to remember): a plain NotFoundError
        return self._lost_error(entry, error.status_code)

    def _ledger_entry(self, request_id: str) -> SubmittedRequest | None:
        """A submission recorded in the synchronous ledger (by another process, or before
        this one restarted)."""
        if self._ledger is None:
            return None
        from .ledger import LedgerError

        try:
            record = self._ledger.get_request(request_id)
        except LedgerError as exc:
            self._ledger_lookup_failed(request_id, exc)
            return None
        return self._entry_of(record)

    @staticmethod
    def _ledger_lookup_failed(request_id: str, exc: Exception) -> None:
        # The 404 stays the answer; say why it is not named.
        logger.warning("cannot look request %s up in the ledger: %s", request_id, exc)

    @staticmethod
    def _entry_of(record: LedgerRecord | None) -> SubmittedRequest | None:
        """A ledger record as a submission of this client's. The ledger records only work
        submissions."""
        if record is None:
            return None
        from ._submitted import SubmittedRequest

        return SubmittedRequest(
            record.request_id,
            record.operation,
            record.cluster,
            submits_work=True,
            submitted_at=record.submitted_at.timestamp(),
        )

    def _lost_error(self, entry: SubmittedRequest, status_code: int | None) -> NotFoundError:
        from .errors import RequestLostError

        op, name = entry.operation, entry.cluster_name
        about = f" for cluster {name!r}" if name else ""
        age = max(time.time() - entry.submitted_at, 0.0)
        message = (
            f"{op}: the SkyPilot API server no longer knows request {entry.request_id}{about}, "
            f"which this client submitted {age:.0f} s ago: the server restarted (a restart "
            "clears its request database) or dropped the request. "
        )
        if entry.submits_work and name:
            message += (
                f"The {op} may have run, in part or in full, before that. Check "
                f"client.get_status({name!r}) and client.list_clusters() (a cluster may be "
                "UP or half-provisioned in INIT, and billing) before submitting again"
            )
            if op == "launch":
                message += "; handle.result(reconcile=True) reads the cluster's status for you"
        elif entry.submits_work:
            where = "client.jobs.queue()" if op.startswith("jobs.") else "what it would change"
            message += f"The {op} may have run before that: check {where} before submitting again"
        else:
            message += "It only read state: calling again is safe"
        return RequestLostError(
            message,
            operation=op,
            request_id=entry.request_id,
            status_code=status_code,
            cluster_name=name,
            maybe_submitted=entry.submits_work,
        )

    def _outage(self, effect: Wait) -> OutageTracker:
        from ._outage import OutageTracker

        return OutageTracker(self._policy, operation=effect.operation, request_id=effect.request_id)

    def _wait_timeout(self, effect: Wait, outage: OutageTracker | None = None) -> WaitTimeoutError:
        error = self._deadline_error(effect.operation, effect.deadline, effect.request_id)
        down = outage.outage_seconds() if outage is not None else None
        if down is not None and outage is not None:
            last = outage.last_error
            error.message += (
                f" (the server was unreachable for the last {down:.0f} s"
                + (f": {type(last).__name__}" if last is not None else "")
                + ")"
            )
            error.__cause__ = last
        return error

    @staticmethod
    def _reconcile_failed(lost: SkyPilotError, error: SkyPilotError) -> None:
        lost.message += (
            f". Reading the cluster's status to reconcile failed too ({type(error).__name__}: "
            f"{error.message}): check it yourself"
        )

    # -- single flight of identical reads (no I/O) ----------------------------------------

    def _flight_key(self, operation: str, *args: Any) -> tuple[Any, ...] | None:
        """What an identical read shares, or None when this client does not coalesce.

        Server, identity, credentials (a digest of them) and workspace are part of it, so
        two tenants never share an answer.
        """
        if not self._coalesce_reads:
            return None
        from ._coalesce import freeze

        key = (
            self.base_url,
            self._identity.get("SKYPILOT_USER_ID"),
            self._auth_digest(),
            self._workspace,
            operation,
            freeze(args),
        )
        try:
            hash(key)
        except TypeError:  # an argument we cannot compare: just make the call
            return None
        return key

    def _auth_digest(self) -> str | None:
        header = self._headers().get("Authorization")
        if header is None:
            return None
        import hashlib

        return hashlib.sha256(header.encode()).hexdigest()

    @staticmethod
    def _wait_timeout_arg(timeout: float | None, default: float, name: str = "timeout") -> float:
        return wait_seconds(timeout, default, name)

    @staticmethod
    def _cluster_name(name: str) -> str:
        if not isinstance(name, str) or not constants.CLUSTER_NAME_RE.fullmatch(name):
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

    # -- steps every flow uses ------------------------------------------------------------

    def _require_version(
        self, operation: str, min_version: int = constants.MIN_SERVER_API_VERSION
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
        self._remember(reply.request_id, call)
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
            min_version=constants.MIN_SERVER_API_VERSION,
        )
        if problem is not None:
            raise problem
        return health

    def _flow_submit(self, call: Call) -> Flow[str]:
        yield from self._require_version(call.operation)
        reply = yield call
        return self._submitted_id(call, reply)

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


__all__ = [
    "BaseClient",
    "Call",
    "Collect",
    "Collected",
    "Deadline",
    "Effect",
    "Flow",
    "HttpClientT",
    "Reply",
    "RequestMetrics",
    "Wait",
]
