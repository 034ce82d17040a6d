"""Small factories for state-store records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skyplan.model.node import Node
from skyplan.model.state import ClusterRecord, ClusterStatus

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def make_cluster(name: str = "train", **changes: Any) -> ClusterRecord:
    fields: dict[str, Any] = {
        "name": name,
        "status": ClusterStatus.INIT,
        "created_at": NOW,
        "updated_at": NOW,
        "last_active_at": NOW,
    }
    return ClusterRecord.model_validate({**fields, **changes})


def make_node(cluster: str = "train", rank: int = 0, **changes: Any) -> Node:
    fields: dict[str, Any] = {
        "cluster": cluster,
        "rank": rank,
        "node_id": f"i-{rank:04d}",
        "ip": f"10.0.0.{rank + 1}",
        "cloud": "aws",
        "region": "us-east-1",
        "zone": "us-east-1a",
        "instance_type": "p4d.24xlarge",
    }
    return Node.model_validate({**fields, **changes})
