"""Lambda Cloud <-> normalized types, and Lambda's error codes (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    ProviderServerError,
    QuotaExceededError,
    error_for_status,
)
from ..gpus import GPU_TABLE, GPUSpec
from ..types import GPUInstance, GPUOffer, InstanceState, InstanceStatus

PROVIDER = "lambda"

# Lambda's documented error codes (FACTS.md: the spec says branch on `code`, never on text).
ERROR_CODES: dict[str, type[ProviderError]] = {
    "global/invalid-api-key": AuthenticationError,
    "global/account-inactive": AuthenticationError,
    "global/invalid-address": BillingError,
    "global/invalid-parameters": InvalidRequestError,
    "global/object-does-not-exist": InstanceNotFoundError,
    "global/quota-exceeded": QuotaExceededError,
    "global/duplicate": InvalidRequestError,
    "global/internal-error": ProviderServerError,
    "instance-operations/launch/insufficient-capacity": CapacityError,
    "instance-operations/launch/file-system-in-wrong-region": InvalidRequestError,
    "filesystems/filesystem-in-use": InvalidRequestError,
}

STATES: dict[str, InstanceState] = {
    "booting": InstanceState.PENDING,
    "active": InstanceState.RUNNING,
    "unhealthy": InstanceState.RUNNING,  # running, but Lambda's health checks fail
    "terminating": InstanceState.TERMINATING,
    "terminated": InstanceState.TERMINATED,
    "preempted": InstanceState.PREEMPTED,  # spot capacity taken back (spec enum 1.8.3)
}

_TYPE_NAME = re.compile(r"^gpu_(\d+)x_(.+)$")
# Longest tokens first so "a100_80gb" wins over "a100" and "a100" over "a10".
_TOKENS: list[tuple[str, GPUSpec]] = sorted(
    ((spec.lambda_cloud, spec) for spec in GPU_TABLE if spec.lambda_cloud),
    key=lambda item: -len(item[0]),
)


_TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]+$")


def check_tags(labels: dict[str, str]) -> None:
    """Lambda's tag rules (spec 1.8.3): keys ``^[a-z][a-z0-9-:]+$`` up to 55 characters,
    values up to 128 characters."""
    for key, value in labels.items():
        if not _TAG_KEY.match(key) or len(key) > 55:
            raise InvalidRequestError(
                f"label key {key!r}: Lambda tag keys are lower-case letters, digits, '-' and "
                "':', start with a letter, and have at most 55 characters",
                provider=PROVIDER,
            )
        if len(value) > 128:
            raise InvalidRequestError(
                f"label {key!r}: Lambda tag values have at most 128 characters", provider=PROVIDER
            )


class SSHKey(BaseModel):
    """An SSH key registered with Lambda."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    public_key: str


def classify(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a Lambda error envelope ``{"error": {code, message, suggestion}}``."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    suggestion = error.get("suggestion") if isinstance(error, dict) else None
    text = f"{operation}: {message or f'HTTP {status_code}'}"
    if suggestion:
        text += f" ({suggestion})"
    code = code if isinstance(code, str) else None
    cls = ERROR_CODES.get(code or "")
    if cls is InstanceNotFoundError and operation == "launch":
        cls = InvalidRequestError  # on launch it means an unknown SSH key/type/file system
    if cls is None and code and code.startswith("provider/"):
        cls = ProviderServerError  # upstream provider trouble ("try again shortly")
    if cls is None:
        return error_for_status(status_code, text, code=code, provider=PROVIDER, body=body)
    return cls(text, provider=PROVIDER, status_code=status_code, code=code, body=body)


def created_id(body: Any) -> str | None:
    """The id a raw launch answer (``{"data": {"instance_ids": [id]}}``) names, or None (the
    launch endpoint's ``created_id``). We launch one instance: anything but a list holding one
    non-empty string is off the schema (a string's first letter is no id)."""
    data = body.get("data") if isinstance(body, dict) else None
    ids = data.get("instance_ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or len(ids) != 1:
        return None
    return ids[0] if isinstance(ids[0], str) and ids[0].strip() else None


def gpu_of_type(type_name: str) -> tuple[GPUSpec, int] | None:
    """(GPU, count) of an instance type such as ``gpu_8x_h100_sxm5`` (None for CPU types)."""
    match = _TYPE_NAME.match(type_name)
    if match is None:
        return None
    count, rest = int(match.group(1)), match.group(2)
    if count < 1:
        return None
    for token, spec in _TOKENS:
        if rest == token or rest.startswith(token + "_"):
            return spec, count
    return None


def offers_from_types(items: Iterable[Any]) -> list[GPUOffer]:
    """Offers from ``/instance-types`` items (one per region with capacity)."""
    offers: list[GPUOffer] = []
    for item in items:
        itype = item.instance_type
        found = gpu_of_type(itype.name)
        if found is None or itype.specs.gpus < 1:
            continue
        spec, count = found
        price = itype.price_cents_per_hour / 100.0
        common = {
            "provider": PROVIDER,
            "offer_id": itype.name,
            "gpu_type": spec.name,
            "provider_gpu_type": itype.gpu_description or itype.name,
            "gpu_count": count,
            "gpu_memory_gb": spec.memory_gb,
            "vcpus": itype.specs.vcpus,
            "ram_gb": itype.specs.memory_gib,
            "disk_gb": itype.specs.storage_gib,
            "hourly_price": round(price, 4),
            "price_per_gpu": round(price / count, 4),
            "price_source": "GET /api/v1/instance-types: instance_type.price_cents_per_hour",
        }
        regions = [r.name for r in item.regions_with_capacity_available]
        if not regions:
            offers.append(GPUOffer(**common, region=None, available=False))
        offers.extend(GPUOffer(**common, region=region, available=True) for region in regions)
    return offers


def _unset(value: Any) -> Any:
    # Generated models use an UNSET sentinel (falsy) for absent optional fields.
    return value if value else None


def instance_from_api(instance: Any) -> GPUInstance:
    """A ``GPUInstance`` from Lambda's ``Instance``."""
    found = gpu_of_type(instance.instance_type.name)
    tags = _unset(instance.tags) or []
    return GPUInstance(
        provider=PROVIDER,
        instance_id=instance.id,
        name=_unset(instance.name),
        state=STATES.get(instance.status, InstanceState.UNKNOWN),
        provider_state=instance.status,
        gpu_type=found[0].name if found else None,
        gpu_count=found[1] if found else None,
        region=instance.region.name,
        hourly_price=instance.instance_type.price_cents_per_hour / 100.0,
        public_ip=_unset(instance.ip),
        ssh_port=22 if _unset(instance.ip) else None,
        labels={t.key: t.value for t in tags},
    )


def status_from_api(instance: Any) -> InstanceStatus:
    """An ``InstanceStatus`` from Lambda's ``Instance`` (ready = active with an IP)."""
    ip = _unset(instance.ip)
    state = STATES.get(instance.status, InstanceState.UNKNOWN)
    return InstanceStatus(
        instance_id=instance.id,
        state=state,
        provider_state=instance.status,
        ready=instance.status == "active" and ip is not None,
        public_ip=ip,
        ssh_port=22 if ip else None,
        message="Lambda reports the instance unhealthy" if instance.status == "unhealthy" else None,
    )
