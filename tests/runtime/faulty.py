"""TEST DOUBLE — not a real backend. `FaultyBackend` implements the `Backend` protocol in memory
and fails on cue, so failover and cleanup can be specified without a cloud.

Faults are scripted per place (`"region"` or `"region/zone"`): provisioning there first creates
`after_nodes` tagged nodes and *then* raises, the way a real cloud fails half-way through a
multi-node request. The nodes live in a dict, so `owned()` is exactly what the "cloud" still
holds. Commands run as local processes with a per-node directory as HOME (the `LocalRunner`),
so sync and setup work for real when a test needs them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from skyplan.backends.local import LocalRunner
from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    InvalidRequestError,
    NoFeasiblePlacement,
    QuotaError,
    Scope,
    TransientError,
)
from skyplan.model import Offer
from skyplan.model.node import (
    BackendCheck,
    Capabilities,
    Node,
    NodeStatus,
    PoolOffer,
    ProvisionRequest,
)
from skyplan.runtime.launch import Planner
from skyplan.runtime.managed import ManagedPlanner
from skyplan.runtime.recovery import Target

FaultKind = Literal["capacity", "quota", "auth", "transient", "invalid"]

_ERRORS: dict[str, type[BackendError]] = {
    "capacity": CapacityError,
    "quota": QuotaError,
    "auth": AuthError,
    "transient": TransientError,
    "invalid": InvalidRequestError,
}


@dataclass
class Fault:
    """Fail the next `times` provisions at a place (every one when None), after creating
    `after_nodes` nodes. `scope` is the scope the error carries (None: the runtime infers it)."""

    kind: FaultKind
    times: int | None = None
    after_nodes: int = 0
    scope: Scope | None = None

    def fire(self) -> bool:
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


#: One call made to a backend, in order: (backend, operation, place or cluster).
Call = tuple[str, str, str]


class FaultyBackend:
    """TEST DOUBLE: an in-memory cloud whose provisioning fails as scripted (module docstring)."""

    def __init__(
        self,
        name: str,
        root: Path,
        faults: Mapping[str, Fault | Sequence[Fault]] | None = None,
        *,
        terminate_failures: int = 0,
        capabilities: Capabilities | None = None,
        calls: list[Call] | None = None,
    ) -> None:
        self.name = name
        self.capabilities = capabilities or Capabilities()
        self.root = root / name
        self.faults: dict[str, list[Fault]] = {
            place: [f] if isinstance(f, Fault) else list(f) for place, f in (faults or {}).items()
        }
        self.terminate_failures = terminate_failures
        self.calls: list[Call] = [] if calls is None else calls
        self._nodes: dict[tuple[str, int], Node] = {}

    # -- what the "cloud" holds ---------------------------------------------------------------

    def _fault(self, region: str, zone: str | None) -> Fault | None:
        for place in (f"{region}/{zone}", region):
            for fault in self.faults.get(place, []):
                if fault.fire():
                    return fault
        return None

    def _create(self, cluster: str, rank: int, offer: Offer) -> None:
        if (cluster, rank) in self._nodes:
            return  # provisioning is idempotent: a tagged node is found again
        root = self.root / cluster / f"node-{rank}"
        root.mkdir(parents=True, exist_ok=True)
        self._nodes[(cluster, rank)] = Node(
            cluster=cluster,
            rank=rank,
            node_id=f"{self.name}-{cluster}-{rank}",
            ip=f"10.0.0.{rank + 1}",
            cloud=self.name,
            region=offer.region,
            zone=offer.zone,
            instance_type=offer.instance_type,
            spot=offer.spot,
            extra={"root": str(root)},
        )

    def _set_status(self, cluster: str, status: NodeStatus) -> None:
        for key, node in self._nodes.items():
            if node.cluster == cluster:
                self._nodes[key] = node.model_copy(update={"status": status})

    # -- the Backend protocol -----------------------------------------------------------------

    def check(self) -> BackendCheck:
        return BackendCheck(backend=self.name, ok=True, reason="a test double")

    def offers(self) -> Sequence[PoolOffer]:
        return []

    def provision(self, request: ProvisionRequest) -> list[Node]:
        offer = request.offer
        place = "/".join(p for p in (offer.region, offer.zone) if p)
        self.calls.append((self.name, "provision", place))
        fault = self._fault(offer.region, offer.zone)
        created = offer.num_nodes if fault is None else min(fault.after_nodes, offer.num_nodes)
        for rank in range(created):
            self._create(request.cluster, rank, offer)
        if fault is not None:
            raise _ERRORS[fault.kind](f"scripted {fault.kind} fault at {place}", fault.scope)
        return self.nodes(request.cluster)

    def nodes(self, cluster: str) -> list[Node]:
        return sorted(
            (n for n in self._nodes.values() if n.cluster == cluster), key=lambda n: n.rank
        )

    def runner(self, node: Node) -> LocalRunner:
        root = Path(node.extra["root"])
        root.mkdir(parents=True, exist_ok=True)
        return LocalRunner(root)

    def stop(self, cluster: str) -> None:
        self.calls.append((self.name, "stop", cluster))
        self._set_status(cluster, NodeStatus.STOPPED)

    def start(self, cluster: str) -> list[Node]:
        self.calls.append((self.name, "start", cluster))
        self._set_status(cluster, NodeStatus.RUNNING)
        return self.nodes(cluster)

    def terminate(self, cluster: str) -> None:
        self.calls.append((self.name, "terminate", cluster))
        if self.terminate_failures > 0:
            self.terminate_failures -= 1
            raise TransientError(f"scripted failure to terminate {cluster!r}")
        for key in [k for k in self._nodes if k[0] == cluster]:
            del self._nodes[key]
        shutil.rmtree(self.root / cluster, ignore_errors=True)

    def owned(self) -> dict[str, list[Node]]:
        clusters = sorted({cluster for cluster, _ in self._nodes})
        return {cluster: self.nodes(cluster) for cluster in clusters}


# -- offers and a planner over them ------------------------------------------------------------


def make_offer(
    cloud: str = "fake",
    region: str = "r1",
    zone: str | None = "r1a",
    *,
    price: float = 1.0,
    num_nodes: int = 1,
    **changes: object,
) -> Offer:
    fields: dict[str, object] = {
        "cloud": cloud,
        "region": region,
        "zone": zone,
        "instance_type": "fake.large",
        "accelerators": None,
        "spot": False,
        "num_nodes": num_nodes,
        "hourly_cost": price,
        "vcpus": 4.0,
        "memory_gib": 16.0,
    }
    return Offer.model_validate({**fields, **changes})


def offers(num_nodes: int = 1) -> list[Offer]:
    """Four places, cheapest first: fake/r1/r1a, fake/r1/r1b, fake/r2/r2a, other/o1/o1a."""
    return [
        make_offer("fake", "r1", "r1a", price=1.0, num_nodes=num_nodes),
        make_offer("fake", "r1", "r1b", price=1.1, num_nodes=num_nodes),
        make_offer("fake", "r2", "r2a", price=1.2, num_nodes=num_nodes),
        make_offer("other", "o1", "o1a", price=1.5, num_nodes=num_nodes),
    ]


def cheapest_planner(choices: Sequence[Offer]) -> Planner:
    """The cheapest offer no blocked scope covers; NoFeasiblePlacement when none is left."""

    def planner(blocked: frozenset[Scope]) -> Offer:
        left = [o for o in choices if not any(s.covers(o.cloud, o.region, o.zone) for s in blocked)]
        if not left:
            raise NoFeasiblePlacement(None, "every offer is blocked")
        return min(left, key=lambda o: o.hourly_cost)

    return planner


def target_planner(choices: Sequence[Offer]) -> ManagedPlanner:
    """A managed-job planner over `choices` that honours the strategy's target the way
    `session.jobs.plan` does: its `exclude` joins the blocklist, its `prefer` is tried first."""

    def plan(_job: object, _task: object, target: Target, blocked: frozenset[Scope]) -> Offer:
        out = blocked | target.exclude
        left = [o for o in choices if not any(s.covers(o.cloud, o.region, o.zone) for s in out)]
        if target.prefer is not None:
            near = [o for o in left if target.prefer.covers(o.cloud, o.region, o.zone)]
            left = near or left
        if not left:
            raise NoFeasiblePlacement(None, "every offer is blocked")
        return min(left, key=lambda o: o.hourly_cost)

    return plan
