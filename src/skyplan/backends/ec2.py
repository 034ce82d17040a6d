"""The `aws` backend: EC2 virtual machines through apache-libcloud's EC2 driver.

A node of cluster `c` is an instance tagged `skyplan-cluster=c`, `skyplan-rank=<r>`; the tags
are set by the launch call itself, so no instance ever exists untagged. Every instance gets the
key pair `skyplan-<fingerprint>` (of `<home>/aws/id_skyplan`, generated once) and the security
group `skyplan-ssh` (SSH from anywhere, all traffic between its members), both made
idempotently per region (`ec2_region`). The same code talks to AWS or to any EC2-compatible
endpoint (`SKYPLAN_AWS_ENDPOINT`, e.g. moto in the tests).

EC2 has no cheap "every region" listing, so the backend looks for tagged instances in the
regions it is configured with (`SKYPLAN_AWS_REGIONS`, default `us-east-1`) plus every region a
launch was ever made in, recorded in `<home>/aws/regions.json` *before* the launch call, so
`down` and the leak checks after a crash still know where to look. An instance tagged in
another region by other means is not seen.

It never plans and never retries: errors are classified (`ec2_errors`) and raised with their
scope for the runtime's failover loop. libcloud is imported only when a region is opened.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.backends.ec2_errors import CLOUD
from skyplan.backends.ec2_home import AwsHome, Credentials, find_credentials
from skyplan.backends.ec2_region import Region, open_driver
from skyplan.backends.vm import by_cluster, vm_runner
from skyplan.errors import AuthError, BackendError, CapacityError, InvalidRequestError, Scope
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
DEFAULT_REGIONS = ("us-east-1",)
DEFAULT_USER = "ubuntu"
_STATUS = {
    "pending": NodeStatus.PENDING,
    "running": NodeStatus.RUNNING,
    "stopping": NodeStatus.PENDING,
    "stopped": NodeStatus.STOPPED,
    "shutting-down": NodeStatus.TERMINATED,
    "terminated": NodeStatus.TERMINATED,
}


class Ec2Backend:
    """EC2 instances as nodes; see the module docstring. `environ` (default `os.environ`)
    supplies credentials and the `SKYPLAN_AWS_*` settings."""

    name = NAME
    capabilities = Capabilities(
        missing={
            Capability.OPEN_PORTS: (
                "the aws backend opens only SSH (and all traffic between a cluster's nodes); "
                "opening other ports needs per-cluster security groups, not implemented yet"
            ),
        }
    )

    def __init__(
        self,
        home: Path,
        *,
        endpoint: str | None = None,
        environ: Mapping[str, str] | None = None,
        poll_interval: float = 3.0,
        wait_timeout: float = 600.0,
        request_timeout: float = 30.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self.home = AwsHome(home)
        self.environ = env
        self.endpoint = endpoint or env.get("SKYPLAN_AWS_ENDPOINT") or None
        self.user = env.get("SKYPLAN_AWS_SSH_USER") or DEFAULT_USER
        configured = [r.strip() for r in env.get("SKYPLAN_AWS_REGIONS", "").split(",")]
        self.configured_regions = [r for r in configured if r] or list(DEFAULT_REGIONS)
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.request_timeout = request_timeout
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    @property
    def known_hosts(self) -> Path:
        return self.home.known_hosts

    def regions(self) -> list[str]:
        """Where `nodes`, `owned` and `terminate` look: the configured regions and every
        region a launch was ever made in."""
        return list(dict.fromkeys([*self.configured_regions, *self.home.regions()]))

    def _credentials(self) -> Credentials:
        creds = find_credentials(self.environ)
        if creds is None:
            raise AuthError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write "
                "them to ~/.aws/credentials",
                Scope(NAME),
            )
        return creds

    def _open(self, name: str, timeout: float) -> Region:
        driver = open_driver(self._credentials(), name, self.endpoint, timeout)
        return Region(
            name,
            driver,
            endpoint=self.endpoint,
            poll_interval=self.poll_interval,
            wait_timeout=self.wait_timeout,
        )

    def _region(self, name: str) -> Region:
        with self._lock:
            if name not in self._regions:
                self._regions[name] = self._open(name, self.request_timeout)
            return self._regions[name]

    def close(self) -> None:
        """Close the HTTP sessions (a later call opens them again)."""
        with self._lock:
            regions, self._regions = list(self._regions.values()), {}
        for region in regions:
            region.close()

    # -- check and offers ---------------------------------------------------------------------

    def check(self) -> BackendCheck:
        """Credentials found, and the endpoint answers a cheap call (5 s timeout)."""
        creds = find_credentials(self.environ)
        if creds is None:
            return BackendCheck(
                backend=NAME,
                ok=False,
                reason="no AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                "~/.aws/credentials)",
            )
        name = self.configured_regions[0]
        target = self.endpoint or "AWS"
        try:
            region = self._open(name, min(5.0, self.request_timeout))
            try:
                zones = region.zones()
            finally:
                region.close()
        except BackendError as exc:
            return BackendCheck(backend=NAME, ok=False, reason=f"{target}: {exc}")
        return BackendCheck(
            backend=NAME,
            ok=True,
            reason=f"credentials from {creds.source}; {target} answers "
            f"({len(zones)} zones in {name})",
            detail=(f"looks for instances in: {', '.join(self.regions())}",),
        )

    def offers(self) -> Sequence[PoolOffer]:
        return []  # EC2's shapes and prices come from the catalog

    # -- provisioning ---------------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> list[Node]:
        """Launch the missing ranks in the offer's zone (a zone-less offer: the first zone
        with room for rank 0), start stopped ones, and wait until all run.

        For a zone-less offer every error is scoped to the region at the narrowest: the
        failover loop re-plans outside the scope, and a zone scope would not cover the offer
        that failed, so it would be tried again and again."""
        offer = request.offer
        if offer.cloud != NAME:
            raise InvalidRequestError(f"offer for {offer.cloud!r}, not {NAME!r}", Scope(NAME))
        if request.ports:
            raise InvalidRequestError(
                self.capabilities.why_not(Capability.OPEN_PORTS) or "", Scope(NAME)
            )
        region = self._region(offer.region)  # an unknown region fails here, unrecorded
        self.home.touch(region.name)  # before anything can exist there
        try:
            return self._provision(request, region)
        except BackendError as exc:
            scope = exc.scope
            if offer.zone is not None or scope is None or scope.zone is None:
                raise
            wider = Scope(scope.cloud, scope.region)
            raise type(exc)(exc.message, wider, exc.code) from exc

    def _provision(self, request: ProvisionRequest, region: Region) -> list[Node]:
        offer, cluster = request.offer, request.cluster
        existing: dict[int, Any] = {}
        for inst in region.live(**{f"tag:{CLUSTER_TAG}": cluster}):
            existing.setdefault(_rank(inst), inst)
        zone = offer.zone or next((i.extra.get("availability") for i in existing.values()), None)
        ids = [i.id for i in existing.values()]
        missing = [r for r in range(offer.num_nodes) if r not in existing]
        if missing:
            key_name, group = region.prepare(self.home.public_key())
            image = region.image(
                request.image or self.environ.get("SKYPLAN_AWS_IMAGE", ""), offer.arch
            )

            def launch(rank: int, in_zone: str) -> str:
                return region.launch(
                    name=f"{cluster}-{rank}",
                    zone=in_zone,
                    instance_type=offer.instance_type,
                    image=image,
                    key_name=key_name,
                    group=group,
                    tags={CLUSTER_TAG: cluster, RANK_TAG: str(rank)},
                    spot=offer.spot,
                )

            if zone is None:
                zone, first = _first_zone(region, lambda z: launch(missing[0], z))
                ids.append(first)
                missing = missing[1:]
            for rank in missing:
                ids.append(launch(rank, zone))
        region.wait(zone, ids, "running", restart=True)
        found = region.live(**{f"tag:{CLUSTER_TAG}": cluster})
        return sorted(
            (self._node(i, region.name) for i in found), key=lambda n: (n.rank, n.node_id)
        )

    # -- listing --------------------------------------------------------------------------------

    def _node(self, inst: Any, region: str) -> Node:
        public = inst.public_ips[0] if inst.public_ips else ""
        private = inst.private_ips[0] if inst.private_ips else ""
        zone = inst.extra.get("availability") or None
        home = "/root" if self.user == "root" else f"/home/{self.user}"
        return Node(
            cluster=inst.extra["tags"][CLUSTER_TAG],
            rank=_rank(inst),
            node_id=str(inst.id),
            # what other nodes reach it by: the private address (the security group opens
            # everything between members, which public addresses would bypass)
            ip=private or public,
            status=_STATUS.get(str(inst.extra.get("status")), NodeStatus.UNREACHABLE),
            cloud=NAME,
            region=region,
            zone=zone,
            instance_type=str(inst.extra.get("instance_type") or ""),
            spot=_is_spot(inst),
            extra={
                "host": public or private,  # what this machine connects to
                "port": "22",
                "user": self.user,
                "identity_file": str(self.home.identity_file),
                "instance_id": str(inst.id),
                "region": region,
                "zone": zone or "",
                "public_ip": public,
                "private_ip": private,
                "root": f"{home}/.skyplan/node",
            },
        )

    def _instances(self, cluster: str) -> Iterator[tuple[Region, list[Any]]]:
        """The cluster's live instances, per region searched (regions without any skipped)."""
        for name in self.regions():
            region = self._region(name)
            found = region.live(**{f"tag:{CLUSTER_TAG}": cluster})
            if found:
                yield region, found

    def nodes(self, cluster: str) -> list[Node]:
        found = [self._node(i, r.name) for r, insts in self._instances(cluster) for i in insts]
        return sorted(found, key=lambda n: (n.rank, n.node_id))

    def owned(self) -> dict[str, list[Node]]:
        return by_cluster(
            self._node(inst, name)
            for name in self.regions()
            for inst in self._region(name).live(**{"tag-key": CLUSTER_TAG})
        )

    def runner(self, node: Node) -> SshRunner:
        """An SSH runner for `node`. It trusts the host key on first use (`trust_new=True`): a
        new VM makes its host key at first boot and EC2 offers no authenticated way to learn it
        beforehand (the console output has it only minutes later, and not on every image). The
        key is pinned from then on in `<home>/aws/known_hosts`; `terminate` forgets the
        addresses it frees, because EC2 hands public IPs to other instances again."""
        return vm_runner(node, self.home.known_hosts, Scope(NAME, node.region, node.zone))

    # -- stop, start, terminate -----------------------------------------------------------------

    def stop(self, cluster: str) -> None:
        found = list(self._instances(cluster))
        spot = [i.id for _, insts in found for i in insts if _is_spot(i)]
        if spot:
            raise InvalidRequestError(
                f"cluster {cluster!r} runs on spot instances ({', '.join(spot)}), which EC2 "
                "cannot stop; use `skyplan down` instead",
                Scope(NAME),
            )
        for region, insts in found:
            for inst in insts:
                if inst.extra.get("status") in ("pending", "running"):
                    region.call(None, region.driver.stop_node, inst)
            region.wait(None, [i.id for i in insts], "stopped")

    def start(self, cluster: str) -> list[Node]:
        for region, insts in self._instances(cluster):
            region.wait(None, [i.id for i in insts], "running", restart=True)
        return self.nodes(cluster)

    def terminate(self, cluster: str) -> None:
        """Delete every instance tagged with `cluster` in every region searched, and wait until
        EC2 reports them shutting down or terminated. Idempotent."""
        for region, insts in self._instances(cluster):
            for inst in insts:
                try:
                    region.call(None, region.driver.destroy_node, inst)
                except BackendError as exc:
                    if exc.code != "InvalidInstanceID.NotFound":
                        raise
            region.wait_gone([i.id for i in insts], **{f"tag:{CLUSTER_TAG}": cluster})
            self.home.forget_hosts(ip for i in insts for ip in i.public_ips)


def _first_zone(region: Region, launch: Callable[[str], str]) -> tuple[str, str]:
    """Launch in the region's zones in order until one has room: `(zone, instance id)`."""
    failures = []
    for zone in region.zones():
        try:
            return zone, launch(zone)
        except CapacityError as exc:
            failures.append(f"{zone}: {exc.message}")
    raise CapacityError(
        "no zone has capacity: " + "; ".join(failures),
        Scope(NAME, region.name),
        "InsufficientInstanceCapacity",
    )


def _rank(inst: Any) -> int:
    try:
        return max(0, int(inst.extra["tags"].get(RANK_TAG, "0")))
    except ValueError:
        return 0


def _is_spot(inst: Any) -> bool:
    return bool(inst.extra.get("instance_lifecycle") == "spot")
