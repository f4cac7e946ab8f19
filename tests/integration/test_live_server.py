"""Against a real SkyPilot 0.14.1 API server on loopback (started by the session fixture)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Generator
from typing import Any

import httpx
import pytest

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import (
    AsyncSkyPilotClient,
    AWSCredentials,
    CloudCredentials,
    LaunchRequest,
    SkyPilotClient,
    errors,
)
from skypilot_client._base_client import Call
from tests.conftest import SENTINEL_AWS_KEY_ID, SENTINEL_AWS_SECRET, SENTINEL_TOKEN, SENTINELS
from tests.scenarios import GPU_TASK, SCENARIOS, run_async, run_sync

pytestmark = pytest.mark.integration


def _kinds(outcomes: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    # Request ids and timestamps differ between live runs: compare what happened.
    return [o[:1] + o[2:] if o[0] != "ok" else o[:1] for o in outcomes]


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_live_sync_and_async(
    name: str, skypilot_server: LocalSkyPilotServer
) -> None:
    url = skypilot_server.base_url
    with SkyPilotClient(url) as client:
        sync_outcomes = run_sync(client, name)
    async with AsyncSkyPilotClient(url) as aclient:
        async_outcomes = await run_async(aclient, name)
    assert _kinds(async_outcomes) == _kinds(sync_outcomes)


def test_server_side_validation_error_is_classified(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        bad = Call("POST", "/down", "terminate", json={"purge": "not-a-bool"})
        with pytest.raises(errors.UnprocessableEntityError) as info:
            client._run(iter_once(bad))
    error = info.value
    assert error.status_code == 422 and error.request_id
    assert {tuple(e["loc"]) for e in error.errors} >= {("body", "cluster_name")}
    assert all("input" not in e for e in error.errors)  # echoed env vars are dropped


def iter_once(call: Call) -> Generator[Call, Any, None]:
    yield call


def test_credentials_travel_but_never_leak(
    skypilot_server: LocalSkyPilotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="skypilot_client")
    creds = CloudCredentials(
        aws=AWSCredentials(access_key_id=SENTINEL_AWS_KEY_ID, secret_access_key=SENTINEL_AWS_SECRET)
    )
    with SkyPilotClient(skypilot_server.base_url) as client:
        handle = client.launch(
            LaunchRequest(cluster_name="sdk-creds", task=GPU_TASK, dryrun=True, credentials=creds)
        )
        result = handle.result()
        status = client.get_request(handle.request_id)
    assert result.dryrun
    text = caplog.text + repr(creds) + status.model_dump_json() + repr(handle)
    assert not any(secret in text for secret in SENTINELS)


def test_bad_service_account_token_is_unauthorized(auth_server: LocalSkyPilotServer) -> None:
    url = auth_server.base_url
    with SkyPilotClient(url, token=SENTINEL_TOKEN, max_retries=0) as client:
        with pytest.raises(errors.AuthenticationError) as info:
            client.list_clusters()
    assert info.value.is_unauthorized and not info.value.is_retryable
    assert "Invalid or expired service account token" in str(info.value)
    assert SENTINEL_TOKEN not in str(info.value) + repr(info.value) + repr(client)


def test_good_service_account_token_works(auth_server: LocalSkyPilotServer) -> None:
    token = auth_server.create_service_account_token("sdk-ci")
    with SkyPilotClient(auth_server.base_url, token=token) as client:
        assert client.health().is_healthy
        assert client.list_clusters().total == 0
        assert client.enabled_clouds() == []


def test_remote_caller_without_credentials_is_unauthorized(
    auth_server: LocalSkyPilotServer,
) -> None:
    # A proxy header makes the loopback request look remote, so basic auth applies.
    remote = httpx.Client(headers={"X-Forwarded-For": "203.0.113.7"})
    with SkyPilotClient(
        auth_server.base_url,
        http_client=remote,
        max_retries=0,
    ) as client:
        with pytest.raises(errors.AuthenticationError) as info:
            client.list_clusters()
    remote.close()
    assert info.value.status_code == 401


def test_per_tenant_tokens_share_one_pool(auth_server: LocalSkyPilotServer) -> None:
    token = auth_server.create_service_account_token("sdk-tenant")
    with SkyPilotClient(auth_server.base_url, max_retries=0) as base:
        good = base.with_options(token=token)
        bad = base.with_options(token=SENTINEL_TOKEN)
        assert good.list_clusters().total == 0
        with pytest.raises(errors.AuthenticationError):
            bad.list_clusters()
        assert good._shared is bad._shared is base._shared


def test_workspace_travels_with_the_request(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        assert client.with_options(workspace="default").list_clusters().total == 0
        with pytest.raises(errors.RequestFailedError, match="Workspace nope-ws does not exist"):
            client.with_options(workspace="nope-ws").list_clusters()
        assert client.workspace is None  # the copy did not change the original


SLOW_TASK = "resources:\n  infra: hyperbolic\n  accelerators: H100:1\nrun: x\n"


@pytest.mark.anyio
async def test_cancelling_a_wait_releases_the_connection(
    skypilot_server: LocalSkyPilotServer,
) -> None:
    async with AsyncSkyPilotClient(skypilot_server.base_url) as client:
        # retry_until_up keeps the launch running on the server for a long time
        handle = await client.launch(
            LaunchRequest(cluster_name="sdk-slow", task=SLOW_TASK, retry_until_up=True)
        )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handle.result(), 1.5)
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert all(conn.is_idle() or conn.is_closed() for conn in pool.connections)
        assert await client.cancel_request(handle.request_id) == [handle.request_id]
        status = await handle.wait(timeout=30)
        assert status.status.value == "CANCELLED"
        with contextlib.suppress(errors.ClusterNotFoundError):
            await client.terminate("sdk-slow", purge=True)


def test_local_wait_deadline(skypilot_server: LocalSkyPilotServer) -> None:
    with SkyPilotClient(skypilot_server.base_url) as client:
        handle = client.launch(
            LaunchRequest(cluster_name="sdk-deadline", task=SLOW_TASK, retry_until_up=True)
        )
        started = time.monotonic()
        with pytest.raises(errors.WaitTimeoutError) as info:
            handle.result(timeout=2)
        assert time.monotonic() - started < 10
        assert info.value.request_id == handle.request_id
        assert client.get_request(handle.request_id).status.is_terminal is False
        handle.cancel()
        with contextlib.suppress(errors.ClusterNotFoundError):
            client.terminate("sdk-deadline", purge=True)


def test_launch_without_any_cloud_is_no_cloud_access(auth_server: LocalSkyPilotServer) -> None:
    token = auth_server.create_service_account_token("sdk-nocloud")
    with SkyPilotClient(auth_server.base_url, token=token) as client:
        handle = client.launch(
            LaunchRequest(cluster_name="sdk-nocloud", task=GPU_TASK, dryrun=True)
        )
        with pytest.raises(errors.NoCloudAccessError) as info:
            handle.result(timeout=120)
    assert info.value.error_type == "NoCloudAccessError"
    assert "sky check" in info.value.message
    assert "\x1b[" not in info.value.message  # ANSI codes stripped
    assert info.value.request_id == handle.request_id
