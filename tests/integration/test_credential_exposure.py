"""Where ``CloudCredentials`` end up on a real SkyPilot 0.14.1 server.

They travel in the request body's ``env_vars``. The server stores that body with the request
(requests.db) and hands it back: ``GET /api/status`` as plain JSON (``request_body``) and
``GET /api/get`` as a base64 pickle. These tests fetch the RAW answers with httpx, as any
caller could, and pin down who gets to see the secrets (docs/skypilot-client.md, "Where your
cloud credentials go", says the same in words).

Secrets are only ever compared, never printed: every check first computes a bool, so a
failing assertion shows ``False``, not the sentinel.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import httpx
import pytest

from scripts.local_server import LocalSkyPilotServer, version_headers
from skypilot_client import AWSCredentials, CloudCredentials, LaunchRequest, SkyPilotClient
from skypilot_client.errors import SkyPilotError
from tests.conftest import SENTINEL_AWS_KEY_ID, SENTINEL_AWS_SECRET
from tests.scenarios import GPU_TASK

pytestmark = pytest.mark.integration

CREDENTIALS = CloudCredentials(
    aws=AWSCredentials(access_key_id=SENTINEL_AWS_KEY_ID, secret_access_key=SENTINEL_AWS_SECRET)
)


def _submit_with_credentials(url: str, cluster: str, token: str | None = None) -> str:
    """A dry-run launch carrying the sentinel credentials; returns its request id."""
    with SkyPilotClient(url, token=token) as client:
        handle = client.launch(
            LaunchRequest(cluster_name=cluster, task=GPU_TASK, dryrun=True, credentials=CREDENTIALS)
        )
        # A server without clouds fails the launch; the request is stored all the same.
        with contextlib.suppress(SkyPilotError):
            handle.result(timeout=120)
        return handle.request_id


def _status_bodies(url: str, headers: dict[str, str], request_id: str | None) -> list[Any]:
    """``request_body`` of every item ``GET /api/status`` shows this caller."""
    params: dict[str, str] = {"all_status": "true"}
    if request_id is not None:
        params["request_ids"] = request_id
    response = httpx.get(
        f"{url}/api/status", params=params, headers={**version_headers(), **headers}
    )
    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list)
    return [json.loads(item["request_body"]) for item in items]


def _secret_in_status(url: str, headers: dict[str, str], request_id: str | None) -> bool:
    """True when the plain AWS secret is in what ``/api/status`` returns to this caller."""
    bodies = _status_bodies(url, headers, request_id)
    env = [b.get("env_vars", {}) for b in bodies if isinstance(b, dict)]
    return any(e.get("AWS_SECRET_ACCESS_KEY") == SENTINEL_AWS_SECRET for e in env)


def _secret_in_get(url: str, headers: dict[str, str], request_id: str) -> bool | None:
    """True when ``/api/get``'s pickled ``request_body`` holds the secret; None when the
    caller cannot see the request at all (404)."""
    response = httpx.get(
        f"{url}/api/get",
        params={"request_id": request_id},
        headers={**version_headers(), **headers},
        timeout=60,
    )
    if response.status_code == 404:
        return None
    body = response.json()
    record = body["detail"] if response.status_code == 500 else body  # a failed request
    pickled = base64.b64decode(record["request_body"])
    return SENTINEL_AWS_SECRET.encode() in pickled


def test_without_auth_every_caller_reads_the_credentials(
    skypilot_server: LocalSkyPilotServer,
) -> None:
    url = skypilot_server.base_url
    request_id = _submit_with_credentials(url, "sdk-exposed")

    # No auth: a caller has no identity, so nothing is scoped. Plain JSON, by id or listing.
    by_id = _secret_in_status(url, {}, request_id)
    listed = _secret_in_status(url, {}, None)
    pickled = _secret_in_get(url, {}, request_id)
    assert (by_id, listed, pickled) == (True, True, True)

    # Another identity (the default-on external-proxy header): /api/status hides the body of
    # a request it does not own, but /api/get still returns it, pickled.
    mallory = {"X-Auth-Request-Email": "mallory@example.com"}
    by_id = _secret_in_status(url, mallory, request_id)
    pickled = _secret_in_get(url, mallory, request_id)
    assert (by_id, pickled) == (False, True)


def test_with_auth_owner_admins_and_loopback_read_the_credentials(
    auth_server: LocalSkyPilotServer,
) -> None:
    url = auth_server.base_url
    owner = auth_server.create_service_account_token("sdk-exposure-owner")
    request_id = _submit_with_credentials(url, "sdk-exposed", token=owner)

    as_owner = {"Authorization": f"Bearer {owner}"}
    assert (
        _secret_in_status(url, as_owner, request_id),
        _secret_in_get(url, as_owner, request_id),
    ) == (True, True)

    # Loopback without credentials skips basic auth: an unscoped caller, like no auth at all.
    assert _secret_in_status(url, {}, request_id) is True

    # Another admin (service-account tokens are admins by default): body hidden from
    # /api/status, but /api/get hands out the pickle.
    other_admin = {
        "Authorization": f"Bearer {auth_server.create_service_account_token('sdk-exposure-admin')}"
    }
    assert (
        _secret_in_status(url, other_admin, request_id),
        _secret_in_get(url, other_admin, request_id),
    ) == (False, True)

    # A plain user sees neither the request nor its body.
    created = httpx.post(
        f"{url}/users/service-account-tokens",
        json={"token_name": "sdk-exposure-user", "expires_in_days": 0, "role": "user"},
        headers={**version_headers(), **auth_server.admin_basic_auth_header()},
        timeout=60,
    )
    assert created.status_code == 200
    as_user = {"Authorization": f"Bearer {created.json()['token']}"}
    assert len(_status_bodies(url, as_user, request_id)) == 0
    assert _secret_in_get(url, as_user, request_id) is None
