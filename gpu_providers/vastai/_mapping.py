"""Vast.ai <-> normalized types: the offer query, offers, instances and error bodies (no I/O).

Units (FACTS.md): ``gpu_ram`` and ``cpu_ram`` are MB in the REST API (the CLI shows GB and
multiplies by 1000 when it builds a query), ``storage_cost`` is USD per GB per month,
``storage_total_cost`` USD per hour for the disk the search assumed (``allocated_storage``),
``inet_up_cost``/``inet_down_cost`` USD per GB, ``dph_*`` and ``min_bid`` USD per hour for
the whole offer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import (
    AuthenticationError,
    BillingError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    error_for_status,
)
from ..gpus import GPUSpec, gpu_spec
from ..types import GPUFilters, GPUInstance, GPUOffer, InstanceState, InstanceStatus

PROVIDER = "vastai"

#: Vast.ai's ``gpu_name`` values for each canonical GPU (names as Vast.ai spells them in
#: offers; gpuhunt's table and the spec's examples). Names shared by two memory sizes
#: (A100, V100) are told apart by ``gpu_ram``.
GPU_NAMES: dict[str, tuple[str, ...]] = {
    "B200": ("B200",),
    "H200": ("H200", "H200 NVL"),
    "H100": ("H100 SXM", "H100 PCIE", "H100 NVL"),
    "A100-80GB": ("A100 SXM4", "A100 PCIE", "A100X"),
    "A100": ("A100 SXM4", "A100 PCIE"),
    "L40S": ("L40S",),
    "L40": ("L40",),
    "L4": ("L4",),
    "A40": ("A40",),
    "A10": ("A10",),
    "A6000": ("RTX A6000",),
    "A5000": ("RTX A5000",),
    "A4000": ("RTX A4000",),
    "RTX6000-Ada": ("RTX 6000Ada",),
    "RTX4090": ("RTX 4090",),
    "RTX3090": ("RTX 3090",),
    "V100-32GB": ("Tesla V100",),
    "V100": ("Tesla V100",),
    "T4": ("Tesla T4",),
}
_BY_NAME: dict[str, list[GPUSpec]] = {}
for _canonical, _names in GPU_NAMES.items():
    for _name in _names:
        _BY_NAME.setdefault(_name.upper(), []).append(gpu_spec(_canonical))

#: What an instance's ``actual_status`` means (FACTS.md "Instance fields"). ``exited``,
#: ``unknown`` and ``offline`` never reach ``running`` again (the spec's "poll trap"):
#: FAILED, so waits end and the caller destroys the instance.
STATES: dict[str | None, InstanceState] = {
    None: InstanceState.PENDING,  # provisioning
    "created": InstanceState.PENDING,
    "loading": InstanceState.PENDING,
    "rebooting": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopped": InstanceState.STOPPED,
    "frozen": InstanceState.STOPPED,
    "exited": InstanceState.FAILED,
    "unknown": InstanceState.FAILED,
    "offline": InstanceState.FAILED,
}
_NEVER_RUNNING = frozenset({"exited", "unknown", "offline"})

#: Offer search defaults of the vendor CLI (FACTS.md): rentable, not rented, not external.
BASE_QUERY: dict[str, Any] = {
    "rentable": {"eq": True},
    "rented": {"eq": False},
    "external": {"eq": False},
}
OFFER_LIMIT = 200
HOURS_PER_MONTH = 30 * 24  # storage_cost is per GB and month; gpuhunt divides the same way
_COUNTRY = re.compile(r",\s*([A-Z]{2})\s*$")


# -- helpers ------------------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """A finite, non-negative JSON number, else None (never a bool or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) and result >= 0 else None


def count(value: Any) -> int | None:
    """A positive JSON integer, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def country(geolocation: Any) -> str | None:
    """The country code of an offer's ``geolocation`` ("Oslo, NO" -> "NO")."""
    if not isinstance(geolocation, str):
        return None
    match = _COUNTRY.search(geolocation)
    return match.group(1) if match else None


def canonical_gpu(name: Any, ram_mb: Any) -> GPUSpec | None:
    """The canonical GPU of Vast.ai's ``gpu_name`` (and per-GPU ``gpu_ram`` in MB when the
    name covers two memory sizes); None when unknown or ambiguous."""
    if not isinstance(name, str):
        return None
    specs = _BY_NAME.get(name.strip().upper(), [])
    if len(specs) <= 1:
        return specs[0] if specs else None
    ram = number(ram_mb)
    if ram is None:
        return None
    return min(specs, key=lambda s: abs(s.memory_gb - ram / 1000))


