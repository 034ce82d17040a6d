"""The `gcp` backend: Compute Engine VMs through apache-libcloud's GCE driver.

A node of cluster `c` is an instance named `<slug>-<rank>` (`gce_name`: GCE names are
lowercase RFC 1035 labels, so a cluster name with capitals, `_` or `.` is lowercased, those
characters become `-`, and a hash of the original is appended), labelled `skyplan-cluster=<slug>`,
`skyplan-rank=<rank>`, with the cluster's own name in the metadata key `skyplan-cluster` and
the skyplan SSH key (`<home>/gcp/id_skyplan`) in `ssh-keys`. All of it is in the insert request
itself, so no instance ever exists unlabelled. The backend creates nothing else: instances join
the network `SKYPLAN_GCP_NETWORK` (default `default`, whose own firewall rules let SSH and
traffic between instances in) with the network tag `skyplan`.

Listing uses GCE's aggregated list (every zone of the project in one call), so unlike `aws`
there is no set of places to remember: a labelled instance anywhere in the project is seen.

Accelerators: an offer on an N1 host attaches its GPUs as accelerators (`T4` →
`nvidia-tesla-t4`, …); a2/a3/a4/g2 machine types have theirs built in. GPU and spot instances
terminate on host maintenance (GCE requires it). Spot is GCE's preemptible VM
(`ex_preemptible`): libcloud 3.9.1 cannot ask for the newer SPOT provisioning model.

It never plans and never retries: errors are classified (`gce_errors`) and raised with their
scope for the runtime's failover loop. libcloud is imported only when the driver is opened; the
driver comes from `driver_factory`, the seam the tests use to put a fake in its place.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.backends.ec2_home import CloudHome
from skyplan.backends.gce_errors import CLOUD
from skyplan.backends.gce_project import (
    DriverFactory,
    GceCredentials,
    Project,
    call,
    close_driver,
    find_credentials,
    machine_args,
    open_driver,
)
from skyplan.backends.vm import by_cluster, vm_runner
from skyplan.errors import (
    AuthError,
    BackendError,
    InputError,
    InvalidRequestError,
    Scope,
)
from skyplan.model.node import (
    BackendCheck,
    Capabilities,
    Capability,
    Node,
    NodeStatus,
    PoolOffer,
    ProvisionRequest,
)

if TYPE_CHECKING:
    from skyplan.backends.ssh_runner import SshRunner

NAME = CLOUD
CLUSTER_LABEL = "skyplan-cluster"  # also the metadata key holding the cluster's own name
RANK_LABEL = "skyplan-rank"
NETWORK_TAG = "skyplan"
DEFAULT_USER = "skyplan"
_STATUS = {
    "PROVISIONING": NodeStatus.PENDING,
    "STAGING": NodeStatus.PENDING,
    "RUNNING": NodeStatus.RUNNING,
    "STOPPING": NodeStatus.PENDING,
    "REPAIRING": NodeStatus.PENDING,
    "SUSPENDING": NodeStatus.PENDING,
    "TERMINATED": NodeStatus.STOPPED,  # GCE's word for a stopped instance (disk kept)
}
_RFC1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def gce_name(cluster: str) -> str:
    """The lowercase RFC 1035 form of `cluster` used in instance names and label values: the
    name itself when it already is one, else a mapped form with a hash of the original."""
    slug = re.sub(r"[^a-z0-9-]+", "-", cluster.lower()).strip("-")[:40].strip("-")
    if slug == cluster and _RFC1035.fullmatch(slug):
        return slug
    if not slug[:1].isalpha():
        slug = f"c-{slug}".strip("-")
    return f"{slug}-{hashlib.sha1(cluster.encode()).hexdigest()[:6]}"


class GceBackend:
    """Compute Engine instances as nodes; see the module docstring. `environ` (default
    `os.environ`) supplies credentials and the `SKYPLAN_GCP_*` settings; `driver_factory`
    (default: libcloud's GCE driver, `gce_project.open_driver`) is where tests put a fake."""

    name = NAME
    capabilities = Capabilities(
        missing={
            Capability.OPEN_PORTS: (
                "the gcp backend creates no firewall rules: nodes get SSH and traffic between "
                "them from the network's own rules; opening other ports is not implemented"
            ),
        }
    )

    def __init__(
        self,
        home: Path,
        *,
        environ: Mapping[str, str] | None = None,
        driver_factory: DriverFactory | None = None,
        poll_interval: float = 3.0,
        wait_timeout: float = 600.0,
        request_timeout: float = 180.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self.home = CloudHome(home, NAME)
        self.environ = env
        self.user = env.get("SKYPLAN_GCP_SSH_USER") or DEFAULT_USER
        self.network = env.get("SKYPLAN_GCP_NETWORK") or "default"
        self.disk_type = env.get("SKYPLAN_GCP_DISK_TYPE") or "pd-balanced"
        self.disk_gb = _disk_gib(env, "SKYPLAN_GCP_DISK_GB")
        self.driver_factory = driver_factory or functools.partial(
            open_driver, token_dir=self.home.dir
        )
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        # libcloud uses one timeout for each HTTP request and for each operation it waits on
        # (create, start), so it is as long as libcloud's own GCE default
        self.request_timeout = request_timeout
        self._project: Project | None = None
        self._lock = threading.Lock()

    @property
    def known_hosts(self) -> Path:
        return self.home.known_hosts

    def _credentials(self) -> GceCredentials:
        creds, why = find_credentials(self.environ)
        if creds is None:
            raise AuthError(why, Scope(NAME))
        return creds

    def project(self) -> Project:
        """The project's driver, opened on first use."""
        with self._lock:
            if self._project is None:
                driver = self.driver_factory(self._credentials(), self.request_timeout)
                self._project = Project(
                    driver, poll_interval=self.poll_interval, wait_timeout=self.wait_timeout
                )
            return self._project

    def close(self) -> None:
        """Close the HTTP session (a later call opens it again)."""
        with self._lock:
            project, self._project = self._project, None
        if project is not None:
            close_driver(project.driver)

    # -- check and offers ---------------------------------------------------------------------

    def check(self) -> BackendCheck:
        """Credentials found, and GCE answers a cheap call (5 s timeout)."""
        creds, why = find_credentials(self.environ)
        if creds is None:
            return BackendCheck(backend=NAME, ok=False, reason=why)
        try:
            driver = self.driver_factory(creds, min(5.0, self.request_timeout))
            try:
                zones = call(None, None, driver.ex_list_zones)
            finally:
                close_driver(driver)
        except BackendError as exc:
            return BackendCheck(backend=NAME, ok=False, reason=f"GCE: {exc}")
        return BackendCheck(
            backend=NAME,
            ok=True,
            reason=f"service account {creds.email} from {creds.source}; GCE answers "
            f"({len(zones)} zones in project {creds.project})",
        )

    def offers(self) -> Sequence[PoolOffer]:
        return []  # GCE's shapes and prices come from the catalog

    # -- provisioning ---------------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> list[Node]:
        """Create the missing ranks in the offer's zone (a zone-less offer: the region's first
        zone with room for rank 0), start stopped ones, and wait until all run. As for `aws`,
        a zone-less offer's errors are scoped to its region at the narrowest: a zone scope
        would not cover the offer, so failover would try it again and again."""
        offer = request.offer
        if offer.cloud != NAME:
            raise InvalidRequestError(f"offer for {offer.cloud!r}, not {NAME!r}", Scope(NAME))
        if request.ports:
            raise InvalidRequestError(
                self.capabilities.why_not(Capability.OPEN_PORTS) or "", Scope(NAME)
            )
        shape = machine_args(offer)
        try:
            return self._provision(request, shape)
        except BackendError as exc:
            scope = exc.scope
            if offer.zone is not None or scope is None or scope.zone is None:
                raise
            raise type(exc)(exc.message, Scope(scope.cloud, scope.region), exc.code) from exc

    def _provision(self, request: ProvisionRequest, shape: dict[str, Any]) -> list[Node]:
        offer, cluster, region = request.offer, request.cluster, request.offer.region
        project = self.project()
        existing: dict[int, Any] = {}
        for inst in self._instances(cluster):
            existing.setdefault(_rank(inst), inst)
        zone = offer.zone or next((_zone_of(i) for i in existing.values()), None)
        waits: dict[str, list[str]] = {}
        for inst in existing.values():
            waits.setdefault(_zone_of(inst), []).append(inst.name)
        missing = [r for r in range(offer.num_nodes) if r not in existing]
        if missing:
            image = project.image(
                request.image or self.environ.get("SKYPLAN_GCP_IMAGE", ""), offer.arch
            )
            key = self.home.public_key()
            metadata = {"ssh-keys": f"{self.user}:{key} {self.user}", CLUSTER_LABEL: cluster}

            def create(rank: int, in_zone: str) -> str:
                name = f"{gce_name(cluster)}-{rank}"
                call(
                    region,
                    in_zone,
                    project.driver.create_node,
                    name=name,
                    image=image,
                    location=project.zone(region, in_zone),
                    ex_network=self.network,
                    ex_tags=[NETWORK_TAG],
                    ex_metadata=metadata,
                    ex_labels={CLUSTER_LABEL: gce_name(cluster), RANK_LABEL: str(rank)},
                    ex_disk_type=self.disk_type,
                    ex_disk_size=self.disk_gb,
                    **shape,
                )
                return name

            if zone is None:
                zone, first = project.first_zone(region, lambda z: create(missing[0], z))
                waits.setdefault(zone, []).append(first)
                missing = missing[1:]
            for rank in missing:
                waits.setdefault(zone, []).append(create(rank, zone))
        for in_zone, names in waits.items():
            project.wait(region, in_zone, names, "RUNNING", restart=True)
        return self.nodes(cluster)

    # -- listing --------------------------------------------------------------------------------

    def _instances(self, cluster: str | None = None) -> list[Any]:
        """The project's labelled instances (of `cluster`, if given): one aggregated list of
        every zone, so no zone needs remembering."""
        found = call(None, None, self.project().driver.list_nodes, ex_zone="all")
        return [
            i
            for i in found
            if _cluster_of(i) is not None and (cluster is None or _cluster_of(i) == cluster)
        ]

    def _node(self, inst: Any) -> Node:
        public = next((ip for ip in inst.public_ips if ip), "")
        private = next((ip for ip in inst.private_ips if ip), "")
        zone = _zone_of(inst)
        home = "/root" if self.user == "root" else f"/home/{self.user}"
        return Node(
            cluster=_cluster_of(inst) or "",
            rank=_rank(inst),
            node_id=str(inst.name),
            ip=private or public,  # what the other nodes reach it by, inside the network
            status=_STATUS.get(str(inst.extra.get("status")), NodeStatus.UNREACHABLE),
            cloud=NAME,
            region=_region(zone),
            zone=zone,
            instance_type=str(inst.extra.get("machineType") or "").rsplit("/", 1)[-1],
            spot=_is_preemptible(inst),
            extra={
                "host": public or private,  # what this machine connects to
                "port": "22",
                "user": self.user,
                "identity_file": str(self.home.identity_file),
                "instance_id": str(inst.id),
                "zone": zone,
                "public_ip": public,
                "private_ip": private,
                "root": f"{home}/.skyplan/node",
            },
        )

    def nodes(self, cluster: str) -> list[Node]:
        found = [self._node(i) for i in self._instances(cluster)]
        return sorted(found, key=lambda n: (n.rank, n.node_id))

    def owned(self) -> dict[str, list[Node]]:
        return by_cluster(self._node(inst) for inst in self._instances())

    def runner(self, node: Node) -> SshRunner:
        """An SSH runner for `node`, trusting its host key on first use (a new VM makes its key
        at first boot; see `docs/backends/gcp.md`) and pinning it in `<home>/gcp/known_hosts`."""
        return vm_runner(node, self.home.known_hosts, Scope(NAME, node.region, node.zone))

    # -- stop, start, terminate -----------------------------------------------------------------

    def _by_zone(self, cluster: str) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for inst in self._instances(cluster):
            out.setdefault(_zone_of(inst), []).append(inst)
        return out

    def stop(self, cluster: str) -> None:
        found = self._by_zone(cluster)
        preemptible = [i.name for insts in found.values() for i in insts if _is_preemptible(i)]
        if preemptible:
            raise InvalidRequestError(
                f"cluster {cluster!r} runs on preemptible instances ({', '.join(preemptible)}), "
                "which the gcp backend does not stop: GCE stops them itself when it preempts "
                "them, so a stopped cluster could not be told from a preempted one; use "
                "`skyplan down` instead",
                Scope(NAME),
            )
        project = self.project()
        for zone, insts in found.items():
            region = _region(zone)
            for inst in insts:
                if inst.extra.get("status") in ("PROVISIONING", "STAGING", "RUNNING"):
                    call(region, zone, project.driver.ex_stop_node, inst, sync=False)
            project.wait(region, zone, [i.name for i in insts], "TERMINATED")

    def start(self, cluster: str) -> list[Node]:
        project = self.project()
        for zone, insts in self._by_zone(cluster).items():
            project.wait(_region(zone), zone, [i.name for i in insts], "RUNNING", restart=True)
        return self.nodes(cluster)

    def terminate(self, cluster: str) -> None:
        """Delete every instance of `cluster` (their boot disks go with them) and wait until GCE
        lists none of them. Idempotent."""
        project = self.project()
        for zone, insts in self._by_zone(cluster).items():
            region = _region(zone)
            for inst in insts:
                try:
                    call(region, zone, project.driver.destroy_node, inst, ex_sync=False)
                except BackendError as exc:
                    if exc.code != "notFound":
                        raise
            project.wait_gone(region, zone, [i.name for i in insts])
            # GCE hands ephemeral addresses to other VMs, whose keys would look changed
            self.home.forget_hosts(_addresses(insts))


def _labels(inst: Any) -> dict[str, str]:
    return dict(inst.extra.get("labels") or {})


def _metadata(inst: Any, key: str) -> str | None:
    items = (inst.extra.get("metadata") or {}).get("items") or []
    return next((str(i.get("value")) for i in items if i.get("key") == key), None)


def _cluster_of(inst: Any) -> str | None:
    """The cluster's own name (metadata), checked against its label; None if unlabelled."""
    label = _labels(inst).get(CLUSTER_LABEL)
    if label is None:
        return None
    name = _metadata(inst, CLUSTER_LABEL)
    return name if name is not None and gce_name(name) == label else label


def _rank(inst: Any) -> int:
    try:
        return max(0, int(_labels(inst).get(RANK_LABEL, "0")))
    except ValueError:
        return 0


def _zone_of(inst: Any) -> str:
    zone = inst.extra.get("zone")
    return str(getattr(zone, "name", zone) or "")


def _is_preemptible(inst: Any) -> bool:
    scheduling = inst.extra.get("scheduling") or {}
    return bool(scheduling.get("preemptible") or scheduling.get("provisioningModel") == "SPOT")


def _region(zone: str) -> str:
    return zone.rsplit("-", 1)[0]  # us-central1-a → us-central1


def _addresses(insts: Iterable[Any]) -> list[str]:
    return [ip for i in insts for ip in i.public_ips if ip]


def _disk_gib(environ: Mapping[str, str], name: str, default: int = 100) -> int:
    """The boot disk size setting `name`, in GiB."""
    value = environ.get(name) or str(default)
    if not value.isdigit() or int(value) < 10:
        raise InputError(f"{name} must be a whole number of GiB, at least 10, not {value!r}")
    return int(value)
