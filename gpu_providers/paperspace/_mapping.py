"""Paperspace <-> normalized types and error classification (no I/O)."""

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
    QuotaExceededError,
    error_for_status,
)
from ..gpus import GPU_TABLE, GPUSpec
from ..types import GPUInstance, GPUOffer, InstanceState, InstanceStatus

PROVIDER = "paperspace"

STATES: dict[str, InstanceState] = {
    "provisioning": InstanceState.PENDING,
    "starting": InstanceState.PENDING,
    "restarting": InstanceState.PENDING,
    "upgrading": InstanceState.PENDING,
    "serviceready": InstanceState.RUNNING,
    "ready": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPING,
    "off": InstanceState.STOPPED,
}

_LABEL = re.compile(r"^(?P<base>.+?)(?:x(?P<count>\d+))?$")
_BY_LABEL: dict[str, GPUSpec] = {
    spec.paperspace.upper(): spec for spec in GPU_TABLE if spec.paperspace
}

# Paperspace documents no error codes (only {message, code}), so capacity and quota are told
# apart from the message: the one place we match text.
_CAPACITY_TEXT = re.compile(r"capacity|out of stock|not available|no machines? available", re.I)
_QUOTA_TEXT = re.compile(r"quota|limit (reached|exceeded)|exceeded .*limit", re.I)


def machine_type(spec: GPUSpec, count: int) -> str | None:
    """Paperspace's ``machineType`` for ``count`` GPUs (``H100``, ``H100x8``)."""
    if spec.paperspace is None:
        return None
    return spec.paperspace if count == 1 else f"{spec.paperspace}x{count}"


def gpu_of_machine_type(label: str) -> tuple[GPUSpec, int] | None:
    """(GPU, count) of a machine type label such as ``A100-80Gx8``."""
    match = _LABEL.match(label.strip())
    if match is None:
        return None
    spec = _BY_LABEL.get(match.group("base").upper())
    if spec is None:
        return None
    return spec, int(match.group("count") or 1)


def classify(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a Paperspace error body ``{"message", "code"}``."""
    message = body.get("message") if isinstance(body, dict) else None
    code = body.get("code") if isinstance(body, dict) else None
    code = str(code) if code is not None else None
    text = f"{operation}: {message or f'HTTP {status_code}'}"
    cls: type[ProviderError] | None = None
    if status_code in (401, 403):
        cls = AuthenticationError
    elif status_code == 404 and isinstance(message, str) and code is not None:
        cls = InstanceNotFoundError  # Paperspace's own error envelope: its proof of absence
    elif status_code in (400, 409, 422) and isinstance(message, str):
        if _CAPACITY_TEXT.search(message):
            cls = CapacityError
        elif _QUOTA_TEXT.search(message):
            cls = QuotaExceededError
        else:
            cls = InvalidRequestError
    if cls is None:
        return error_for_status(status_code, text, code=code, provider=PROVIDER, body=body)
    return cls(text, provider=PROVIDER, status_code=status_code, code=code, body=body)


def offers_from_templates(templates: Iterable[Any]) -> list[GPUOffer]:
    """Offers from the machine types OS templates list (Paperspace publishes no prices)."""
    available: dict[str, bool] = {}
    for template in templates:
        for entry in template.available_machine_types:
            label = entry.machine_type_label
            available[label] = available.get(label, False) or bool(entry.is_available)
    offers = []
    for label, is_available in sorted(available.items()):
        found = gpu_of_machine_type(label)
        if found is None:
            continue
        spec, count = found
        offers.append(
            GPUOffer(
                provider=PROVIDER,
                offer_id=label,
                gpu_type=spec.name,
                provider_gpu_type=label,
                gpu_count=count,
                gpu_memory_gb=spec.memory_gb,
                available=is_available,
            )
        )
    return offers


def _region(value: Any) -> str:
    return str(getattr(value, "value", value))


def instance_from_api(machine: Any) -> GPUInstance:
    """A ``GPUInstance`` from Paperspace's ``Machine``."""
    found = gpu_of_machine_type(machine.machine_type)
    return GPUInstance(
        provider=PROVIDER,
        instance_id=machine.id,
        name=machine.name,
        state=STATES.get(str(machine.state).lower(), InstanceState.UNKNOWN),
        provider_state=machine.state,
        gpu_type=found[0].name if found else None,
        gpu_count=found[1] if found else None,
        region=_region(machine.region),
        hourly_price=machine.usage_rate,
        public_ip=machine.public_ip,
        ssh_port=22 if machine.public_ip else None,
        created_at=machine.dt_created,
    )


def status_from_api(machine: Any) -> InstanceStatus:
    """An ``InstanceStatus`` from Paperspace's ``Machine``.

    Ready means usable: state ``ready`` *and* a public IP to reach SSH on (port 22); a
    ``ready`` machine without an address (``publicIpType`` none, or not attached yet) is not.
    ``serviceready`` is running but not yet ready.
    """
    state = str(machine.state).lower()
    return InstanceStatus(
        instance_id=machine.id,
        state=STATES.get(state, InstanceState.UNKNOWN),
        provider_state=machine.state,
        ready=state == "ready" and bool(machine.public_ip),
        public_ip=machine.public_ip,
        ssh_port=22 if machine.public_ip else None,
    )