def vast_names(canonical: str) -> tuple[str, ...]:
    """Vast.ai's ``gpu_name`` values for a canonical GPU (empty when it has none)."""
    return GPU_NAMES.get(canonical, ())


# -- the offer query ----------------------------------------------------------------------------


def search_query(
    filters: GPUFilters,
    *,
    spot: bool,
    disk_gb: float,
    regions: list[str] | None = None,
    min_cuda: str | None = None,
    gpu_count: int | None = None,
) -> dict[str, Any]:
    """The ``POST /bundles/`` body for ``filters`` (one kind: interruptible or on-demand).

    ``regions`` are country codes already translated; ``gpu_count`` asks for exactly that
    many GPUs (a launch); ``disk_gb`` is what the prices assume and what hosts must have.
    """
    query: dict[str, Any] = {key: dict(value) for key, value in BASE_QUERY.items()}
    if filters.verified_only is not False:
        query["verified"] = {"eq": True}
    if filters.min_reliability is not None:
        query["reliability"] = {"gte": filters.min_reliability}
    if filters.gpu_types is not None:
        names = sorted({n for g in filters.gpu_types for n in vast_names(g)})
        query["gpu_name"] = {"in": names}
    if gpu_count is not None:
        query["num_gpus"] = {"eq": gpu_count}
    else:
        num: dict[str, int] = {"gte": filters.min_gpu_count}
        if filters.max_gpu_count is not None:
            num["lte"] = filters.max_gpu_count
        query["num_gpus"] = num
    if filters.min_gpu_memory_gb is not None:
        query["gpu_ram"] = {"gte": filters.min_gpu_memory_gb * 1000}  # GB -> MB, as the CLI
    if regions:
        query["geolocation"] = {"in": list(regions)}
    if min_cuda is not None:
        query["cuda_max_good"] = {"gte": float(min_cuda)}
    query["disk_space"] = {"gte": disk_gb}
    # Two pairs: cheapest, then most reliable (the spec also wants exactly two entries).
    query["order"] = [["dph_total", "asc"], ["reliability", "desc"]]
    query["type"] = "bid" if spot else "ondemand"
    query["limit"] = OFFER_LIMIT
    query["allocated_storage"] = disk_gb
    return query


# -- offers -------------------------------------------------------------------------------------


def storage_per_hour(offer: Mapping[str, Any], disk_gb: float) -> float | None:
    """USD/hour for the disk: the offer's ``storage_total_cost`` when it states one, else
    ``storage_cost`` (USD/GB/month) for ``disk_gb`` over a 30-day month."""
    total = number(offer.get("storage_total_cost"))
    if total is not None:
        return total
    monthly = number(offer.get("storage_cost"))
    return None if monthly is None else monthly * disk_gb / HOURS_PER_MONTH


def offer_from_api(offer: Any, *, spot: bool, disk_gb: float) -> GPUOffer | None:
    """A ``GPUOffer`` from one ``offers[]`` item; None for offers without a GPU we know.

    The hourly price is what renting costs per hour: the GPUs (``dph_base`` on demand,
    the minimum bid ``min_bid`` when interruptible) plus the disk, listed in
    ``price_breakdown`` as ``compute`` and ``storage``. Bandwidth is billed per GB and stays
    in its own fields.
    """
    if not isinstance(offer, Mapping):
        raise TypeError("an offer is not an object")
    offer_id = offer.get("id")
    if isinstance(offer_id, bool) or not isinstance(offer_id, int):
        raise TypeError("offer id is not an integer")
    gpus = count(offer.get("num_gpus"))
    spec = canonical_gpu(offer.get("gpu_name"), offer.get("gpu_ram"))
    if gpus is None or spec is None:
        return None
    compute = number(offer.get("min_bid" if spot else "dph_base"))
    storage = storage_per_hour(offer, disk_gb)
    # The parts are listed only when both are known: they add up to hourly_price.
    parts = (
        None
        if compute is None or storage is None
        else {"compute": compute, "storage": round(storage, 6)}
    )
    hourly = round(sum(parts.values()), 6) if parts is not None else None
    ram_mb = number(offer.get("gpu_ram"))
    cores, effective = number(offer.get("cpu_cores")), number(offer.get("cpu_cores_effective"))
    cpu_ram = number(offer.get("cpu_ram"))
    # The offer's share of host RAM (gpuhunt: cpu_ram * cpu_cores_effective / cpu_cores).
    ram_gb = (
        round(cpu_ram * effective / cores / 1000, 1)
        if cpu_ram is not None and effective is not None and cores
        else None
    )
    reliability = number(offer.get("reliability"))
    verification = offer.get("verification")
    verified = (
        verification == "verified"
        if verification in ("verified", "unverified", "deverified")
        else None
    )
    component = "min_bid" if spot else "dph_base"
    return GPUOffer(
        provider=PROVIDER,
        offer_id=str(offer_id),
        gpu_type=spec.name,
        provider_gpu_type=str(offer.get("gpu_name")),
        gpu_count=gpus,
        gpu_memory_gb=round(ram_mb / 1000, 3) if ram_mb is not None else None,
        vcpus=effective,
        ram_gb=ram_gb,
        disk_gb=disk_gb,
        region=country(offer.get("geolocation")),
        hourly_price=hourly,
        price_per_gpu=round(hourly / gpus, 6) if hourly is not None else None,
        spot=spot,
        available=offer.get("rentable") is True and offer.get("rented") is not True,
        price_source=f"POST /api/v0/bundles/: {component} + storage for {disk_gb:g} GB",
        price_breakdown=parts,
        upload_price_per_gb=number(offer.get("inet_up_cost")),
        download_price_per_gb=number(offer.get("inet_down_cost")),
        reliability=reliability if reliability is not None and reliability <= 1 else None,
        verified=verified,
    )


