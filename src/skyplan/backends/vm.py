"""What the VM backends (aws, gcp, azure) share: commands over SSH to a node they created, and
grouping the nodes they list by cluster."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from skyplan.errors import Scope
from skyplan.model.node import Node

if TYPE_CHECKING:
    from skyplan.backends.ssh_runner import SshRunner


def vm_runner(node: Node, known_hosts: Path, scope: Scope) -> SshRunner:
    """An SSH runner for a VM node (`extra`: host, port, user, identity_file). It trusts the
    host key on first use: a new VM makes its key at first boot and the clouds offer no
    authenticated way to learn it beforehand; from then on it is pinned in `known_hosts`."""
    from skyplan.backends.ssh_runner import SshRunner

    return SshRunner(
        node.extra["host"],
        int(node.extra.get("port", "22")),
        node.extra["user"],
        node.extra["identity_file"],
        known_hosts=known_hosts,
        trust_new=True,
        scope=scope,
    )


def by_cluster(nodes: Iterable[Node]) -> dict[str, list[Node]]:
    """Nodes grouped by cluster (sorted), each cluster's by rank."""
    found: dict[str, list[Node]] = {}
    for node in nodes:
        found.setdefault(node.cluster, []).append(node)
    return {c: sorted(ns, key=lambda n: (n.rank, n.node_id)) for c, ns in sorted(found.items())}
