"""Prometheus metrics (the ``[prometheus]`` extra) on the per-attempt hooks, and nothing
changed without it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from gpu_providers import create_provider
from skypilot_client import SkyPilotClient
from skypilot_client.errors import APIConnectionError
from tests.fakes.request_server import VERSION_HEADERS
from tests.providers.lambda_cloud import documented as D

prom = pytest.importorskip("prometheus_client")

from gpu_providers.metrics import ProviderMetrics  # noqa: E402
from skypilot_client.metrics import SkyPilotMetrics  # noqa: E402


def _families(registry: Any) -> set[str]:
    return {f.name for f in registry.collect()}


def _value(registry: Any, name: str, **labels: str) -> float | None:
    value: float | None = registry.get_sample_value(name, labels)
    return value


def test_skypilot_client_registers_exactly_the_four_metrics() -> None:
    registry = prom.CollectorRegistry()
    metrics = SkyPilotMetrics(registry)
    answers = iter([503, 200, 200])

    def handle(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        body = {"status": "healthy", "api_version": "62"} if status == 200 else {"detail": "x"}
        return httpx.Response(status, json=body, headers=VERSION_HEADERS)

    http = httpx.Client(transport=httpx.MockTransport(handle))
    with SkyPilotClient(
        "http://skypilot.test", http_client=http, on_request=metrics, _sleep=lambda s: None
    ) as client:
        client.health()
    # prometheus_client names counter families without "_total"
    assert _families(registry) == {
        "skypilot_api_requests",
        "skypilot_api_request_duration_seconds",
        "skypilot_api_errors",
        "skypilot_api_retries",
    }
    assert _value(registry, "skypilot_api_requests_total", operation="health", status="503") == 1
    assert _value(registry, "skypilot_api_requests_total", operation="health", status="200") == 1
    assert (
        _value(
            registry,
            "skypilot_api_errors_total",
            operation="health",
            error_type="ServiceUnavailableError",
        )
        == 1
    )
    assert _value(registry, "skypilot_api_retries_total", operation="health") == 1
    count = _value(registry, "skypilot_api_request_duration_seconds_count", operation="health")
    assert count == 2


def test_transport_failures_count_as_errors() -> None:
    registry = prom.CollectorRegistry()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    client = SkyPilotClient(
        "http://skypilot.test",
        http_client=http,
        max_retries=1,
        on_request=SkyPilotMetrics(registry),
        _sleep=lambda s: None,
    )
    with pytest.raises(APIConnectionError):
        client.health()
    assert _value(registry, "skypilot_api_requests_total", operation="health", status="error") == 2
    errors = {"operation": "health", "error_type": "APIConnectionError"}
    assert _value(registry, "skypilot_api_errors_total", **errors) == 2


def test_provider_metrics_with_retries_breaker_and_limiter_waits() -> None:
    registry = prom.CollectorRegistry()
    metrics = ProviderMetrics(registry)
    vendor = D.DocumentedLambda(throttle=1, retry_after="1")
    client = create_provider(
        "lambda",
        api_key="metrics-key",
        transport=httpx.MockTransport(vendor),
        on_request=metrics,
    )
    from tests.providers.timekeeping import FakeClock, attach

    clock = FakeClock()
    with attach(client, clock, clock.sleep) as attached:
        for _ in range(30):  # past the account's burst: the limiter makes calls wait
            attached.list_instances()
    assert _families(registry) == {
        "gpu_provider_requests",
        "gpu_provider_request_duration_seconds",
        "gpu_provider_errors",
        "gpu_provider_retries",
        "gpu_provider_circuit_breaker_state",
        "gpu_provider_rate_limiter_wait_seconds",
    }
    labels = {"provider": "lambda", "operation": "list_instances"}
    assert _value(registry, "gpu_provider_requests_total", **labels, status="429") == 1
    assert _value(registry, "gpu_provider_requests_total", **labels, status="ok") == 30
    assert _value(registry, "gpu_provider_errors_total", **labels, error_type="RateLimitError") == 1
    assert _value(registry, "gpu_provider_retries_total", **labels) == 1
    assert _value(registry, "gpu_provider_circuit_breaker_state", provider="lambda") == 0
    waited = _value(registry, "gpu_provider_rate_limiter_wait_seconds_sum", **labels)
    assert waited is not None and waited > 0


def test_without_the_extra_nothing_changes_and_the_error_names_it() -> None:
    code = """
import sys
sys.modules["prometheus_client"] = None  # as if not installed
import skypilot_client, gpu_providers
from skypilot_client import SkyPilotClient
SkyPilotClient("http://x")
from skypilot_client.errors import ConfigurationError
from gpu_providers.errors import MissingDependencyError
from skypilot_client.metrics import SkyPilotMetrics
from gpu_providers.metrics import ProviderMetrics
for cls, err in ((SkyPilotMetrics, ConfigurationError), (ProviderMetrics, MissingDependencyError)):
    try:
        cls()
    except err as exc:
        assert "skypilot-sdk[prometheus]" in str(exc), exc
    else:
        raise AssertionError(cls)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_importing_the_packages_does_not_import_prometheus() -> None:
    code = (
        "import sys, skypilot_client, gpu_providers; "
        "from skypilot_client import SkyPilotClient; SkyPilotClient('http://x'); "
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