def compute_price(offer: GPUOffer) -> float | None:
    """The GPU part of an offer's hourly price (on demand, or the minimum bid), if known."""
    return (offer.price_breakdown or {}).get("compute")


def offers_from_api(items: Any, *, spot: bool, disk_gb: float) -> list[GPUOffer]:
    """Offers from a search answer's ``offers`` list."""
    if not isinstance(items, list):
        raise TypeError("offers is not a list")
    found = (offer_from_api(item, spot=spot, disk_gb=disk_gb) for item in items)
    return [offer for offer in found if offer is not None]


# -- instances ----------------------------------------------------------------------------------


def _unset(value: Any) -> Any:
    # Generated models use an UNSET sentinel (falsy, not None) for absent fields.
    return None if value is None or type(value).__name__ == "Unset" else value


def _text(value: Any) -> str | None:
    value = _unset(value)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("a text field is not a string")
    return value or None


def _state(instance: Any) -> tuple[InstanceState, str | None]:
    """Our state and Vast.ai's ``actual_status``.

    An interruptible instance that is stopped although it is meant to run was outbid
    (dstack reads the same from these fields): PREEMPTED.
    """
    actual = _text(instance.actual_status)
    state = STATES.get(actual, InstanceState.UNKNOWN)
    if (
        state is InstanceState.STOPPED
        and _unset(instance.is_bid) is True
        and _text(instance.intended_status) == "running"
    ):
        state = InstanceState.PREEMPTED
    return state, actual


