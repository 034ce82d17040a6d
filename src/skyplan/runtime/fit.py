"""Which nodes and accelerator slots a job gets on a cluster: pure resource accounting.

Each node offers `vcpus` CPUs and `gpus` accelerator devices; a job takes `cpus` and
`accelerator_count` on each of `num_nodes` nodes. A whole count (2) takes that many free
devices; a fraction (0.5) shares one device with other fractional jobs, never beyond 1.0.
The queue is FIFO with backfill: a job that does not fit now waits, and later jobs that do
fit start before it — until the oldest waiting job has waited `STARVATION` long; from then on
nothing passes it, so it starts as soon as the jobs ahead of it free its resources.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from skyplan.model.state import JobDemand

_EPS = 1e-9
#: How long the oldest pending job may be passed by backfilled jobs before the queue turns
#: strict FIFO for it.
STARVATION = timedelta(minutes=10)


@dataclass
class NodeFree:
    """What is still free on one node: CPUs and the unused fraction of each device."""

    rank: int
    cpus: float
    devices: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Assignment:
    """Where a job runs: node ranks (first = the job's rank 0) and device slots per rank."""

    ranks: tuple[int, ...]
    slots: dict[int, tuple[int, ...]]


def empty_cluster(num_nodes: int, vcpus: float, gpus: float) -> list[NodeFree]:
    """Nodes with nothing taken. A fractional device count (Azure's NV6ads_A10_v5 has 1/6 of an
    A10) is a last device with that fraction free."""
    whole = math.floor(gpus + _EPS)
    part = gpus - whole
    devices = [1.0] * whole + ([part] if part > _EPS else [])
    return [NodeFree(r, vcpus, list(devices)) for r in range(num_nodes)]


def _devices_for(free: NodeFree, count: float) -> tuple[int, ...] | None:
    if count <= _EPS:
        return ()
    if count < 1:
        # Fractional: the fullest device that still has room, so whole devices stay whole.
        fitting = [(share, i) for i, share in enumerate(free.devices) if share + _EPS >= count]
        return (min(fitting)[1],) if fitting else None
    whole = [i for i, share in enumerate(free.devices) if share >= 1 - _EPS]
    need = math.ceil(count - _EPS)
    return tuple(whole[:need]) if len(whole) >= need else None


def fit(demand: JobDemand, nodes: Sequence[NodeFree]) -> Assignment | None:
    """The lowest-ranked nodes that can each hold `demand` now, or None."""
    chosen: list[int] = []
    slots: dict[int, tuple[int, ...]] = {}
    for node in nodes:
        if node.cpus + _EPS < demand.cpus:
            continue
        devices = _devices_for(node, demand.accelerator_count)
        if devices is None:
            continue
        chosen.append(node.rank)
        slots[node.rank] = devices
        if len(chosen) == demand.num_nodes:
            return Assignment(tuple(chosen), slots)
    return None


def take(nodes: Sequence[NodeFree], demand: JobDemand, assignment: Assignment) -> None:
    """Subtract a job's share from `nodes` (in place)."""
    by_rank = {n.rank: n for n in nodes}
    share = demand.accelerator_count if demand.accelerator_count < 1 else 1.0
    for rank in assignment.ranks:
        node = by_rank[rank]
        node.cpus -= demand.cpus
        for device in assignment.slots.get(rank, ()):
            node.devices[device] -= share


def free_after(
    nodes: list[NodeFree], running: Iterable[tuple[JobDemand, Assignment]]
) -> list[NodeFree]:
    """`nodes` with every running job's share taken."""
    for demand, assignment in running:
        take(nodes, demand, assignment)
    return nodes


def never_fits(demand: JobDemand, num_nodes: int, vcpus: float, gpus: float) -> str | None:
    """Why `demand` can never run on an empty cluster of this shape, or None if it can."""
    if demand.num_nodes > num_nodes:
        return f"the job needs {demand.num_nodes} nodes; the cluster has {num_nodes}"
    if demand.cpus > vcpus + _EPS:
        return f"the job needs {demand.cpus:g} CPUs per node; a node has {vcpus:g}"
    if demand.accelerator_count > gpus + _EPS:
        what = demand.accelerator or "accelerators"
        return f"the job needs {demand.accelerator_count:g} {what} per node; a node has {gpus:g}"
    return None


def schedule(
    pending: Sequence[tuple[int, JobDemand]],
    free: list[NodeFree],
    *,
    starving: int | None = None,
) -> list[tuple[int, Assignment]]:
    """FIFO with backfill: walk pending jobs in order and start every one that fits now.

    `starving` names a job that has waited too long: once the walk reaches it and it does not
    fit, nothing after it starts (strict FIFO), so small jobs cannot keep it out forever."""
    started = []
    for job_id, demand in pending:
        assignment = fit(demand, free)
        if assignment is None:
            if job_id == starving:
                break
            continue
        take(free, demand, assignment)
        started.append((job_id, assignment))
    return started
