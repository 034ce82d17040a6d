"""The `azure` backend: Azure VMs through apache-libcloud's Azure Resource Manager driver.

A node of cluster `c` is a VM named `<slug>-<rank>` (`azure_name`: Linux host names allow only
letters, digits and `-`, so other characters become `-` and a hash of the original is
appended), tagged `skyplan-cluster=<c>`, `skyplan-rank=<rank>` by the create call itself, with
the skyplan SSH key (`<home>/azure/id_skyplan`) for its admin user. Each VM gets a NIC
`<vm>-nic` on the subnet `SKYPLAN_AZURE_SUBNET` of the virtual network `SKYPLAN_AZURE_NETWORK`
(default `skyplan-<region>`) and a static public IP `<vm>-ip`; its managed OS disk is deleted
with it. Everything lives in one resource group (`SKYPLAN_AZURE_RESOURCE_GROUP`, default
`skyplan`). The group and the networks must exist beforehand: libcloud 3.9.1 cannot create
either (see `docs/backends/azure.md`).

A resource group spans regions, so one listing of it sees a cluster wherever it is. The backend
looks in the configured group plus every group a launch was ever made in, recorded in
`<home>/azure/resource_groups.json` before the first VM is created there.

Not supported, because libcloud 3.9.1's `create_node` cannot ask for them: Spot priority and
availability zones. It never plans and never retries: errors are classified (`azure_errors`)
and raised with their scope for the runtime's failover loop. libcloud is imported only when
the driver is opened; the driver comes from `driver_factory`, the seam the tests use.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.backends.azure_errors import CLOUD
from skyplan.backends.azure_group import (
    AzureCredentials,
    DriverFactory,
    Group,
    VmSpec,
    call,
    close_driver,
    find_credentials,
    open_driver,
)
from skyplan.backends.ec2_home import CloudHome
from skyplan.backends.vm import by_cluster, vm_runner
from skyplan.errors import AuthError, BackendError, InputError, InvalidRequestError, Scope
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
CLUSTER_TAG = "skyplan-cluster"
RANK_TAG = "skyplan-rank"
DEFAULT_GROUP = "skyplan"
DEFAULT_NETWORK = "skyplan-{region}"
DEFAULT_USER = "azureuser"
#: Canonical's Ubuntu 24.04 LTS, by architecture.
DEFAULT_IMAGES = {
    "amd64": "Canonical:ubuntu-24_04-lts:server:latest",
    "arm64": "Canonical:ubuntu-24_04-lts:server-arm64:latest",
}
SPOT_UNSUPPORTED = (
    "the azure backend cannot launch Spot VMs: libcloud 3.9.1's Azure driver has no way to ask "
    "for Spot priority"
)
_STATUS = {
    "running": NodeStatus.RUNNING,
    "pending": NodeStatus.PENDING,  # creating, deallocating
    "updating": NodeStatus.PENDING,
    "stopped": NodeStatus.STOPPED,  # deallocated
    "paused": NodeStatus.STOPPED,  # powered off but still allocated (and billed)
    "terminated": NodeStatus.TERMINATED,  # being deleted
}


def azure_name(cluster: str) -> str:
    """The VM-name form of `cluster`: itself when it is already lowercase letters, digits and
    `-` (a valid Linux host name), else a mapped form with a hash of the original."""
    slug = re.sub(r"[^a-z0-9-]+", "-", cluster.lower()).strip("-")[:40].strip("-")
    if slug == cluster and slug[:1].isalpha():
        return slug
    if not slug[:1].isalpha():
        slug = f"c-{slug}".strip("-")
    return f"{slug}-{hashlib.sha1(cluster.encode()).hexdigest()[:6]}"


class AzureBackend:
    """Azure VMs as nodes; see the module docstring. `environ` (default `os.environ`) supplies
    the service principal and the `SKYPLAN_AZURE_*` settings; `driver_factory` (default:
    libcloud's Azure ARM driver, `azure_group.open_driver`) is where tests put a fake."""

    name = NAME
    capabilities = Capabilities(
        missing={
            Capability.SPOT: SPOT_UNSUPPORTED,
            Capability.OPEN_PORTS: (
                "the azure backend creates no security rules: nodes get SSH from the subnet's "
                "network security group; opening other ports is not implemented"
            ),
        }
    )

    def __init__(
        self,
        home: Path,
        *,
        environ: Mapping[str, str] | None = None,
        driver_factory: DriverFactory | None = None,
        poll_interval: float = 5.0,
        wait_timeout: float = 900.0,
        request_timeout: float = 60.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self.home = CloudHome(home, NAME, "resource_groups")
        self.environ = env
        self.group = env.get("SKYPLAN_AZURE_RESOURCE_GROUP") or DEFAULT_GROUP
        self.network = env.get("SKYPLAN_AZURE_NETWORK") or DEFAULT_NETWORK
        self.subnet = env.get("SKYPLAN_AZURE_SUBNET") or "default"
        self.user = env.get("SKYPLAN_AZURE_SSH_USER") or DEFAULT_USER
        self.public_ip = (env.get("SKYPLAN_AZURE_PUBLIC_IP") or "1") not in ("0", "false", "no")
        self.disk_gb = _disk_gib(env, "SKYPLAN_AZURE_DISK_GB")
        self.driver_factory = driver_factory or open_driver
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.request_timeout = request_timeout
        self._driver: Any = None
        self._lock = threading.Lock()

    @property
    def known_hosts(self) -> Path:
        return self.home.known_hosts

    def groups(self) -> list[str]:
        """Where `nodes`, `owned` and `terminate` look: the configured resource group and every
        group a launch was ever made in."""
        return list(dict.fromkeys([self.group, *self.home.places()]))

    def _credentials(self) -> AzureCredentials:
        creds, why = find_credentials(self.environ)
        if creds is None:
            raise AuthError(why, Scope(NAME))
        return creds

    def _group(self, name: str) -> Group:
        with self._lock:
            if self._driver is None:
                self._driver = self.driver_factory(self._credentials(), self.request_timeout)
            driver = self._driver
        return Group(driver, name, poll_interval=self.poll_interval, wait_timeout=self.wait_timeout)

    def close(self) -> None:
        """Close the HTTP session (a later call opens it again)."""
        with self._lock:
            driver, self._driver = self._driver, None
        close_driver(driver)

    # -- check and offers ---------------------------------------------------------------------

    def check(self) -> BackendCheck:
        """Credentials found, Azure answers a cheap call (5 s timeout), and the resource group
        exists."""
        creds, why = find_credentials(self.environ)
        if creds is None:
            return BackendCheck(backend=NAME, ok=False, reason=why)
        try:
            driver = self.driver_factory(creds, min(5.0, self.request_timeout))
            try:
                groups = {g.name.lower() for g in call(None, driver.ex_list_resource_groups)}
            finally:
                close_driver(driver)
        except BackendError as exc:
            return BackendCheck(backend=NAME, ok=False, reason=f"Azure: {exc}")
        where = f"subscription {creds.subscription_id}"
        if self.group.lower() not in groups:
            return BackendCheck(
                backend=NAME,
                ok=False,
                reason=f"resource group {self.group!r} does not exist in {where}: create it "
                f"(`az group create -n {self.group} -l <region>`) or set "
                "SKYPLAN_AZURE_RESOURCE_GROUP",
            )
        return BackendCheck(
            backend=NAME,
            ok=True,
            reason=f"service principal {creds.client_id} from {creds.source}; Azure answers "
            f"(resource group {self.group!r} in {where})",
            detail=(f"looks for VMs in resource groups: {', '.join(self.groups())}",),
        )

    def offers(self) -> Sequence[PoolOffer]:
        return []  # Azure's shapes and prices come from the catalog

    # -- provisioning ---------------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> list[Node]:
        """Create the missing ranks in the offer's region, start stopped ones, and wait until
        all run."""
        offer, cluster = request.offer, request.cluster
        where = Scope(NAME, offer.region)
        if offer.cloud != NAME:
            raise InvalidRequestError(f"offer for {offer.cloud!r}, not {NAME!r}", Scope(NAME))
        if request.ports:
            raise InvalidRequestError(
                self.capabilities.why_not(Capability.OPEN_PORTS) or "", Scope(NAME)
            )
        if offer.spot:
            raise InvalidRequestError(SPOT_UNSUPPORTED, Scope(NAME))
        if offer.zone is not None:
            raise InvalidRequestError(
                f"the azure backend places VMs by region; libcloud 3.9.1 cannot ask for "
                f"availability zone {offer.zone!r}",
                where,
            )
        image = request.image or self.environ.get("SKYPLAN_AZURE_IMAGE", "")
        if image.startswith("docker:"):
            raise InvalidRequestError(
                "the azure backend boots Marketplace images; container images are not "
                "supported yet",
                Scope(NAME),
            )
        group = self._group(self.group)
        existing: dict[int, Any] = {}
        for vm in self._vms(group, cluster):
            existing.setdefault(_rank(vm), vm)
        missing = [r for r in range(offer.num_nodes) if r not in existing]
        vms = list(existing.values())
        if missing:
            self.home.touch(self.group)  # before anything can exist there
            arch = "arm64" if offer.arch in ("arm64", "aarch64") else "amd64"
            key = self.home.public_key()
            for rank in missing:
                spec = VmSpec(
                    name=f"{azure_name(cluster)}-{rank}",
                    region=offer.region,
                    size=offer.instance_type,
                    image=image or DEFAULT_IMAGES[arch],
                    user=self.user,
                    public_key=key,
                    tags={CLUSTER_TAG: cluster, RANK_TAG: str(rank)},
                    network=self.network.format(region=offer.region),
                    subnet=self.subnet,
                    public_ip=self.public_ip,
                    disk_gb=self.disk_gb,
                )
                vms.append(group.create(spec))
        group.wait(offer.region, vms, "running", restart=True)
        return self.nodes(cluster)

    # -- listing --------------------------------------------------------------------------------

    @staticmethod
    def _vms(group: Group, cluster: str | None = None) -> list[Any]:
        """The group's tagged VMs (of `cluster`, if given)."""
        return [
            vm
            for vm in group.vms()
            if CLUSTER_TAG in _tags(vm) and (cluster is None or _tags(vm)[CLUSTER_TAG] == cluster)
        ]

    def _node(self, vm: Any, group: str) -> Node:
        public = next((ip for ip in vm.public_ips if ip), "")
        private = next((ip for ip in vm.private_ips if ip), "")
        region = str(vm.extra.get("location") or "")
        props = vm.extra.get("properties") or {}
        home = "/root" if self.user == "root" else f"/home/{self.user}"
        return Node(
            cluster=_tags(vm)[CLUSTER_TAG],
            rank=_rank(vm),
            node_id=str(vm.name),
            ip=private or public,  # what the other nodes reach it by, inside the network
            status=_STATUS.get(str(vm.state), NodeStatus.UNREACHABLE),
            cloud=NAME,
            region=region,
            zone=None,
            instance_type=str((props.get("hardwareProfile") or {}).get("vmSize") or ""),
            spot=props.get("priority") == "Spot",
            extra={
                "host": public or private,  # what this machine connects to
                "port": "22",
                "user": self.user,
                "identity_file": str(self.home.identity_file),
                "resource_id": str(vm.id),
                "resource_group": group,
                "public_ip": public,
                "private_ip": private,
                "root": f"{home}/.skyplan/node",
            },
        )

    def _found(self, cluster: str | None = None) -> list[tuple[Group, list[Any]]]:
        """The tagged VMs (of `cluster`) per resource group searched, groups without any left
        out."""
        out = []
        for name in self.groups():
            group = self._group(name)
            vms = self._vms(group, cluster)
            if vms:
                out.append((group, vms))
        return out

    def nodes(self, cluster: str) -> list[Node]:
        found = [self._node(vm, g.name) for g, vms in self._found(cluster) for vm in vms]
        return sorted(found, key=lambda n: (n.rank, n.node_id))

    def owned(self) -> dict[str, list[Node]]:
        return by_cluster(self._node(vm, group.name) for group, vms in self._found() for vm in vms)

    def runner(self, node: Node) -> SshRunner:
        """An SSH runner for `node`, trusting its host key on first use (a new VM makes its key
        at first boot) and pinning it in `<home>/azure/known_hosts`."""
        return vm_runner(node, self.home.known_hosts, Scope(NAME, node.region))

    # -- stop, start, terminate -----------------------------------------------------------------

    def stop(self, cluster: str) -> None:
        """Deallocate the cluster's VMs (Azure then stops billing their compute; disks stay)."""
        for group, vms in self._found(cluster):
            for vm in vms:
                if str(vm.state) in ("running", "paused", "updating", "unknown"):
                    call(vm.extra.get("location"), group.driver.ex_stop_node, vm, deallocate=True)
            for region, of_region in _by_region(vms).items():
                group.wait(region, of_region, "stopped")

    def start(self, cluster: str) -> list[Node]:
        for group, vms in self._found(cluster):
            for region, of_region in _by_region(vms).items():
                group.wait(region, of_region, "running", restart=True)
        return self.nodes(cluster)

    def terminate(self, cluster: str) -> None:
        """Delete every VM tagged with `cluster` (with its NIC, OS disk and public IP), then any
        NIC or IP a half-finished create left for the cluster's VM names. Idempotent."""
        names = re.compile(re.escape(azure_name(cluster)) + r"-\d+")
        for name in self.groups():
            group = self._group(name)
            vms = self._vms(group, cluster)
            for vm in vms:
                group.destroy(vm)
            group.sweep(names)
            self.home.forget_hosts(ip for vm in vms for ip in vm.public_ips if ip)


def _tags(vm: Any) -> dict[str, str]:
    return dict(vm.extra.get("tags") or {})


def _rank(vm: Any) -> int:
    try:
        return max(0, int(_tags(vm).get(RANK_TAG, "0")))
    except ValueError:
        return 0


def _by_region(vms: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for vm in vms:
        out.setdefault(str(vm.extra.get("location") or ""), []).append(vm)
    return out


def _disk_gib(environ: Mapping[str, str], name: str, default: int = 100) -> int:
    """The boot disk size setting `name`, in GiB."""
    value = environ.get(name) or str(default)
    if not value.isdigit() or int(value) < 10:
        raise InputError(f"{name} must be a whole number of GiB, at least 10, not {value!r}")
    return int(value)
