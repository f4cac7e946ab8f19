"""A tiny threaded HTTP/1.1 server on loopback that misbehaves on purpose.

Each request is answered per a ``behaviour(method, path) -> Action``: a normal answer, a
reset mid-response, silence, a late answer, or a stream that trickles lines and then goes
silent. Every wait is bounded by STALL_SECONDS, so a client that ignores a deadline makes a
test slow and failing, never hanging.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

STALL_SECONDS = 5.0  # how long a "slow" answer would take (the client gives up far earlier)
HEALTH_JSON = b'{"status":"healthy","api_version":"62","version":"0.14.1"}'


@dataclass(frozen=True)
class Respond:
    """Answer with this status, headers and body, then close the connection."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Reset:
    """Send the first bytes of a response, then reset the connection (RST)."""

    partial: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: appl"


@dataclass(frozen=True)
class Stall:
    """Say nothing until the server stops (or STALL_SECONDS pass)."""


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` (as a slow long poll does), then answer with ``then``."""

    seconds: float
    then: Respond


@dataclass(frozen=True)
class Trickle:
    """A chunked 200 stream: ``lines`` one every ``interval`` seconds, then silence until the
    server stops (or STALL_SECONDS pass). ``headers`` go out at once."""

    headers: tuple[tuple[str, str], ...] = ()
    lines: tuple[str, ...] = ()
    interval: float = 0.1


Action = Respond | Reset | Stall | Delay | Trickle
Behaviour = Callable[[str, str], Action]

REASONS = {200: "OK", 503: "Service Unavailable"}


def health_ok(method: str, path: str) -> Action | None:
    """The normal /api/health answer (with the API version header), else None."""
    if method == "GET" and path == "/api/health":
        return Respond(
            200,
            (
                ("Content-Type", "application/json"),
                ("X-SkyPilot-API-Version", "62"),
                ("X-SkyPilot-Version", "0.14.1"),
            ),
            HEALTH_JSON,
        )
    return None


class FaultServer:
    """A threaded HTTP/1.1-ish server on 127.0.0.1 that answers per ``behaviour``.

    ``requests`` lists ``(method, path)`` of every request read, ``connections`` counts
    accepted connections. Both are recorded before the server answers, so the client cannot
    observe an answer before its request is counted.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.requests.count((method, path))

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(STALL_SECONDS)
            request = self._read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            action = self._behaviour(*request)
            if isinstance(action, Reset):
                conn.sendall(action.partial)
                time.sleep(0.01)  # let the partial bytes leave before the RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif isinstance(action, Stall):
                self._stop.wait(STALL_SECONDS)
            elif isinstance(action, Delay):
                if not self._stop.wait(action.seconds):
                    conn.sendall(self._encode(action.then))
            elif isinstance(action, Trickle):
                self._trickle(conn, action)
            else:
                conn.sendall(self._encode(action))
        except OSError:
            pass  # the client gave up first: fine
        finally:
            conn.close()

    def _trickle(self, conn: socket.socket, action: Trickle) -> None:
        head = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in action.headers)]
        head += ["Transfer-Encoding: chunked", "Connection: close", "", ""]
        conn.sendall("\r\n".join(head).encode("latin-1"))
        for line in action.lines:
            if self._stop.wait(action.interval):
                return
            data = (line + "\n").encode()
            conn.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self._stop.wait(STALL_SECONDS)

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[str, str] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return method, target.split("?", 1)[0]

    @staticmethod
    def _encode(response: Respond) -> bytes:
        reason = REASONS.get(response.status, "Status")
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in response.headers]
        lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + response.body

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._acceptor.join(timeout=2)
        for thread in self._threads:
            thread.join(timeout=2)
