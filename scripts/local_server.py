"""Install and run a real local SkyPilot API server, offline, on loopback.

Used by the integration tests and by the demo. Standard library only: the server
itself runs from a separate virtual environment that holds ``skypilot==0.14.1``
(created on first use with ``python -m venv`` + ``pip install``).

What a started server looks like:

* ``python -m sky.server.server --host 127.0.0.1 --port N`` in its own session /
  process group, with an isolated ``HOME`` (a fresh temporary directory unless one
  is given) and ``SKYPILOT_DISABLE_USAGE_COLLECTION=1``; stdout/stderr go to
  ``$HOME/.sky/api_server/server.log`` (where ``sky api start`` puts them too).
* A hand-written Hyperbolic catalog (plus the common accelerator tables) under
  ``$HOME/.sky/catalogs/v8`` without ``.meta`` md5 files, so the server never tries
  to download catalogs, and a dummy ``~/.hyperbolic/api_key``. ``start()`` enables
  the Hyperbolic cloud (``POST /check``), which makes dry-run launches, optimize
  and ``list_accelerators(clouds=["hyperbolic"])`` work without network.
* With ``auth=True``: built-in basic auth (``ENABLE_BASIC_AUTH=true``), service
  account tokens (``ENABLE_SERVICE_ACCOUNTS=true``) and an admin user seeded from
  ``SKYPILOT_INITIAL_BASIC_AUTH``. In 0.14.1 that variable must hold
  ``<user>:<password hash>`` (any passlib scheme the server accepts; the password is
  compared with ``CryptContext.verify``); a plaintext value makes every basic-auth
  attempt fail with HTTP 500 ``UnknownHashError``. The hash is made with the venv's
  own passlib (bcrypt, like ``POST /users/create``, but with a low cost factor so
  basic auth stays fast on busy machines).
  Loopback requests without proxy headers skip basic auth; a request carrying
  ``X-Forwarded-For`` is treated as remote and must authenticate. Bearer
  ``sky_...`` tokens are validated even from loopback.

CLI::

    python -m scripts.local_server install            # ensure the venv, print its python
    python -m scripts.local_server run [--port N] [--auth]

Library::

    with LocalSkyPilotServer(auth=True) as server:
        token = server.create_service_account_token()
        ...  # talk to server.base_url
"""

from __future__ import annotations

import argparse
import atexit
import base64
import collections
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NamedTuple, final

__all__ = [
    "API_VERSION",
    "COMMON_ACCELERATORS_CSV",
    "COMMON_METADATA_CSV",
    "HARNESS_USER_ID",
    "HARNESS_USER_NAME",
    "HYPERBOLIC_VMS_CSV",
    "REMOTE_CLIENT_IP",
    "SKYPILOT_VERSION",
    "LocalSkyPilotServer",
    "default_venv_dir",
    "ensure_server_venv",
    "harness_env_vars",
    "require_rsync",
    "version_headers",
]

SKYPILOT_VERSION = "0.14.1"
"""The SkyPilot release the server venv pins."""

API_VERSION = 62
"""API version of SkyPilot 0.14.1 (sent as ``X-SkyPilot-API-Version``)."""

VENV_ENV_VAR = "SKYPILOT_SDK_SERVER_VENV"
"""Environment variable overriding :func:`default_venv_dir`."""

HARNESS_USER_ID = "c0ffee01"
"""Fixed ``SKYPILOT_USER_ID`` (8 hex chars) the harness sends in ``env_vars``."""

HARNESS_USER_NAME = "sdk-harness"
"""Fixed ``SKYPILOT_USER`` the harness sends in ``env_vars``."""

REMOTE_CLIENT_IP = "203.0.113.7"
"""Sent as ``X-Forwarded-For`` so that a loopback request counts as remote (TEST-NET-3)."""

LOOPBACK_HOST = "127.0.0.1"

# Marker put in the server's environment; every descendant inherits it, which lets
# stop() find processes that left the server's process group.
_MARKER_ENV_VAR = "SKYPILOT_SDK_HARNESS_SERVER_ID"

