"""TensorDock v2 <-> normalized types, the price formula, and error classification (no I/O).

Field names and envelopes: specs/tensordock/openapi.yaml (our own document: TensorDock
publishes no spec; what is inferred there is marked I1-I7 and noted here where it matters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    UnexpectedResponseError,
    error_for_status,
)
from ..gpus import GPUSpec, gpu_spec
from ..types import GPUInstance, GPUOffer, InstanceState, InstanceStatus

PROVIDER = "tensordock"

#: The configuration an offer is priced for and a launch asks for, per GPU (our choice: the
#: docs give no default; vCPUs change in steps of 2 and RAM in steps of 8 GB on modify).
VCPUS_PER_GPU = 4
RAM_GB_PER_GPU = 16
#: The docs' minimum storage for a VM.
MIN_STORAGE_GB = 100
#: Offers are listed for 1 to this many GPUs of a kind (a host has at most 8-10; a larger
#: ``max_count`` is not turned into thousands of offers).
MAX_GPUS_PER_OFFER = 16

#: Status, normalised as the terraform provider does (lower case; spaces, '_' and '-' dropped).
STATES: dict[str, InstanceState] = {
    "starting": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPED,
    "stoppeddisassociated": InstanceState.STOPPED,  # stopped, and its GPU was released
    "deleting": InstanceState.TERMINATING,  # the derived spec's values (spec I5)
    "deleted": InstanceState.TERMINATED,
    "error": InstanceState.FAILED,
}

#: TensorDock GPU model token (the part of a v0Name before the bus) -> canonical name, or
#: {memory GB: canonical} where the model comes in sizes. h100, a100, geforcertx4090 and
#: rtxa6000 appear in TensorDock's docs; the rest follow the same <model>-<bus>-<vram>gb
#: pattern and are inferred from it.
MODELS: dict[str, str | dict[int, str]] = {
    "h100": "H100",
    "h200": "H200",
    "a100": {80: "A100-80GB", 40: "A100"},
    "l40s": "L40S",
    "l40": "L40",
    "l4": "L4",
    "a40": "A40",
    "a10": "A10",
    "rtxa6000": "A6000",
    "rtxa5000": "A5000",
    "rtxa4000": "A4000",
    "rtx6000ada": "RTX6000-Ada",
    "geforcertx4090": "RTX4090",
    "geforcertx3090": "RTX3090",
    "v100": {32: "V100-32GB", 16: "V100"},
    "t4": "T4",
}
#: Canonical name -> the v0Name ``translate_gpu_type`` answers (the first four from the docs).
V0_NAMES: dict[str, str] = {
    "H100": "h100-sxm5-80gb",
    "A100-80GB": "a100-pcie-80gb",
    "RTX4090": "geforcertx4090-pcie-24gb",
    "A6000": "rtxa6000-pcie-48gb",
    "A100": "a100-pcie-40gb",
    "H200": "h200-sxm5-141gb",
    "L40S": "l40s-pcie-48gb",
    "L40": "l40-pcie-48gb",
    "L4": "l4-pcie-24gb",
    "A40": "a40-pcie-48gb",
    "A10": "a10-pcie-24gb",
    "A5000": "rtxa5000-pcie-24gb",
    "A4000": "rtxa4000-pcie-16gb",
    "RTX6000-Ada": "rtx6000ada-pcie-48gb",
    "RTX3090": "geforcertx3090-pcie-24gb",
    "V100-32GB": "v100-sxm2-32gb",
    "V100": "v100-sxm2-16gb",
    "T4": "t4-pcie-16gb",
}
_V0_NAME = re.compile(r"^(?P<model>[a-z0-9]+)-(?P<bus>[a-z0-9]+)-(?P<vram>\d+)gb$")

# Error bodies are undocumented (spec I1): JSON:API `errors`, or `error` / `message` text.
# Without error codes, billing and capacity are told apart by their words (the one place we
# match text); anything else a 4xx says is a refusal of the request.
_BILLING_TEXT = re.compile(
    r"balance|credit|insufficient funds|payment|billing|top.?up|deposit", re.I
)
_CAPACITY_TEXT = re.compile(
    r"capacity|out of stock|sold out|not enough|insufficient (gpu|resource|stock)|"
    r"no (available|gpus?|hostnodes?)|unavailable|not available",
    re.I,
)


def gpu_of(v0_name: str) -> GPUSpec | None:
    """The canonical GPU of a TensorDock v0Name (``h100-sxm5-80gb``), None if unknown."""
    match = _V0_NAME.match(v0_name.strip().lower()) if isinstance(v0_name, str) else None
    if match is None:
        return None
    model = MODELS.get(match.group("model"))
    if isinstance(model, dict):
        model = model.get(int(match.group("vram")))
    return gpu_spec(model) if model else None


def error_text(body: Any) -> str | None:
    """The message of an error body in any of its forms (spec I1), None without one."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        parts = [errors[0].get(k) for k in ("title", "detail")]
        text = ": ".join(p for p in parts if isinstance(p, str) and p)
        if text:
            return text
    for key in ("error", "message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def proves_absence(body: Any) -> bool:
    """Whether a 404 body is TensorDock's own answer: the JSON:API ``errors`` list or an
    ``error`` text. A bare ``{"message": ...}`` or ``{"detail": ...}`` is what gateways and
    proxies send too (API gateways answer ``{"message": "Not Found"}``), so it proves nothing."""
    if not isinstance(body, dict):
        return False
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return error_text({"errors": errors}) is not None
    error = body.get("error")
    return isinstance(error, str) and bool(error)


def classify(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a non-2xx TensorDock answer."""
    message = error_text(body)
    text = f"{operation}: {message or f'HTTP {status_code}'}"
    cls: type[ProviderError] | None = None
    if status_code in (401, 403):
        cls = AuthenticationError
    elif status_code == 429:
        cls = RateLimitError
    elif status_code == 402:
        cls = BillingError
    elif status_code == 404 and proves_absence(body):
        # The API's own error body (not a proxy's page): its proof that the id is unknown.
        # On create it names a location, hostnode or key that does not exist.
        cls = InvalidRequestError if operation == "launch" else InstanceNotFoundError
    elif 400 <= status_code < 500 and status_code != 404 and message is not None:
        if _BILLING_TEXT.search(message):
            cls = BillingError
        elif _CAPACITY_TEXT.search(message):
            cls = CapacityError
        else:
            cls = InvalidRequestError
    if cls is None:
        return error_for_status(status_code, text, provider=PROVIDER, body=body)
    return cls(text, provider=PROVIDER, status_code=status_code, body=body)


# -- reading generated models -----------------------------------------------------------------


def present(value: Any) -> Any:
    """``value``, or None for the generated client's UNSET."""
    return None if type(value).__name__ == "Unset" else value


def _bad(operation: str, field: str, value: Any) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"{operation}: TensorDock sent {field} of type {type(value).__name__}, which its "
        "documentation does not describe",
        provider=PROVIDER,
    )


def text(value: Any, field: str, operation: str) -> str | None:
    """A string field (None when absent or null)."""
    value = present(value)
    if value is None or isinstance(value, str):
        return value
    raise _bad(operation, field, value)


def number(value: Any, field: str, operation: str) -> float | None:
    """A number field (None when absent or null; never a bool)."""
    value = present(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise _bad(operation, field, value)
    if value < 0:
        raise UnexpectedResponseError(f"{operation}: {field} is negative", provider=PROVIDER)
    return float(value)


def count(value: Any, field: str, operation: str) -> int | None:
    """A non-negative integer field."""
    found = number(value, field, operation)
    if found is None:
        return None
    if found != int(found):
        raise _bad(operation, field, value)
    return int(found)


# -- offers: locations and hostnodes ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """What a VM of ``gpus`` GPUs asks for besides them."""

    vcpus: int
    ram_gb: int
    storage_gb: int


def config_for(
    gpus: int,
    *,
    storage_gb: int | None = None,
    max_vcpus: int | None = None,
    max_ram_gb: int | None = None,
) -> Config:
    """Our default configuration for ``gpus`` GPUs within the offer's limits."""
    vcpus, ram = VCPUS_PER_GPU * gpus, RAM_GB_PER_GPU * gpus
    if max_vcpus:
        vcpus = max(2, min(vcpus, max_vcpus - max_vcpus % 2))
    if max_ram_gb:
        ram = max(8, min(ram, max_ram_gb - max_ram_gb % 8))
    return Config(vcpus, ram, storage_gb or MIN_STORAGE_GB)


def price(
    gpus: int, gpu_price: float | None, unit: Any, config: Config, operation: str
) -> tuple[float | None, dict[str, float] | None]:
    """The hourly price of a configuration and its parts (FACTS: ``count*price_per_hr +
    vcpus*per_vcpu_hr + ram_gb*per_gb_ram_hr + storage_gb*per_gb_storage_hr``). None when a
    unit price is missing: an unknown price is never a plausible one."""
    unit = present(unit)
    if gpu_price is None or unit is None:
        return None, None
    per_vcpu = number(unit.per_vcpu_hr, "pricing.per_vcpu_hr", operation)
    per_ram = number(unit.per_gb_ram_hr, "pricing.per_gb_ram_hr", operation)
    per_storage = number(unit.per_gb_storage_hr, "pricing.per_gb_storage_hr", operation)
    if per_vcpu is None or per_ram is None or per_storage is None:
        return None, None
    parts = {
        "gpu": round(gpus * gpu_price, 6),
        "vcpu": round(config.vcpus * per_vcpu, 6),
        "ram": round(config.ram_gb * per_ram, 6),
        "storage": round(config.storage_gb * per_storage, 6),
    }
    return round(sum(parts.values()), 6), parts


def _offer(
    *,
    offer_id: str,
    spec: GPUSpec,
    v0_name: str,
    gpus: int,
    gpu_price: float | None,
    unit: Any,
    config: Config,
    region: str | None,
    available: bool,
    source: str,
    operation: str,
) -> GPUOffer:
    total, parts = price(gpus, gpu_price, unit, config, operation)
    return GPUOffer(
        provider=PROVIDER,
        offer_id=offer_id,
        gpu_type=spec.name,
        provider_gpu_type=v0_name,
        gpu_count=gpus,
        gpu_memory_gb=spec.memory_gb,
        vcpus=config.vcpus,
        ram_gb=config.ram_gb,
        disk_gb=config.storage_gb,
        region=region,
        hourly_price=total,
        price_per_gpu=round(total / gpus, 6) if total is not None else None,
        price_breakdown=parts,
        available=available,
        price_source=source,
    )


def location_offers(locations: Iterable[Any], storage_gb: int | None = None) -> list[GPUOffer]:
    """One offer per location, GPU and count (1 to ``max_count``); ``offer_id`` is
    ``location:<location id>:<v0Name>`` and ``region`` the location id."""
    operation = "list_locations"
    offers: list[GPUOffer] = []
    for location in locations:
        location_id = text(location.id, "location.id", operation)
        if not location_id:
            raise UnexpectedResponseError(f"{operation}: a location has no id", provider=PROVIDER)
        for gpu in location.gpus:
            v0_name = text(gpu.v_0_name, "gpus[].v0Name", operation) or ""
            spec = gpu_of(v0_name)
            if spec is None:
                continue  # a GPU our table does not know: not offered under a wrong name
            limits = present(gpu.resources)
            most = count(gpu.max_count, "gpus[].max_count", operation) or 0
            gpu_price = number(gpu.price_per_hr, "gpus[].price_per_hr", operation)
            for gpus in range(1, min(max(most, 1), MAX_GPUS_PER_OFFER) + 1):
                config = config_for(
                    gpus,
                    storage_gb=storage_gb,
                    max_vcpus=count(present(limits.max_vcpus), "max_vcpus", operation)
                    if limits
                    else None,
                    max_ram_gb=count(present(limits.max_ram_gb), "max_ram_gb", operation)
                    if limits
                    else None,
                )
                offers.append(
                    _offer(
                        offer_id=f"location:{location_id}:{v0_name}",
                        spec=spec,
                        v0_name=v0_name,
                        gpus=gpus,
                        gpu_price=gpu_price,
                        unit=gpu.pricing,
                        config=config,
                        region=location_id,
                        available=gpus <= most,
                        source="GET /locations: gpus[].price_per_hr and gpus[].pricing",
                        operation=operation,
                    )
                )
    return offers


def hostnode_offers(hostnodes: Iterable[Any], storage_gb: int | None = None) -> list[GPUOffer]:
    """One offer per host node, GPU and count (1 to ``availableCount``); ``offer_id`` is
    ``hostnode:<hostnode id>:<v0Name>`` and ``region`` its location id."""
    operation = "list_hostnodes"
    offers: list[GPUOffer] = []
    for node in hostnodes:
        node_id = text(node.id, "hostnode.id", operation)
        if not node_id:
            raise UnexpectedResponseError(f"{operation}: a hostnode has no id", provider=PROVIDER)
        where = present(node.location)
        region = text(node.location_id, "location_id", operation) or (
            text(where.uuid, "location.uuid", operation) if where else None
        )
        resources = present(node.available_resources)
        if resources is None:
            continue
        per_gpu_vcpus = count(resources.max_vcpus_per_gpu, "max_vcpus_per_gpu", operation)
        per_gpu_ram = count(resources.max_ram_per_gpu, "max_ram_per_gpu", operation)
        max_vcpus = count(resources.max_vcpus, "max_vcpus", operation)
        max_ram = count(resources.max_ram_gb, "max_ram_gb", operation)
        for gpu in present(resources.gpus) or []:
            v0_name = text(gpu.v_0_name, "gpus[].v0Name", operation) or ""
            spec = gpu_of(v0_name)
            if spec is None:
                continue
            free = count(gpu.available_count, "gpus[].availableCount", operation) or 0
            gpu_price = number(gpu.price_per_hr, "gpus[].price_per_hr", operation)
            for gpus in range(1, min(max(free, 1), MAX_GPUS_PER_OFFER) + 1):
                caps_v = [c for c in (max_vcpus, per_gpu_vcpus and per_gpu_vcpus * gpus) if c]
                caps_r = [c for c in (max_ram, per_gpu_ram and per_gpu_ram * gpus) if c]
                config = config_for(
                    gpus,
                    storage_gb=storage_gb,
                    max_vcpus=min(caps_v) if caps_v else None,
                    max_ram_gb=min(caps_r) if caps_r else None,
                )
                offers.append(
                    _offer(
                        offer_id=f"hostnode:{node_id}:{v0_name}",
                        spec=spec,
                        v0_name=v0_name,
                        gpus=gpus,
                        gpu_price=gpu_price,
                        unit=node.pricing,
                        config=config,
                        region=region,
                        available=gpus <= free,
                        source="GET /hostnodes: available_resources.gpus[].price_per_hr and "
                        "pricing",
                        operation=operation,
                    )
                )
    return offers


def location_names(locations: Iterable[Any]) -> dict[str, set[str]]:
    """location id -> its lower-case id, city, state/province and country (how launches may
    name a region)."""
    names: dict[str, set[str]] = {}
    for location in locations:
        location_id = text(location.id, "location.id", "list_locations")
        if not location_id:
            continue
        fields = (location.city, location.stateprovince, location.country)
        found = {location_id.lower()}
        found |= {v.strip().lower() for v in map(present, fields) if isinstance(v, str) and v}
        names[location_id] = found
    return names


# -- instances --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fields:
    """An instance's fields, read from whichever envelope carried them."""

    instance_id: str
    name: str | None
    status: str | None
    ip_address: str | None
    ssh_port: int | None
    gpu_type: str | None
    gpu_count: int | None
    hourly_price: float | None


def state_of(status: str | None) -> InstanceState:
    """Our state for a TensorDock status (any capitalisation; unknown -> UNKNOWN)."""
    if status is None:
        return InstanceState.UNKNOWN
    key = re.sub(r"[\s_-]", "", status.lower())
    return STATES.get(key, InstanceState.UNKNOWN)


def _ssh_port(port_forwards: Any, ip: str | None, operation: str) -> int | None:
    for forward in present(port_forwards) or []:
        if count(forward.internal_port, "portForwards[].internal_port", operation) == 22:
            return count(forward.external_port, "portForwards[].external_port", operation)
    return 22 if ip else None  # a dedicated IP: SSH on its own port


def _gpus(resources: Any, operation: str) -> tuple[str | None, int | None]:
    """(canonical GPU, count) of ``resources.gpus``; the type is None when unknown or mixed."""
    resources = present(resources)
    gpus = present(resources.gpus) if resources is not None else None
    if gpus is None:
        return None, None
    kinds: set[str | None] = set()
    total = 0
    for key, gpu in gpus.additional_properties.items():
        spec = gpu_of(text(gpu.v_0_name, "resources.gpus[].v0Name", operation) or key)
        kinds.add(spec.name if spec else None)
        total += count(gpu.count, "resources.gpus[].count", operation) or 0
    kind = kinds.pop() if len(kinds) == 1 else None
    return kind, total or None


def fields_of(item: Any, fallback_id: str | None, operation: str) -> Fields:
    """The fields of a bare instance, of ``data`` (GET's wrapped form), or of a list item
    (``attributes``, else the item itself)."""
    inner = present(getattr(item, "data", None)) or present(getattr(item, "attributes", None))
    sources = [s for s in (inner, item) if s is not None]

    def pick(attribute: str) -> Any:
        for source in sources:
            value = present(getattr(source, attribute, None))
            if value is not None:
                return value
        return None

    # The outer id first (a list item's own id); empty strings are no id.
    ids = [text(present(getattr(s, "id", None)), "id", operation) for s in reversed(sources)]
    instance_id = next((i for i in ids if i), None) or fallback_id
    if not instance_id:
        raise UnexpectedResponseError(f"{operation}: an instance has no id", provider=PROVIDER)
    ip = text(pick("ip_address"), "ipAddress", operation)
    gpu_type, gpu_count = _gpus(pick("resources"), operation)
    return Fields(
        instance_id=instance_id,
        name=text(pick("name"), "name", operation),
        status=text(pick("status"), "status", operation),
        ip_address=ip or None,
        ssh_port=_ssh_port(pick("port_forwards"), ip, operation),
        gpu_type=gpu_type,
        gpu_count=gpu_count,
        hourly_price=number(pick("rate_hourly"), "rateHourly", operation),
    )


def instance_from(fields: Fields, *, region: str | None = None) -> GPUInstance:
    """A ``GPUInstance`` from an instance's fields."""
    return GPUInstance(
        provider=PROVIDER,
        instance_id=fields.instance_id,
        name=fields.name,
        state=state_of(fields.status),
        provider_state=fields.status,
        gpu_type=fields.gpu_type,
        gpu_count=fields.gpu_count,
        region=region,
        hourly_price=fields.hourly_price,
        public_ip=fields.ip_address,
        ssh_port=fields.ssh_port,
    )


def status_from(fields: Fields) -> InstanceStatus:
    """Ready means ``running`` with an address to reach SSH on (the docs: poll until
    running with an ``ipAddress``)."""
    state = state_of(fields.status)
    return InstanceStatus(
        instance_id=fields.instance_id,
        state=state,
        provider_state=fields.status,
        ready=state is InstanceState.RUNNING and bool(fields.ip_address and fields.ssh_port),
        public_ip=fields.ip_address,
        ssh_port=fields.ssh_port,
    )


def list_items(data: Any) -> list[Any]:
    """The instances of GET /instances in either wrapper (spec I3)."""
    items = present(data.instances)
    attributes = present(data.attributes)
    if items is None and attributes is not None:
        items = present(attributes.instances)
    if items is None:
        raise UnexpectedResponseError(
            "list_instances: TensorDock's answer has no data.instances (nor "
            "data.attributes.instances)",
            provider=PROVIDER,
        )
    return list(items)


def action_status(data: Any, instance_id: str, operation: str) -> InstanceStatus:
    """The status a start/stop answer reports."""
    attributes = present(data.attributes)
    status = text(attributes.status, "attributes.status", operation) if attributes else None
    answered = text(data.id, "id", operation)
    return InstanceStatus(
        instance_id=answered or instance_id, state=state_of(status), provider_state=status
    )
