"""Value types shared by backends, the runtime and the state store: nodes, what a backend is
asked to provision, the offers a backend discovers, and a backend's declared capabilities.

No I/O here; `skyplan.backends` does the provisioning.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from skyplan.model.plan import Offer


class NodeStatus(StrEnum):
    """What a backend observes of one node."""

    PENDING = "pending"  # asked for, not yet usable
    RUNNING = "running"
    STOPPED = "stopped"
    TERMINATED = "terminated"
    UNREACHABLE = "unreachable"  # exists (or did) but cannot be reached now


class Node(BaseModel):
    """One machine (VM, pod, host, local directory) of a cluster, as its backend reports it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str
    rank: int = Field(ge=0)
    node_id: str  # the backend's own id: instance id, pod name, pool/host, directory
    ip: str  # the address jobs on other nodes reach it by (SKYPILOT_NODE_IPS)
    status: NodeStatus = NodeStatus.RUNNING
    cloud: str
    region: str
    zone: str | None = None
    instance_type: str
    spot: bool = False
    #: Backend-specific connection facts (ssh: host, port, user, key; k8s: namespace, pod).
    extra: dict[str, str] = {}


class ProvisionRequest(BaseModel):
    """Ask a backend for `offer.num_nodes` nodes of `offer`'s shape, tagged with `cluster`.

    Provisioning is idempotent: nodes that already carry the cluster's tag are reused, so a
    launch interrupted half-way resumes without creating a second set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str
    offer: Offer
    image: str | None = None
    ports: tuple[int, ...] = ()


class PoolOffer(BaseModel):
    """One node shape a backend found on machines it manages (an SSH pool, a Kubernetes
    context, this machine), with how many nodes of it are free; becomes a catalog row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str
    region: str
    zone: str | None = None
    instance_type: str
    vcpus: float
    memory_gib: float
    accelerator: str | None = None
    accelerator_count: float | None = None
    accelerator_memory: float | None = None
    price: float | None = 0.0  # $/h per node on demand; None: not offered on demand
    spot_price: float | None = None
    capacity: int | None = None
    arch: str = "x86_64"
    source: str


class Capability(StrEnum):
    """What a backend may or may not be able to do; the names users see."""

    STOP = "stop"  # stop nodes and start them again, keeping their disks
    SPOT = "spot"  # preemptible capacity
    MULTI_NODE = "multi-node"
    ACCELERATORS = "accelerators"
    AUTOSTOP = "autostop"
    OPEN_PORTS = "open-ports"


class Capabilities(BaseModel):
    """A backend's capabilities: everything is supported except what `missing` names, each with
    the sentence a user is shown ("Kubernetes cannot stop a pod; use `skyplan down`")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    missing: dict[Capability, str] = {}

    def supports(self, capability: Capability) -> bool:
        return capability not in self.missing

    def why_not(self, capability: Capability) -> str | None:
        return self.missing.get(capability)


class BackendCheck(BaseModel):
    """`skyplan check`'s answer for one backend: usable here, and if not, why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str
    ok: bool
    reason: str
    detail: tuple[str, ...] = ()
