"""No secret in a log line, exception, repr, URL or cassette.

The tests use sentinel secrets (tests/conftest.py); this module scans every cassette and the
logs captured while a client with those secrets runs against the faithful fake.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import pytest

from skypilot_client import (
    AWSCredentials,
    AzureCredentials,
    CloudCredentials,
    ExecuteRequest,
    LaunchRequest,
    SkyPilotClient,
    errors,
)
from skypilot_client._redact import Redactor
from tests.conftest import (
    SENTINEL_AWS_KEY_ID,
    SENTINEL_AWS_SECRET,
    SENTINEL_AZURE_SECRET,
    SENTINEL_TOKEN,
    SENTINELS,
)
from tests.fakes.transcript_server import FakeSkyPilotServer

ROOT = Path(__file__).resolve().parents[2]
CASSETTE_DIRS = [ROOT / "cassettes"]


def _variants(secret: str) -> list[str]:
    # A secret may hide base64-encoded (basic auth, pickles) as well as in plain text.
    encoded = base64.b64encode(secret.encode()).decode()
    return [secret, encoded[: len(encoded) - 4]]


def test_cassettes_hold_no_sentinel_or_credential() -> None:
    files = [p for d in CASSETTE_DIRS for p in d.rglob("*") if p.is_file()]
    assert files, "no cassettes found"
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in SENTINELS:
            for variant in _variants(secret):
                assert variant not in text, f"{secret!r} leaked into {path}"
        if path.suffix not in (".yaml", ".yml"):
            continue  # provenance notes may name the header they filter
        lowered = text.lower()
        assert "authorization:" not in lowered, f"an Authorization header is in {path}"
        assert "ssh_private_key_content" not in lowered, f"an SSH key field is in {path}"


def _credentials() -> CloudCredentials:
    return CloudCredentials(
        aws=AWSCredentials(
            access_key_id=SENTINEL_AWS_KEY_ID, secret_access_key=SENTINEL_AWS_SECRET
        ),
        azure=AzureCredentials(
            client_id="app", client_secret=SENTINEL_AZURE_SECRET, tenant_id="tenant"
        ),
    )


def test_reprs_hide_secrets() -> None:
    creds = _credentials()
    request = LaunchRequest(cluster_name="c", task="run: x", credentials=creds)
    client = SkyPilotClient("http://user:pw-SENTINEL-basic@127.0.0.1:9", token=SENTINEL_TOKEN)
    text = " ".join(
        [
            repr(creds),
            str(creds),
            repr(request),
            request.model_dump_json(),
            repr(client),
            repr(client.with_options(workspace="w")),
            client.base_url,
        ]
    )
    for secret in (*SENTINELS, "pw-SENTINEL-basic"):
        assert secret not in text
    # ...while the values still reach the server's env_vars when used
    assert creds.to_env_vars()["AWS_SECRET_ACCESS_KEY"] == SENTINEL_AWS_SECRET
    client.close()


def test_logs_and_errors_never_show_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeSkyPilotServer()

    def leaky(request: httpx.Request) -> httpx.Response:
        # Errors that echo what the server knows: the token, and a request's own credentials.
        echoed = f"{request.headers['authorization']} {request.content.decode()}"
        if request.url.path in ("/queue", "/launch"):
            return httpx.Response(400, json={"detail": f"bad request: {echoed}"})
        return fake.handle(request)

    http = httpx.Client(transport=httpx.MockTransport(leaky))
    with SkyPilotClient("http://fake.test:1", token=SENTINEL_TOKEN, http_client=http) as client:
        result = client.execute(
            ExecuteRequest(cluster_name="train-up", command="x", credentials=_credentials())
        )
        with pytest.raises(errors.BadRequestError) as queued:
            client.queue("train-up")
        with pytest.raises(errors.BadRequestError) as launched:
            client.launch(
                LaunchRequest(cluster_name="c", task="run: x", credentials=_credentials())
            )
    sent = fake.requests[1]
    assert sent.headers["authorization"] == f"Bearer {SENTINEL_TOKEN}"  # it was really used
    assert SENTINEL_AWS_SECRET in sent.content.decode()
    seen = caplog.text + result.model_dump_json()
    for info in (queued, launched):
        seen += str(info.value) + repr(info.value) + str(info.value.body)
        assert "**********" in str(info.value)  # the leaked values were redacted, not dropped
    for secret in SENTINELS:
        assert secret not in seen
    assert "fake.test" in caplog.text or caplog.records  # logging did happen


def test_the_redactor_forgets_each_request_s_credentials() -> None:
    """A long-running service rotating credentials: the client keeps no trace of old ones,
    while each request's own credentials are redacted from its errors."""
    fake = FakeSkyPilotServer()
    seen: list[str] = []

    def echoing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/launch":  # a refusal that echoes the request's env vars
            return httpx.Response(400, json={"detail": request.content.decode()})
        return fake.handle(request)

    http = httpx.Client(transport=httpx.MockTransport(echoing))
    with SkyPilotClient("http://fake.test:1", token=SENTINEL_TOKEN, http_client=http) as client:
        tenant = client.with_options(workspace="w")
        retained = (len(client._redactor.secrets), len(tenant._redactor.secrets))
        for i in range(300):
            secret = f"rotated-sts-secret-{i:04d}"
            creds = CloudCredentials(
                aws=AWSCredentials(access_key_id=f"ASIAROTATED{i:06d}", secret_access_key=secret)
            )
            target = tenant if i % 2 else client
            with pytest.raises(errors.BadRequestError) as info:
                target.launch(LaunchRequest(cluster_name="c", task="run: x", credentials=creds))
            seen.append(str(info.value))
            assert secret not in str(info.value) and "**********" in str(info.value)
            with pytest.raises(errors.ClusterNotFoundError):
                target.get_status("not-there")
        # Nothing accumulates: not in the client, its copies, nor the state they share.
        assert (len(client._redactor.secrets), len(tenant._redactor.secrets)) == retained
        assert retained[0] == 1  # the token
        assert not any(isinstance(v, Redactor) for v in vars(client._shared).values())
    assert len(seen) == 300
