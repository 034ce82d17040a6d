"""One EC2 region through one libcloud driver: every call the `aws` backend makes there, each
turned into skyplan's scoped errors, the per-region setup (key pair, security group, image)
done once, and the polls that wait for instances to change state.

It knows regions, zones and instance ids; clusters, ranks and `Node`s belong to `ec2`.
libcloud is imported only when a region is opened.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from skyplan.backends.ec2_errors import CLOUD, classify
from skyplan.backends.ec2_home import Credentials
from skyplan.errors import BackendError, CapacityError, InvalidRequestError, Scope, TransientError

SECURITY_GROUP = "skyplan-ssh"
#: The default image: the newest Ubuntu 24.04 LTS server AMI published by Canonical.
DEFAULT_IMAGE = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"
CANONICAL = "099720109477"
LIVE = ["pending", "running", "stopping", "stopped"]  # not shutting-down, not terminated
GONE = frozenset({"shutting-down", "terminated"})


def open_driver(creds: Credentials, region: str, endpoint: str | None, timeout: float) -> Any:
    """A libcloud EC2 driver for `region`, signing with SigV4 (an endpoint that serves several
    services, like moto's, tells them apart by the signature's scope)."""
    from libcloud.compute.providers import get_driver
    from libcloud.compute.types import Provider

    where: dict[str, Any] = {}
    if endpoint:
        url = urlsplit(endpoint)
        secure = url.scheme == "https"
        where = {"host": url.hostname, "port": url.port or (443 if secure else 80)}
        where["secure"] = secure
    try:
        return get_driver(Provider.EC2)(
            creds.key,
            creds.secret,
            token=creds.token,
            region=region,
            signature_version="4",
            timeout=timeout,
            **where,
        )
    except ValueError as err:  # libcloud knows no such region
        raise InvalidRequestError(str(err), Scope(CLOUD, region)) from None


class Region:
    """See the module docstring. Thread-safe enough: its caches only ever gain equal values."""

    def __init__(
        self,
        name: str,
        driver: Any,
        *,
        endpoint: str | None = None,
        poll_interval: float = 3.0,
        wait_timeout: float = 600.0,
    ) -> None:
        self.name = name
        self.driver = driver
        self.endpoint = endpoint or "EC2"
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self._ready: tuple[str, str] | None = None
        self._images: dict[str, Any] = {}

    def call(self, zone: str | None, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """`fn(*args, **kw)`, its failure classified for this region (and `zone`)."""
        try:
            return fn(*args, **kw)
        except Exception as exc:  # classify re-raises what it does not know
            raise classify(exc, self.name, zone, self.endpoint) from exc

    def close(self) -> None:
        """Close the HTTP session (the driver reconnects when used again)."""
        conn = getattr(self.driver.connection, "connection", None)
        session = getattr(conn, "session", None)
        if session is not None:
            session.close()

    def live(self, **filters: str | list[str]) -> list[Any]:
        """Instances matching `filters` that are not shutting down or terminated."""
        found = self.call(
            None, self.driver.list_nodes, ex_filters={**filters, "instance-state-name": LIVE}
        )
        return list(found)

    def zones(self) -> list[str]:
        return sorted(z.name for z in self.call(None, self.driver.ex_list_availability_zones))

    # -- setup, once per region --------------------------------------------------------------

    def prepare(self, public_key: str) -> tuple[str, str]:
        """The names of the key pair holding `public_key` and of the SSH security group,
        importing and creating them if they are missing (idempotent, also across processes)."""
        if self._ready is not None:
            return self._ready
        key_name = "skyplan-" + hashlib.sha256(public_key.split()[1].encode()).hexdigest()[:16]
        d = self.driver
        self._tolerate(
            "InvalidKeyPair.Duplicate", d.import_key_pair_from_string, key_name, public_key
        )
        self._tolerate(
            "InvalidGroup.Duplicate",
            d.ex_create_security_group,
            SECURITY_GROUP,
            "skyplan: SSH from anywhere, all traffic between members",
        )
        [group] = self.call(None, d.ex_get_security_groups, group_names=[SECURITY_GROUP])
        rules = (
            ((22, 22), {"cidr_ips": ["0.0.0.0/0"]}),  # SSH from anywhere
            # every protocol between members (EC2 ignores the ports for protocol -1)
            ((0, 65535), {"group_pairs": [{"group_id": group.id}], "protocol": "-1"}),
        )
        for (low, high), rule in rules:
            self._tolerate(
                "InvalidPermission.Duplicate",
                d.ex_authorize_security_group_ingress,
                group.id,
                low,
                high,
                **rule,
            )
        self._ready = (key_name, SECURITY_GROUP)
        return self._ready

    def _tolerate(self, code: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        try:
            self.call(None, fn, *args, **kw)
        except BackendError as exc:
            if exc.code != code:
                raise

    def image(self, value: str, arch: str) -> Any:
        """The image for `value`: an AMI id as is, a name pattern's newest match, or (empty)
        the newest Canonical Ubuntu 24.04 AMI for `arch`."""
        from libcloud.compute.base import NodeImage

        if value.startswith("docker:"):
            raise InvalidRequestError(
                "the aws backend boots AMIs; container images are not supported yet",
                Scope(CLOUD, self.name),
            )
        if value.startswith("ami-"):
            return NodeImage(id=value, name=value, driver=self.driver)
        ubuntu_arch = "arm64" if arch in ("arm64", "aarch64") else "amd64"
        pattern = value or DEFAULT_IMAGE.format(arch=ubuntu_arch)
        if pattern not in self._images:
            found = self.call(
                None,
                self.driver.list_images,
                ex_owner=None if value else CANONICAL,
                ex_filters={"name": pattern, "state": "available"},
            )
            if not found:
                raise InvalidRequestError(
                    f"no image named {pattern!r} in {self.name}; "
                    "set SKYPLAN_AWS_IMAGE to an AMI id",
                    Scope(CLOUD, self.name),
                    "InvalidAMIID.NotFound",
                )
            newest = max(found, key=lambda i: (str(i.extra.get("creation_date") or ""), i.id))
            self._images[pattern] = newest
        return self._images[pattern]

    # -- launching and waiting -----------------------------------------------------------------

    def launch(
        self,
        *,
        name: str,
        zone: str,
        instance_type: str,
        image: Any,
        key_name: str,
        group: str,
        tags: dict[str, str],
        spot: bool,
    ) -> str:
        """Launch one instance, tagged by the launch call itself; returns its id."""
        from libcloud.compute.base import NodeSize
        from libcloud.compute.drivers import ec2 as libcloud_ec2

        ec2: Any = libcloud_ec2  # partly typed: its classes take untyped arguments
        d = self.driver
        size = NodeSize(instance_type, instance_type, 0, 0, 0, 0.0, d)
        az = ec2.ExEC2AvailabilityZone(zone, "available", self.name)
        node = self.call(
            zone,
            d.create_node,
            name=name,
            size=size,
            image=image,
            location=ec2.EC2NodeLocation(zone, zone, d.country, d, az),
            ex_keyname=key_name,
            ex_security_groups=[group],
            ex_metadata=tags,
            ex_spot=spot,
        )
        return str(node.id)

    def wait(
        self, zone: str | None, ids: Sequence[str], want: str, *, restart: bool = False
    ) -> None:
        """Poll until every instance of `ids` is `want` (`running` with an address, or
        `stopped`), starting stopped ones again if `restart`. An instance that goes away
        meanwhile is a capacity error (EC2 reclaimed it, or could not place it)."""
        if not ids:
            return
        deadline = time.monotonic() + self.wait_timeout
        started: set[str] = set()
        while True:
            try:
                found = self.call(zone, self.driver.list_nodes, ex_node_ids=list(ids))
            except BackendError as exc:
                if exc.code != "InvalidInstanceID.NotFound":
                    raise
                found = []  # EC2 is eventually consistent: a new id may not be listed yet
            pending = [i for i in ids if i not in {inst.id for inst in found}]
            for inst in found:
                state = str(inst.extra.get("status"))
                if state == want and (want != "running" or inst.public_ips or inst.private_ips):
                    continue
                if state in GONE:
                    raise CapacityError(
                        f"instance {inst.id} went {state} before it was {want} "
                        "(reclaimed, or EC2 could not place it)",
                        Scope(CLOUD, self.name, zone),
                    )
                if state == "stopped" and restart and inst.id not in started:
                    self.call(zone, self.driver.start_node, inst)
                    started.add(inst.id)
                pending.append(inst.id)
            if not pending:
                return
            self._pause(deadline, f"{len(pending)} instance(s) not {want}", pending, zone)

    def wait_gone(self, ids: Sequence[str], **filters: str) -> None:
        """Poll until no instance of `ids` is listed live under `filters`."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            live = {i.id for i in self.live(**filters)}
            pending = [i for i in ids if i in live]
            if not pending:
                return
            self._pause(deadline, f"{len(pending)} instance(s) not terminated", pending)

    def _pause(self, deadline: float, what: str, ids: list[str], zone: str | None = None) -> None:
        if time.monotonic() >= deadline:
            raise TransientError(
                f"{what} after {self.wait_timeout:.0f}s: {', '.join(ids)}",
                Scope(CLOUD, self.name, zone),
            )
        time.sleep(self.poll_interval)
