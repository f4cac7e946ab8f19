"""What every provider client shares: settings, resilience, classification, the protocol's
methods, and the two drivers.

A provider writes its logic once as *flows*: generators that yield effects (``Endpoint`` for
an operation of a generated OpenAPI client, ``GraphQL`` for a GraphQL document) and map the
answers to our types. ``SyncProviderBase`` runs flows with blocking calls and
``AsyncProviderBase`` with ``await``; both apply the same rate limiter, circuit breaker and
retry policy around every effect.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import SecretStr

from skypilot_client.retry import RetryPolicy, parse_retry_after

from ._credentials import CredentialSource, resolve_api_key
from ._resilience import CircuitBreaker, RateLimiter
from .errors import (
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
    error_for_status,
)
from .gpus import gpu_spec
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


@dataclass(frozen=True)
class Endpoint:
    """Call one operation of a generated OpenAPI client module.

    The module has ``sync_detailed``/``asyncio_detailed`` (openapi-python-client output).
    """

    module: Any
    operation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Rate-limit bucket ("launch" has its own minimum interval at some providers).
    kind: str = "default"
    #: Makes the provider do work (launch): never replayed once it may have arrived.
    submits_work: bool = False
    #: Statuses handed to the flow instead of raised (e.g. 404 on an idempotent delete).
    pass_statuses: frozenset[int] = frozenset()


@dataclass(frozen=True)
class GraphQL:
    """Execute one GraphQL operation document with variables."""

    document: Any
    operation: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "default"
    submits_work: bool = False


@dataclass(frozen=True)
class Answer:
    """An HTTP answer from a generated client: status, parsed model and raw body."""

    status_code: int
    parsed: Any
    content: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.content) if self.content else None
        except ValueError:
            return None


Effect = Endpoint | GraphQL
_PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
_MAPPING_ERRORS = (*_PARSE_ERRORS, ArithmeticError)
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class RateLimitSpec:
    """A provider's documented limits."""

    requests_per_second: float | None
    burst: int = 1
    launch_min_interval: float | None = None
    documented: bool = False
    source: str = ""