def _ssh(instance: Any) -> tuple[str | None, int | None]:
    """Vast.ai's SSH proxy address (``ssh -p <ssh_port> root@<ssh_host>``)."""
    host = _text(instance.ssh_host)
    port = _unset(instance.ssh_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        port = None
    return host, port


def instance_id_of(instance: Any) -> str:
    """The id of an Instance (an integer upstream)."""
    value = _unset(instance.id)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("instance id is not an integer")
    return str(value)


def instance_from_api(instance: Any) -> GPUInstance:
    """A ``GPUInstance`` from Vast.ai's ``Instance``. ``name`` is its ``label``."""
    state, actual = _state(instance)
    host, port = _ssh(instance)
    spec = canonical_gpu(_unset(instance.gpu_name), _unset(instance.gpu_ram))
    started = number(_unset(instance.start_date))
    is_bid = _unset(instance.is_bid)
    return GPUInstance(
        provider=PROVIDER,
        instance_id=instance_id_of(instance),
        name=_text(instance.label),
        state=state,
        provider_state=actual,
        gpu_type=spec.name if spec else None,
        gpu_count=count(_unset(instance.num_gpus)),
        region=country(_unset(instance.geolocation)) or _text(instance.geolocation),
        hourly_price=number(_unset(instance.dph_total)),
        public_ip=host,
        ssh_port=port,
        spot=is_bid is True,
        created_at=_when(started),
    )


#: Epoch seconds we read as a date (1970 to 2100); anything else is no date we trust.
_LATEST = 4_102_444_800


def _when(epoch: float | None) -> datetime | None:
    if epoch is None or not 0 < epoch < _LATEST:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def status_from_api(instance: Any) -> InstanceStatus:
    """An ``InstanceStatus``: ready means ``running`` with the SSH proxy host and port."""
    state, actual = _state(instance)
    host, port = _ssh(instance)
    message = _text(instance.status_msg)
    if actual in _NEVER_RUNNING:
        message = f"Vast.ai reports {actual}: it will not reach running again; destroy it" + (
            f" ({message})" if message else ""
        )
    elif state is InstanceState.PREEMPTED:
        message = "interruptible instance stopped by Vast.ai (outbid)"
    return InstanceStatus(
        instance_id=instance_id_of(instance),
        state=state,
        provider_state=actual,
        ready=actual == "running" and host is not None and port is not None,
        public_ip=host,
        ssh_port=port,
        message=message,
    )


def created_id(parsed: Any, body: Any) -> str | None:
    """The instance id a create answer names (``new_contract``), or None."""
    value = body.get("new_contract") if isinstance(body, Mapping) else None
    if value is None and parsed is not None:
        value = _unset(getattr(parsed, "new_contract", None))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return str(value)


def filter_by_prefix(instances: Iterable[GPUInstance], prefix: str | None) -> list[GPUInstance]:
    """The instances whose name (label) starts with ``prefix`` (all without one)."""
    return [i for i in instances if not prefix or (i.name or "").startswith(prefix)]


# -- errors -------------------------------------------------------------------------------------

#: Error codes in Vast.ai's bodies (``{"success": false, "error": code, "msg": text}``), from
#: the spec's error responses and the vendor's clients (FACTS.md "Errors and rate limits").
ERROR_CODES: dict[str, type[ProviderError]] = {
    "auth_error": AuthenticationError,
    "unauthorized": AuthenticationError,
    "not_authorized": AuthenticationError,
    "forbidden": AuthenticationError,
    "invalid_args": InvalidRequestError,
    "invalid_request": InvalidRequestError,
    "invalid_price": InvalidRequestError,
    "invalid_token": InvalidRequestError,  # a bad pagination cursor (showInstances 400)
    "invalid_id": InvalidRequestError,
    "missing_input": InvalidRequestError,
    "no_ssh_key_for_vm": InvalidRequestError,
    "no_such_ask": CapacityError,  # the offer was rented by someone else meanwhile
    "not_found": InstanceNotFoundError,
    "no_such_instance": InstanceNotFoundError,
    "insufficient_balance": BillingError,
    "insufficient_credit": BillingError,
    "rate_limit_exceeded": RateLimitError,
}
#: The offer-gone answers of createInstance: 404 and 410 ``no_such_ask``.
_GONE_OFFER = re.compile(r"\bno_such_ask\b")


def _fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) of an error body: JSON ``{error, msg|message|detail}`` or text."""
    if isinstance(body, Mapping):
        code = body.get("error")
        message = next(
            (body[k] for k in ("msg", "message", "detail") if isinstance(body.get(k), str)),
            None,
        )
        return (code if isinstance(code, str) and code else None), message
    if isinstance(body, str) and body.strip():
        return None, body.strip()[:200]
    return None, None


def classify(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a non-2xx Vast.ai answer.

    A launch's 404/410 (the offer is gone or cannot start) is ``CapacityError``; a 404 is
    "not found" only with Vast.ai's own error code (``not_found``, ``no_such_instance``),
    never bare. 429 comes without ``Retry-After`` (as text or ``{"detail": ...}``).
    """
    code, message = _fields(body)
    text = f"{operation}: {message or f'HTTP {status_code}'}"
    cls = ERROR_CODES.get(code or "")
    if operation == "launch" and (
        status_code in (404, 410) or (message is not None and _GONE_OFFER.search(message))
    ):
        cls = CapacityError
    elif cls is InstanceNotFoundError and operation == "launch":
        cls = InvalidRequestError
    elif status_code == 429:
        cls = RateLimitError
    elif status_code == 401:
        cls = AuthenticationError
    elif status_code == 402 or (status_code == 411 and message and "credit" in message.lower()):
        cls = BillingError  # 411 "Insufficient credit" (prepayInstance, the spec's example)
    if cls is None:
        return error_for_status(status_code, text, code=code, provider=PROVIDER, body=body)
    return cls(text, provider=PROVIDER, status_code=status_code, code=code, body=body)
