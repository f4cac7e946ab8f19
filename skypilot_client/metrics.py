"""Prometheus metrics for ``SkyPilotClient``/``AsyncSkyPilotClient`` (optional extra).

``pip install 'skypilot-sdk[prometheus]'``, then pass a ``SkyPilotMetrics`` as the client's
``on_request`` hook. It registers exactly four metrics, fed by every HTTP attempt:

- ``skypilot_api_requests_total{operation,status}``: attempts by HTTP status (``error`` when
  the attempt failed in transport);
- ``skypilot_api_request_duration_seconds{operation}``: attempt duration (histogram);
- ``skypilot_api_errors_total{operation,error_type}``: failed attempts by the error class the
  client raises for them (``ServiceUnavailableError``, ``APIConnectionError``, ...);
- ``skypilot_api_retries_total{operation}``: attempts after the first.

Nothing here is imported by ``import skypilot_client``; without the extra, constructing
``SkyPilotMetrics`` raises ``ConfigurationError`` naming it.

>>> from skypilot_client import SkyPilotClient
>>> from skypilot_client.metrics import SkyPilotMetrics
>>> client = SkyPilotClient(on_request=SkyPilotMetrics())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ._base_client import RequestMetrics
from .errors import ConfigurationError, error_for_status

__all__ = ["INSTALL", "METRIC_NAMES", "SkyPilotMetrics"]

INSTALL = "pip install 'skypilot-sdk[prometheus]'"
#: The metric names ``SkyPilotMetrics`` registers (as exposed).
METRIC_NAMES = (
    "skypilot_api_requests_total",
    "skypilot_api_request_duration_seconds",
    "skypilot_api_errors_total",
    "skypilot_api_retries_total",
)


def import_prometheus(error: type[Exception] = ConfigurationError) -> Any:
    """``prometheus_client``, or ``error`` naming the extra that installs it."""
    try:
        import prometheus_client
    except ImportError as exc:
        raise error(f"Prometheus metrics need prometheus_client ({exc}): {INSTALL}") from exc
    return prometheus_client


class SkyPilotMetrics:
    """The ``on_request`` hook that exports the client's attempts to Prometheus.

    Args:
        registry: The ``prometheus_client.CollectorRegistry`` to register in (default: the
            global ``REGISTRY``). Register once per registry: share one instance between
            clients (``with_options`` copies share their hook).
        buckets: Histogram buckets of the duration, seconds (default: prometheus_client's).
    """

    def __init__(self, registry: Any = None, *, buckets: tuple[float, ...] | None = None) -> None:
        prom = import_prometheus()
        registry = prom.REGISTRY if registry is None else registry
        extra: dict[str, Any] = {"buckets": buckets} if buckets else {}
        self.requests = prom.Counter(
            "skypilot_api_requests_total",
            "SkyPilot API server HTTP attempts, by operation and HTTP status",
            ["operation", "status"],
            registry=registry,
        )
        self.duration = prom.Histogram(
            "skypilot_api_request_duration_seconds",
            "Duration of SkyPilot API server HTTP attempts",
            ["operation"],
            registry=registry,
            **extra,
        )
        self.errors = prom.Counter(
            "skypilot_api_errors_total",
            "Failed SkyPilot API server HTTP attempts, by the client's error class",
            ["operation", "error_type"],
            registry=registry,
        )
        self.retries = prom.Counter(
            "skypilot_api_retries_total",
            "SkyPilot API server HTTP attempts after the first",
            ["operation"],
            registry=registry,
        )

    def __call__(self, metrics: RequestMetrics) -> None:
        """Record one attempt (the client calls this; never raises on our side)."""
        op = metrics.operation
        status = str(metrics.status_code) if metrics.status_code is not None else "error"
        self.requests.labels(op, status).inc()
        self.duration.labels(op).observe(metrics.duration)
        error_type = metrics.error
        if error_type is None and metrics.status_code is not None and metrics.status_code >= 400:
            error_type = type(error_for_status(metrics.status_code, "")).__name__
        if error_type is not None:
            self.errors.labels(op, error_type).inc()
        if metrics.attempt > 1:
            self.retries.labels(op).inc()
