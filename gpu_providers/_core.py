"""The vendor-neutral core of every provider client: settings, credentials, the account's
rate limiter and circuit breaker, retries, the money invariants, and the two flow drivers.

A provider writes its logic once as *flows*: generators that yield effects (an operation of
a generated OpenAPI client, a GraphQL document, a pause) and map the answers to our types.
``SyncProviderBase`` runs flows with blocking calls and ``AsyncProviderBase`` with ``await``.
How an effect reaches the wire lives in one adapter per wire style (``_openapi.py``,
``_graphql.py``); nothing here knows about either.

Money invariants (DESIGN rule 9), enforced by the drivers for every flow:

- once an effect that may create something (``submits_work``) may have reached the
  provider, every later failure of that call carries ``maybe_submitted=True``, is not
  retryable, and carries the instance id once the flow has reported it (``Created``);
- a ``Retry-After`` longer than ``MAX_RETRY_AFTER`` is raised as ``RateLimitError``, never
  slept through;
- the circuit breaker learns the outcome of every call it let through, cancellation and
  foreign exceptions included;
- limiter and breaker belong to the account (provider, base URL, credential), shared by every
  client of it in the process, sync and async.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import SecretStr

from skypilot_client.retry import MAX_RETRY_AFTER, RetryPolicy

from ._credentials import CredentialSource, resolve_api_key
from ._extras import require_extra
from ._resilience import CircuitBreaker, RateLimiter
from .errors import (
    AuthenticationError,
    CapacityError,
    CircuitOpenError,
    InstanceNotReadyError,
    InvalidRequestError,
    MissingCredentialsError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
    WaitTimeoutError,
    error_for_status,
)
from .gpus import GPUSpec, gpu_spec
from .labels import LabelTransport, check_labels, decode_name, encode_name, matches
from .types import (
    GPUFilters,
    GPUInstance,
    GPUOffer,
    InstanceStatus,
    LaunchRequest,
    NormalizedPricing,
    ProviderFeature,
    ProviderInfo,
    RateLimitInfo,
)

logger = logging.getLogger("gpu_providers")
logger.addHandler(logging.NullHandler())

T = TypeVar("T")

#: Errors that mapping code raises when provider data is off its documented schema.
MAPPING_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError)


# -- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Effect:
    """Something a flow asks its driver to do. Wire adapters define the I/O kinds."""

    #: Our name of the operation, used in errors and logs ("launch", "get_instance").
    operation: str
    #: Rate-limit bucket ("launch" has its own minimum interval at some providers).
    kind: str = "default"
    #: Makes the provider do billable work: never replayed once it may have arrived.
    submits_work: bool = False


@dataclass(frozen=True, kw_only=True)
class Pause(Effect):
    """Sleep (no I/O): how flows wait between polls."""

    seconds: float
    operation: str = "pause"


@dataclass(frozen=True, kw_only=True)
class NothingCreated(Effect):
    """A flow reports that the provider's answer proves its submission created nothing
    (RunPod's null pod): a later error is then not "maybe submitted"."""

    operation: str = "nothing_created"


@dataclass(frozen=True, kw_only=True)
class Created(Effect):
    """A flow reports the id of what it just created, so later failures can name it."""

    instance_id: str
    operation: str = "created"


Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class ProviderRequestMetrics:
    """One call attempt to a provider, as reported to the ``on_request`` hook (metrics).

    Attributes:
        provider: Provider name (``lambda``, ``runpod``, ...).
        operation: Our operation name (``launch``, ``get_instance``, ...).
        duration: Seconds the attempt took on the wire.
        attempt: 1 for the first try, 2 for the first retry, ...
        error: The error class name (``RateLimitError``, ...), None on success.
        status_code: The HTTP status of a failed attempt, when it had one.
        limiter_wait: Seconds the account's rate limiter held the attempt back.
        breaker_state: The account's circuit breaker state after the attempt.
    """

    provider: str
    operation: str
    duration: float
    attempt: int
    error: str | None
    status_code: int | None
    limiter_wait: float
    breaker_state: str


# -- time -----------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the drivers read time and sleep (tests substitute one that never sleeps)."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop (cancellable)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """``time.sleep``."""
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


# -- accounts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimitSpec:
    """A provider's documented limits."""

    requests_per_second: float | None
    burst: int = 1
    launch_min_interval: float | None = None
    documented: bool = False
    source: str = ""


@dataclass(frozen=True)
class BreakerSpec:
    """When a provider's circuit opens and for how long."""

    failure_threshold: int = 5
    recovery_timeout: float = 30.0


@dataclass
class Account:
    """The rate budget and health of one account at one provider."""

    limiter: RateLimiter
    breaker: CircuitBreaker

    @classmethod
    def new(
        cls, provider: str, limits: RateLimitSpec, breaker: BreakerSpec, clock: Clock
    ) -> Account:
        """A fresh, unshared account state (``shared_account`` hands out shared ones)."""
        intervals = {"launch": limits.launch_min_interval} if limits.launch_min_interval else {}
        return cls(
            limiter=RateLimiter(
                limits.requests_per_second,
                burst=limits.burst,
                min_interval=intervals,
                clock=clock.monotonic,
                provider=provider,
            ),
            breaker=CircuitBreaker(
                failure_threshold=breaker.failure_threshold,
                recovery_timeout=breaker.recovery_timeout,
                clock=clock.monotonic,
                provider=provider,
            ),
        )


AccountKey = tuple[str, str, str]
_accounts: dict[AccountKey, Account] = {}
_accounts_lock = threading.Lock()


def account_key(provider: str, base_url: str, api_key: SecretStr) -> AccountKey:
    """Who a client asks as: provider, base URL and a digest of its key (never the key)."""
    return (provider, base_url, hashlib.sha256(api_key.get_secret_value().encode()).hexdigest())


def shared_account(key: AccountKey, limits: RateLimitSpec, breaker: BreakerSpec) -> Account:
    """The process-wide state of an account: every client with the same provider, base URL
    and key (sync or async) shares one limiter and one breaker. Keys are held as digests."""
    provider = key[0]
    with _accounts_lock:
        account = _accounts.get(key)
        if account is None:
            account = _accounts[key] = Account.new(provider, limits, breaker, SYSTEM_CLOCK)
        return account


_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def shared_tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process (httpx's defaults: certifi, or
    SSL_CERT_FILE/SSL_CERT_DIR). Loading the CA bundle costs ~0.1 s of CPU; paid per client,
    it serialized an offer search's fan-out (benchmarks/search.py)."""
    global _tls
    with _tls_lock:
        if _tls is None:
            _tls = httpx.create_ssl_context()
        return _tls


# -- the core -------------------------------------------------------------------------------------


@dataclass
class _LaunchState:
    """What a running flow has done that a later failure must report."""

    submitted: bool = False
    instance_id: str | None = None
    operations: list[str] = field(default_factory=list)
    #: A work submission handed to the wire and not yet answered (cancellation lands here).
    sending: bool = False
    #: The operation that (maybe) submitted work: what a cancellation warning names.
    submitter: str | None = None
    #: The launch this flow runs (its name and labels go into the ledger's intent).
    launch: LaunchRequest | None = None
    #: The ledger's write-ahead intent of this launch, while open and ours to complete.
    intent_id: str | None = None

    def record(self, report: Created | NothingCreated) -> None:
        """What the flow reported about its submission."""
        if isinstance(report, Created):
            self.submitted, self.instance_id = True, report.instance_id
        else:
            self.submitted, self.instance_id, self.submitter = False, None, None


#: Errors that are the provider's refusal: nothing was created.
_REFUSALS = (
    AuthenticationError,
    RateLimitError,
    InvalidRequestError,
    CapacityError,
    QuotaExceededError,
    CircuitOpenError,
    UnsupportedFeatureError,
)

#: Transport failures after which the request provably never left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ProviderCore:
    """Settings, static facts, classification and the money invariants (no I/O)."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    default_base_url: ClassVar[str]
    docs_url: ClassVar[str | None] = None
    features: ClassVar[frozenset[ProviderFeature]] = frozenset()
    rate_limit: ClassVar[RateLimitSpec] = RateLimitSpec(None)
    breaker: ClassVar[BreakerSpec] = BreakerSpec()
    credentials: ClassVar[CredentialSource]
    #: The ``skypilot-sdk`` extra that installs this provider's wire stack (checked at init).
    extra: ClassVar[str | None] = None
    #: Generic region aliases -> provider region codes.
    region_aliases: ClassVar[Mapping[str, str]] = {}
    #: The provider's known regions (others still pass through: new regions appear).
    known_regions: ClassVar[tuple[str, ...]] = ()
    notes: ClassVar[tuple[str, ...]] = ()
    #: ``wait_until_ready`` polling: first interval and cap, seconds.
    ready_poll: ClassVar[tuple[float, float]] = (5.0, 30.0)
    #: How ``LaunchRequest.labels`` travel (``gpu_providers.labels``): the vendor's tags
    #: (the launch flow sends them, the mapping reads them back), the instance name (done
    #: here around the flows), or not at all.
    label_transport: ClassVar[LabelTransport] = LabelTransport.NONE
    #: Operations (``Effect.operation``) the provider answers without an API key; a client
    #: created with ``anonymous=True`` may run only these (its public catalog).
    keyless_operations: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        home: Any = None,
        anonymous: bool = False,
        ledger: Any = None,
        on_request: Callable[[ProviderRequestMetrics], object] | None = None,
    ) -> None:
        """Create a client.

        Args:
            api_key: The key; without it, the provider's environment variable, then the
                vendor tool's config file.
            base_url: The API's base URL (a proxy or a test server).
            timeout: Seconds per HTTP call.
            max_retries: Retries of calls that may safely be repeated.
            retry_delay: First backoff delay, seconds.
            retry_max_delay: Backoff cap, seconds.
            transport: An httpx transport for every call (proxies, instrumentation,
                recording); sync clients take ``httpx.BaseTransport``, async ones
                ``httpx.AsyncBaseTransport``.
            env: Environment to read the key from (default ``os.environ``).
            home: Home directory to read the vendor's config file from.
            anonymous: Send no key at all: only the provider's public catalog
                (``keyless_operations``, ``ProviderFeature.PUBLIC_CATALOG``) can be used;
                anything else raises ``MissingCredentialsError`` before it is sent.
            ledger: A ``skypilot_client.ledger`` ledger: each launch is written down as an
                intent before the create call, completed with the instance id, and closed on
                terminate (see docs/service.md).
            on_request: Called with a ``ProviderRequestMetrics`` after every call attempt
                (``gpu_providers.metrics.ProviderMetrics`` exports them to Prometheus).
        """
        if self.extra is not None:  # the wire stack loads lazily: say now what is missing
            require_extra(self.extra, provider=self.name)
        if timeout <= 0:
            raise InvalidRequestError("timeout must be positive", provider=self.name)
        if max_retries < 0:
            raise InvalidRequestError("max_retries must be 0 or more", provider=self.name)
        self._anonymous = anonymous
        if anonymous:
            if not self.keyless_operations:
                raise MissingCredentialsError(
                    f"{self.display_name} answers nothing without an API key", provider=self.name
                )
            self._api_key = SecretStr("")
        else:
            self._api_key = resolve_api_key(
                self.name, api_key, self.credentials, env=env, home=home
            )
        self._base_url = (base_url or self.default_base_url).rstrip("/")
        self._timeout = timeout
        self._policy = RetryPolicy(
            max_retries=max_retries,
            initial_delay=retry_delay,
            max_delay=retry_max_delay,
            logger_name="gpu_providers",
        )
        self._transport = transport
        self._clock: Clock = SYSTEM_CLOCK
        #: Who this client asks as (no secret in it): the account's shared state and the
        #: offer search's cache are keyed by it.
        self.account_key = account_key(self.name, self._base_url, self._api_key)
        self._account = shared_account(self.account_key, self.rate_limit, self.breaker)
        self._wire_lock = threading.Lock()  # wire clients are created once, under this lock
        self._ledger = self._checked_ledger(ledger)
        self._ledger_account: str | None = None
        self._on_request = on_request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r}, api_key=**********)"

    def _httpx_options(self) -> dict[str, Any]:
        """Options of the httpx client behind the wire (auth header, timeouts, transport)."""
        key = self._api_key.get_secret_value()
        auth = {} if self._anonymous else {"Authorization": f"Bearer {key}"}
        return {
            "base_url": self._base_url,
            "headers": auth,
            "timeout": httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
            "transport": self._transport,
            "verify": shared_tls_context(),
        }

    # -- static facts ---------------------------------------------------------------------

    def get_provider_info(self) -> ProviderInfo:
        """Static facts about the provider (no network call)."""
        return ProviderInfo(
            name=self.name,
            display_name=self.display_name,
            api_base_url=self._base_url,
            docs_url=self.docs_url,
            features=sorted(self.features, key=lambda f: f.value),
            regions=list(self.known_regions),
            notes=list(self.notes),
        )

    def get_rate_limits(self) -> RateLimitInfo:
        """Documented limits and the rate this account currently allows."""
        spec = self.rate_limit
        return RateLimitInfo(
            requests_per_second=spec.requests_per_second,
            launch_min_interval_seconds=spec.launch_min_interval,
            burst=spec.burst,
            documented=spec.documented,
            source=spec.source,
            current_requests_per_second=self._account.limiter.current_rate,
        )

    def supports_feature(self, feature: ProviderFeature) -> bool:
        """Whether the provider can do ``feature``."""
        feature = ProviderFeature(feature)
        if feature is ProviderFeature.LABELS:
            return self.label_transport is not LabelTransport.NONE
        if feature is ProviderFeature.PUBLIC_CATALOG:
            return bool(self.keyless_operations)
        return feature in self.features

    def _check_keyless(self, effect: Effect) -> None:
        """An anonymous client sends only what the provider answers without a key."""
        if self._anonymous and effect.operation not in self.keyless_operations:
            raise MissingCredentialsError(
                f"{effect.operation}: {self.display_name} needs an API key for this "
                "(this client was created with anonymous=True)",
                provider=self.name,
            )

    def translate_gpu_type(self, standard: str) -> str:
        """The provider's name for a canonical GPU type (``InvalidRequestError`` if none)."""
        try:
            spec = gpu_spec(standard)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), provider=self.name) from None
        name = self._provider_gpu_name(spec)
        if name is None:
            raise InvalidRequestError(
                f"{self.display_name} does not offer {spec.name}", provider=self.name
            )
        return name

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        raise NotImplementedError

    def translate_region(self, standard: str) -> str:
        """A generic region (``us-east``) or a provider region code -> the provider's code."""
        key = standard.strip()
        if not key:
            raise InvalidRequestError("region must not be empty", provider=self.name)
        return self.region_aliases.get(key.lower(), key)

    # -- classification (no I/O) ----------------------------------------------------------

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        """The error for a non-2xx HTTP answer. Providers classify their documented error
        bodies here; by default the status alone (a bare 404 proves nothing is gone)."""
        return error_for_status(
            status_code, f"{operation} failed with HTTP {status_code}", provider=self.name
        )

    def _transport_error(self, effect: Effect, exc: Exception) -> ProviderError:
        """The error for a request that failed in httpx (never sent, or sent and lost)."""
        cls = (
            ProviderTimeoutError
            if isinstance(exc, httpx.TimeoutException)
            else ProviderConnectionError
        )
        error = cls(
            f"{effect.operation}: cannot reach {self.display_name} ({type(exc).__name__})",
            provider=self.name,
        )
        if effect.submits_work and not isinstance(exc, _NOT_SENT):
            self._maybe_submitted(error, None)
        return error

    def _mark_submission(self, effect: Effect, error: ProviderError) -> ProviderError:
        """A work submission that failed without the provider's refusal may have been
        accepted.

        A refusal is a 4xx (429 included) or a documented rejection (bad request, no
        capacity, quota, credentials). A 5xx comes from gateways that may have forwarded the
        request, so even 503 counts as "maybe"; so do answers we cannot read.
        """
        status = error.status_code
        refused = isinstance(error, _REFUSALS) or (status is not None and 400 <= status < 500)
        # Transport failures were judged where they happened (sent or provably not).
        if effect.submits_work and not refused and not isinstance(error, ProviderConnectionError):
            self._maybe_submitted(error, None)
        return error

    def _maybe_submitted(self, error: ProviderError, instance_id: str | None) -> None:
        if not error.maybe_submitted:
            error.maybe_submitted = True
            error.message += (
                f"; the instance {instance_id} was created and may be running (and billing)"
                if instance_id
                else "; the launch may have been accepted: list instances by name before "
                "launching again"
            )
        if instance_id and error.instance_id is None:
            error.instance_id = instance_id

    def _malformed(
        self,
        effect: Effect,
        exc: BaseException,
        *,
        what: str = "an answer that does not match its documented schema",
        state: _LaunchState | None = None,
    ) -> ProviderError:
        """An answer we cannot read (body off the documented schema, a status we cannot
        parse, data our mapping trips over); maybe submitted once a launch may have run."""
        error = UnexpectedResponseError(
            f"{effect.operation}: {self.display_name} sent {what} ({type(exc).__name__})",
            provider=self.name,
        )
        if effect.submits_work or (state is not None and state.submitted):
            self._maybe_submitted(error, state.instance_id if state is not None else None)
        return error

    def _record_outcome(self, error: ProviderError | None) -> None:
        """Feed a call's outcome to the account's limiter and breaker."""
        limiter, breaker = self._account.limiter, self._account.breaker
        if error is None:
            limiter.on_success()
            breaker.record_success()
        elif isinstance(error, RateLimitError):
            limiter.on_rate_limited(error.retry_after)
            breaker.record_success()  # throttled, but alive
        elif isinstance(error, (ProviderServerError, ProviderConnectionError)):
            breaker.record_failure()
        else:
            breaker.record_success()

    def _record_foreign(self, exc: BaseException, trial: bool) -> None:
        """A call ended in an exception that is not ours: cancellation or a bug."""
        breaker = self._account.breaker
        if isinstance(exc, Exception):
            breaker.record_failure()
        elif trial:
            breaker.abandon_trial()  # cancelled: no outcome, let the next call try

    def _observe(
        self,
        effect: Effect,
        attempt: int,
        started: float,
        wait: float,
        error: ProviderError | None,
    ) -> None:
        """Report one attempt to the ``on_request`` hook (a broken hook never breaks a call)."""
        hook = self._on_request
        if hook is None:
            return
        try:
            hook(
                ProviderRequestMetrics(
                    provider=self.name,
                    operation=effect.operation,
                    duration=time.monotonic() - started,
                    attempt=attempt,
                    error=type(error).__name__ if error is not None else None,
                    status_code=error.status_code if error is not None else None,
                    limiter_wait=wait,
                    breaker_state=self._account.breaker.state.value,
                )
            )
        except Exception:
            logger.exception("the on_request hook raised")

    # -- the ledger's launch intents (issue 10) ----------------------------------------------
    # Ledgers are synchronous (SQLite: about 0.5 ms a write); both drivers call them here.

    def _checked_ledger(self, ledger: Any) -> Any:
        if ledger is None:
            return None
        import inspect

        record = getattr(ledger, "record_intent", None)
        if not callable(record) or inspect.iscoroutinefunction(record):
            raise InvalidRequestError(
                "ledger must be a synchronous skypilot_client.ledger.Ledger (open_ledger())",
                provider=self.name,
            )
        return ledger

    def _intent_before(self, state: _LaunchState) -> None:
        """Write the launch down before its create call; a failed write stops the launch
        (nothing was sent)."""
        from skypilot_client.errors import SkyPilotError
        from skypilot_client.ledger import account_fingerprint

        launch = state.launch
        if self._ledger is None or launch is None or state.intent_id is not None:
            return
        if self._ledger_account is None:
            self._ledger_account = account_fingerprint(
                self.name, self._api_key.get_secret_value(), base_url=self._base_url
            )
        try:
            intent = self._ledger.record_intent(
                self.name, self._ledger_account, name=launch.name, labels=launch.labels
            )
        except ValueError as exc:  # the ledger refused a name or label (looks like a secret)
            raise InvalidRequestError(str(exc), provider=self.name) from exc
        except SkyPilotError as exc:
            raise ProviderError(
                f"launch: the ledger could not record the launch ({type(exc).__name__}); "
                "nothing was sent",
                provider=self.name,
            ) from exc
        state.intent_id = intent.intent_id

    def _intent_report(self, state: _LaunchState, report: Created | NothingCreated) -> None:
        """Complete the intent with the instance id, or close it: nothing was created."""
        from skypilot_client.errors import SkyPilotError

        if self._ledger is None or state.intent_id is None:
            return
        try:
            if isinstance(report, Created):
                self._ledger.complete_intent(state.intent_id, report.instance_id)
            else:
                self._ledger.close_intent(state.intent_id, "not_created")
                state.intent_id = None
        except SkyPilotError as exc:  # the instance exists: never fail its launch for this
            logger.warning(
                "ledger: intent %s not updated (%s); orphan tools find it by name or label",
                state.intent_id,
                type(exc).__name__,
            )

    def _intent_refused(self, state: _LaunchState) -> None:
        """The provider refused the create (provably nothing created): close the intent."""
        if state.intent_id is not None:
            self._intent_report(state, NothingCreated())

    def _intent_terminated(self, instance_id: str) -> None:
        from skypilot_client.errors import SkyPilotError

        if self._ledger is None:
            return
        try:
            self._ledger.close_instance(self.name, instance_id)
        except SkyPilotError as exc:
            logger.warning("ledger: intents of %s not closed (%s)", instance_id, type(exc).__name__)

    # -- running flows (no I/O) -------------------------------------------------------------

    def _advance(
        self, flow: Flow[Any], value: Any, error: ProviderError | None, state: _LaunchState
    ) -> Effect:
        """Send the last effect's result (or throw its error) into the flow; return the
        next effect. Every error leaving the flow passes the money invariants here."""
        last = state.operations[-1] if state.operations else None
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration:
            raise
        except ProviderError as exc:
            if state.submitted:
                self._maybe_submitted(exc, state.instance_id)
            raise
        except MAPPING_ERRORS as exc:
            if last is None:
                raise  # before any answer: a bug in our own code, not provider data
            read = Effect(operation=last)  # the answer came from this operation
            what = "data our mapping cannot read"
            raise self._malformed(read, exc, what=what, state=state) from exc
        if isinstance(effect, (Created, NothingCreated)):
            self._intent_report(state, effect)
        elif effect.submits_work:
            self._intent_before(state)
        if not isinstance(effect, (Created, NothingCreated, Pause)):
            state.operations.append(effect.operation)
        return effect

    def _settled(self, effect: Effect, error: ProviderError | None, state: _LaunchState) -> None:
        """After an effect: did it (maybe) make the provider do work?"""
        state.sending = False
        if effect.submits_work and (error is None or error.maybe_submitted):
            state.submitted, state.submitter = True, effect.operation
        elif effect.submits_work and error is not None:
            self._intent_refused(state)

    def _cancelled(self, state: _LaunchState, exc: BaseException) -> None:
        """The caller cancelled (or a bug ended) a call: say loudly what it may leave behind."""
        if state.submitted or state.sending:
            # While sending, the effect on the wire is the flow's last one: the submission.
            operation = state.operations[-1] if state.sending else state.submitter
            logger.warning(
                "%s interrupted (%s) after the launch may have reached %s; instance: %s. "
                "List instances by name before launching again.",
                operation or "call",
                type(exc).__name__,
                self.display_name,
                state.instance_id or "unknown",
                extra={
                    "instance_id": state.instance_id,
                    "maybe_submitted": True,
                    "operation": operation,
                },
            )

    # -- flows every provider writes --------------------------------------------------------

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        raise NotImplementedError

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        raise NotImplementedError

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        raise NotImplementedError

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        raise NotImplementedError

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        raise NotImplementedError

    # -- flows built on those -------------------------------------------------------------

    def _flow_available(self, filters: GPUFilters | None) -> Flow[list[GPUOffer]]:
        wanted = filters or GPUFilters()
        offers = yield from self._flow_offers(wanted)
        matching = [o for o in offers if wanted.matches(o)]
        return sorted(matching, key=lambda o: (o.price_per_gpu is None, o.price_per_gpu or 0))

    def _flow_pricing(self, gpu_type: str, region: str | None) -> Flow[NormalizedPricing]:
        try:
            canonical = gpu_spec(gpu_type).name
        except ValueError as exc:
            raise InvalidRequestError(str(exc), provider=self.name) from None
        regions = [self.translate_region(region)] if region else None
        filters = GPUFilters(gpu_types=[canonical], regions=regions, available_only=False)
        offers = yield from self._flow_available(filters)

        def cheapest(spot: bool) -> float | None:
            prices = [o.price_per_gpu for o in offers if o.spot == spot and o.price_per_gpu]
            return min(prices) if prices else None

        return NormalizedPricing(
            provider=self.name,
            gpu_type=canonical,
            region=regions[0] if regions else None,
            on_demand_per_gpu_hour=cheapest(False),
            spot_per_gpu_hour=cheapest(True),
            offers=offers,
        )

    def _unsupported(self, request: LaunchRequest, **fields: bool) -> None:
        """Refuse launch fields this provider cannot honour (never drop them silently)."""
        for name, unsupported in fields.items():
            if unsupported:
                raise UnsupportedFeatureError(
                    f"{self.display_name} cannot take {name} at launch", provider=self.name
                )

    # -- labels (gpu_providers.labels): one place for every provider ------------------------

    def _relabel(self, instance: GPUInstance) -> GPUInstance:
        """An instance as the caller sees it: name-encoded labels decoded."""
        if self.label_transport is not LabelTransport.NAME:
            return instance
        name, labels = decode_name(instance.name)
        if not labels:
            return instance
        return instance.model_copy(update={"name": name, "labels": {**instance.labels, **labels}})

    def _flow_launch_labelled(self, request: LaunchRequest) -> Flow[GPUInstance]:
        if request.labels and self.label_transport is LabelTransport.NONE:
            raise UnsupportedFeatureError(
                f"{self.display_name} cannot carry labels", provider=self.name
            )
        if request.labels and self.label_transport is LabelTransport.NAME:
            try:
                name = encode_name(request.name, request.labels)
            except ValueError as exc:
                raise InvalidRequestError(str(exc), provider=self.name) from None
            # The provider's flow sees the encoded name and no labels (model_copy does not
            # re-run the 64-character name check: the encoded name may be longer).
            request = request.model_copy(update={"name": name, "labels": {}})
        instance = yield from self._flow_launch(request)
        return self._relabel(instance)

    def _flow_list_labelled(
        self, name_prefix: str | None, labels: Mapping[str, str] | None
    ) -> Flow[list[GPUInstance]]:
        if name_prefix is not None and not isinstance(name_prefix, str):
            raise InvalidRequestError("name_prefix must be a string", provider=self.name)
        try:
            wanted = check_labels(labels or {})
        except ValueError as exc:
            raise InvalidRequestError(str(exc), provider=self.name) from None
        # A name-encoded name starts with the name asked for, but not without one: match
        # prefixes on the decoded name.
        by_name = self.label_transport is LabelTransport.NAME
        found = yield from self._flow_list(None if by_name else name_prefix)
        instances = [self._relabel(i) for i in found]
        return [
            i
            for i in instances
            if (not name_prefix or (i.name or "").startswith(name_prefix))
            and matches(i.labels, wanted)
        ]

    def _flow_terminate_idempotent(self, instance_id: str) -> Flow[None]:
        from .errors import InstanceNotFoundError

        check_id(self.name, instance_id)
        try:
            yield from self._flow_terminate(instance_id)
        except InstanceNotFoundError:  # raised only on the provider's own proof
            logger.info("terminate %s: already gone", instance_id)
        self._intent_terminated(instance_id)

    def _flow_wait_ready(self, instance_id: str, timeout: float) -> Flow[InstanceStatus]:
        """Poll with backoff until usable (address and SSH port known) or final."""
        check_id(self.name, instance_id)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidRequestError("timeout must be a positive number", provider=self.name)
        deadline = self._clock.monotonic() + timeout
        interval, cap = self.ready_poll
        while True:
            status = yield from self._flow_status(instance_id)
            if status.ready:
                return status
            if status.state.is_final:
                raise InstanceNotReadyError(
                    f"instance {instance_id} is {status.state.value} and will not become "
                    "ready by itself",
                    provider=self.name,
                    instance_id=instance_id,
                    status=status,
                )
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(
                    f"instance {instance_id} not ready after {timeout:g}s (last state: "
                    f"{status.state.value}); it still exists",
                    provider=self.name,
                    instance_id=instance_id,
                    status=status,
                )
            yield Pause(seconds=min(interval, remaining))
            interval = min(interval * 1.5, cap)


