"""The one GPU table: canonical (SkyPilot) names and each provider's names for them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPU_TABLE", "GPUSpec", "canonical_gpu_name", "known_gpu_names"]


@dataclass(frozen=True, kw_only=True)
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
    GPUSpec(name="B200", memory_gb=180, lambda_cloud="b200", runpod=("NVIDIA B200",)),
    GPUSpec(name="H200", memory_gb=141, runpod=("NVIDIA H200",), aliases=("H200-SXM",)),
    GPUSpec(name="GH200", memory_gb=96, lambda_cloud="gh200"),
    GPUSpec(
        name="H100",
        memory_gb=80,
        lambda_cloud="h100",
        runpod=("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL"),
        paperspace="H100",
        aliases=("H100-80GB", "H100-SXM", "H100-PCIE"),
    ),
    GPUSpec(
        name="A100-80GB",
        memory_gb=80,
        lambda_cloud="a100_80gb",
        runpod=("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
        paperspace="A100-80G",
        aliases=("A100-80G",),
    ),
    GPUSpec(
        name="A100",
        memory_gb=40,
        lambda_cloud="a100",
        runpod=("NVIDIA A100-SXM4-40GB",),
        paperspace="A100",
        aliases=("A100-40GB",),
    ),
    GPUSpec(name="L40S", memory_gb=48, runpod=("NVIDIA L40S",)),
    GPUSpec(name="L40", memory_gb=48, runpod=("NVIDIA L40",)),
    GPUSpec(name="L4", memory_gb=24, runpod=("NVIDIA L4",)),
    GPUSpec(name="A40", memory_gb=48, runpod=("NVIDIA A40",)),
    GPUSpec(name="A10G", memory_gb=24),
    GPUSpec(name="A10", memory_gb=24, lambda_cloud="a10"),
    GPUSpec(
        name="A6000",
        memory_gb=48,
        lambda_cloud="a6000",
        runpod=("NVIDIA RTX A6000",),
        paperspace="A6000",
        aliases=("RTXA6000",),
    ),
    GPUSpec(
        name="A5000",
        memory_gb=24,
        runpod=("NVIDIA RTX A5000",),
        paperspace="A5000",
        aliases=("RTXA5000",),
    ),
    GPUSpec(
        name="A4000",
        memory_gb=16,
        runpod=("NVIDIA RTX A4000",),
        paperspace="A4000",
        aliases=("RTXA4000",),
    ),
    GPUSpec(
        name="RTX6000-Ada",
        memory_gb=48,
        runpod=("NVIDIA RTX 6000 Ada Generation",),
        aliases=("RTX6000ADA",),
    ),
    GPUSpec(name="RTX6000", memory_gb=24, lambda_cloud="rtx6000", aliases=("QUADRO-RTX6000",)),
    GPUSpec(name="RTX5000", memory_gb=16, paperspace="RTX5000"),
    GPUSpec(name="RTX4000", memory_gb=8, paperspace="RTX4000"),
    GPUSpec(
        name="RTX4090", memory_gb=24, runpod=("NVIDIA GeForce RTX 4090",), aliases=("RTX-4090",)
    ),
    GPUSpec(
        name="RTX3090", memory_gb=24, runpod=("NVIDIA GeForce RTX 3090",), aliases=("RTX-3090",)
    ),
    GPUSpec(
        name="V100-32GB", memory_gb=32, runpod=("Tesla V100-SXM2-32GB",), paperspace="V100-32G"
    ),
    GPUSpec(
        name="V100",
        memory_gb=16,
        lambda_cloud="v100",
        runpod=("Tesla V100-SXM2-16GB",),
        paperspace="V100",
    ),
    GPUSpec(name="P4000", memory_gb=8, paperspace="P4000"),
    GPUSpec(name="T4", memory_gb=16, runpod=("Tesla T4",)),
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
