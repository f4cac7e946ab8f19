"""Prometheus metrics for the provider clients (optional extra ``[prometheus]``).

Pass a ``ProviderMetrics`` as a provider client's ``on_request`` hook
(``create_provider("lambda", on_request=metrics)``). It registers, fed by every call attempt:

- ``gpu_provider_requests_total{provider,operation,status}``: attempts by outcome (``ok``,
  the HTTP status of a failed attempt, or ``error`` without one);
- ``gpu_provider_request_duration_seconds{provider,operation}``: attempt duration;
- ``gpu_provider_errors_total{provider,operation,error_type}``: failed attempts by error
  class (``RateLimitError``, ``CapacityError``, ...);
- ``gpu_provider_retries_total{provider,operation}``: attempts after the first;
- ``gpu_provider_circuit_breaker_state{provider}``: 0 closed, 1 half-open, 2 open (after the
  latest attempt);
- ``gpu_provider_rate_limiter_wait_seconds{provider,operation}``: how long the account's rate
  limiter held attempts back (histogram of the attempts that waited).

Without the extra, constructing it raises ``MissingDependencyError`` naming it.
"""

from __future__ import annotations

from typing import Any

from ._core import ProviderRequestMetrics
from .errors import MissingDependencyError

__all__ = ["METRIC_NAMES", "ProviderMetrics", "ProviderRequestMetrics"]

#: The metric names ``ProviderMetrics`` registers (as exposed).
METRIC_NAMES = (
    "gpu_provider_requests_total",
    "gpu_provider_request_duration_seconds",
    "gpu_provider_errors_total",
    "gpu_provider_retries_total",
    "gpu_provider_circuit_breaker_state",
    "gpu_provider_rate_limiter_wait_seconds",
)
_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


class ProviderMetrics:
    """The ``on_request`` hook that exports provider call attempts to Prometheus.

    Args:
        registry: A ``prometheus_client.CollectorRegistry`` (default: the global one).
            Register once per registry and share the instance between clients.
        buckets: Histogram buckets of the duration, seconds (default: prometheus_client's).
    """

    def __init__(self, registry: Any = None, *, buckets: tuple[float, ...] | None = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise MissingDependencyError(
                "missing optional dependency 'prometheus_client'; install it with: "
                "pip install 'skypilot-sdk[prometheus]'",
                extra="prometheus",
                module="prometheus_client",
            ) from exc
        registry = prom.REGISTRY if registry is None else registry
        extra: dict[str, Any] = {"buckets": buckets} if buckets else {}
        labels = ["provider", "operation"]
        self.requests = prom.Counter(
            "gpu_provider_requests_total",
            "GPU provider API call attempts, by outcome",
            [*labels, "status"],
            registry=registry,
        )
        self.duration = prom.Histogram(
            "gpu_provider_request_duration_seconds",
            "Duration of GPU provider API call attempts",
            labels,
            registry=registry,
            **extra,
        )
        self.errors = prom.Counter(
            "gpu_provider_errors_total",
            "Failed GPU provider API call attempts, by error class",
            [*labels, "error_type"],
            registry=registry,
        )
        self.retries = prom.Counter(
            "gpu_provider_retries_total",
            "GPU provider API call attempts after the first",
            labels,
            registry=registry,
        )
        self.breaker = prom.Gauge(
            "gpu_provider_circuit_breaker_state",
            "Circuit breaker of the provider account: 0 closed, 1 half-open, 2 open",
            ["provider"],
            registry=registry,
        )
        self.limiter_wait = prom.Histogram(
            "gpu_provider_rate_limiter_wait_seconds",
            "Time attempts waited for the provider account's rate limiter",
            labels,
            registry=registry,
        )

    def __call__(self, m: ProviderRequestMetrics) -> None:
        """Record one attempt (the provider client calls this)."""
        if m.error is None:
            status = "ok"
        else:
            status = str(m.status_code) if m.status_code is not None else "error"
        self.requests.labels(m.provider, m.operation, status).inc()
        self.duration.labels(m.provider, m.operation).observe(m.duration)
        if m.error is not None:
            self.errors.labels(m.provider, m.operation, m.error).inc()
        if m.attempt > 1:
            self.retries.labels(m.provider, m.operation).inc()
        self.breaker.labels(m.provider).set(_BREAKER.get(m.breaker_state, -1))
        if m.limiter_wait > 0:
            self.limiter_wait.labels(m.provider, m.operation).observe(m.limiter_wait)
