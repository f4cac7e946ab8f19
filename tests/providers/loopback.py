"""Loopback fakes: the documented responders (``<provider>/documented.py``) served over real
HTTP on 127.0.0.1, optionally after an injected latency, so that a separate process (the
command line) or a benchmark talks to them exactly as to a vendor. Also in-process fake
provider clients for the search and orphan tests (``FakeOffersProvider``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from gpu_providers import GPUFilters, GPUOffer
from gpu_providers.errors import ProviderError

Handler = Callable[[httpx.Request], httpx.Response]


class LoopbackServer:
    """Serves ``handler`` (an ``httpx.MockTransport`` handler) on ``http://127.0.0.1:<port>``.

    ``latency`` seconds pass before every answer (in the server thread, so concurrent
    requests overlap as they would at a vendor). The handler runs under a lock: the
    documented responders are not thread-safe.
    """

    def __init__(self, handler: Handler, *, latency: float = 0.0) -> None:
        self.handler = handler
        self.latency = latency
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                url = f"http://{self.headers.get('host')}{self.path}"
                request = httpx.Request(
                    self.command, url, headers=dict(self.headers.items()), content=body
                )
                if server.latency:
                    time.sleep(server.latency)
                with server._lock:
                    response = server.handler(request)
                    response.read()
                content = response.content
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving(handler: Handler, *, latency: float = 0.0) -> Iterator[LoopbackServer]:
    """A running ``LoopbackServer``."""
    with LoopbackServer(handler, latency=latency) as server:
        yield server


def offer(provider: str, price: float, *, count: int = 1, **fields: Any) -> GPUOffer:
    """A priced H100 offer of a fake provider."""
    return GPUOffer(
        provider=provider,
        offer_id=fields.pop("offer_id", f"{provider}-h100x{count}-{price}"),
        gpu_type="H100",
        provider_gpu_type="H100 80GB",
        gpu_count=count,
        hourly_price=round(price * count, 4),
        price_per_gpu=price,
        **fields,
    )


class FakeOffersProvider:
    """An in-process fake provider client (sync) for search tests: answers its offers after
    ``delay`` seconds, or raises ``error``; counts its calls."""

    def __init__(
        self,
        name: str,
        offers: list[GPUOffer],
        *,
        delay: float = 0.0,
        error: ProviderError | None = None,
    ) -> None:
        self.name = name
        self.offers = offers
        self.delay = delay
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def list_available_gpus(self, filters: GPUFilters | None = None) -> list[GPUOffer]:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        wanted = filters or GPUFilters()
        return [o for o in self.offers if wanted.matches(o)]


class AsyncFakeOffersProvider(FakeOffersProvider):
    """The async twin of ``FakeOffersProvider`` (its delay is an ``asyncio.sleep``)."""

    cancelled = 0

    async def list_available_gpus(  # type: ignore[override]
        self, filters: GPUFilters | None = None
    ) -> list[GPUOffer]:
        self.calls += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        wanted = filters or GPUFilters()
        return [o for o in self.offers if wanted.matches(o)]
