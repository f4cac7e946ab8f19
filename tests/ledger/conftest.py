"""Ledger fixtures: a SQLite file per test, and a real throwaway PostgreSQL server.

Without PostgreSQL binaries or psycopg, the PostgreSQL tests skip with the reason; under CI
(``CI`` set) they fail instead, since the test command installs both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.postgres_server import PG_BIN_ENV, ThrowawayPostgres, find_pg_bin


class FakeClock:
    """UNIX-seconds time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the PostgreSQL ledger tests)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def psycopg_installed() -> None:
    """psycopg 3 is importable (the ``[postgres]`` extra)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install 'skypilot-sdk[postgres]'")


@pytest.fixture(scope="session")
def postgres_server(psycopg_installed: None) -> Iterator[ThrowawayPostgres]:
    """A real PostgreSQL server for the whole session."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql, "
            f"or set {PG_BIN_ENV}"
        )
        raise AssertionError("unreachable")
    server = ThrowawayPostgres(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: ThrowawayPostgres) -> Iterator[str]:
    """A fresh, empty database on the throwaway server."""
    import psycopg

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same behaviour, checked on both back ends."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
