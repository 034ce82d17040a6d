"""`SimCloud`: a `Backend` whose spot capacity comes from traces and whose time is virtual.

Each zone trace says how many spot nodes that zone has in each tick. A spot launch of N nodes
succeeds only when the zone has at least N now (a multi-node cluster is all spot or nothing);
otherwise it raises `CapacityError` scoped to the zone, exactly as a cloud adapter does, so the
failover code under test cannot tell the difference. On-demand capacity is unlimited. A spot
cluster is preempted as soon as its zone's availability drops below its node count; `nodes()`
then no longer lists it, which is how the managed-job controller notices preemptions.

The simulator runs no commands: `runner()` raises `InvalidRequestError`. Replaying a job needs
only placements and time, not the job's processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from skyplan.backends.base import CommandRunner
from skyplan.errors import CapacityError, InputError, InvalidRequestError, Scope
from skyplan.model.node import (
    BackendCheck,
    Capabilities,
    Capability,
    Node,
    PoolOffer,
    ProvisionRequest,
)
from skyplan.sim.clock import VirtualClock
from skyplan.sim.trace import ZoneTrace

_NEVER = float("inf")


@dataclass
class _Cluster:
    nodes: list[Node]
    zone: str
    spot: bool
    launched: float
    preempted_at: float = _NEVER


class SimCloud:
    """A simulated cloud over zone traces. Time 0 of `clock` is tick `start_tick` of the
    traces; `provision_delay` seconds pass (on the clock) during each launch."""

    capabilities = Capabilities(
        missing={
            Capability.STOP: "the simulator cannot stop a cluster; terminate it",
            Capability.AUTOSTOP: "the simulator cannot stop a cluster, so it has no autostop",
            Capability.OPEN_PORTS: "the simulator runs no processes, so it serves no ports",
        }
    )

    def __init__(
        self,
        traces: Sequence[ZoneTrace],
        clock: VirtualClock,
        *,
        start_tick: int = 0,
        provision_delay: float = 0.0,
        name: str | None = None,
    ) -> None:
        if not traces:
            raise InputError("SimCloud needs at least one zone trace")
        self.zones: dict[str, ZoneTrace] = {}
        for trace in traces:
            if trace.zone in self.zones:
                raise InputError(
                    f"two traces for zone {trace.zone}: {self.zones[trace.zone].path} and "
                    f"{trace.path} (replay one node shape at a time)"
                )
            self.zones[trace.zone] = trace
        self.name = name or traces[0].cloud
        self.clock = clock
        self.start_tick = start_tick
        self.gap = traces[0].gap_seconds
        self.provision_delay = provision_delay
        self._clusters: dict[str, _Cluster] = {}

    # -- the trace at the clock's time ---------------------------------------------------
    def tick(self, seconds: float | None = None) -> int:
        """The trace tick at clock time `seconds` (default now)."""
        now = self.clock.now() if seconds is None else seconds
        return self.start_tick + int(now // self.gap)

    def spot_available(self, zone: str, seconds: float | None = None) -> int:
        trace = self.zones[zone]
        tick = self.tick(seconds)
        return int(trace.available[tick]) if tick < trace.ticks else 0

    def scope(self, zone: str) -> Scope:
        trace = self.zones[zone]
        return Scope(self.name, trace.region, zone)

    def preemption_time(self, zone: str, num_nodes: int, seconds: float) -> float:
        """Clock time at which a spot cluster of `num_nodes` in `zone`, running at `seconds`,
        is reclaimed: the start of the first later tick with fewer nodes available."""
        trace = self.zones[zone]
        first = self.tick(seconds) + 1
        short = (trace.available[first:] < num_nodes).nonzero()[0]
        tick = first + int(short[0]) if len(short) else trace.ticks
        return (tick - self.start_tick) * self.gap

    # -- the Backend protocol ------------------------------------------------------------
    def check(self) -> BackendCheck:
        return BackendCheck(backend=self.name, ok=True, reason=f"{len(self.zones)} zone trace(s)")

    def offers(self) -> Sequence[PoolOffer]:
        """None: simulated offers come from the replay's prices, not from discovery."""
        return []

    def provision(self, request: ProvisionRequest) -> list[Node]:
        existing = self._clusters.get(request.cluster)
        if existing is not None and existing.preempted_at > self.clock.now():
            return list(existing.nodes)
        offer = request.offer
        zone = offer.zone
        if zone not in self.zones:
            raise InvalidRequestError(
                f"the simulator has no zone {zone!r} (zones: {', '.join(self.zones)})",
                Scope(self.name, offer.region),
            )
        now = self.clock.now()
        if offer.spot:
            have = self.spot_available(zone, now)
            if have < offer.num_nodes:
                raise CapacityError(
                    f"no spot capacity for {offer.num_nodes} node(s) of {offer.instance_type} "
                    f"in {zone}: {have} available",
                    self.scope(zone),
                )
        if self.provision_delay:
            self.clock.sleep(self.provision_delay)
        trace = self.zones[zone]
        nodes = [
            Node(
                cluster=request.cluster,
                rank=rank,
                node_id=f"sim-{request.cluster}-{rank}",
                ip=f"10.0.0.{rank + 1}",
                cloud=self.name,
                region=trace.region,
                zone=zone,
                instance_type=offer.instance_type,
                spot=offer.spot,
            )
            for rank in range(offer.num_nodes)
        ]
        preempted = self.preemption_time(zone, offer.num_nodes, now) if offer.spot else _NEVER
        self._clusters[request.cluster] = _Cluster(nodes, zone, offer.spot, now, preempted)
        return list(nodes)

    def preempted_at(self, cluster: str) -> float:
        """When the cluster is (or was) reclaimed; infinity for on-demand or unknown ones."""
        found = self._clusters.get(cluster)
        return _NEVER if found is None else found.preempted_at

    def nodes(self, cluster: str) -> list[Node]:
        found = self._clusters.get(cluster)
        if found is None:
            return []
        if self.clock.now() >= found.preempted_at:
            del self._clusters[cluster]
            return []
        return list(found.nodes)

    def runner(self, node: Node) -> CommandRunner:
        raise InvalidRequestError(
            "the simulator runs no commands: it replays placements and time only",
            Scope(self.name),
        )

    def stop(self, cluster: str) -> None:
        raise InvalidRequestError(str(self.capabilities.why_not(Capability.STOP)), Scope(self.name))

    def start(self, cluster: str) -> list[Node]:
        raise InvalidRequestError(str(self.capabilities.why_not(Capability.STOP)), Scope(self.name))

    def terminate(self, cluster: str) -> None:
        self._clusters.pop(cluster, None)

    def owned(self) -> dict[str, list[Node]]:
        now = self.clock.now()
        return {name: list(c.nodes) for name, c in self._clusters.items() if now < c.preempted_at}
