"""Shared fixtures: the real local SkyPilot API server and the sentinel secrets."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scripts.local_server import LocalSkyPilotServer

# Secrets used by the tests. A test scans every cassette and captured log for them.
SENTINEL_TOKEN = "sky_SENTINEL-token-6f1d2c"
SENTINEL_AWS_KEY_ID = "AKIASENTINELKEYID0001"
SENTINEL_AWS_SECRET = "SENTINEL/aws/secret/key/9a8b7c"
SENTINEL_AZURE_SECRET = "SENTINEL-azure-client-secret-42"
SENTINELS = (SENTINEL_TOKEN, SENTINEL_AWS_KEY_ID, SENTINEL_AWS_SECRET, SENTINEL_AZURE_SECRET)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _skip_integration() -> bool:
    return os.environ.get("SKYPILOT_SDK_SKIP_INTEGRATION") == "1"


@pytest.fixture(scope="session")
def skypilot_server() -> Iterator[LocalSkyPilotServer]:
    """A real SkyPilot 0.14.1 API server on loopback (own venv, isolated HOME, offline)."""
    if _skip_integration():
        pytest.skip("SKYPILOT_SDK_SKIP_INTEGRATION=1")
    server = LocalSkyPilotServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_server() -> Iterator[LocalSkyPilotServer]:
    """A real server with basic auth and service-account tokens, and no cloud enabled."""
    if _skip_integration():
        pytest.skip("SKYPILOT_SDK_SKIP_INTEGRATION=1")
    server = LocalSkyPilotServer(auth=True, enable_cloud=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