# Environment variables of the caller that must not leak into the server.
_STRIPPED_ENV_PREFIXES = ("SKYPILOT_", "SKY_", "IS_SKYPILOT_")
_STRIPPED_ENV_NAMES = frozenset(
    {
        "ENABLE_BASIC_AUTH",
        "ENABLE_SERVICE_ACCOUNTS",
        "HYPERBOLIC_API_KEY",
        "PYTHONHOME",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "VIRTUAL_ENV",
        "__PYVENV_LAUNCHER__",
    }
)

_STOP_GRACE_SECONDS = 5.0
_REQUEST_TIMEOUT_SECONDS = 120.0
_LOG_TAIL_LINES = 60

# --------------------------------------------------------------------------------------
# Offline catalog (schema v8). Hyperbolic columns as written by SkyPilot's own catalog
# fetcher. Hyperbolic itself cannot launch spot instances, but SpotPrice is part of the
# schema and is reported by list_accelerators, so some rows carry one.
# --------------------------------------------------------------------------------------

HYPERBOLIC_VMS_CSV = """\
InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,StorageGiB,Price,Region,GpuInfo,SpotPrice
cpu-4x16,,,4,16,100,0.2,us-central-1,,
1x-L40S-16-64,L40S,1,16,64,256,0.89,us-central-1,"{'Gpus':[{'Name':'L40S','Manufacturer':'NVIDIA','Count':1,'MemoryInfo':{'SizeInMiB':49152}}],'TotalGpuMemoryInMiB':49152}",0.45
1x-A100-24-192,A100,1,24,192,500,1.29,us-central-1,"{'Gpus':[{'Name':'A100','Manufacturer':'NVIDIA','Count':1,'MemoryInfo':{'SizeInMiB':40960}}],'TotalGpuMemoryInMiB':40960}",0.79
2x-A100-48-384,A100,2,48,384,1000,2.58,us-central-1,"{'Gpus':[{'Name':'A100','Manufacturer':'NVIDIA','Count':2,'MemoryInfo':{'SizeInMiB':40960}}],'TotalGpuMemoryInMiB':81920}",1.58
1x-H100-28-271,H100,1,28,271,500,1.99,us-central-1,"{'Gpus':[{'Name':'H100','Manufacturer':'NVIDIA','Count':1,'MemoryInfo':{'SizeInMiB':81920}}],'TotalGpuMemoryInMiB':81920}",1.29
8x-H100-224-2170,H100,8,224,2170,4000,15.92,us-central-1,"{'Gpus':[{'Name':'H100','Manufacturer':'NVIDIA','Count':8,'MemoryInfo':{'SizeInMiB':81920}}],'TotalGpuMemoryInMiB':655360}",
"""

COMMON_ACCELERATORS_CSV = """\
AcceleratorName,Clouds
H100,"['Hyperbolic']"
A100,"['Hyperbolic']"
L40S,"['Hyperbolic']"
"""

COMMON_METADATA_CSV = """\
GPU,MemoryGB,Manufacturer
H100,80,NVIDIA
A100,40,NVIDIA
L40S,48,NVIDIA
"""

_CATALOG_FILES: Mapping[str, str] = {
    "hyperbolic/vms.csv": HYPERBOLIC_VMS_CSV,
    "common/accelerators.csv": COMMON_ACCELERATORS_CSV,
    "common/metadata.csv": COMMON_METADATA_CSV,
}

_DUMMY_HYPERBOLIC_API_KEY = "offline-dummy-key-not-a-secret\n"


# --------------------------------------------------------------------------------------
# Small helpers shared with tests
# --------------------------------------------------------------------------------------


def version_headers() -> dict[str, str]:
    """Headers that identify the caller as a SkyPilot 0.14.1 (API 62) client."""
    return {
        "X-SkyPilot-API-Version": str(API_VERSION),
        "X-SkyPilot-Version": SKYPILOT_VERSION,
    }


def harness_env_vars() -> dict[str, str]:
    """``env_vars`` for request bodies, so requests run as the fixed harness user."""
    return {"SKYPILOT_USER_ID": HARNESS_USER_ID, "SKYPILOT_USER": HARNESS_USER_NAME}


# --------------------------------------------------------------------------------------
# The server's virtual environment
# --------------------------------------------------------------------------------------


