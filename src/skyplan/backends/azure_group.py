"""One resource group of an Azure subscription through libcloud's Azure (ARM) driver: where the
`azure` backend finds its service principal, every call it makes (each turned into skyplan's
scoped errors), the network pieces each VM needs (a NIC, a public IP), and the polls that wait
for VMs to change state.

libcloud 3.9.1 lacks two calls the backend needs, so it makes them through the driver's own
authenticated ARM connection (`driver.connection.request`) with the api-versions libcloud uses:
creating a **Standard-SKU** public IP (`ex_create_public_ip` cannot name a SKU, and Azure stopped
creating the Basic ones it would get on 2025-03-31), and reading a VM's **instance view**,
whose failed provisioning state says why Azure could not allocate it (libcloud's node state
only says "error").

It knows VMs, NICs and addresses by name; clusters, ranks and `Node`s belong to `azure`.
libcloud is imported only when the driver is opened (`open_driver`, the default factory).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skyplan.backends.azure_errors import CLOUD, classify, from_code
from skyplan.errors import BackendError, CapacityError, InvalidRequestError, Scope, TransientError

ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID")
DISK_TYPE = "StandardSSD_LRS"  # every size takes it (Premium_LRS needs an "s" size)
_GONE = frozenset({"ResourceNotFound", "NotFound"})
_IP_IN_USE = frozenset({"PublicIPAddressCannotBeDeleted", "InUsePublicIpAddressCannotBeDeleted"})


@dataclass(frozen=True)
class AzureCredentials:
    tenant_id: str
    client_id: str
    client_secret: str
    subscription_id: str
    source: str = "the environment"


#: `(credentials, timeout) → libcloud AzureNodeDriver` (or a test double with its methods).
DriverFactory = Callable[[AzureCredentials, float], Any]


@dataclass(frozen=True)
class VmSpec:
    """One VM to create: its name (also its NIC's `<name>-nic` and address's `<name>-ip`)."""

    name: str
    region: str
    size: str
    image: str  # a Marketplace URN: Publisher:Offer:Sku:Version
    user: str
    public_key: str
    tags: Mapping[str, str]
    network: str
    subnet: str
    public_ip: bool
    disk_gb: int


def find_credentials(environ: Mapping[str, str]) -> tuple[AzureCredentials | None, str]:
    """A service principal from `AZURE_*`; `(None, why)` when one is missing. No network."""
    missing = [k for k in ENV if not environ.get(k)]
    if missing:
        return None, f"no Azure credentials: set {', '.join(missing)} (a service principal)"
    tenant, client, secret, subscription = (environ[k] for k in ENV)
    return AzureCredentials(tenant, client, secret, subscription), ""


def open_driver(creds: AzureCredentials, timeout: float) -> Any:
    """libcloud's Azure ARM driver. It asks Azure AD for a token on its first request."""
    from libcloud.compute.providers import get_driver
    from libcloud.compute.types import Provider

    cls = get_driver(Provider.AZURE_ARM)
    return cls(
        creds.tenant_id,
        creds.subscription_id,
        creds.client_id,
        creds.client_secret,
        timeout=timeout,
    )


def close_driver(driver: Any) -> None:
    """Close the driver's HTTP session (it reconnects when used again)."""
    conn = getattr(getattr(driver, "connection", None), "connection", None)
    session = getattr(conn, "session", None)
    if session is not None:
        session.close()


def _arm() -> Any:
    """libcloud's Azure ARM driver module (partly typed: its classes take untyped arguments)."""
    from libcloud.compute.drivers import azure_arm

    return azure_arm


