"""RunPod <-> normalized types and GraphQL error classification (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import (
    AuthenticationError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    ProviderServerError,
    QuotaExceededError,
    RateLimitError,
    error_for_status,
)
from ..gpus import GPU_TABLE, GPUSpec
from ..types import GPUInstance, GPUOffer, InstanceState, InstanceStatus

PROVIDER = "runpod"

_BY_ID: dict[str, GPUSpec] = {gpu_id: spec for spec in GPU_TABLE for gpu_id in spec.runpod}

# RunPod's GraphQL errors carry a message and sometimes extensions.code; no codes are
# documented for capacity, so these known messages (FACTS.md, runpod-python, runpodctl,
# dstack, SkyPilot) are matched. A message matched nowhere is a server error, never "your
# request was bad": retried for reads, maybe-submitted for launches.
_NOT_FOUND = re.compile(r"pod not found|not found to terminate|could not find pod", re.I)
_CAPACITY = re.compile(
    r"does not have the resources|no longer any instances available|insufficient resources|"
    r"no (gpus?|instances?|machines?) (currently )?available|"
    r"not enough free gpus on the host machine",
    re.I,
)
_AUTH = re.compile(r"unauthori[sz]ed|api key|authentication", re.I)
_QUOTA = re.compile(r"balance|quota|spend limit|insufficient funds", re.I)
_THROTTLED = re.compile(r"rate limit|too many requests|throttl", re.I)
_INTERNAL = re.compile(r"something went wrong|internal server error", re.I)
_INVALID = re.compile(
    r"cannot query field|unknown argument|got invalid value|was not provided|"
    r"expected type|syntax error|is not defined by type",
    re.I,
)
_INVALID_CODES = frozenset({"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED"})
_THROTTLED_CODES = frozenset({"TOO_MANY_REQUESTS", "RATE_LIMITED", "THROTTLED"})


def canonical_of(gpu_type_id: str | None) -> GPUSpec | None:
    """The canonical GPU of a RunPod GPU type id."""
    return _BY_ID.get(gpu_type_id or "")


def classify_graphql(errors: list[Any], operation: str) -> ProviderError:
    """The error for a GraphQL ``errors`` list (usually sent with HTTP 200)."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(first.get("message") or "GraphQL error")
    extensions = first.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    code = str(code) if code is not None else None
    upper = (code or "").upper()
    text = f"{operation}: {message}"
    cls: type[ProviderError]
    if _NOT_FOUND.search(message) or (code or "").lower().endswith("not found"):
        cls = InstanceNotFoundError
    elif _CAPACITY.search(message):
        cls = CapacityError
    elif upper in ("UNAUTHENTICATED", "FORBIDDEN") or _AUTH.search(message):
        cls = AuthenticationError
    elif _QUOTA.search(message):
        cls = QuotaExceededError
    elif upper in _THROTTLED_CODES or _THROTTLED.search(message):
        cls = RateLimitError
    elif upper == "INTERNAL_SERVER_ERROR" or _INTERNAL.search(message):
        cls = ProviderServerError
    elif upper in _INVALID_CODES or _INVALID.search(message):
        cls = InvalidRequestError
    else:
        cls = ProviderServerError  # unknown: assume the provider's side, never "bad request"
    return cls(text, provider=PROVIDER, code=code, body=errors)


