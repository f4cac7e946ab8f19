"""The asynchronous client: ``await``-based I/O around the shared flows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import httpx

from . import _constants as constants
from ._base_client import (
    _NO_CHANGE,
    Call,
    Collect,
    Collected,
    Deadline,
    Effect,
    Flow,
    Reply,
    RequestMetrics,
    Wait,
)
from ._handles import AsyncRequestHandle
from ._protocol import LogLine, LogStreamParser, RequestOutcome, StreamEvent, request_id_of
from .errors import NotFoundError, RequestLostError, SkyPilotError
from .resources import ResourceFlows

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from .ledger import AsyncLedger, Ledger
    from .models import (
        AcceleratorOffer,
        CloudCheck,
        ClusterCost,
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
        ProgressEvent,
        RequestStatus,
        SubmittedJob,
    )

T = TypeVar("T")

if TYPE_CHECKING:  # managed jobs: client.jobs; single flight (loaded on first use)
    from ._coalesce import AsyncSingleFlight
    from .resources.managed_jobs import AsyncManagedJobs


class AsyncSkyPilotClient(ResourceFlows[httpx.AsyncClient]):
    """Typed async client for a SkyPilot API server: ``SkyPilotClient`` with ``await``.

    Arguments left as ``None`` come from the environment, then ``~/.sky/config.yaml``, then
    the defaults (``http://127.0.0.1:46580``). Use ``async with``, or ``await aclose()``.

    Args:
        base_url: API server URL (``SKYPILOT_API_SERVER_URL``/``SKYPILOT_API_SERVER_ENDPOINT``).
        token: Service-account token ``sky_...`` (``SKYPILOT_SERVICE_ACCOUNT_TOKEN``).
        timeout: Seconds for one HTTP call (``SKYPILOT_REQUEST_TIMEOUT``, default 30).
        max_retries: Retries of retryable failures (``SKYPILOT_MAX_RETRIES``, default 3).
        retry_delay: First backoff delay in seconds (``SKYPILOT_RETRY_DELAY``, default 1).
        retry_max_delay: Backoff cap in seconds (default 60).
        max_connections: Connection pool size (default 100).
        http_client: Your own ``httpx.AsyncClient`` (proxies, transports); you close it.
        workspace: SkyPilot workspace for every request (default: the server's).
        on_request: Called with a ``RequestMetrics`` after every HTTP attempt (metrics).
        coalesce_reads: Identical concurrent read calls (status, queue, job status,
            accelerators, enabled clouds, request status) share one server round trip
            (default True; never across tokens or workspaces, never for submissions).
        read_cache_ttl: Also reuse a read's answer for this many seconds (default None: off).
        ledger: A ``skypilot_client.ledger`` ledger, synchronous or ``AsyncLedger`` (its
            writes awaited): every work submission (launch, exec, stop, start, down,
            managed-job launch) is recorded before the call returns.
        tenant: Your tenant label, recorded with each submission in the ledger.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        retry_max_delay: float | None = None,
        max_connections: int | None = None,
        http_client: httpx.AsyncClient | None = None,
        workspace: str | None = None,
        on_request: Callable[[RequestMetrics], object] | None = None,
        coalesce_reads: bool = True,
        read_cache_ttl: float | None = None,
        ledger: Ledger | AsyncLedger | None = None,
        tenant: str | None = None,
        _sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = _sleep
        self._init_common(
            base_url,
            token,
            timeout=timeout,
            max_retries=max_retries,
            retry_delay=retry_delay,
            retry_max_delay=retry_max_delay,
            max_connections=max_connections,
            http_client=http_client,
            workspace=workspace,
            on_request=on_request,
            coalesce_reads=coalesce_reads,
            read_cache_ttl=read_cache_ttl,
        )
        if ledger is not None or tenant is not None:
            self._use_ledger(ledger, tenant, allow_async=True)

    def _make_http(self, limits: httpx.Limits) -> httpx.AsyncClient:
        return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=True)

    def with_options(
        self,
        *,
        token: str | None = _NO_CHANGE,
        workspace: str | None = _NO_CHANGE,
        timeout: float | None = None,
        max_retries: int | None = None,
        coalesce_reads: bool | None = None,
        read_cache_ttl: float | None = _NO_CHANGE,
        ledger: Ledger | AsyncLedger | None = _NO_CHANGE,
        tenant: str | None = _NO_CHANGE,
    ) -> AsyncSkyPilotClient:
        """A copy with another token/workspace/timeout/retries/ledger/tenant, sharing this
        connection pool.

        Use one copy per tenant; closing any of them closes the shared pool. Copies share
        the record of submitted requests and the single flight of identical reads (keyed by
        token and workspace); ``coalesce_reads``/``read_cache_ttl`` set this copy's own use.
        """
        clone: AsyncSkyPilotClient = self._copy(
            token=token,
            workspace=workspace,
            timeout=timeout,
            max_retries=max_retries,
            coalesce_reads=coalesce_reads,
            read_cache_ttl=read_cache_ttl,
        )
        clone._use_ledger(ledger, tenant, allow_async=True)
        return clone

    async def aclose(self) -> None:
        """Close the connection pool (unless you passed your own ``http_client``)."""
        if self._shared.owns_http and not self._shared.closed:
            self._shared.closed = True
            await self._http.aclose()

    async def __aenter__(self) -> AsyncSkyPilotClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        http: httpx.AsyncClient = self._shared.http
        return http

    @property
    def jobs(self) -> AsyncManagedJobs:
        """Managed jobs: ``jobs.launch/queue/cancel/logs/wait`` (``AsyncManagedJobs``)."""
        from .resources.managed_jobs import AsyncManagedJobs

        return AsyncManagedJobs(self)

    # -- the driver ---------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        value: Any = None
        submitted: Reply | None = None  # the answer to this call's work submission, once sent
        try:
            while True:
                effect = flow.send(value)
                value = await self._perform(effect)
                reply = self._submission_of(effect, value, submitted)
                if reply is not submitted and reply is not None and isinstance(effect, Call):
                    await self._record_async(effect, reply)  # before it counts as submitted
                submitted = reply
        except StopIteration as stop:
            result: T = stop.value
            return result
        except NotFoundError as error:
            named = await self._named_by_ledger(error)
            self._after_submission(named, submitted)
            if named is error:
                raise
            raise named from error
        except SkyPilotError as error:
            self._after_submission(error, submitted)
            raise
        finally:
            flow.close()

    async def _record_async(self, call: Call, reply: Reply) -> None:
        """Await an ``AsyncLedger``'s write of an accepted submission (a synchronous ledger
        was written in ``_submission_of``)."""
        ledger = self._async_ledger
        write = self._ledger_write(call, reply)
        if ledger is None or write is None:
            return
        try:
            await ledger.record_request(**write)
        except SkyPilotError as error:
            self._ledger_write_failed(error, call, write["request_id"])
            raise

    async def _named_by_ledger(self, error: NotFoundError) -> NotFoundError:
        """``RequestLostError`` for an unknown request found in the ``AsyncLedger`` (the
        synchronous ``_lost_or_unknown`` marked it), else ``error``."""
        request_id, ledger = error._unnamed_request_id, self._async_ledger
        if request_id is None or ledger is None:
            return error
        from .ledger import LedgerError

        error._unnamed_request_id = None
        try:
            entry = self._entry_of(await ledger.get_request(request_id))
        except LedgerError as exc:
            self._ledger_lookup_failed(request_id, exc)
            return error
        return error if entry is None else self._lost_error(entry, error.status_code)

    async def _read(self, operation: str, args: tuple[Any, ...], flow: Callable[[], Flow[T]]) -> T:
        """Run a read-only flow; identical concurrent reads share one run (``_coalesce``)."""
        key = self._flight_key(operation, *args)
        if key is None:
            return await self._run(flow())
        if self._shared.flights is None:
            from ._coalesce import AsyncSingleFlight

            self._shared.flights = AsyncSingleFlight()
        flights: AsyncSingleFlight = self._shared.flights
        return await flights.run(key, lambda: self._run(flow()), ttl=self._read_cache_ttl)

    async def _reconcile(self, lost: RequestLostError, deadline: Deadline) -> None:
        """Read a lost launch's cluster status into ``lost`` (a failure is noted in it)."""
        try:
            await self._run(self._flow_reconcile(lost, deadline))
        except SkyPilotError as exc:
            self._reconcile_failed(lost, exc)

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return await self._call(effect)
        if isinstance(effect, Wait):
            return await self._wait(effect)
        return await self._collect(effect)

    async def _send_once(self, call: Call, attempt: int, *, stream: bool = False) -> httpx.Response:
        request = self._build_request(call, stream=stream)
        started = time.monotonic()
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise self._failed_attempt(call, attempt, started, exc) from exc
        self._observe(call, attempt, started, response)
        if stream and not 200 <= response.status_code < 300:
            await response.aread()
            await response.aclose()
            self._reply(call, response)  # raises the classified error
        return response

    async def _call(self, call: Call) -> Reply:
        async for attempt in self._policy.asynchronous(self._sleep):
            with attempt:
                number = attempt.retry_state.attempt_number
                return self._reply(call, await self._send_once(call, number))
        raise AssertionError("unreachable")  # tenacity re-raises the last error

    async def _wait(self, effect: Wait) -> RequestOutcome:
        # A wait is a read: it polls through outages until its own deadline (_outage.py).
        outage = self._outage(effect)
        while (remaining := effect.deadline.remaining()) > 0:
            call = self._get_call(effect, min(remaining, constants.LONG_POLL_READ_TIMEOUT))
            try:
                response = await self._send_once(call, outage.attempt)
                reply = self._reply(call, response)
            except SkyPilotError as exc:
                delay = outage.failed(exc, effect.deadline)
                if delay is None:
                    raise
                if delay > 0:
                    await self._sleep(delay)
                continue
            outage.recovered()
            return self._outcome(reply, effect)
        raise self._wait_timeout(effect, outage)

    @asynccontextmanager
    async def _open_stream(self, call: Call) -> AsyncIterator[httpx.Response]:
        response: httpx.Response | None = None
        async for attempt in self._policy.asynchronous(self._sleep):
            with attempt:
                number = attempt.retry_state.attempt_number
                response = await self._send_once(call, number, stream=True)
        assert response is not None
        self._note_response(response.headers)
        try:
            yield response
        finally:
            await response.aclose()

    async def _stream_events(
        self, call: Call, request_ids: list[str | None] | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Parsed events of a text stream; its request id is appended to ``request_ids``."""
        parser = LogStreamParser()
        async with self._open_stream(call) as response:
            request_id = request_id_of(response.headers)
            if request_ids is not None:
                request_ids.append(request_id)
            about = request_id or self._request_id_param(call)
            try:
                # A silent stream ends by the read timeout, bounded by the call's deadline.
                async for chunk in response.aiter_text():
                    self._check_deadline(call, about)
                    for event in parser.feed(chunk):
                        yield event
            except httpx.HTTPError as exc:
                raise self._transport_error(call, exc, about) from exc
        for event in parser.close():
            yield event

    async def _collect(self, effect: Collect) -> Collected:
        ids: list[str | None] = []
        lines: list[str] = []
        async with aclosing(self._stream_events(effect.call, ids)) as events:
            async for event in events:
                if isinstance(event, LogLine):
                    lines.append(event.text)
        return Collected(lines, ids[0] if ids else None)

    # -- operations ---------------------------------------------------------------------

    async def health(self) -> HealthStatus:
        """Server health and versions (``GET /api/health``).

        Raises ``VersionMismatchError`` when the server is too old for this client.
        """
        return await self._run(self._flow_health())

    async def launch(self, request: LaunchRequest) -> AsyncRequestHandle[LaunchResult]:
        """Submit a launch and return its handle (``handle.result()`` waits for it).

        The submission is never replayed once it may have reached the server.
        """
        from .resources.uploads import flow_submit_launch  # uploads: local files go first

        request_id = await self._run(flow_submit_launch(self, request))
        return AsyncRequestHandle(
            self,
            request_id,
            operation="launch",
            default_timeout=self._settings.launch_timeout,
            finish=lambda rid, t: self._flow_launch_result(request, rid, t),
        )

    async def execute(
        self, request: ExecuteRequest, *, timeout: float | None = None
    ) -> ExecuteResult:
        """Run a command or task on an UP cluster; wait for it; return exit code and output."""
        seconds = self._wait_timeout_arg(timeout, self._settings.launch_timeout)
        return await self._run(self._flow_execute(request, Deadline.after(seconds)))

    async def submit(
        self, request: ExecuteRequest, *, timeout: float | None = None
    ) -> SubmittedJob:
        """Submit a command or task to an UP cluster and return its job id at once (see
        ``SkyPilotClient.submit``)."""
        seconds = self._wait_timeout_arg(timeout, self._settings.launch_timeout)
        return await self._run(self._flow_submit_job(request, Deadline.after(seconds)))

    async def job_status(
        self, cluster_name: str, job_ids: list[int] | None = None, *, timeout: float | None = None
    ) -> dict[int, JobState | None]:
        """Status of jobs on a cluster: ``{job id: JobState}``, ``None`` for a job the cluster
        does not know. ``job_ids=None`` asks about the latest job (``{}`` when there is none).
        """
        seconds = self._wait_timeout_arg(timeout, self._settings.status_timeout)
        return await self._read(
            "job_status",
            (cluster_name, job_ids, seconds),
            lambda: self._flow_job_status(cluster_name, job_ids, Deadline.after(seconds)),
        )

    async def cancel_jobs(
        self,
        cluster_name: str,
        job_ids: list[int] | None = None,
        *,
        all: bool = False,
        all_users: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Cancel the ``job_ids`` given, or ``all=True``; exactly one (checked before any call)."""
        seconds = self._wait_timeout_arg(timeout, self._settings.status_timeout)
        await self._run(
            self._flow_cancel_jobs(
                cluster_name,
                job_ids,
                all_jobs=all,
                all_users=all_users,
                deadline=Deadline.after(seconds),
            )
        )

    async def download_logs(
        self,
        cluster_name: str,
        job_ids: list[int] | None = None,
        *,
        local_dir: str | Path = "~/sky_logs",
        timeout: float | None = None,
    ) -> dict[int, Path]:
        """Download jobs' log folders into ``local_dir``; ``{job id: local folder}`` (see
        ``SkyPilotClient.download_logs``)."""
        seconds = self._wait_timeout_arg(timeout, self._settings.launch_timeout)
        return await self._run(
            self._flow_download_logs(cluster_name, job_ids, local_dir, Deadline.after(seconds))
        )

    async def endpoints(self, cluster_name: str, port: int | None = None) -> dict[int, str]:
        """URLs of a cluster's exposed ports, ``{port: url}`` (only ``port`` if given)."""
        return await self._run(self._flow_endpoints(cluster_name, port))

    async def cost_report(self, days: int | None = None) -> list[ClusterCost]:
        """What clusters cost over the last ``days`` (server default 30), torn-down ones too."""
        return await self._run(self._flow_cost_report(days))

    async def check(
        self, clouds: list[str] | None = None, *, workspace: str | None = None
    ) -> CloudCheck:
        """Re-check cloud credentials: enabled clouds per workspace, why others are disabled."""
        return await self._run(self._flow_check(clouds, workspace))

    @overload
    async def request_handle(
        self, request_id: str, *, operation: Literal["launch"], dryrun: bool = False
    ) -> AsyncRequestHandle[LaunchResult]: ...

    @overload
    async def request_handle(
        self, request_id: str, *, operation: Literal["start"], dryrun: bool = False
    ) -> AsyncRequestHandle[None]: ...

    async def request_handle(
        self, request_id: str, *, operation: Literal["launch", "start"], dryrun: bool = False
    ) -> AsyncRequestHandle[LaunchResult] | AsyncRequestHandle[None]:
        """A handle to a ``launch`` or ``start`` request submitted earlier, from its stored
        ``request_id`` (see ``SkyPilotClient.request_handle``)."""
        rid = await self._run(self._flow_attach(request_id, operation))
        if operation == "launch":
            return AsyncRequestHandle(
                self,
                rid,
                operation="launch",
                default_timeout=self._settings.launch_timeout,
                finish=lambda r, t: self._flow_attached_launch_result(r, t, dryrun=dryrun),
            )
        return AsyncRequestHandle(
            self,
            rid,
            operation="start",
            default_timeout=self._settings.launch_timeout,
            finish=self._flow_finish_wait,
        )

    async def get_status(
        self, cluster_name: str, *, refresh: bool = False, all_users: bool = True
    ) -> ClusterStatus:
        """One cluster's status; raises ``ClusterNotFoundError`` when it does not exist."""
        return await self._read(
            "get_status",
            (cluster_name, refresh, all_users),
            lambda: self._flow_get_status(cluster_name, refresh=refresh, all_users=all_users),
        )

    async def list_clusters(self, *, refresh: bool = False, all_users: bool = False) -> ClusterList:
        """Clusters of this user (or of everyone with ``all_users=True``)."""
        return await self._read(
            "list_clusters",
            (refresh, all_users),
            lambda: self._flow_list_clusters(refresh=refresh, all_users=all_users),
        )

    async def get_logs(self, request: LogsRequest, *, timeout: float | None = None) -> JobLogs:
        """A job's whole log and exit code (``follow=True`` waits for the job to end)."""
        seconds = self._wait_timeout_arg(timeout, self._settings.launch_timeout)
        return await self._run(self._flow_logs(request, Deadline.after(seconds)))

    async def stream_logs(self, request: LogsRequest) -> AsyncIterator[str]:
        """A job's log lines as they are written; raises the classified error at the end if
        the server could not read them (e.g. ``ClusterNotFoundError``)."""
        await self._run(self._require_version("logs"))
        call = self._logs_call(request)
        ids: list[str | None] = []
        async with aclosing(self._stream_events(call, ids)) as events:
            async for event in events:
                if isinstance(event, LogLine):
                    yield event.text
        if ids and ids[0]:
            await self._wait(Wait(ids[0], self._status_deadline(), "logs"))

    async def estimate_cost(self, request: EstimateCostRequest) -> CostEstimate:
        """Price a task with the server's catalog (cheapest matching offer)."""
        return await self._run(self._flow_estimate_cost(request))

    async def terminate(
        self, cluster_name: str, *, purge: bool = False, timeout: float | None = None
    ) -> None:
        """Tear a cluster down and wait (``purge`` drops the record even if teardown fails)."""
        seconds = self._wait_timeout_arg(timeout, self._settings.terminate_timeout)
        fields = {"cluster_name": cluster_name, "purge": purge}
        await self._run(
            self._flow_cluster_op("/down", "terminate", fields, Deadline.after(seconds))
        )

    async def stop(
        self, cluster_name: str, *, purge: bool = False, timeout: float | None = None
    ) -> None:
        """Stop a cluster and wait."""
        seconds = self._wait_timeout_arg(timeout, self._settings.terminate_timeout)
        fields = {"cluster_name": cluster_name, "purge": purge}
        await self._run(self._flow_cluster_op("/stop", "stop", fields, Deadline.after(seconds)))

    async def start(
        self,
        cluster_name: str,
        *,
        idle_minutes_to_stop: int | None = None,
        down: bool = False,
        retry_until_up: bool = False,
        force: bool = False,
    ) -> AsyncRequestHandle[None]:
        """Restart a stopped cluster; returns a handle (``result()`` waits)."""
        call = self._start_call(
            cluster_name,
            idle_minutes_to_stop=idle_minutes_to_stop,
            down=down,
            retry_until_up=retry_until_up,
            force=force,
        )
        request_id = await self._run(self._flow_submit(call))
        return AsyncRequestHandle(
            self,
            request_id,
            operation="start",
            default_timeout=self._settings.launch_timeout,
            finish=self._flow_finish_wait,
        )

    async def autostop(
        self,
        cluster_name: str,
        idle_minutes: int | None,
        *,
        down: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Set autostop after ``idle_minutes`` idle (``None`` cancels it) and wait."""
        seconds = self._wait_timeout_arg(timeout, self._settings.status_timeout)
        fields = self._autostop_fields(cluster_name, idle_minutes, down)
        await self._run(
            self._flow_cluster_op("/autostop", "autostop", fields, Deadline.after(seconds))
        )

    async def queue(
        self, cluster_name: str, *, skip_finished: bool = False, all_users: bool = False
    ) -> list[Job]:
        """Jobs on a cluster."""
        return await self._read(
            "queue",
            (cluster_name, skip_finished, all_users),
            lambda: self._flow_queue(
                cluster_name, skip_finished=skip_finished, all_users=all_users
            ),
        )

    async def list_accelerators(
        self,
        name_filter: str | None = None,
        *,
        clouds: list[str] | None = None,
        region_filter: str | None = None,
        quantity_filter: int | None = None,
        gpus_only: bool = True,
        all_regions: bool = False,
    ) -> list[AcceleratorOffer]:
        """Accelerator offers with prices from the server's catalogs.

        ``clouds=None`` asks about every cloud, which makes the server fetch every catalog;
        pass the clouds you use (see ``enabled_clouds()``).
        """
        return await self._read(
            "list_accelerators",
            (name_filter, clouds, region_filter, quantity_filter, gpus_only, all_regions),
            lambda: self._flow_list_accelerators(
                name_filter=name_filter,
                clouds=clouds,
                region_filter=region_filter,
                quantity_filter=quantity_filter,
                gpus_only=gpus_only,
                all_regions=all_regions,
            ),
        )

    async def enabled_clouds(self, workspace: str | None = None) -> list[str]:
        """Clouds enabled on the server (lower-case names such as ``hyperbolic``)."""
        return await self._read(
            "enabled_clouds", (workspace,), lambda: self._flow_enabled_clouds(workspace)
        )

    async def get_request(self, request_id: str) -> RequestStatus:
        """A request's current status (``NotFoundError`` when unknown)."""
        return await self._read(
            "get_request", (request_id,), lambda: self._flow_get_request(request_id)
        )

    async def list_requests(
        self,
        *,
        cluster_name: str | None = None,
        all_status: bool = False,
        limit: int | None = None,
    ) -> list[RequestStatus]:
        """Requests on the server, newest first (active ones unless ``all_status``)."""
        return await self._run(
            self._flow_list_requests(cluster_name=cluster_name, all_status=all_status, limit=limit)
        )

    async def wait_for_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> RequestStatus:
        """Wait for a request to finish; its decoded result is in ``return_value``.

        Raises the classified error for a failed request, ``RequestCancelledError``, or
        ``WaitTimeoutError`` when ``timeout`` passes first.
        """
        seconds = self._wait_timeout_arg(timeout, constants.DEFAULT_WAIT_TIMEOUT)
        return await self._run(self._flow_wait_for_request(request_id, Deadline.after(seconds)))

    async def cancel_request(self, request_id: str) -> list[str]:
        """Cancel a request; returns the ids the server cancelled."""
        return await self._run(self._flow_cancel_request(request_id))

    async def stream_request_logs(
        self, request_id: str, *, follow: bool = True, tail: int | None = None
    ) -> AsyncIterator[str]:
        """A request's log lines (spinner control lines filtered out)."""
        call = self._stream_call(self._request_id(request_id), follow=follow, tail=tail)
        async with aclosing(self._stream_events(call)) as events:
            async for event in events:
                if isinstance(event, LogLine):
                    yield event.text

    async def _progress(
        self, request_id: str, deadline: Deadline | None = None
    ) -> AsyncIterator[ProgressEvent]:
        """Progress events until the request ends (or ``deadline`` passes: WaitTimeoutError)."""
        from ._progress import ProgressTracker

        tracker = ProgressTracker(request_id)
        status = await self._run(self._flow_get_request(request_id, deadline))
        if (event := tracker.on_state(status.status)) is not None:
            yield event
        if not status.status.is_terminal:
            call = self._stream_call(request_id, follow=True, tail=None, deadline=deadline)
            async with aclosing(self._stream_events(call)) as items:
                async for item in items:
                    if (event := tracker.on_stream(item)) is not None:
                        yield event
            status = await self._run(self._flow_get_request(request_id, deadline))
        if (event := tracker.on_state(status.status, status.status_msg or "")) is not None:
            yield event