class ProviderCore:
    """Shared state and logic of a provider client (no I/O)."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    default_base_url: ClassVar[str]
    docs_url: ClassVar[str | None] = None
    features: ClassVar[frozenset[ProviderFeature]] = frozenset()
    rate_limit: ClassVar[RateLimitSpec] = RateLimitSpec(None)
    credentials: ClassVar[CredentialSource]
    #: Generic region aliases -> provider region codes.
    region_aliases: ClassVar[Mapping[str, str]] = {}
    #: The provider's known regions (others still pass through: new regions appear).
    known_regions: ClassVar[tuple[str, ...]] = ()
    notes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        transport: Any = None,
        env: Mapping[str, str] | None = None,
        home: Any = None,
        clock: Callable[[], float] = time.monotonic,
        _sleep: Any = None,
    ) -> None:
        if timeout <= 0:
            raise InvalidRequestError("timeout must be positive", provider=self.name)
        if max_retries < 0:
            raise InvalidRequestError("max_retries must be 0 or more", provider=self.name)
        self._api_key = resolve_api_key(self.name, api_key, self.credentials, env=env, home=home)
        self._base_url = (base_url or self.default_base_url).rstrip("/")
        self._timeout = timeout
        self._policy = RetryPolicy(
            max_retries=max_retries,
            initial_delay=retry_delay,
            max_delay=retry_max_delay,
            logger_name="gpu_providers",
        )
        spec = self.rate_limit
        intervals = {"launch": spec.launch_min_interval} if spec.launch_min_interval else {}
        self._limiter = RateLimiter(
            spec.requests_per_second, burst=spec.burst, min_interval=intervals, clock=clock
        )
        self._breaker = CircuitBreaker(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            clock=clock,
            provider=self.name,
        )
        self._transport = transport  # an httpx transport: tests, proxies, instrumentation
        self._sleep_override = _sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r}, api_key=**********)"

    def _httpx_options(self) -> dict[str, Any]:
        """Options of the httpx client behind the wire (auth header, timeouts, transport)."""
        return {
            "base_url": self._base_url,
            "headers": _auth_headers(self._api_key),
            "timeout": httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
            "transport": self._transport,
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
        """Documented limits and the rate this client currently allows."""
        spec = self.rate_limit
        return RateLimitInfo(
            requests_per_second=spec.requests_per_second,
            launch_min_interval_seconds=spec.launch_min_interval,
            burst=spec.burst,
            documented=spec.documented,
            source=spec.source,
            current_requests_per_second=self._limiter.current_rate,
        )

    def supports_feature(self, feature: ProviderFeature) -> bool:
        """Whether the provider can do ``feature``."""
        return ProviderFeature(feature) in self.features

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

    def _provider_gpu_name(self, spec: Any) -> str | None:
        raise NotImplementedError

    def translate_region(self, standard: str) -> str:
        """A generic region (``us-east``) or a provider region code -> the provider's code."""
        key = standard.strip()
        if not key:
            raise InvalidRequestError("region must not be empty", provider=self.name)
        return self.region_aliases.get(key.lower(), key)

    # -- classification (no I/O) ----------------------------------------------------------

    def _classify(self, effect: Effect, answer: Answer) -> ProviderError:
        """The error for a non-2xx answer, with the provider's Retry-After."""
        error = self._error_from_body(answer.status_code, answer.json(), effect.operation)
        if error.retry_after is None:
            error.retry_after = parse_retry_after(answer.headers)
        return error

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        """Providers classify their documented error bodies here; by default the status."""
        return error_for_status(
            status_code, f"{operation} failed with HTTP {status_code}", provider=self.name
        )

    def _transport_error(self, effect: Effect, exc: Exception) -> ProviderError:
        not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        cls = (
            ProviderTimeoutError
            if isinstance(exc, httpx.TimeoutException)
            else (ProviderConnectionError)
        )
        error = cls(
            f"{effect.operation}: cannot reach {self.display_name} ({type(exc).__name__})",
            provider=self.name,
        )
        if effect.submits_work and not not_sent:
            error.maybe_submitted = True
            error.message += (
                "; the request may have reached the provider and was not retried: list "
                "instances by name before launching again"
            )
        return error

    def _mark_submission(self, effect: Effect, error: ProviderError) -> ProviderError:
        # Only a 429 proves a launch did nothing; after a 5xx it may have been accepted.
        if effect.submits_work and isinstance(error, ProviderServerError):
            error.maybe_submitted = True
            error.message += "; the launch may have been accepted: list instances by name"
        return error

    def _account(self, error: ProviderError | None) -> None:
        """Feed an attempt's outcome to the rate limiter and the circuit breaker."""
        if error is None:
            self._limiter.on_success()
            self._breaker.record_success()
        elif isinstance(error, RateLimitError):
            self._limiter.on_rate_limited(error.retry_after)
            self._breaker.record_success()  # throttled, but alive
        elif isinstance(error, (ProviderServerError, ProviderConnectionError)):
            self._breaker.record_failure()
        else:
            self._breaker.record_success()

    def _malformed(
        self, effect: Effect, exc: Exception, *, submitted: bool = False
    ) -> ProviderError:
        error = UnexpectedResponseError(
            f"{effect.operation}: {self.display_name} sent an answer that does not match its "
            f"documented schema ({type(exc).__name__})",
            provider=self.name,
        )
        if effect.submits_work or submitted:
            error.maybe_submitted = True
            error.message += "; the launch may have been accepted: list instances by name"
        return error

    def _step(
        self,
        flow: Flow[Any],
        value: Any,
        error: ProviderError | None,
        last: Effect | None,
        submitted: bool,
    ) -> Effect:
        """Advance a flow by one effect. Mapping code that trips over provider data off its
        schema (a wrong type, a missing item) ends in ``UnexpectedResponseError``."""
        try:
            return flow.send(value) if error is None else flow.throw(error)
        except (StopIteration, ProviderError):
            raise
        except _MAPPING_ERRORS as exc:
            if last is None:
                raise
            raise self._malformed(last, exc, submitted=submitted) from exc

    def _answer(self, effect: Endpoint, response: httpx.Response, api: Any) -> Answer:
        """Parse a documented success with the generated model; classify anything else
        from its status and body (error bodies may be HTML or carry odd status codes)."""
        status = response.status_code
        if 200 <= status < 300 or status in effect.pass_statuses:
            try:
                parsed = effect.module._parse_response(client=api, response=response)
            except _PARSE_ERRORS as exc:  # generated from_dict on a payload off the schema
                raise self._malformed(effect, exc) from exc
            return Answer(status, parsed, response.content, response.headers)
        answer = Answer(status, None, response.content, response.headers)
        raise self._mark_submission(effect, self._classify(effect, answer))

    def _graphql_result(self, effect: GraphQL, result: Any) -> Any:
        return result

    def _graphql_error(self, effect: GraphQL, exc: Exception) -> ProviderError:
        raise NotImplementedError

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

    def _flow_terminate_idempotent(self, instance_id: str) -> Flow[None]:
        from .errors import InstanceNotFoundError

        _check_id(self.name, instance_id)
        try:
            yield from self._flow_terminate(instance_id)
        except InstanceNotFoundError:
            logger.info("terminate %s: already gone", instance_id)