def check_id(provider: str, instance_id: str) -> str:
    """An instance id from the caller, checked before any network call."""
    if not isinstance(instance_id, str) or not instance_id.strip():
        raise InvalidRequestError("instance_id must be a non-empty string", provider=provider)
    return instance_id


class SyncProviderBase(ProviderCore):
    """Blocking driver and the protocol's blocking methods; a wire adapter adds ``_invoke``."""

    def _invoke(self, effect: Effect) -> Any:
        raise NotImplementedError  # the wire: a generated module call or a GraphQL execute

    def _perform(self, effect: Effect, state: _LaunchState) -> Any:
        if isinstance(effect, Pause):
            self._clock.sleep(effect.seconds)
            return None
        self._check_keyless(effect)
        for attempt in self._policy.sync(self._clock.sleep):
            with attempt:
                wait = self._account.limiter.reserve(effect.kind, max_wait=MAX_RETRY_AFTER)
                if wait > 0:
                    self._clock.sleep(wait)
                trial = self._account.breaker.before_call()
                state.sending = effect.submits_work
                number, started = attempt.retry_state.attempt_number, time.monotonic()
                try:
                    result = self._invoke(effect)
                except ProviderError as error:
                    state.sending = error.maybe_submitted  # a refusal or never sent: no
                    self._record_outcome(error)
                    self._observe(effect, number, started, wait, error)
                    raise
                except BaseException as exc:
                    self._record_foreign(exc, trial)
                    raise
                self._record_outcome(None)
                self._observe(effect, number, started, wait, None)
                return result
        raise AssertionError("unreachable")  # tenacity re-raises the last error

    def _run(self, flow: Flow[T], launch: LaunchRequest | None = None) -> T:
        state = _LaunchState(launch=launch)
        value: Any = None
        error: ProviderError | None = None
        try:
            while True:
                effect = self._advance(flow, value, error, state)
                value, error = None, None
                if isinstance(effect, (Created, NothingCreated)):
                    state.record(effect)
                    continue
                try:
                    value = self._perform(effect, state)
                except ProviderError as exc:
                    error = exc
                self._settled(effect, error, state)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except ProviderError:
            raise
        except BaseException as exc:
            self._cancelled(state, exc)
            raise
        finally:
            flow.close()

    def launch_instance(self, request: LaunchRequest) -> GPUInstance:
        """Launch one instance (never replayed once it may have reached the provider)."""
        return self._run(self._flow_launch_labelled(request), request)

    def terminate_instance(self, instance_id: str) -> None:
        """Terminate an instance; already gone (on the provider's own proof) is success."""
        self._run(self._flow_terminate_idempotent(instance_id))

    def get_instance_status(self, instance_id: str) -> InstanceStatus:
        """Where the instance is in its lifecycle."""
        return self._run(self._flow_status(check_id(self.name, instance_id)))

    def wait_until_ready(self, instance_id: str, timeout: float = 600.0) -> InstanceStatus:
        """Poll until the instance is usable (address and SSH port known).

        Raises ``WaitTimeoutError`` when ``timeout`` seconds pass first, and
        ``InstanceNotReadyError`` when it reaches a state it will not leave by itself.
        """
        return self._run(self._flow_wait_ready(instance_id, timeout))

    def list_instances(
        self, name_prefix: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[GPUInstance]:
        """Instances of this account, optionally only those whose name starts with
        ``name_prefix`` and that carry every ``key=value`` of ``labels``."""
        return self._run(self._flow_list_labelled(name_prefix, labels))

    def list_available_gpus(self, filters: GPUFilters | None = None) -> list[GPUOffer]:
        """Offers you can launch, cheapest per GPU first."""
        return self._run(self._flow_available(filters))

    def get_normalized_pricing(self, gpu_type: str, region: str | None = None) -> NormalizedPricing:
        """Per-GPU-hour prices of a GPU type."""
        return self._run(self._flow_pricing(gpu_type, region))

    def close(self) -> None:
        """Release connections."""
        self._close_wire()

    def _close_wire(self) -> None:
        return None

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncProviderBase(ProviderCore):
    """``await``-based driver and the protocol's async methods; a wire adapter adds
    ``_invoke``."""

    async def _invoke(self, effect: Effect) -> Any:
        raise NotImplementedError

    async def _perform(self, effect: Effect, state: _LaunchState) -> Any:
        if isinstance(effect, Pause):
            await self._clock.asleep(effect.seconds)
            return None
        self._check_keyless(effect)
        async for attempt in self._policy.asynchronous(self._clock.asleep):
            with attempt:
                wait = self._account.limiter.reserve(effect.kind, max_wait=MAX_RETRY_AFTER)
                if wait > 0:
                    await self._clock.asleep(wait)
                trial = self._account.breaker.before_call()
                state.sending = effect.submits_work
                number, started = attempt.retry_state.attempt_number, time.monotonic()
                try:
                    result = await self._invoke(effect)
                except ProviderError as error:
                    state.sending = error.maybe_submitted  # a refusal or never sent: no
                    self._record_outcome(error)
                    self._observe(effect, number, started, wait, error)
                    raise
                except BaseException as exc:
                    self._record_foreign(exc, trial)
                    raise
                self._record_outcome(None)
                self._observe(effect, number, started, wait, None)
                return result
        raise AssertionError("unreachable")

    async def _run(self, flow: Flow[T], launch: LaunchRequest | None = None) -> T:
        state = _LaunchState(launch=launch)
        value: Any = None
        error: ProviderError | None = None
        try:
            while True:
                effect = self._advance(flow, value, error, state)
                value, error = None, None
                if isinstance(effect, (Created, NothingCreated)):
                    state.record(effect)
                    continue
                try:
                    value = await self._perform(effect, state)
                except ProviderError as exc:
                    error = exc
                self._settled(effect, error, state)
        except StopIteration as stop:
            result: T = stop.value
            return result
        except ProviderError:
            raise
        except BaseException as exc:
            self._cancelled(state, exc)
            raise
        finally:
            flow.close()

    async def launch_instance(self, request: LaunchRequest) -> GPUInstance:
        """Launch one instance (never replayed once it may have reached the provider)."""
        return await self._run(self._flow_launch_labelled(request), request)

    async def terminate_instance(self, instance_id: str) -> None:
        """Terminate an instance; already gone (on the provider's own proof) is success."""
        await self._run(self._flow_terminate_idempotent(instance_id))

    async def get_instance_status(self, instance_id: str) -> InstanceStatus:
        """Where the instance is in its lifecycle."""
        return await self._run(self._flow_status(check_id(self.name, instance_id)))

    async def wait_until_ready(self, instance_id: str, timeout: float = 600.0) -> InstanceStatus:
        """Poll until the instance is usable (address and SSH port known).

        Raises ``WaitTimeoutError`` when ``timeout`` seconds pass first, and
        ``InstanceNotReadyError`` when it reaches a state it will not leave by itself.
        Cancellable like any ``await``.
        """
        return await self._run(self._flow_wait_ready(instance_id, timeout))

    async def list_instances(
        self, name_prefix: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[GPUInstance]:
        """Instances of this account, optionally only those whose name starts with
        ``name_prefix`` and that carry every ``key=value`` of ``labels``."""
        return await self._run(self._flow_list_labelled(name_prefix, labels))

    async def list_available_gpus(self, filters: GPUFilters | None = None) -> list[GPUOffer]:
        """Offers you can launch, cheapest per GPU first."""
        return await self._run(self._flow_available(filters))

    async def get_normalized_pricing(
        self, gpu_type: str, region: str | None = None
    ) -> NormalizedPricing:
        """Per-GPU-hour prices of a GPU type."""
        return await self._run(self._flow_pricing(gpu_type, region))

    async def aclose(self) -> None:
        """Release connections."""
        await self._aclose_wire()

    async def _aclose_wire(self) -> None:
        return None

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
