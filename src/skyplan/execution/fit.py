"""Does an existing cluster fit a task? The planner answers: the cluster's node shape becomes a
one-row catalog and the task is planned over it, so reuse follows exactly the rules a new
placement follows (accelerators, CPUs, memory, infra pins, spot)."""

from __future__ import annotations

from skyplan import api
from skyplan.catalog import Catalog
from skyplan.catalog.pools import pool_frame
from skyplan.errors import NoFeasiblePlacement
from skyplan.model import Task
from skyplan.model.node import PoolOffer
from skyplan.model.state import ClusterRecord


def cluster_fits(record: ClusterRecord, task: Task) -> str | None:
    """Why `task` cannot run on the cluster `record` describes, or None when it can."""
    if record.cloud is None or record.instance_type is None:
        return None
    if task.num_nodes > record.num_nodes:
        return f"the task needs {task.num_nodes} nodes; the cluster has {record.num_nodes}"
    acc = next(iter((record.accelerators or {}).items()), None)
    price = record.hourly_cost / max(record.num_nodes, 1)
    shape = PoolOffer(
        cloud=record.cloud,
        region=record.region or "",
        zone=record.zone,
        instance_type=record.instance_type,
        vcpus=record.vcpus,
        memory_gib=record.memory_gib,
        accelerator=acc[0] if acc else None,
        accelerator_count=acc[1] if acc else None,
        price=None if record.spot else price,
        spot_price=price if record.spot else None,
        source="the existing cluster",
    )
    try:
        api.plan(
            task.model_copy(update={"num_nodes": 1}),
            catalog=Catalog.from_frame(pool_frame([shape]), origin=f"cluster {record.name}"),
        )
    except NoFeasiblePlacement as exc:
        return exc.summary
    return None