def default_venv_dir() -> Path:
    """``$SKYPILOT_SDK_SERVER_VENV``, else ``~/.cache/skypilot-sdk/server-venv-0.14.1``."""
    override = os.environ.get(VENV_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "skypilot-sdk" / f"server-venv-{SKYPILOT_VERSION}"


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _installed_skypilot_version(venv_dir: Path) -> str | None:
    """Version of the ``skypilot`` distribution installed in the venv, if any."""
    for metadata in sorted(
        venv_dir.glob("lib/python3*/site-packages/skypilot-*.dist-info/METADATA")
    ):
        name = version = None
        try:
            text = metadata.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line:
                break  # end of the header block
            if line.startswith("Name:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("Version:"):
                version = line.partition(":")[2].strip()
        if name is not None and name.lower() == "skypilot" and version:
            return version
    return None


def _venv_ready(venv_dir: Path) -> bool:
    python = _venv_python(venv_dir)
    # exists() follows the symlink: a venv whose base interpreter vanished is not ready.
    return python.exists() and _installed_skypilot_version(venv_dir) == SKYPILOT_VERSION


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (parallel test workers may install concurrently)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run_logged(cmd: Sequence[str], *, quiet: bool, what: str) -> None:
    """Run ``cmd``; echo its output to stderr unless quiet; raise with the tail on failure."""
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise RuntimeError(f"{what} failed: cannot run {cmd[0]}: {exc}") from exc
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            tail.append(line)
            if not quiet:
                sys.stderr.write(line)
                sys.stderr.flush()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit code {proc.returncode}): {' '.join(cmd)}\n"
            f"--- last lines of output ---\n{''.join(tail)}"
        )


def ensure_server_venv(venv_dir: Path | None = None, *, quiet: bool = True) -> Path:
    """Make sure a venv with ``skypilot==0.14.1`` exists; return its python executable.

    Idempotent and cheap when the venv is already in place (no subprocess is run).
    Otherwise creates it with ``python -m venv`` (using the running interpreter) and
    runs ``pip install skypilot==0.14.1`` (which needs network access or a configured
    package index). Concurrent callers are serialised with a lock file next to the venv.
    Raises RuntimeError with the tail of the tool output if venv creation or pip fails.
    """
    venv_dir = (venv_dir if venv_dir is not None else default_venv_dir()).expanduser().absolute()
    python = _venv_python(venv_dir)
    if _venv_ready(venv_dir):
        return python
    with _file_lock(venv_dir.parent / f".{venv_dir.name}.lock"):
        if _venv_ready(venv_dir):
            return python
        if not python.exists():
            cmd = [sys.executable, "-m", "venv"]
            if (venv_dir / "pyvenv.cfg").exists():
                cmd.append("--clear")  # a broken venv (e.g. its base interpreter is gone)
            elif venv_dir.exists() and any(venv_dir.iterdir()):
                raise RuntimeError(
                    f"{venv_dir} exists, is not empty and is not a virtual environment; "
                    f"refusing to create the SkyPilot server venv there (set {VENV_ENV_VAR} "
                    "to another directory)"
                )
            cmd.append(str(venv_dir))
            if not quiet:
                print(f"Creating the SkyPilot server venv at {venv_dir}", file=sys.stderr)
            try:
                _run_logged(cmd, quiet=quiet, what="creating the SkyPilot server venv")
            except RuntimeError as exc:
                raise RuntimeError(
                    f"{exc}\n(On Debian/Ubuntu `python -m venv` needs the python3-venv "
                    "package: apt-get install python3-venv)"
                ) from None
        if not quiet:
            print(f"Installing skypilot=={SKYPILOT_VERSION} into {venv_dir}", file=sys.stderr)
        _run_logged(
            [str(python), "-m", "pip", "install", f"skypilot=={SKYPILOT_VERSION}"],
            quiet=quiet,
            what=f"pip install skypilot=={SKYPILOT_VERSION}",
        )
        installed = _installed_skypilot_version(venv_dir)
        if installed != SKYPILOT_VERSION:
            raise RuntimeError(
                f"pip install skypilot=={SKYPILOT_VERSION} succeeded but the venv at {venv_dir} "
                f"reports skypilot version {installed!r}"
            )
    return python


