"""Handles to work running on the server (returned by ``launch`` and ``start``).

A handle needs only a few things from its client, named by the ``Runner`` /
``AsyncRunner`` protocols below; it never imports the client classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ._deadline import Deadline, wait_seconds
from .errors import RequestCancelledError, RequestFailedError, RequestLostError

if TYPE_CHECKING:
    from ._effects import Flow
    from .models import ProgressEvent, RequestStatus

T = TypeVar("T")
R = TypeVar("R")

ProgressCallback = Callable[["ProgressEvent"], Any]


class Runner(Protocol):
    """What a ``RequestHandle`` needs from its (sync) client."""

    def _run(self, flow: Flow[R]) -> R: ...

    def _progress(
        self, request_id: str, deadline: Deadline | None = None
    ) -> Iterator[ProgressEvent]: ...

    def wait_for_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> RequestStatus: ...

    def get_request(self, request_id: str) -> RequestStatus: ...

    def stream_request_logs(
        self, request_id: str, *, follow: bool = True, tail: int | None = None
    ) -> Iterator[str]: ...

    def cancel_request(self, request_id: str) -> list[str]: ...

    def _reconcile(self, lost: RequestLostError, deadline: Deadline) -> None: ...


class AsyncRunner(Protocol):
    """What an ``AsyncRequestHandle`` needs from its (async) client."""

    def _run(self, flow: Flow[R]) -> Awaitable[R]: ...

    def _progress(
        self, request_id: str, deadline: Deadline | None = None
    ) -> AsyncIterator[ProgressEvent]: ...

    def wait_for_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> Awaitable[RequestStatus]: ...

    def get_request(self, request_id: str) -> Awaitable[RequestStatus]: ...

    def stream_request_logs(
        self, request_id: str, *, follow: bool = True, tail: int | None = None
    ) -> AsyncIterator[str]: ...

    def cancel_request(self, request_id: str) -> Awaitable[list[str]]: ...

    def _reconcile(self, lost: RequestLostError, deadline: Deadline) -> Awaitable[None]: ...


class _HandleBase(Generic[T]):
    def __init__(
        self,
        request_id: str,
        *,
        operation: str,
        default_timeout: float,
        finish: Callable[[str, Deadline], Flow[T]],
    ) -> None:
        self.request_id = request_id
        self.operation = operation
        self._default_timeout = default_timeout
        self._finish = finish

    def _reconciles(self, lost: RequestLostError, reconcile: bool) -> bool:
        return reconcile and self.operation in ("launch", "start") and bool(lost.cluster_name)

    def _timeout(self, timeout: float | None) -> float:
        return wait_seconds(timeout, self._default_timeout)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(operation={self.operation!r}, request_id={self.request_id!r})"
        )


class RequestHandle(_HandleBase[T]):
    """A request submitted to the server (sync).

    ``result()`` waits and returns the typed result or raises the classified error;
    ``progress()`` yields ``ProgressEvent``s; ``stream()`` yields log lines; ``cancel()``
    cancels it.
    """

    def __init__(self, client: Runner, request_id: str, **kwargs: Any) -> None:
        super().__init__(request_id, **kwargs)
        self._client = client

    def result(
        self,
        timeout: float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        reconcile: bool = False,
    ) -> T:
        """Wait for the request and return its result (raises its classified error).

        ``on_progress`` is called with each ``ProgressEvent`` while waiting. The whole call,
        progress included, ends by ``timeout`` (``WaitTimeoutError``).

        When the server forgot the request (it restarted), ``RequestLostError`` is raised;
        with ``reconcile=True`` a launch or start first reads its cluster's status and the
        error reports it (``cluster_status``: UP, INIT, ... or None when missing).
        """
        deadline = Deadline.after(self._timeout(timeout))
        try:
            if on_progress is not None:
                for event in self._client._progress(self.request_id, deadline):
                    on_progress(event)
            return self._client._run(self._finish(self.request_id, deadline))
        except RequestLostError as lost:
            if self._reconciles(lost, reconcile):
                self._client._reconcile(lost, deadline)
            raise

    def wait(self, timeout: float | None = None) -> RequestStatus:
        """Wait until the request ends and return its final status (does not raise for a
        failed or cancelled request: the status says)."""
        try:
            return self._client.wait_for_request(self.request_id, timeout=self._timeout(timeout))
        except (RequestFailedError, RequestCancelledError):
            return self._client.get_request(self.request_id)

    def stream(self, *, follow: bool = True) -> Iterator[str]:
        """The request's log lines as they are written."""
        return self._client.stream_request_logs(self.request_id, follow=follow)

    def progress(self) -> Iterator[ProgressEvent]:
        """Progress events until the request ends (the last is succeeded or failed)."""
        return self._client._progress(self.request_id)

    def cancel(self) -> None:
        """Cancel the request on the server."""
        self._client.cancel_request(self.request_id)


class AsyncRequestHandle(_HandleBase[T]):
    """A request submitted to the server (async twin of ``RequestHandle``)."""

    def __init__(self, client: AsyncRunner, request_id: str, **kwargs: Any) -> None:
        super().__init__(request_id, **kwargs)
        self._client = client

    async def result(
        self,
        timeout: float | None = None,
        *,
        on_progress: Callable[[ProgressEvent], Any | Awaitable[Any]] | None = None,
        reconcile: bool = False,
    ) -> T:
        """Wait for the request and return its result (raises its classified error).

        The whole call, progress included, ends by ``timeout`` (``WaitTimeoutError``).
        ``reconcile=True``: see ``RequestHandle.result``.
        """
        deadline = Deadline.after(self._timeout(timeout))
        try:
            if on_progress is not None:
                async for event in self._client._progress(self.request_id, deadline):
                    maybe = on_progress(event)
                    if isinstance(maybe, Awaitable):
                        await maybe
            return await self._client._run(self._finish(self.request_id, deadline))
        except RequestLostError as lost:
            if self._reconciles(lost, reconcile):
                await self._client._reconcile(lost, deadline)
            raise

    async def wait(self, timeout: float | None = None) -> RequestStatus:
        """Wait until the request ends and return its final status (does not raise)."""
        try:
            return await self._client.wait_for_request(
                self.request_id, timeout=self._timeout(timeout)
            )
        except (RequestFailedError, RequestCancelledError):
            return await self._client.get_request(self.request_id)

    def stream(self, *, follow: bool = True) -> AsyncIterator[str]:
        """The request's log lines as they are written."""
        return self._client.stream_request_logs(self.request_id, follow=follow)

    def progress(self) -> AsyncIterator[ProgressEvent]:
        """Progress events until the request ends (the last is succeeded or failed)."""
        return self._client._progress(self.request_id)

    async def cancel(self) -> None:
        """Cancel the request on the server."""
        await self._client.cancel_request(self.request_id)
