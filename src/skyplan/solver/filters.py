"""The filters of the planning pipeline: each narrows the candidate offers for one option.

A filter is a small object with a stable kebab-case `name` (shared with explanations and,
later, the DSL), an `expr()` that returns a Polars boolean expression over the candidate frame
(or None when it does not apply to this option), and a `requirement()` sentence for users.
Filters are evaluated over the whole frame at once, never row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

from skyplan.catalog import Catalog, hardware
from skyplan.catalog import schema as c
from skyplan.catalog.expr import glob_expr
from skyplan.model import CpuSpec, MemorySpec, ResourceOption
from skyplan.registry import Registry

#: Instance families SkyPilot picks from when a task names neither an accelerator nor an
#: instance type; clouds not listed accept any family.
CPU_DEFAULT_FAMILIES: dict[str, str] = {
    "aws": r"^(m6i|c6i|r6i)\.",
    "gcp": r"^n4-(standard|highmem|highcpu)-",
    "azure": r"^Standard_(D\d+s_v5|E\d+s_v5|F\d+s_v2)$",
}
#: The CPU-only default when a task sets neither cpus nor memory: 8+ vCPUs, 4 GiB per vCPU.
DEFAULT_CPUS = CpuSpec(count=8, at_least=True)
DEFAULT_MEMORY_RATIO = MemorySpec(gib=4, mode="per_cpu")
#: Machines that exist already (this machine, SSH pools, Kubernetes nodes) come as they are:
#: the cloud instance-size defaults above do not apply to them.
POOL_CLOUDS = ("local", "ssh", "kubernetes")


def _sized_by_default(expr: pl.Expr) -> pl.Expr:
    return pl.col(c.CLOUD).is_in(POOL_CLOUDS) | expr


@dataclass(frozen=True)
class Request:
    """What the filters see: one option of one task, with its node count."""

    option: ResourceOption
    num_nodes: int
    catalog: Catalog

    @property
    def cpu_only(self) -> bool:
        return self.option.accelerator is None and self.option.instance_type is None


class Filter(Protocol):
    @property
    def name(self) -> str: ...

    def expr(self, req: Request) -> pl.Expr | None: ...

    def requirement(self, req: Request) -> str: ...


def _cpu_expr(spec: CpuSpec) -> pl.Expr:
    col = pl.col(c.VCPUS)
    return col >= spec.count if spec.at_least else col == spec.count


def _memory_expr(spec: MemorySpec) -> pl.Expr:
    col = pl.col(c.MEMORY_GIB)
    if spec.mode == "per_cpu":
        return col >= pl.col(c.VCPUS) * spec.gib
    return col >= spec.gib if spec.mode == "at_least" else col == spec.gib


class CloudFilter:
    name = "cloud"

    def expr(self, req: Request) -> pl.Expr | None:
        cloud = req.option.infra.cloud
        return None if cloud is None else pl.col(c.CLOUD) == cloud

    def requirement(self, req: Request) -> str:
        return f"cloud {req.option.infra.cloud}"


class RegionFilter:
    name = "region"

    def expr(self, req: Request) -> pl.Expr | None:
        region = req.option.infra.region
        return None if region is None else glob_expr(c.REGION, region)

    def requirement(self, req: Request) -> str:
        return f"region {req.option.infra.region}"


class ZoneFilter:
    name = "zone"

    def expr(self, req: Request) -> pl.Expr | None:
        zone = req.option.infra.zone
        return None if zone is None else glob_expr(c.ZONE, zone)

    def requirement(self, req: Request) -> str:
        return f"zone {req.option.infra.zone}"


class InstanceTypeFilter:
    name = "instance-type"

    def expr(self, req: Request) -> pl.Expr | None:
        wanted = req.option.instance_type
        return None if wanted is None else glob_expr(c.INSTANCE_TYPE, wanted)

    def requirement(self, req: Request) -> str:
        return f"instance type {req.option.instance_type}"


class AcceleratorFilter:
    name = "accelerator"

    def expr(self, req: Request) -> pl.Expr | None:
        acc = req.option.accelerator
        if acc is None:
            return None if req.option.instance_type else pl.col(c.ACCELERATOR).is_null()
        return (pl.col(c.ACCELERATOR) == acc.name) & (pl.col(c.ACCELERATOR_COUNT) == acc.count)

    def requirement(self, req: Request) -> str:
        acc = req.option.accelerator
        return f"accelerators {acc}" if acc else "no accelerator (CPU only)"


class CpuFilter:
    name = "cpus"

    def expr(self, req: Request) -> pl.Expr | None:
        spec = req.option.cpus
        if spec is not None:
            return _cpu_expr(spec)
        if req.option.memory is None and req.cpu_only:
            return _sized_by_default(_cpu_expr(DEFAULT_CPUS))
        acc = req.option.accelerator
        if (
            acc is not None
            and req.option.memory is None
            and acc.name in hardware.GCP_DEFAULT_VCPUS_PER_GPU
        ):
            per_gpu = hardware.GCP_DEFAULT_VCPUS_PER_GPU[acc.name]
            default = CpuSpec(count=per_gpu * acc.count, at_least=True)
            return ~pl.col(c.GPU_ATTACHED) | _cpu_expr(default)
        return None

    def requirement(self, req: Request) -> str:
        if req.option.cpus is not None:
            return f"cpus {req.option.cpus}"
        if req.cpu_only:
            return f"cpus {DEFAULT_CPUS} (the default for a CPU-only task)"
        return "the default host size for attached GPUs"


class MemoryFilter:
    name = "memory"

    def expr(self, req: Request) -> pl.Expr | None:
        spec = req.option.memory
        if spec is not None:
            return _memory_expr(spec)
        if req.cpu_only:
            return _sized_by_default(_memory_expr(DEFAULT_MEMORY_RATIO))
        acc = req.option.accelerator
        if (
            acc is not None
            and req.option.cpus is None
            and acc.name in hardware.GCP_DEFAULT_VCPUS_PER_GPU
        ):
            ratio = MemorySpec(gib=hardware.GCP_HIGHMEM_RATIO, mode="per_cpu")
            return ~pl.col(c.GPU_ATTACHED) | _memory_expr(ratio)
        return None

    def requirement(self, req: Request) -> str:
        if req.option.memory is not None:
            return f"memory {req.option.memory}"
        if req.cpu_only:
            return f"memory {DEFAULT_MEMORY_RATIO} (the default for a CPU-only task)"
        return "the default host memory for attached GPUs"


#: Column the planner adds once per catalog: is this row in its cloud's default CPU family?
DEFAULT_FAMILY = "_default_family"


def default_family_expr() -> pl.Expr:
    """Whether a row's instance type is in its cloud's default CPU family (see above)."""
    expr = pl.lit(True)
    for cloud, pattern in CPU_DEFAULT_FAMILIES.items():
        expr = (
            pl.when(pl.col(c.CLOUD) == cloud)
            .then(pl.col(c.INSTANCE_TYPE).str.contains(pattern))
            .otherwise(expr)
        )
    return expr


class DefaultFamilyFilter:
    name = "default-family"

    def expr(self, req: Request) -> pl.Expr | None:
        return pl.col(DEFAULT_FAMILY) if req.cpu_only else None

    def requirement(self, req: Request) -> str:
        return "default CPU families (aws m6i/c6i/r6i, gcp n4, azure Dsv5/Esv5/Fsv2)"


class PricingFilter:
    name = "pricing"

    def expr(self, req: Request) -> pl.Expr | None:
        column = c.SPOT_PRICE if req.option.use_spot else c.PRICE
        return pl.col(column).is_not_null()

    def requirement(self, req: Request) -> str:
        return "a spot offering" if req.option.use_spot else "an on-demand offering"


#: Clouds that can give `network_tier: best` (a high-bandwidth GPU interconnect between nodes:
#: EFA on AWS, GPUDirect on GCP, InfiniBand on Nebius and on Kubernetes clusters that expose it),
#: as SkyPilot supports it; other clouds are filtered out for such tasks.
BEST_NETWORK_CLOUDS: tuple[str, ...] = ("aws", "gcp", "kubernetes", "nebius")


class NetworkTierFilter:
    name = "network-tier"

    def expr(self, req: Request) -> pl.Expr | None:
        if req.option.network_tier != "best":
            return None
        return pl.col(c.CLOUD).is_in(BEST_NETWORK_CLOUDS)

    def requirement(self, req: Request) -> str:
        return f"network_tier best (offered on {', '.join(BEST_NETWORK_CLOUDS)})"


class PriceCapFilter:
    name = "price-cap"

    def expr(self, req: Request) -> pl.Expr | None:
        cap = req.option.max_hourly_cost
        return None if cap is None else pl.col("cost") <= cap

    def requirement(self, req: Request) -> str:
        return f"max_hourly_cost ${req.option.max_hourly_cost:g}/h for all nodes"


class CapacityFilter:
    name = "capacity"

    def expr(self, req: Request) -> pl.Expr | None:
        return pl.col(c.CAPACITY).is_null() | (pl.col(c.CAPACITY) >= req.num_nodes)

    def requirement(self, req: Request) -> str:
        return f"capacity for {req.num_nodes} node(s)"


FILTERS: Registry[Filter] = Registry("filter")

#: The default order. Each step's rejection count is reported, so the order is also the order
#: of the explanation: what first, then where, then shape and price. The accelerator comes
#: first also because the planner applies it through a per-catalog partition (see planner).
DEFAULT_FILTERS: tuple[Filter, ...] = tuple(
    FILTERS.register(f.name, f)
    for f in (
        AcceleratorFilter(),  # accelerator name and count per node (or none for CPU-only)
        CloudFilter(),  # infra / cloud pin
        RegionFilter(),  # infra / region pin, globs allowed
        ZoneFilter(),  # infra / zone pin, globs allowed
        InstanceTypeFilter(),  # instance_type pin
        CpuFilter(),  # cpus, or SkyPilot's default for CPU-only tasks and attached GPUs
        MemoryFilter(),  # memory, or SkyPilot's default ratio
        DefaultFamilyFilter(),  # CPU-only tasks use current general-purpose families
        NetworkTierFilter(),  # network_tier: best needs a cloud with a fast interconnect
        PricingFilter(),  # spot or on-demand must be offered
        PriceCapFilter(),  # max_hourly_cost
        CapacityFilter(),  # pools with a known capacity must fit num_nodes
    )
)