def require_rsync() -> None:
    """Raise RuntimeError when ``rsync`` is missing (the server's dry-run launch needs it)."""
    if shutil.which("rsync") is None:
        raise RuntimeError(
            "`rsync` is not on PATH, but the SkyPilot API server needs it even for dry-run "
            "launches. Install it, e.g. `sudo apt-get install rsync` (Debian/Ubuntu) or "
            "`brew install rsync` (macOS)."
        )


# --------------------------------------------------------------------------------------
# Minimal HTTP client (http.client: no proxies, always loopback)
# --------------------------------------------------------------------------------------


class _Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _http(
    method: str,
    url: str,
    *,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> _Response:
    """One HTTP request with the version headers; HTTP error statuses are returned.

    Uses ``http.client`` directly, so proxy environment variables never apply.
    Connection problems raise ``OSError`` (or ``http.client.HTTPException``, which is
    converted to ``ConnectionError``).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only plain http URLs are used here, got {url!r}")
    all_headers = version_headers()
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request(method, target, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
        return _Response(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
    except http.client.HTTPException as exc:
        raise ConnectionError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK_HOST, port))
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------------------
# Process-group handling
# --------------------------------------------------------------------------------------


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pids_with_marker(marker: str) -> list[int]:
    """PIDs (of our own user, Linux /proc) whose environment carries ``marker``.

    Zombies are skipped (their environ is empty). Returns [] where /proc is missing.
    """
    needle = f"{_MARKER_ENV_VAR}={marker}".encode()
    found: list[int] = []
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return found
    me = os.getpid()
    for entry in proc_root.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _kill_pids(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------

_LIVE_SERVERS: dict[int, LocalSkyPilotServer] = {}
_LIVE_LOCK = threading.Lock()


def _stop_all_servers() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE_SERVERS.values())
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(grace=0)  # nothing to be graceful about at interpreter exit


atexit.register(_stop_all_servers)


@final
class LocalSkyPilotServer:
    """A real SkyPilot 0.14.1 API server on ``127.0.0.1`` with an isolated HOME.

    ``port=None`` picks a free loopback port; ``home=None`` uses a fresh temporary
    directory that ``stop()`` removes. ``auth=True`` enables basic auth and service
    account tokens with a seeded admin user (``admin_username`` / ``admin_password``,
    random per server). ``venv_dir`` defaults to :func:`default_venv_dir`.
    Servers still running at interpreter exit are stopped by an atexit hook.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        home: Path | None = None,
        auth: bool = False,
        venv_dir: Path | None = None,
        enable_cloud: bool = True,
    ) -> None:
        self._auto_port = port is None
        # enable_cloud=False leaves the server with no cloud: launches fail NoCloudAccessError.
        self.enable_cloud = enable_cloud
        self.port: int = _free_loopback_port() if port is None else port
        self.base_url: str = f"http://{LOOPBACK_HOST}:{self.port}"
        self._owns_home = home is None
        if home is None:
            self.home: Path = Path(tempfile.mkdtemp(prefix="skypilot-sdk-server-"))
        else:
            self.home = Path(home).expanduser().absolute()
        self.auth: bool = auth
        self.admin_username: str = "admin"
        self.admin_password: str = secrets.token_urlsafe(18)
        self._venv_dir = venv_dir
        self._marker = uuid.uuid4().hex
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._last_log: str | None = None
        with _LIVE_LOCK:
            _LIVE_SERVERS[id(self)] = self

    # ---- paths -------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The server's stdout/stderr log (same place ``sky api start`` uses)."""
        return self.home / ".sky" / "api_server" / "server.log"

    @property
    def pid(self) -> int | None:
        """PID of the server process (leader of its process group), if started."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ---- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Start the server, wait until healthy and enable the Hyperbolic cloud.

        ``timeout`` covers the server start and the cloud check; a first-time venv
        installation (see :func:`ensure_server_venv`) happens before and is not counted.
        Raises RuntimeError (with the tail of the server log) on failure; the
        half-started server is stopped in that case.
        """
        with self._lock:
            if self.is_running():
                raise RuntimeError(f"server at {self.base_url} is already running")
            require_rsync()
            python = ensure_server_venv(self._venv_dir)
            deadline = time.monotonic() + timeout
            with _LIVE_LOCK:
                _LIVE_SERVERS[id(self)] = self
            try:
                self._prepare_home()
                if self._auto_port and not _port_is_free(self.port):
                    self.port = _free_loopback_port()
                    self.base_url = f"http://{LOOPBACK_HOST}:{self.port}"
                self._spawn(python)
                self._wait_healthy(deadline)
                if self.auth:
                    self._ensure_admin_login()
                if self.enable_cloud:
                    self._enable_hyperbolic(deadline)
            except BaseException:
                self.stop(grace=0)
                raise

    def stop(self, *, grace: float = _STOP_GRACE_SECONDS) -> None:
        """Stop the server and everything it started; idempotent.

        SIGTERM to the server process, up to ``grace`` seconds for it to exit, then
        SIGKILL to its whole process group (the request executors ignore SIGTERM) and
        to any descendant that left the group. ``grace=0`` kills at once, like
        ``sky api stop`` does. A temporary HOME created by this object is removed.

        Only the server process gets the SIGTERM: signalling the whole group also
        kills the multiprocessing queue manager, after which the server's worker
        threads spin and write BrokenPipe errors to the log at several MB/s. Note
        that the server's own graceful shutdown needs about 6 s (it sleeps 5 s "for
        the load balancer" first), so with the default grace it ends up killed.
        """
        with self._lock:
            proc = self._proc
            if proc is not None:
                self._terminate(proc, grace)
                self._proc = None
                self._last_log = self._read_log()
            if self._owns_home and self.home.exists():
                shutil.rmtree(self.home, ignore_errors=True)
            with _LIVE_LOCK:
                _LIVE_SERVERS.pop(id(self), None)

    def __enter__(self) -> LocalSkyPilotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"LocalSkyPilotServer({self.base_url}, auth={self.auth}, {state})"

    # ---- logs --------------------------------------------------------------------

    def server_log(self) -> str:
        """Text of the server log (kept after stop(), even when HOME was removed)."""
        if self._proc is None and self._last_log is not None:
            return self._last_log
        return self._read_log()

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        text = self._read_log()
        return "\n".join(text.splitlines()[-lines:])

    # ---- auth helpers ------------------------------------------------------------

    def admin_basic_auth_header(self) -> dict[str, str]:
        """``Authorization: Basic ...`` for the seeded admin (plus the remote marker header).

        Basic auth is only enforced for requests that look remote, so the returned
        headers include ``X-Forwarded-For``.
        """
        raw = f"{self.admin_username}:{self.admin_password}".encode()
        return {
            "Authorization": "Basic " + base64.b64encode(raw).decode("ascii"),
            "X-Forwarded-For": REMOTE_CLIENT_IP,
        }

    def create_service_account_token(self, name: str = "sdk-tests") -> str:
        """Create a service-account token as the admin and return it (``sky_...``).

        Needs ``auth=True``. The request is authenticated with basic auth and carries
        ``X-Forwarded-For`` so the server treats it as remote. Token names must be
        unique per server; if ``name`` is taken, ``name-2``, ``name-3``, ... are tried.
        The token never expires (the server is short-lived anyway).
        """
        if not self.auth:
            raise RuntimeError("create_service_account_token() needs a server with auth=True")
        self._require_running()
        last_error = ""
        for attempt in range(1, 21):
            token_name = name if attempt == 1 else f"{name}-{attempt}"
            response = _http(
                "POST",
                f"{self.base_url}/users/service-account-tokens",
                body={"token_name": token_name, "expires_in_days": 0},
                headers=self.admin_basic_auth_header(),
                timeout=60.0,
            )
            if response.status == 200:
                token = response.json().get("token")
                if not isinstance(token, str) or not token.startswith("sky_"):
                    raise RuntimeError(f"unexpected token response: {response.text()[:500]}")
                return token
            last_error = f"HTTP {response.status}: {response.text()[:1000]}"
            if "already exists" not in response.text():
                break
        raise RuntimeError(f"creating service account token {name!r} failed: {last_error}")

    # ---- API helpers (usable by tests, too) ---------------------------------------

    def submit(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Submit an asynchronous request; return its id (``X-Skypilot-Request-ID``).

        For POST, ``env_vars`` of the harness user are added unless ``body`` has some.
        """
        payload: dict[str, Any] | None = None
        if method.upper() != "GET":
            payload = dict(body or {})
            payload.setdefault("env_vars", harness_env_vars())
        response = _http(
            method.upper(), self.base_url + path, body=payload, headers=headers, timeout=60.0
        )
        request_id = response.headers.get("x-skypilot-request-id")
        if response.status != 200 or not request_id:
            raise RuntimeError(
                f"{method} {path} failed: HTTP {response.status}: {response.text()[:2000]}"
            )
        return request_id

    def get_request(
        self,
        request_id: str,
        *,
        timeout: float = _REQUEST_TIMEOUT_SECONDS,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``GET /api/get``: block until the request is terminal; return its record.

        Failed requests (HTTP 500 with the record in ``detail``) are returned as well;
        look at ``record["status"]`` / ``record["error"]``.
        """
        query = urllib.parse.urlencode({"request_id": request_id})
        response = _http(
            "GET", f"{self.base_url}/api/get?{query}", headers=headers, timeout=timeout
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status == 500 and isinstance(payload, dict):
            payload = payload.get("detail")
        if response.status not in (200, 500) or not isinstance(payload, dict):
            raise RuntimeError(
                f"/api/get {request_id} failed: HTTP {response.status}: {response.text()[:2000]}"
            )
        return payload

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = _REQUEST_TIMEOUT_SECONDS,
    ) -> Any:
        """Submit, wait, and return the decoded ``return_value``; raise if not SUCCEEDED."""
        request_id = self.submit(method, path, body)
        record = self.get_request(request_id, timeout=timeout)
        if record.get("status") != "SUCCEEDED":
            raise RuntimeError(
                f"{method} {path} ended {record.get('status')}: {_describe_error(record)}"
            )
        return_value = record.get("return_value")
        return json.loads(return_value) if isinstance(return_value, str) else return_value

    # ---- internals ---------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.is_running():
            raise RuntimeError(f"server at {self.base_url} is not running (call start())")

    def _prepare_home(self) -> None:
        catalog_dir = self.home / ".sky" / "catalogs" / "v8"
        for relative, text in _CATALOG_FILES.items():
            target = catalog_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            # Without a .meta md5 file SkyPilot treats the catalog as hand-edited and never
            # re-downloads it; remove one left behind in a reused HOME.
            (catalog_dir / ".meta" / f"{relative}.md5").unlink(missing_ok=True)
        key_file = self.home / ".hyperbolic" / "api_key"
        if self.enable_cloud:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(_DUMMY_HYPERBOLIC_API_KEY, encoding="utf-8")
            key_file.chmod(0o600)
        else:
            key_file.unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _server_env(self, python: Path) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _STRIPPED_ENV_NAMES and not key.startswith(_STRIPPED_ENV_PREFIXES)
        }
        env.update(
            {
                "HOME": str(self.home),
                "PATH": os.pathsep.join([str(python.parent), os.environ.get("PATH", os.defpath)]),
                "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
                # What `sky api start` sets for the server process as well.
                "IS_SKYPILOT_SERVER": "true",
                "SKYPILOT_API_SERVER_LOCAL_PORT": str(self.port),
                "WEBSOCKETS_MAX_LINE_LENGTH": "65536",
                "WEBSOCKETS_MAX_NUM_HEADERS": "256",
                "PYTHONUNBUFFERED": "1",
                # Deadline of the auth middlewares' DB lookups (default 5 s): more room
                # for loaded CI machines, where a miss means 503 / "unauthenticated".
                "SKYPILOT_AUTH_DB_TIMEOUT_SECONDS": "30",
                _MARKER_ENV_VAR: self._marker,
            }
        )
        if self.auth:
            env["ENABLE_BASIC_AUTH"] = "true"
            env["ENABLE_SERVICE_ACCOUNTS"] = "true"
            password_hash = _hash_password(python, self.admin_password)
            env["SKYPILOT_INITIAL_BASIC_AUTH"] = f"{self.admin_username}:{password_hash}"
        return env

    def _spawn(self, python: Path) -> None:
        cmd = [
            str(python),
            "-m",
            "sky.server.server",
            "--host",
            LOOPBACK_HOST,
            "--port",
            str(self.port),
        ]
        if self.port == 9090:  # the server refuses port == metrics port (default 9090)
            cmd += ["--metrics-port", "9091"]
        env = self._server_env(python)
        self._last_log = None
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                cmd,
                cwd=str(self.home),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    def _wait_healthy(self, deadline: float) -> None:
        assert self._proc is not None
        last_problem = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"SkyPilot API server exited with code {code} during start-up "
                    f"(log: {self.log_path}).\n--- server log tail ---\n{self._log_tail()}"
                )
            try:
                response = _http("GET", f"{self.base_url}/api/health", timeout=5.0)
            except OSError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                health = _json_or_none(response)
                healthy = (
                    response.status == 200
                    and isinstance(health, dict)
                    and health.get("status") == "healthy"
                )
                if healthy:
                    assert isinstance(health, dict)
                    if health.get("version") != SKYPILOT_VERSION:
                        raise RuntimeError(
                            f"server reports version {health.get('version')!r}, "
                            f"expected {SKYPILOT_VERSION}"
                        )
                    return
                last_problem = f"HTTP {response.status}: {response.text()[:300]}"
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"SkyPilot API server at {self.base_url} not healthy in time "
                    f"(last: {last_problem}; log: {self.log_path}).\n"
                    f"--- server log tail ---\n{self._log_tail()}"
                )
            time.sleep(0.25)

    def _ensure_admin_login(self) -> None:
        """Check the seeded admin can log in; reset its password in a reused HOME.

        SKYPILOT_INITIAL_BASIC_AUTH only creates the user if it does not exist yet, so
        a HOME from an earlier run keeps the old password. Loopback requests without
        proxy headers are not authenticated, which lets us update the password.
        """
        for attempt in range(3):
            if self._admin_login_ok():
                return
            time.sleep(0.5 * (attempt + 1))
        user_id = hashlib.md5(self.admin_username.encode(), usedforsecurity=False).hexdigest()[:8]
        response = _http(
            "POST",
            f"{self.base_url}/users/update",
            body={"user_id": user_id, "password": self.admin_password, "role": "admin"},
            timeout=60.0,
        )
        if response.status != 200 or not self._admin_login_ok():
            raise RuntimeError(
                f"basic-auth login as {self.admin_username!r} does not work "
                f"(password reset: HTTP {response.status} {response.text()[:500]})\n"
                f"--- server log tail ---\n{self._log_tail()}"
            )

    def _admin_login_ok(self) -> bool:
        response = _http(
            "GET",
            f"{self.base_url}/api/health",
            headers=self.admin_basic_auth_header(),
            timeout=30.0,
        )
        health = _json_or_none(response)
        if response.status != 200 or not isinstance(health, dict):
            return False
        user = health.get("user")
        return isinstance(user, dict) and user.get("name") == self.admin_username

    def _enable_hyperbolic(self, deadline: float) -> None:
        remaining = max(deadline - time.monotonic(), 10.0)
        check_id = self.submit("POST", "/check", {"clouds": ["hyperbolic"]})
        record = self.get_request(check_id, timeout=remaining)
        if record.get("status") != "SUCCEEDED":
            raise RuntimeError(
                f"enabling Hyperbolic failed: /check ended {record.get('status')}: "
                f"{_describe_error(record)}\n--- server log tail ---\n{self._log_tail()}"
            )
        remaining = max(deadline - time.monotonic(), 10.0)
        clouds_id = self.submit("GET", "/enabled_clouds")
        record = self.get_request(clouds_id, timeout=remaining)
        return_value = record.get("return_value")
        enabled = json.loads(return_value) if isinstance(return_value, str) else None
        if record.get("status") != "SUCCEEDED" or enabled != ["hyperbolic"]:
            raise RuntimeError(
                "Hyperbolic is not the (only) enabled cloud after /check: "
                f"status={record.get('status')} enabled_clouds={enabled!r} "
                f"{_describe_error(record)}"
            )

    def _terminate(self, proc: subprocess.Popen[bytes], grace: float) -> None:
        pgid = proc.pid  # start_new_session=True: the server leads its own group
        if grace > 0 and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        _signal_group(pgid, signal.SIGKILL)
        # Descendants that started their own session escape killpg; find them by marker.
        _kill_pids(_pids_with_marker(self._marker), signal.SIGKILL)
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
        # Wait (briefly) until the killed descendants are really gone.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            remaining = _pids_with_marker(self._marker)
            if not remaining:
                break
            _kill_pids(remaining, signal.SIGKILL)
            time.sleep(0.05)


