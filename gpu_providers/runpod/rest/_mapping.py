"""RunPod REST v2 <-> normalized types, and classification of its RFC 9457 errors (no I/O).

What is the same data as on GraphQL (GPU type ids, the start command, the pod environment,
region codes) comes from ``gpu_providers/runpod/_mapping.py``; this module holds only what
REST v2 spells differently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ...errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    error_for_status,
)
from ...types import GPUInstance, GPUOffer, InstanceState, InstanceStatus
from .._mapping import COMMUNITY, PROVIDER, SECURE, canonical_of

__all__ = [
    "classify",
    "instance_from_pod",
    "offers_from_catalog",
    "problem",
    "status_from_pod",
]

#: Operations whose 404 (with RunPod's problem body) means "no such pod".
POD_OPERATIONS = frozenset({"get_instance", "terminate", "stop", "resume"})
#: RunPod's createPod documents 400 as "breaks a cross-field rule, or this GPU and data
#: center combination could not be placed": capacity has no code of its own, only a
#: ``detail``. Details that name a rule are invalid requests; the rest, no capacity.
_RULE = re.compile(r"mutually exclusive|must |required|invalid|not allowed|unknown", re.I)


def problem(body: Any) -> dict[str, Any] | None:
    """RunPod's error body (RFC 9457 problem+json ``{title, status, detail, errors?}``), or
    None when the body is not one (a gateway's HTML page, empty, another shape)."""
    if (
        isinstance(body, dict)
        and isinstance(body.get("status"), int)
        and isinstance(body.get("title"), str)
    ):
        return body
    return None


def classify(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a non-2xx REST v2 answer: by status, proven by the problem body."""
    found = problem(body)
    detail = str(found.get("detail") or found["title"]) if found else None
    errors = found.get("errors") if found else None
    if isinstance(errors, list) and errors:
        detail = f"{detail}: {'; '.join(map(str, errors[:5]))}"
    text = f"{operation}: HTTP {status_code}" + (f": {detail}" if detail else "")
    common: dict[str, Any] = {
        "provider": PROVIDER,
        "code": found["title"] if found else None,
        "body": body,
    }
    kwargs: dict[str, Any] = {**common, "status_code": status_code}
    if status_code in (401, 403):
        return AuthenticationError(text, **kwargs)
    if status_code == 402:  # createPod: "Insufficient balance"
        return BillingError(text, **kwargs)
    if status_code == 429:
        return RateLimitError(text, **kwargs)
    if found is None or found["status"] != status_code:
        # Not RunPod's problem body: a proxy or a wrong base_url. A bare 404 proves nothing.
        return error_for_status(status_code, text, **common)
    if status_code == 404:
        if operation in POD_OPERATIONS:
            return InstanceNotFoundError(text, **kwargs)
        return InvalidRequestError(text, **kwargs)  # e.g. an unknown GPU type id
    if status_code == 400 and operation == "launch" and not _RULE.search(detail or ""):
        return CapacityError(
            f"{text} (RunPod could not place this GPU in the data centers asked; its 400 "
            "also covers rule violations)",
            **kwargs,
        )
    return error_for_status(status_code, text, **common)


# -- offers -----------------------------------------------------------------------------------
#
# GET /v2/catalog/gpus?include=AVAILABILITY&product=POD&cloud=<cloud>&count=<n>: one call per
# cloud (availability is per cloud; RunPod's default is SECURE). ``price.secure`` and
# ``price.community`` are the on-demand USD/hour of one GPU in each cloud; REST v2 has no spot.
# A GPU type is available in a cloud when the type is offered there (``secure``/``community``),
# at the count asked (``maxCount``), and its ``availability`` (or, for a data center, that
# data center's entry in ``dataCenters``) is not NONE.

_PRICE = {SECURE: "secure", COMMUNITY: "community"}


def _available(gpu: Any, cloud: str, count: int, region: str | None) -> bool:
    field = _PRICE[cloud]
    if not getattr(gpu, field) or count > int(getattr(gpu.max_count, field)):
        return False
    if region is not None and "-" in region:  # a data center id: its own availability
        centers = gpu.data_centers if isinstance(gpu.data_centers, list) else []
        levels = [c.availability for c in centers if c.id == region]
        return bool(levels) and str(levels[0]).upper() != "NONE"
    level = gpu.availability if isinstance(gpu.availability, str) else None
    return level is not None and level.upper() != "NONE"


def offers_from_catalog(
    gpus: Iterable[Any], cloud: str, count: int, region: str | None = None
) -> list[tuple[str, GPUOffer]]:
    """(cloud, on-demand offer) for every GPU type we know with a positive price in ``cloud``;
    ``region`` is the placement the catalog was asked about (None: anywhere)."""
    found: list[tuple[str, GPUOffer]] = []
    field = _PRICE[cloud]
    for gpu in gpus:
        spec = canonical_of(gpu.id)
        price = getattr(gpu.price, field)
        if spec is None or price is None or price <= 0:
            continue
        offer = GPUOffer(
            provider=PROVIDER,
            offer_id=gpu.id,
            gpu_type=spec.name,
            provider_gpu_type=gpu.name or gpu.id,
            gpu_count=count,
            gpu_memory_gb=gpu.memory or spec.memory_gb,
            region=region,
            hourly_price=round(price * count, 4),
            price_per_gpu=price,
            spot=False,
            available=_available(gpu, cloud, count, region),
            price_source=f"GET /v2/catalog/gpus price.{field} (cloud={cloud})",
        )
        found.append((cloud, offer))
    return found


def data_centers_with_stock(gpu: Any) -> list[str]:
    """The data centers the catalog lists for a GPU type with stock (not NONE)."""
    centers = gpu.data_centers if isinstance(gpu.data_centers, list) else []
    return [c.id for c in centers if str(c.availability).upper() != "NONE"]


# -- pods -------------------------------------------------------------------------------------


def _ssh(pod: Any) -> tuple[str | None, int | None]:
    """The direct SSH endpoint: the runtime port with private 22 on a public IP, else
    ``ssh.direct`` (never the proxy, whose user name is a routing token)."""
    runtime = pod.runtime  # null unless RUNNING
    ports = runtime.ports if runtime is not None and isinstance(runtime.ports, list) else []
    for port in ports:
        if port.private == 22 and isinstance(port.ip, str) and isinstance(port.public, int):
            return port.ip, port.public
    direct = pod.ssh.direct if pod.ssh is not None else None
    if runtime is not None and direct is not None and direct.host and direct.port:
        return direct.host, direct.port
    return None, None


_STATES = {
    "PROVISIONING": InstanceState.PENDING,
    "STARTING": InstanceState.PENDING,
    "RUNNING": InstanceState.RUNNING,
    "EXITED": InstanceState.STOPPED,
    "ERROR": InstanceState.FAILED,
    "TERMINATED": InstanceState.TERMINATED,
}


def _state(pod: Any) -> InstanceState:
    # REST v2 says nothing of spot, so nothing is PREEMPTED here: an exited pod is STOPPED.
    return _STATES.get(str(pod.status).upper(), InstanceState.UNKNOWN)


def _gpu(pod: Any) -> tuple[str | None, int | None]:
    gpu = pod.gpu if hasattr(pod.gpu, "id") else None
    if gpu is None:
        return None, None
    spec = canonical_of(gpu.id)
    count = gpu.count if isinstance(gpu.count, int) else None
    return (spec.name if spec else None), count


def created_at(pod: Any) -> datetime | None:
    """``Pod.createdAt`` (RFC 3339), or None when it is missing or unreadable: an unreadable
    date costs the instance its age, never its place in a list."""
    value = getattr(pod, "created_at", None)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def instance_from_pod(pod: Any) -> GPUInstance:
    """A ``GPUInstance`` from a REST v2 ``Pod`` (the generated model)."""
    ip, port = _ssh(pod)
    gpu_type, gpu_count = _gpu(pod)
    return GPUInstance(
        provider=PROVIDER,
        instance_id=pod.id,
        name=pod.name,
        state=_state(pod),
        provider_state=str(pod.status),
        gpu_type=gpu_type,
        gpu_count=gpu_count,
        region=pod.data_center_id,
        hourly_price=pod.cost,
        created_at=created_at(pod),
        public_ip=ip,
        ssh_port=port,
        spot=False,
    )


def status_from_pod(pod: Any) -> InstanceStatus:
    """An ``InstanceStatus``: ready once RUNNING with port 22 mapped to a public address."""
    ip, port = _ssh(pod)
    state = _state(pod)
    ready = state == InstanceState.RUNNING and ip is not None and port is not None
    message = None
    if state == InstanceState.PENDING:
        message = f"pod {str(pod.status).lower()}"
    elif state == InstanceState.RUNNING and not ready:
        message = "container up; SSH port 22 not yet mapped to a public address"
    elif state == InstanceState.FAILED:
        message = "RunPod reports the container in an unrecoverable error state"
    return InstanceStatus(
        instance_id=pod.id,
        state=state,
        provider_state=str(pod.status),
        ready=ready,
        public_ip=ip if ready else None,
        ssh_port=port if ready else None,
        message=message,
    )
