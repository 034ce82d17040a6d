"""What a Kubernetes context has free now, as pod shapes: node rooms → shapes → pool offers.

Per schedulable, Ready node the free room is its allocatable minus the requests of the
non-terminated pods bound to it (cpu, memory, `nvidia.com/gpu`). A node offers its whole free
room as one shape (`7.9cpu-31.5gb`); a GPU node offers one shape per GPU count 1, 2, 4, … up to
its free GPUs, with CPUs and memory in proportion (`8cpu-32gb-A100x1`). Why: a pod that asks for
everything a node has left cannot be squeezed by later pods, and a GPU task can take part of a
GPU node, which the solver's exact GPU-count match needs. Shapes are floored to 0.1 CPU and
0.1 GiB, so a pod's requests always fit the room it was offered from; a shape's capacity is how
many pods of it fit now across all nodes. GPU nodes offer no CPU-only shape: their GPUs would
sit idle, and they are usually tainted for GPU pods (nodes with any other NoSchedule or
NoExecute taint are left out). The GPU model comes from a node label, mapped to catalog names.

Pure functions over the client's `V1Node` / `V1Pod` models: no API calls here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skyplan.backends.probe import gpu_name
from skyplan.model.node import PoolOffer

if TYPE_CHECKING:
    from kubernetes.client import V1Node, V1Pod

CLOUD = "kubernetes"
GPU = "nvidia.com/gpu"
#: Node labels naming the GPU model, tried in order after `$SKYPLAN_K8S_GPU_LABEL`.
GPU_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator")
DEAD_PHASES = ("Succeeded", "Failed")
_GIB = 1024**3


def gpu_from_label(value: str, memory_mib: float | None = None) -> str | None:
    """The catalog name of a GPU model as a node label spells it: `NVIDIA-A100-SXM4-80GB` →
    `A100-80GB`, `nvidia-tesla-a100` → `A100`, `nvidia-l4` → `L4`, `nvidia-h100-80gb` → `H100`."""
    words = [w for w in re.split(r"[-_\s]+", value.strip()) if w]
    while words and words[0].lower() in ("nvidia", "tesla", "geforce", "quadro"):
        words = words[1:]
    if not words:
        return None
    sizes = [int(m.group(1)) for w in words if (m := re.fullmatch(r"(\d+)gb", w.lower()))]
    memory = memory_mib / 1024 if memory_mib else (sizes[0] if sizes else None)
    name = gpu_name(" ".join(w.upper() for w in words), memory)
    if name == "H100" and "mega" in (w.lower() for w in words):
        return "H100-MEGA"
    return name


def node_gpu(labels: dict[str, str], gpu_labels: Sequence[str]) -> tuple[str, str, str] | None:
    """(label key, its value, catalog name) of a node's GPU model, from the first of
    `gpu_labels` it carries (`nvidia.com/gpu.memory`, in MiB, tells A100 sizes apart)."""
    key = next((k for k in gpu_labels if labels.get(k)), None)
    if key is None:
        return None
    memory = labels.get("nvidia.com/gpu.memory")
    name = gpu_from_label(labels[key], float(memory) if memory else None)
    return (key, labels[key], name) if name else None


def _quantity(text: str | None) -> float:
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(text)) if text else 0.0  # type: ignore[no-untyped-call]


def pod_requests(pod: V1Pod) -> dict[str, float]:
    """What a pod takes from its node: the sum over containers (a limit stands in for a missing
    request), at least the largest init container's, plus the pod's overhead."""

    def of(container: Any) -> dict[str, float]:
        res = container.resources
        amounts = {**((res and res.limits) or {}), **((res and res.requests) or {})}
        return {k: _quantity(v) for k, v in amounts.items()}

    spec, total = pod.spec, dict[str, float]()
    for c in (spec and spec.containers) or []:
        for k, v in of(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in (spec and spec.init_containers) or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0.0), v)
    for key, value in ((spec and spec.overhead) or {}).items():
        total[key] = total.get(key, 0.0) + _quantity(value)
    return total


@dataclass(frozen=True)
class Room:
    """What one node has free now."""

    node: str
    millicpu: int
    memory: int  # bytes
    gpus: int
    accelerator: str | None
    accelerator_memory: float | None
    arch: str
    cpu_pods: bool  # no taint keeps pods without GPU tolerations off it


@dataclass(frozen=True, order=True)
class Shape:
    """One pod size offered: whole tenths of a CPU and of a GiB."""

    millicpu: int
    memory_tenths: int  # tenths of a GiB
    gpus: int = 0
    accelerator: str | None = None
    arch: str = "x86_64"

    @property
    def memory(self) -> int:
        return self.memory_tenths * _GIB // 10

    @property
    def instance_type(self) -> str:
        name = f"{self.millicpu / 1000:g}cpu-{self.memory_tenths / 10:g}gb"
        if self.gpus:
            name += f"-{self.accelerator}x{self.gpus}"
        return name + ("-arm64" if self.arch == "arm64" else "")

    def fits(self, room: Room) -> int:
        """How many pods of this shape fit in `room`. CPU-only shapes count only rooms that
        offer them (no free GPUs, no taint), GPU shapes only rooms with the same model."""
        if room.arch != self.arch:
            return 0
        if self.gpus and room.accelerator != self.accelerator:
            return 0
        if not self.gpus and not (room.cpu_pods and not (room.gpus and room.accelerator)):
            return 0
        counts = [room.millicpu // self.millicpu, room.memory // self.memory]
        if self.gpus:
            counts.append(room.gpus // self.gpus)
        return max(0, min(counts))


def _floor_shape(room: Room, gpus: int, share: float, accelerator: str | None) -> Shape | None:
    millicpu = int(room.millicpu * share) // 100 * 100
    tenths = int(room.memory * share * 10 // _GIB)
    if millicpu <= 0 or tenths <= 0:
        return None
    return Shape(millicpu, tenths, gpus, accelerator, room.arch)


def shapes_of(room: Room) -> list[Shape]:
    """The shapes one node offers (see the module docstring)."""
    if room.gpus and room.accelerator:
        counts = sorted({2**i for i in range(8) if 2**i <= room.gpus} | {room.gpus})
        found = [_floor_shape(room, k, k / room.gpus, room.accelerator) for k in counts]
    elif room.cpu_pods:
        found = [_floor_shape(room, 0, 1.0, None)]
    else:
        found = []
    return [s for s in found if s is not None]


def rooms_of(
    nodes: Sequence[V1Node], pods: Sequence[V1Pod], gpu_labels: Sequence[str]
) -> list[Room]:
    """Free room per schedulable, Ready node, given every non-terminated pod."""
    used: dict[str, dict[str, float]] = {}
    for pod in pods:
        bound = pod.spec and pod.spec.node_name
        if bound and (pod.status and pod.status.phase) not in DEAD_PHASES:
            into = used.setdefault(bound, {})
            for k, v in pod_requests(pod).items():
                into[k] = into.get(k, 0.0) + v
    rooms = []
    for node in nodes:
        meta, spec, status = node.metadata, node.spec, node.status
        if meta is None or status is None or (spec and spec.unschedulable):
            continue
        if not any(c.type == "Ready" and c.status == "True" for c in status.conditions or []):
            continue
        taints = [t for t in (spec and spec.taints) or [] if t.effect != "PreferNoSchedule"]
        if any(t.key != GPU for t in taints):
            continue
        labels = meta.labels or {}
        alloc = {k: _quantity(v) for k, v in (status.allocatable or {}).items()}
        busy = used.get(meta.name or "", {})
        free = {k: alloc.get(k, 0.0) - busy.get(k, 0.0) for k in ("cpu", "memory", GPU)}
        gpu = node_gpu(labels, gpu_labels)
        gpu_mem = labels.get("nvidia.com/gpu.memory")
        arch = labels.get("kubernetes.io/arch") or (
            status.node_info.architecture if status.node_info else "amd64"
        )
        rooms.append(
            Room(
                node=meta.name or "",
                millicpu=int(free["cpu"] * 1000 + 1e-6),
                memory=int(free["memory"]),
                gpus=max(0, int(free[GPU])),
                accelerator=gpu[2] if gpu else None,
                accelerator_memory=round(float(gpu_mem) / 1024, 1) if gpu_mem else None,
                arch="arm64" if arch in ("arm64", "aarch64") else "x86_64",
                cpu_pods=not taints,
            )
        )
    return rooms


def offers_of(context: str, rooms: Sequence[Room], price: float) -> list[PoolOffer]:
    """One `PoolOffer` per distinct shape, with how many pods of it fit now."""
    shapes = sorted({s for r in rooms for s in shapes_of(r)})
    offers = []
    for shape in shapes:
        capacity = sum(shape.fits(r) for r in rooms)
        memories = [r.accelerator_memory for r in rooms if r.accelerator == shape.accelerator]
        offers.append(
            PoolOffer(
                cloud=CLOUD,
                region=context,
                instance_type=shape.instance_type,
                vcpus=shape.millicpu / 1000,
                memory_gib=shape.memory_tenths / 10,
                accelerator=shape.accelerator if shape.gpus else None,
                accelerator_count=float(shape.gpus) if shape.gpus else None,
                accelerator_memory=next((m for m in memories if m), None) if shape.gpus else None,
                price=price,
                capacity=capacity,
                arch=shape.arch,
                source=f"kubernetes context {context} (free node capacity)",
            )
        )
    return offers