def _json_or_none(response: _Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _describe_error(record: Mapping[str, Any]) -> str:
    """Best-effort readable form of a request record's ``error`` field."""
    error = record.get("error")
    if not isinstance(error, str) or error == "null":
        return "(no error recorded)"
    try:
        decoded = json.loads(error)
    except ValueError:
        return error[:2000]
    if isinstance(decoded, dict):
        kind = decoded.get("type")
        message = decoded.get("message")
        if kind or message:
            return re.sub(r"\x1b\[[0-9;]*m", "", f"{kind}: {message}")
    return error[:2000]


def _hash_password(python: Path, password: str) -> str:
    """bcrypt hash of ``password`` made with the venv's passlib (what the server verifies).

    Cost 4 instead of passlib's default 12: the server checks basic auth on every
    request inside a 5 s deadline, and a cost-12 verify (~0.3 s idle) can miss it on
    a busy CI machine. The password is random and the server throwaway.
    """
    code = (
        "import sys\n"
        "from passlib.context import CryptContext\n"
        "print(CryptContext(['bcrypt'], bcrypt__rounds=4).hash(sys.stdin.read()))\n"
    )
    result = subprocess.run(  # password goes through stdin, not argv
        [str(python), "-c", code],
        input=password,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not lines[-1].startswith("$2"):
        raise RuntimeError(f"hashing the admin password failed: {result.stderr.strip()[-2000:]}")
    return lines[-1]


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def _cmd_install(args: argparse.Namespace) -> int:
    python = ensure_server_venv(args.venv, quiet=not args.verbose)
    print(python)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _cmd_run(args: argparse.Namespace) -> int:
    # SIGTERM behaves like Ctrl-C, so the server is stopped in both cases (also while
    # it is still starting). SIGINT is set explicitly: a shell may start background
    # jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    server: LocalSkyPilotServer | None = None
    try:
        ensure_server_venv(args.venv, quiet=False)
        server = LocalSkyPilotServer(
            port=args.port, home=args.home, auth=args.auth, venv_dir=args.venv
        )
        started = time.monotonic()
        server.start(timeout=args.timeout)
        print(server.base_url, flush=True)
        print(
            f"SkyPilot {SKYPILOT_VERSION} API server ready in {time.monotonic() - started:.1f}s "
            f"(HOME={server.home}, log={server.log_path}); Hyperbolic enabled.",
            file=sys.stderr,
        )
        if server.auth:
            token = server.create_service_account_token("demo")
            print(
                f"basic auth: {server.admin_username} / {server.admin_password} "
                f"(enforced for requests with X-Forwarded-For)\n"
                f"service account token: {token}",
                file=sys.stderr,
            )
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while server.is_running():
            time.sleep(1.0)
        print("server exited unexpectedly; log tail:\n" + server._log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            print("stopping server ...", file=sys.stderr, flush=True)
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=f"Install / run a local SkyPilot {SKYPILOT_VERSION} API server (offline)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_install = sub.add_parser("install", help="ensure the server venv; print its python")
    p_install.add_argument("--venv", type=Path, default=None, help="venv directory")
    p_install.add_argument("-v", "--verbose", action="store_true", help="show pip output")
    p_install.set_defaults(func=_cmd_install)

    p_run = sub.add_parser("run", help="start a server and keep it running until Ctrl-C")
    p_run.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p_run.add_argument("--auth", action="store_true", help="basic auth + service accounts")
    p_run.add_argument("--home", type=Path, default=None, help="HOME (default: temporary)")
    p_run.add_argument("--venv", type=Path, default=None, help="venv directory")
    p_run.add_argument("--timeout", type=float, default=180.0, help="start-up timeout (s)")
    p_run.set_defaults(func=_cmd_run)

    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
