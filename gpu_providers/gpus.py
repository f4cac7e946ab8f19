"""The one GPU table: canonical (SkyPilot) names and each provider's names for them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPU_TABLE", "GPUSpec", "canonical_gpu_name", "known_gpu_names"]


@dataclass(frozen=True)
class GPUSpec:
    """A canonical GPU and what each provider calls it.

    Attributes:
        name: SkyPilot's accelerator name.
        memory_gb: GPU memory.
        lambda_cloud: Token in Lambda instance-type names (``gpu_8x_<token>...``).
        runpod: RunPod GPU type ids, preferred first.
        paperspace: Paperspace ``machineType`` label for one GPU (``x<N>`` is appended for more).
        aliases: Other spellings users type.
    """

    name: str
    memory_gb: float
    lambda_cloud: str | None = None
    runpod: tuple[str, ...] = ()
    paperspace: str | None = None
    aliases: tuple[str, ...] = ()


GPU_TABLE: tuple[GPUSpec, ...] = (
    GPUSpec("B200", 180, "b200", ("NVIDIA B200",)),
    GPUSpec("H200", 141, None, ("NVIDIA H200",), None, ("H200-SXM",)),
    GPUSpec("GH200", 96, "gh200"),
    GPUSpec(
        "H100",
        80,
        "h100",
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL"),
        "H100",
        ("H100-80GB", "H100-SXM", "H100-PCIE"),
    ),
    GPUSpec(
        "A100-80GB",
        80,
        "a100_80gb",
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
        "A100-80G",
        ("A100-80G",),
    ),
    GPUSpec("A100", 40, "a100", ("NVIDIA A100-SXM4-40GB",), "A100", ("A100-40GB",)),
    GPUSpec("L40S", 48, None, ("NVIDIA L40S",)),
    GPUSpec("L40", 48, None, ("NVIDIA L40",)),
    GPUSpec("L4", 24, None, ("NVIDIA L4",)),
    GPUSpec("A40", 48, None, ("NVIDIA A40",)),
    GPUSpec("A10G", 24, None, ()),
    GPUSpec("A10", 24, "a10", ()),
    GPUSpec("A6000", 48, "a6000", ("NVIDIA RTX A6000",), "A6000", ("RTXA6000",)),
    GPUSpec("A5000", 24, None, ("NVIDIA RTX A5000",), "A5000", ("RTXA5000",)),
    GPUSpec("A4000", 16, None, ("NVIDIA RTX A4000",), "A4000", ("RTXA4000",)),
    GPUSpec("RTX6000-Ada", 48, None, ("NVIDIA RTX 6000 Ada Generation",), None, ("RTX6000ADA",)),
    GPUSpec("RTX6000", 24, "rtx6000", (), None, ("QUADRO-RTX6000",)),
    GPUSpec("RTX5000", 16, None, (), "RTX5000"),
    GPUSpec("RTX4000", 8, None, (), "RTX4000"),
    GPUSpec("RTX4090", 24, None, ("NVIDIA GeForce RTX 4090",), None, ("RTX-4090",)),
    GPUSpec("RTX3090", 24, None, ("NVIDIA GeForce RTX 3090",), None, ("RTX-3090",)),
    GPUSpec("V100-32GB", 32, None, ("Tesla V100-SXM2-32GB",), "V100-32G"),
    GPUSpec("V100", 16, "v100", ("Tesla V100-SXM2-16GB",), "V100"),
    GPUSpec("P4000", 8, None, (), "P4000"),
    GPUSpec("T4", 16, None, ("Tesla T4",)),
)

_BY_KEY: dict[str, GPUSpec] = {}
for _spec in GPU_TABLE:
    for _key in (_spec.name, *_spec.aliases):
        _BY_KEY[_key.upper()] = _spec


def known_gpu_names() -> list[str]:
    """Every canonical GPU name, in table order."""
    return [spec.name for spec in GPU_TABLE]


def gpu_spec(name: str) -> GPUSpec:
    """The table row of a canonical name or alias (case-insensitive); ValueError if unknown."""
    spec = _BY_KEY.get(name.strip().upper()) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"unknown GPU type {name!r}; known types: {', '.join(known_gpu_names())}")
    return spec


def canonical_gpu_name(name: str) -> str:
    """The canonical name for ``name`` (``h100`` -> ``H100``); ValueError if unknown."""
    return gpu_spec(name).name
