"""A real, throwaway PostgreSQL server for the ledger tests: ``initdb`` + ``pg_ctl`` in a temp
directory, listening on a free loopback port, trust auth, stopped and deleted afterwards.

PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` system user (the
Debian package creates it) or ``nobody``, through ``runuser``. Binaries are found in
``$SKYPILOT_SDK_PG_BIN``, next to ``pg_ctl`` on ``PATH``, or in ``/usr/lib/postgresql/*/bin``
(Debian; ``scripts/bootstrap.sh`` installs them).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN_ENV = "SKYPILOT_SDK_PG_BIN"


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates: list[str] = []
    if env := os.environ.get(PG_BIN_ENV):
        candidates.append(env)
    if on_path := shutil.which("pg_ctl"):
        candidates.append(str(Path(on_path).parent))

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path))

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root (None: ourselves)."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class ThrowawayPostgres:
    """One PostgreSQL server; ``url(dbname)`` connects as the superuser ``postgres``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="skypilot-ledger-pg-"))
        self.data = self.dir / "data"
        self.port = 0

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return [*prefix, *args]

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            name = Path(args[0]).name
            raise RuntimeError(
                f"{name} failed ({result.returncode}): {result.stderr[-2000:]}\n{tail}"
            )

    def start(self) -> None:
        if self.user:
            info = pwd.getpwnam(self.user)
            os.chown(self.dir, info.pw_uid, info.pw_gid)
        os.chmod(self.dir, 0o700)
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        for _ in range(3):  # a port found free may be taken before the server binds it
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c max_connections=50"
            )
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l",
                    str(self.dir / "server.log"), "-w", "-t", "60", "-o", options, "start",
                )  # fmt: skip
                return
            except RuntimeError:
                if "could not bind" not in (self.dir / "server.log").read_text(errors="replace"):
                    raise
        raise RuntimeError("PostgreSQL found no free port")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        try:
            if self.port:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "stop")  # fmt: skip
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