def classify_status(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a non-2xx HTTP answer of the GraphQL endpoint (its JSON body kept:
    RunPod explains variable-validation failures in a GraphQL ``errors`` list with 400)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    detail = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message")
    text = f"{operation}: HTTP {status_code}" + (f": {detail}" if detail else "")
    kwargs: dict[str, Any] = {"provider": PROVIDER, "status_code": status_code, "body": body}
    if status_code in (401, 403):
        return AuthenticationError(text, **kwargs)
    if status_code == 429:
        return RateLimitError(text, **kwargs)
    if status_code in (404, 405, 410):
        # The endpoint itself is missing (RunPod retires GraphQL in 2027): never "no such pod".
        return ProviderError(
            f"{text}: the GraphQL endpoint is not there (retired or moved?)", **kwargs
        )
    if status_code == 400 and isinstance(errors, list) and errors:
        error = classify_graphql(errors, operation)
        if isinstance(error, ProviderServerError):  # unknown, but HTTP says it was ours
            error = InvalidRequestError(error.message, provider=PROVIDER, body=body)
        error.status_code = status_code
        return error
    return error_for_status(status_code, text, provider=PROVIDER, body=body)


def offers_from_gpu_types(gpu_types: Iterable[Any], gpu_count: int) -> list[GPUOffer]:
    """On-demand and spot offers from ``gpuTypes { lowestPrice }`` for ``gpu_count`` GPUs."""
    offers: list[GPUOffer] = []
    for gpu in gpu_types:
        spec = canonical_of(gpu.id) if gpu is not None else None
        if gpu is None or spec is None:
            continue
        lowest = gpu.lowest_price
        in_stock = lowest is not None and lowest.stock_status is not None
        prices = (
            (False, lowest.uninterruptable_price if lowest else None),
            (True, lowest.minimum_bid_price if lowest else None),
        )
        for spot, price in prices:
            if price is None or price <= 0:
                continue
            offers.append(
                GPUOffer(
                    provider=PROVIDER,
                    offer_id=gpu.id,
                    gpu_type=spec.name,
                    provider_gpu_type=gpu.display_name or gpu.id,
                    gpu_count=gpu_count,
                    gpu_memory_gb=gpu.memory_in_gb or spec.memory_gb,
                    vcpus=lowest.min_vcpu if lowest else None,
                    ram_gb=lowest.min_memory if lowest else None,
                    region=lowest.country_code if lowest else None,
                    hourly_price=round(price * gpu_count, 4),
                    price_per_gpu=price,
                    spot=spot,
                    available=in_stock,
                )
            )
    return offers


def _ssh(pod: Any) -> tuple[str | None, int | None]:
    ports = pod.runtime.ports if pod.runtime is not None and pod.runtime.ports else []
    for port in ports:
        if port is not None and port.private_port == 22 and port.is_ip_public:
            return port.ip, port.public_port
    return None, None


def _state(pod: Any) -> InstanceState:
    status = (pod.desired_status or "").upper()
    if status == "RUNNING":
        return InstanceState.RUNNING if pod.runtime is not None else InstanceState.PENDING
    return {
        "CREATED": InstanceState.PENDING,
        "RESTARTING": InstanceState.PENDING,
        "EXITED": InstanceState.STOPPED,
        "PAUSED": InstanceState.STOPPED,
        "TERMINATED": InstanceState.TERMINATED,
        "DEAD": InstanceState.FAILED,
    }.get(status, InstanceState.UNKNOWN)


def instance_from_api(pod: Any) -> GPUInstance:
    """A ``GPUInstance`` from a RunPod ``Pod``."""
    spec = canonical_of(pod.machine.gpu_type_id if pod.machine else None)
    ip, port = _ssh(pod)
    return GPUInstance(
        provider=PROVIDER,
        instance_id=pod.id,
        name=pod.name,
        state=_state(pod),
        provider_state=pod.desired_status,
        gpu_type=spec.name if spec else None,
        gpu_count=pod.gpu_count,
        region=pod.machine.data_center_id if pod.machine else None,
        hourly_price=pod.cost_per_hr,
        public_ip=ip,
        ssh_port=port,
        spot=(pod.pod_type or "").upper() in ("INTERRUPTABLE", "BID"),
    )


def status_from_api(pod: Any) -> InstanceStatus:
    """An ``InstanceStatus``: ready once RunPod reports a ``runtime`` (container up)."""
    ip, port = _ssh(pod)
    state = _state(pod)
    return InstanceStatus(
        instance_id=pod.id,
        state=state,
        provider_state=pod.desired_status,
        ready=state == InstanceState.RUNNING,
        public_ip=ip,
        ssh_port=port,
        message="container starting (no runtime yet)" if state == InstanceState.PENDING else None,
    )