def _check_id(provider: str, instance_id: str) -> str:
    if not isinstance(instance_id, str) or not instance_id.strip():
        raise InvalidRequestError("instance_id must be a non-empty string", provider=provider)
    return instance_id


class SyncProviderBase(ProviderCore):
    """Blocking driver and the protocol's blocking methods."""

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            (self._sleep_override or time.sleep)(seconds)

    def _invoke(self, effect: Effect) -> Any:
        raise NotImplementedError  # the wire: generated module call or GraphQL execute

    def _perform(self, effect: Effect) -> Any:
        for attempt in self._policy.sync(self._sleep):
            with attempt:
                self._breaker.before_call()
                self._sleep(self._limiter.reserve(effect.kind))
                try:
                    result = self._invoke(effect)
                except ProviderError as error:
                    self._account(error)
                    raise
                self._account(None)
                return result
        raise AssertionError("unreachable")  # tenacity re-raises the last error

    def _run(self, flow: Flow[T]) -> T:
        value: Any = None
        error: ProviderError | None = None
        last: Effect | None = None
        submitted = False  # whether an earlier effect may have made the provider do work
        try:
            while True:
                # An effect's error is thrown into the flow, which may handle it.
                last = self._step(flow, value, error, last, submitted)
                submitted = submitted or last.submits_work
                value, error = None, None
                try:
                    value = self._perform(last)
                except ProviderError as exc:
                    error = exc
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

    def launch_instance(self, request: LaunchRequest) -> GPUInstance:
        """Launch one instance (never replayed once it may have reached the provider)."""
        return self._run(self._flow_launch(request))

    def terminate_instance(self, instance_id: str) -> None:
        """Terminate an instance; already gone is success."""
        self._run(self._flow_terminate_idempotent(instance_id))

    def get_instance_status(self, instance_id: str) -> InstanceStatus:
        """Where the instance is in its lifecycle."""
        return self._run(self._flow_status(_check_id(self.name, instance_id)))

    def list_instances(self, name_prefix: str | None = None) -> list[GPUInstance]:
        """Instances of this account, optionally filtered by name prefix."""
        return self._run(self._flow_list(name_prefix))

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
    """``await``-based driver and the protocol's async methods."""

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            sleeper: Callable[[float], Awaitable[None]] = self._sleep_override or asyncio.sleep
            await sleeper(seconds)

    async def _invoke(self, effect: Effect) -> Any:
        raise NotImplementedError

    async def _perform(self, effect: Effect) -> Any:
        async for attempt in self._policy.asynchronous(self._sleep):
            with attempt:
                self._breaker.before_call()
                await self._sleep(self._limiter.reserve(effect.kind))
                try:
                    result = await self._invoke(effect)
                except ProviderError as error:
                    self._account(error)
                    raise
                self._account(None)
                return result
        raise AssertionError("unreachable")

    async def _run(self, flow: Flow[T]) -> T:
        value: Any = None
        error: ProviderError | None = None
        last: Effect | None = None
        submitted = False  # whether an earlier effect may have made the provider do work
        try:
            while True:
                # An effect's error is thrown into the flow, which may handle it.
                last = self._step(flow, value, error, last, submitted)
                submitted = submitted or last.submits_work
                value, error = None, None
                try:
                    value = await self._perform(last)
                except ProviderError as exc:
                    error = exc
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

    async def launch_instance(self, request: LaunchRequest) -> GPUInstance:
        """Launch one instance (never replayed once it may have reached the provider)."""
        return await self._run(self._flow_launch(request))

    async def terminate_instance(self, instance_id: str) -> None:
        """Terminate an instance; already gone is success."""
        await self._run(self._flow_terminate_idempotent(instance_id))

    async def get_instance_status(self, instance_id: str) -> InstanceStatus:
        """Where the instance is in its lifecycle."""
        return await self._run(self._flow_status(_check_id(self.name, instance_id)))

    async def list_instances(self, name_prefix: str | None = None) -> list[GPUInstance]:
        """Instances of this account, optionally filtered by name prefix."""
        return await self._run(self._flow_list(name_prefix))

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