def call(region: str | None, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """`fn(*a, **kw)`, its failure classified for `region`."""
    try:
        return fn(*a, **kw)
    except Exception as exc:  # classify re-raises what it does not know
        raise classify(exc, region) from exc


def delete(region: str | None, fn: Callable[..., Any], *a: Any, **kw: Any) -> None:
    """A delete call for which HTTP 204/404 (already gone) is success."""
    from libcloud.common.exceptions import BaseHTTPError

    try:
        fn(*a, **kw)
    except BaseHTTPError as exc:
        if exc.code not in (204, 404):
            raise classify(exc, region) from exc
    except Exception as exc:  # classify re-raises what it does not know
        raise classify(exc, region) from exc


class Group:
    """See the module docstring."""

    def __init__(
        self, driver: Any, name: str, *, poll_interval: float = 3.0, wait_timeout: float = 600.0
    ) -> None:
        self.driver = driver
        self.name = name
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def _id(self, path: str) -> str:
        sub = self.driver.subscription_id
        return f"/subscriptions/{sub}/resourceGroups/{self.name}/providers/{path}"

    def vms(self) -> list[Any]:
        """Every VM of the group with its addresses and power state (none if it is gone)."""
        try:
            return list(call(None, self.driver.list_nodes, ex_resource_group=self.name))
        except InvalidRequestError as exc:
            if exc.code == "ResourceGroupNotFound":
                return []
            raise

    # -- creating -----------------------------------------------------------------------------

    def create(self, spec: VmSpec) -> Any:
        """Create the VM's public IP (if wanted), NIC and the VM itself, tagged; on failure,
        delete the IP and NIC again (best effort: `sweep` finds what is left)."""
        from libcloud.compute.base import NodeAuthSSHKey, NodeLocation, NodeSize

        arm = _arm()

        d, region = self.driver, spec.region
        location = NodeLocation(region, region, "", d)
        parts = spec.image.split(":")
        if len(parts) != 4:
            raise InvalidRequestError(
                f"{spec.image!r} is not a Marketplace image URN (Publisher:Offer:Sku:Version)",
                Scope(CLOUD),
            )
        publisher, offer, sku, version = parts
        subnet = f"Microsoft.Network/virtualNetworks/{spec.network}/subnets/{spec.subnet}"
        try:
            ip = self._public_ip(f"{spec.name}-ip", region, spec.tags) if spec.public_ip else None
            nic = call(
                region,
                d.ex_create_network_interface,
                f"{spec.name}-nic",
                arm.AzureSubnet(self._id(subnet), spec.subnet, {}),
                self.name,
                location,
                public_ip=ip,
            )
            return call(
                region,
                d.create_node,
                name=spec.name,
                size=NodeSize(spec.size, spec.size, 0, 0, 0, 0.0, d),
                image=arm.AzureImage(version, sku, offer, publisher, location, d),
                auth=NodeAuthSSHKey(spec.public_key),
                ex_resource_group=self.name,
                location=location,
                ex_user_name=spec.user,
                ex_nic=nic,
                ex_tags=dict(spec.tags),
                ex_use_managed_disks=True,
                ex_storage_account_type=DISK_TYPE,
                ex_os_disk_delete=True,
                ex_disk_size=spec.disk_gb,
            )
        except BackendError as exc:
            with contextlib.suppress(BackendError):
                self.delete_network(spec.name, region)
            if exc.code == "InvalidResourceReference" and "virtualNetworks" in exc.message:
                raise InvalidRequestError(
                    f"{exc.message} (the azure backend needs the virtual network "
                    f"{spec.network!r} with subnet {spec.subnet!r} in resource group "
                    f"{self.name!r} in {region}; see docs/backends/azure.md)",
                    exc.scope,
                    exc.code,
                ) from exc
            raise

    def _public_ip(self, name: str, region: str, tags: Mapping[str, str]) -> Any:
        """A static Standard-SKU public IP, through the driver's ARM connection (see the
        module docstring); PUT is idempotent, so a retry finds the same address."""
        arm = _arm()

        body = {
            "location": region,
            "tags": dict(tags),
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"},
        }
        target = self._id(f"Microsoft.Network/publicIPAddresses/{name}")
        version = {"api-version": arm.IP_API_VERSION}
        r = call(region, self.driver.connection.request, target, version, body, method="PUT")
        return arm.AzureIPAddress(r.object["id"], r.object["name"], r.object.get("properties", {}))

    def failure(self, node: Any, region: str) -> BackendError:
        """Why `node` ended in the Failed provisioning state, from its instance view."""

        action, version = f"{node.id}/instanceView", {"api-version": _arm().VM_API_VERSION}
        try:
            view = call(region, self.driver.connection.request, action, params=version).object
        except BackendError:
            view = {}
        for status in view.get("statuses") or []:
            code = str(status.get("code") or "")
            if code.startswith("ProvisioningState/failed/"):
                why = str(status.get("message") or status.get("displayStatus") or "")
                message = f"VM {node.name} failed to provision: {why}"
                return from_code(code.split("/", 2)[2] or None, message, 0, region)
        return CapacityError(
            f"VM {node.name} failed to provision and Azure gave no reason", Scope(CLOUD, region)
        )

    # -- waiting ------------------------------------------------------------------------------

    def wait(self, region: str, vms: Sequence[Any], want: str, *, restart: bool = False) -> None:
        """Poll until every VM of `vms` is `want` (`running` with an address, or `stopped`:
        deallocated), starting stopped ones again if `restart`. A VM that failed to provision
        raises what its instance view says; one that goes away is a capacity error."""
        deadline = time.monotonic() + self.wait_timeout
        started: set[str] = set()
        while True:
            pending = []
            for vm in vms:
                try:
                    node = call(region, self.driver.ex_get_node, vm.id)
                except BackendError as exc:
                    if exc.code not in _GONE:
                        raise
                    raise CapacityError(
                        f"VM {vm.name} went away before it was {want}", Scope(CLOUD, region)
                    ) from exc
                state = str(node.state)
                if state == want and (want != "running" or node.public_ips or node.private_ips):
                    continue
                if state == "error":
                    raise self.failure(node, region)
                if state in ("stopped", "paused") and restart and node.name not in started:
                    call(region, self.driver.ex_start_node, node)  # an allocation may fail here
                    started.add(node.name)
                pending.append(str(node.name))
            if not pending:
                return
            self._pause(deadline, f"{len(pending)} VM(s) not {want}", pending, region)

    def _pause(self, deadline: float, what: str, names: list[str], region: str | None) -> None:
        if time.monotonic() >= deadline:
            raise TransientError(
                f"{what} after {self.wait_timeout:.0f}s: {', '.join(names)}",
                Scope(CLOUD, region),
            )
        time.sleep(self.poll_interval)

    # -- deleting -----------------------------------------------------------------------------

    def destroy(self, node: Any) -> None:
        """Delete the VM, its NIC and OS disk (libcloud waits for the VM to go first), then its
        public IP. Idempotent."""
        region = str(node.extra.get("location") or "") or None
        polls = max(1, int(self.wait_timeout / max(self.poll_interval, 0.001)))
        delete(
            region,
            self.driver.destroy_node,
            node,
            ex_destroy_nic=True,
            ex_destroy_vhd=False,  # managed disks only
            ex_destroy_os_disk=True,
            ex_poll_qty=polls,
            ex_poll_wait=self.poll_interval,
        )
        self.delete_network(str(node.name), region)

    def delete_network(self, vm: str, region: str | None) -> None:
        """Delete `<vm>-nic`, then `<vm>-ip` (retried while the NIC's deletion lets it go)."""
        arm = _arm()

        nic = arm.AzureNic(
            self._id(f"Microsoft.Network/networkInterfaces/{vm}-nic"), None, None, {}
        )
        delete(region, self.driver.ex_destroy_nic, nic)
        ip_id = self._id(f"Microsoft.Network/publicIPAddresses/{vm}-ip")
        deadline = time.monotonic() + self.wait_timeout
        while True:
            try:
                delete(region, self.driver.ex_delete_public_ip, arm.AzureIPAddress(ip_id, vm, {}))
                return
            except BackendError as exc:
                if exc.code not in _IP_IN_USE and not isinstance(exc, TransientError):
                    raise
                self._pause(deadline, "a public IP still in use", [f"{vm}-ip"], region)

    def sweep(self, names: re.Pattern[str]) -> None:
        """Delete the NICs and public IPs named `<vm>-nic`/`<vm>-ip` for a VM name matching
        `names` (left by a create that failed or was killed half-way)."""
        vms: set[str] = set()
        for listing in (self.driver.ex_list_nics, self.driver.ex_list_public_ips):
            try:
                found = call(None, listing, self.name)
            except InvalidRequestError as exc:
                if exc.code == "ResourceGroupNotFound":
                    return
                raise
            for item in found:
                vm = re.sub(r"-(nic|ip)$", "", str(item.name))
                if vm != item.name and names.fullmatch(vm):
                    vms.add(vm)
        for vm in sorted(vms):
            self.delete_network(vm, None)
