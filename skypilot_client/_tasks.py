"""Task YAML handling (always PyYAML ``safe_load``) and cost estimation. No I/O."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError

if TYPE_CHECKING:  # pydantic models load on first use
    from .models import AcceleratorOffer, CostEstimate


def load_task(task: str | dict[str, Any], *, what: str = "task") -> dict[str, Any]:
    """Parse and check a task: YAML text or a mapping -> a fresh mapping."""
    if isinstance(task, dict):
        return copy.deepcopy(task)
    if not isinstance(task, str) or not task.strip():
        raise InvalidInputError(f"{what} must be non-empty YAML text or a mapping")
    import yaml  # deferred: keeps `import skypilot_client` fast

    try:
        docs = [d for d in yaml.safe_load_all(task) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{what} is not valid YAML: {exc}") from exc
    # A chain DAG (as the official SDK sends) starts with a `name:`-only header document.
    if len(docs) == 2 and isinstance(docs[0], dict) and set(docs[0]) <= {"name"}:
        docs = docs[1:]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InvalidInputError(f"{what} must be one YAML mapping (a single SkyPilot task)")
    data: dict[str, Any] = docs[0]
    resources = data.get("resources")
    if resources is not None and not isinstance(resources, (dict, list)):
        raise InvalidInputError(f"{what}: 'resources' must be a mapping or a list of mappings")
    envs = data.get("envs")
    if envs is not None and not isinstance(envs, dict):
        raise InvalidInputError(f"{what}: 'envs' must be a mapping")
    return data


def dump_task(task: dict[str, Any]) -> str:
    """Serialize a task mapping back to YAML for the server."""
    import yaml

    return str(yaml.safe_dump(task, sort_keys=False))


def prepare_launch_task(
    task: str | dict[str, Any],
    *,
    envs: dict[str, str],
    idle_minutes_to_stop: int | None,
    down: bool,
) -> str:
    """Merge envs and autostop into the task (autostop lives in ``resources``)."""
    data = load_task(task)
    if envs:
        data["envs"] = {**(data.get("envs") or {}), **envs}
    if idle_minutes_to_stop is not None:
        autostop = {"idle_minutes": idle_minutes_to_stop, "down": down}
        resources = data.get("resources")
        if resources is None:
            data["resources"] = {"autostop": autostop}
        elif isinstance(resources, dict):
            resources["autostop"] = autostop
        else:
            for entry in resources:
                if isinstance(entry, dict):
                    entry["autostop"] = autostop
    elif down:
        raise InvalidInputError("down=True needs idle_minutes_to_stop (when to tear down)")
    return dump_task(data)


def command_task(command: str, envs: dict[str, str]) -> str:
    """A task that runs one shell command (for ``execute``)."""
    data: dict[str, Any] = {"run": command}
    if envs:
        data["envs"] = envs
    return dump_task(data)


@dataclass(frozen=True)
class ResourceSpec:
    """What a task asks for, as far as pricing is concerned."""

    accelerator: str | None
    accelerator_count: float
    cloud: str | None
    region: str | None
    instance_type: str | None
    spot: bool
    num_nodes: int


_ACC_TEXT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?::\s*([0-9.]+))?\s*$")


def _parse_accelerators(value: Any) -> tuple[str | None, float]:
    if value is None:
        return None, 0
    if isinstance(value, list):  # "any of": price the first choice
        if not value:
            return None, 0
        return _parse_accelerators(value[0])
    if isinstance(value, dict):
        if len(value) != 1:
            raise InvalidInputError("estimate_cost: give exactly one accelerator type")
        name, count = next(iter(value.items()))
        return str(name), float(count if count is not None else 1)
    if isinstance(value, str):
        match = _ACC_TEXT.match(value)
        if match is None:
            raise InvalidInputError(f"cannot read accelerators {value!r} (use 'H100:8')")
        return match.group(1), float(match.group(2) or 1)
    raise InvalidInputError(f"cannot read accelerators {value!r}")


def resource_spec(task: str | dict[str, Any], *, spot: bool | None) -> ResourceSpec:
    """Read the resources relevant to pricing from a task."""
    data = load_task(task)
    resources = data.get("resources") or {}
    if isinstance(resources, list):
        resources = resources[0] if resources else {}
    accelerator, count = _parse_accelerators(resources.get("accelerators"))
    cloud = resources.get("cloud")
    region = resources.get("region")
    infra = resources.get("infra")
    if isinstance(infra, str) and infra.strip():
        parts = infra.strip().split("/")
        cloud = parts[0] if parts[0] not in ("*", "") else cloud
        if len(parts) > 1 and parts[1] not in ("*", ""):
            region = parts[1]
    instance_type = resources.get("instance_type")
    if accelerator is None and instance_type is None:
        raise InvalidInputError(
            "estimate_cost needs 'accelerators' or 'instance_type' in the task's resources"
        )
    num_nodes = data.get("num_nodes", 1)
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 1:
        raise InvalidInputError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    return ResourceSpec(
        accelerator=accelerator,
        accelerator_count=count,
        cloud=str(cloud).lower() if cloud else None,
        region=str(region) if region else None,
        instance_type=str(instance_type) if instance_type else None,
        spot=bool(resources.get("use_spot", False)) if spot is None else spot,
        num_nodes=num_nodes,
    )


def offers_from_list_accelerators(
    value: Any, *, operation: str = "list_accelerators", request_id: str | None = None
) -> list[AcceleratorOffer]:
    """Rows of ``/list_accelerators`` (``{name: [[cloud, type, ...], ...]}``) as models.

    A row we cannot read is a ``MalformedResponseError`` naming it, never skipped silently.
    """
    from ._protocol import expect_dict, expect_list, malformed, parse_answer
    from .models import AcceleratorOffer

    where = "return_value"
    offers: list[AcceleratorOffer] = []
    table = expect_dict(value, operation=operation, where=where, request_id=request_id)
    for name, rows in table.items():
        at = f"{where}[{name!r}]"
        for i, row in enumerate(expect_list(rows, operation=operation, where=at)):
            if not isinstance(row, list) or len(row) < 10:
                problem = "expected a row of 10 values"
                raise malformed(operation, f"{at}[{i}]", problem, request_id=request_id)
            fields = {
                "accelerator": str(name),
                "cloud": row[0],
                "instance_type": row[1],
                "accelerator_count": row[3],
                "cpu_count": row[4],
                "device_memory_gib": row[5],
                "memory_gib": row[6],
                "price": row[7],
                "spot_price": row[8],
                "region": row[9],
            }
            offers.append(
                parse_answer(
                    AcceleratorOffer,
                    fields,
                    operation=operation,
                    where=f"{at}[{i}]",
                    request_id=request_id,
                )
            )
    return offers


def cheapest(spec: ResourceSpec, offers: list[AcceleratorOffer], hours: float) -> CostEstimate:
    """Price ``spec`` with the cheapest matching offer."""
    from .models import CostEstimate

    def matches(offer: AcceleratorOffer) -> bool:
        if spec.accelerator and offer.accelerator.lower() != spec.accelerator.lower():
            return False
        if spec.accelerator and offer.accelerator_count != spec.accelerator_count:
            return False
        if spec.cloud and offer.cloud.lower() != spec.cloud:
            return False
        if spec.region and offer.region != spec.region:
            return False
        if spec.instance_type and offer.instance_type != spec.instance_type:
            return False
        return (offer.spot_price if spec.spot else offer.price) is not None

    candidates = [o for o in offers if matches(o)]
    if not candidates:
        wanted = spec.instance_type or f"{spec.accelerator}:{spec.accelerator_count:g}"
        where = "/".join(p for p in (spec.cloud, spec.region) if p) or "the enabled clouds"
        kind = "spot" if spec.spot else "on-demand"
        raise InvalidInputError(f"no {kind} price for {wanted} in {where}")

    def price(offer: AcceleratorOffer) -> float:
        value = offer.spot_price if spec.spot else offer.price
        assert value is not None  # filtered above
        return float(value)

    best = min(candidates, key=price)
    per_hour = round(price(best) * spec.num_nodes, 6)
    return CostEstimate(
        estimated_cost=round(per_hour * hours, 6),
        cost_per_hour=per_hour,
        hours=hours,
        cloud=best.cloud,
        region=best.region,
        instance_type=best.instance_type,
        accelerator=spec.accelerator and best.accelerator,
        accelerator_count=best.accelerator_count if spec.accelerator else None,
        num_nodes=spec.num_nodes,
        spot=spec.spot,
    )