def _auth_headers(key: SecretStr) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.get_secret_value()}"}


def _generated_api(provider: ProviderCore, *, asynchronous: bool) -> Any:
    """The generated ``Client`` of the provider's ``_generated`` package (imported lazily)
    over our own httpx client (auth header, timeouts, transport)."""
    package = type(provider).__module__.rsplit(".", 1)[0]
    client_class = importlib.import_module(f"{package}._generated.client").Client
    api = client_class(base_url=provider._base_url, raise_on_unexpected_status=False)
    options = provider._httpx_options()
    if asynchronous:
        api.set_async_httpx_client(httpx.AsyncClient(**options))
    else:
        api.set_httpx_client(httpx.Client(**options))
    return api


class OpenAPIProvider(SyncProviderBase):
    """Sync wire for providers generated with openapi-python-client."""

    @property
    def _api(self) -> Any:
        if "_api_client" not in self.__dict__:
            self.__dict__["_api_client"] = _generated_api(self, asynchronous=False)
        return self.__dict__["_api_client"]

    def _invoke(self, effect: Effect) -> Any:
        assert isinstance(effect, Endpoint)
        request = effect.module._get_kwargs(**effect.kwargs)  # the generated request
        try:
            response = self._api.get_httpx_client().request(**request)
        except httpx.HTTPError as exc:
            raise self._transport_error(effect, exc) from exc
        return self._answer(effect, response, self._api)

    def _close_wire(self) -> None:
        api = self.__dict__.pop("_api_client", None)
        if api is not None:
            api.get_httpx_client().close()


class AsyncOpenAPIProvider(AsyncProviderBase):
    """Async wire for providers generated with openapi-python-client."""

    @property
    def _api(self) -> Any:
        if "_api_client" not in self.__dict__:
            self.__dict__["_api_client"] = _generated_api(self, asynchronous=True)
        return self.__dict__["_api_client"]

    async def _invoke(self, effect: Effect) -> Any:
        assert isinstance(effect, Endpoint)
        request = effect.module._get_kwargs(**effect.kwargs)  # the generated request
        try:
            response = await self._api.get_async_httpx_client().request(**request)
        except httpx.HTTPError as exc:
            raise self._transport_error(effect, exc) from exc
        return self._answer(effect, response, self._api)

    async def _aclose_wire(self) -> None:
        api = self.__dict__.pop("_api_client", None)
        if api is not None:
            await api.get_async_httpx_client().aclose()
