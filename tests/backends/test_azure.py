"""The `azure` backend (`AzureBackend`) and its error classification.

Nothing here talks to Azure. Two kinds of test:

- **classification**: Azure Resource Manager and Azure AD error bodies are fed through
  libcloud's own response classes (`AzureJsonResponse`, `AzureAuthJsonResponse`), so the
  exceptions classified are exactly those libcloud 3.9.1 raises for them; allocation failures
  are classified from the instance-view status codes Azure reports for a Failed VM.
- **FAKE AZURE** (`FakeAzure`, a TEST DOUBLE): an in-memory stand-in for libcloud's
  `AzureNodeDriver` with only the methods the backend calls (and the two raw ARM requests it
  makes through `driver.connection`), handed to the backend through its `driver_factory` seam.
  It keeps VMs shaped like the driver's (`libcloud Node`s whose `extra` is the ARM resource),
  NICs and public IPs, enforces what ARM would (the subnet must exist, a Standard-SKU IP, an IP
  in use cannot be deleted), reports power states as libcloud reads them (`starting` is
  `unknown`), moves VMs along one read at a time, and raises the libcloud errors ARM's payloads
  produce. It shows the backend's use of the driver, naming, tagging, idempotency,
  classification and cleanup — not Azure's real behaviour, which has never been exercised
  (see docs/backends/azure.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skyplan.backends.azure import CLUSTER_TAG, RANK_TAG, AzureBackend, azure_name
from skyplan.backends.azure_errors import classify, from_code, split_code
from skyplan.backends.azure_group import AzureCredentials, find_credentials
from skyplan.backends.base import Backend
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
from skyplan.model import Offer, Task
from skyplan.model.node import Capability, NodeStatus, ProvisionRequest
from skyplan.model.state import AttemptOutcome
from skyplan.runtime import Launcher, LaunchSpec, Lifecycle
from skyplan.runtime.launch import Planner
from skyplan.state import Store

EAST, WEST = "eastus", "westus2"
SUB = "00000000-0000-0000-0000-000000000001"
CREDS = {
    "AZURE_TENANT_ID": "tenant",
    "AZURE_CLIENT_ID": "client",
    "AZURE_CLIENT_SECRET": "secret",
    "AZURE_SUBSCRIPTION_ID": SUB,
}


def _http(status: int, body: Any) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return SimpleNamespace(
        headers={}, reason="", status_code=status, request=None, iter_content=None, text=text
    )


def arm_error(status: int, code: str, message: str) -> Exception:
    """What libcloud's ARM connection raises for a refused call with ARM's error body."""
    from libcloud.common.azure_arm import AzureJsonResponse

    try:
        AzureJsonResponse(_http(status, {"error": {"code": code, "message": message}}), None)
    except Exception as exc:
        return exc
    raise AssertionError("libcloud accepted the error")


def aad_error(status: int, error: str, description: str) -> Exception:
    """What libcloud raises when Azure AD refuses the token request."""
    from libcloud.common.azure_arm import AzureAuthJsonResponse

    body = {"error": error, "error_description": description}
    try:
        AzureAuthJsonResponse(_http(status, body), None)
    except Exception as exc:
        return exc
    raise AssertionError("libcloud accepted the error")


def sku_not_available(region: str = EAST) -> Exception:
    return arm_error(
        409,
        "SkuNotAvailable",
        f"The requested size for resource '/subscriptions/{SUB}/resourceGroups/skyplan/providers/"
        f"Microsoft.Compute/virtualMachines/c-0' is currently not available in location "
        f"'{region}' zones '' for subscription '{SUB}'. Please try another size or deploy to a "
        "different location or zones. See https://aka.ms/azureskunotavailable for details.",
    )


def core_quota(region: str = EAST) -> Exception:
    return arm_error(
        409,
        "OperationNotAllowed",
        "Operation could not be completed as it results in exceeding approved "
        "standardNCASv3_T4 Family Cores quota. Additional details - Deployment Model: Resource "
        f"Manager, Location: {region}, Current Limit: 0, Current Usage: 0, Additional "
        "Required: 4, (Minimum) New Limit Required: 4.",
    )


# == classification ===========================================================================

AT_REGION = Scope("azure", EAST)
ALL = Scope("azure")


#: Refused ARM calls: (id, HTTP status, ARM error code, message, kind, scope).
ARM_CASES = [
    ("sku-not-available", 409, "SkuNotAvailable", "The requested size for resource 'c-0' is "
     "currently not available in location 'eastus' zones ''.", CapacityError, AT_REGION),
    ("allocation-failed", 409, "AllocationFailed", "Allocation failed. We do not have "
     "sufficient capacity for the requested VM size in this region.", CapacityError, AT_REGION),
    ("zonal-allocation", 409, "ZonalAllocationFailed", "Allocation failed in zone 1.",
     CapacityError, AT_REGION),
    ("core-quota", 409, "OperationNotAllowed", "Operation could not be completed as it results "
     "in exceeding approved Total Regional Cores quota.", QuotaError, AT_REGION),
    ("quota-exceeded", 409, "QuotaExceeded", "Operation results in exceeding quota limits of "
     "Core. Maximum allowed: 4, Current in use: 4, Additional requested: 4.", QuotaError,
     AT_REGION),
    ("not-allowed-not-quota", 409, "OperationNotAllowed", "The operation is not allowed on a VM "
     "that is being deallocated.", InvalidRequestError, AT_REGION),
    ("busy", 409, "AnotherOperationInProgress", "Operation 'start' is not allowed since another "
     "operation is in progress.", TransientError, AT_REGION),
    ("500", 500, "InternalServerError", "An internal error occurred.", TransientError, AT_REGION),
    ("no-permission", 403, "AuthorizationFailed", "The client 'x' does not have authorization "
     "to perform action 'Microsoft.Compute/virtualMachines/write'.", AuthError, ALL),
    ("bad-token", 401, "InvalidAuthenticationToken", "The access token is invalid.", AuthError,
     ALL),
    ("no-subscription", 404, "SubscriptionNotFound", f"The subscription '{SUB}' could not be "
     "found.", AuthError, ALL),
    ("no-group", 404, "ResourceGroupNotFound", "Resource group 'skyplan' could not be found.",
     InvalidRequestError, ALL),
    ("invalid-parameter", 400, "InvalidParameter", "The value of parameter imageReference is "
     "invalid.", InvalidRequestError, AT_REGION),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "scope"),
    [c[1:] for c in ARM_CASES],
    ids=[c[0] for c in ARM_CASES],
)
def test_arm_error_codes_decide_the_kind_and_scope(
    status: int, code: str, message: str, kind: type[BackendError], scope: Scope
) -> None:
    err = classify(arm_error(status, code, message), EAST)
    assert type(err) is kind, err
    assert (err.scope, err.code, err.message) == (scope, code, message)


def _other_cases() -> list[Any]:
    from libcloud.common.types import LibcloudError
    from requests.exceptions import ConnectionError as RequestsConnectionError

    secret = aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    tenant = aad_error(400, "invalid_request", "AADSTS90002: Tenant 'x' not found.")
    return [
        pytest.param(arm_error(429, "TooManyRequests", "x"), TransientError, AT_REGION,
                     "TooManyRequests", id="429-body-dropped"),
        pytest.param(_raw(503, "<html>Service Unavailable</html>"), TransientError, AT_REGION,
                     None, id="503-html"),
        pytest.param(secret, AuthError, ALL, "AADSTS7000215", id="aad-bad-secret"),
        pytest.param(tenant, AuthError, ALL, "AADSTS90002", id="aad-no-tenant"),
        pytest.param(LibcloudError("Unknown image type"), TransientError, AT_REGION, None,
                     id="libcloud"),
        pytest.param(RequestsConnectionError("refused"), TransientError, AT_REGION, None,
                     id="no-connection"),
        pytest.param(TimeoutError("timed out"), TransientError, AT_REGION, None, id="timeout"),
    ]  # fmt: skip


def _raw(status: int, text: str) -> Exception:
    """What libcloud raises for an error whose body is not JSON."""
    from libcloud.common.azure_arm import AzureJsonResponse

    try:
        AzureJsonResponse(_http(status, text), SimpleNamespace(driver=None))
    except Exception as exc:
        return exc
    raise AssertionError("libcloud accepted the error")


@pytest.mark.parametrize(("exc", "kind", "scope", "code"), _other_cases())
def test_throttling_token_and_connection_errors_are_classified(
    exc: Exception, kind: type[BackendError], scope: Scope, code: str | None
) -> None:
    err = classify(exc, EAST)
    assert type(err) is kind, err
    assert (err.scope, err.code) == (scope, code)


@pytest.mark.parametrize(
    ("status_code", "kind", "code"),
    [
        ("ProvisioningState/failed/AllocationFailed", CapacityError, "AllocationFailed"),
        (
            "ProvisioningState/failed/OverconstrainedAllocationRequest",
            CapacityError,
            "OverconstrainedAllocationRequest",
        ),
        ("ProvisioningState/failed/OSProvisioningTimedOut", InvalidRequestError, None),
    ],
    ids=["allocation", "overconstrained", "os-timeout"],
)
def test_a_failed_provisioning_state_is_classified_by_its_code(
    status_code: str, kind: type[BackendError], code: str | None
) -> None:
    reason = status_code.split("/", 2)[2]
    err = from_code(reason, "VM c-0 failed to provision", 0, EAST)
    assert type(err) is kind and err.scope == AT_REGION
    assert err.code == (code or reason)


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("[SkuNotAvailable] The requested size", "SkuNotAvailable", "The requested size"),
        ("[NicInUse]  Nic  is\nin use", "NicInUse", "Nic is in use"),
        ("AADSTS7000215: Invalid client secret", None, "AADSTS7000215: Invalid client secret"),
        ("", None, ""),
    ],
)
def test_split_code(text: str, code: str | None, message: str) -> None:
    assert split_code(text) == (code, message)


def test_a_bug_is_not_turned_into_a_backend_error() -> None:
    with pytest.raises(KeyError):
        raise classify(KeyError("oops"), EAST)


# == names, credentials, check ================================================================


@pytest.mark.parametrize(
    ("cluster", "name"),
    [("train", "train"), ("run-2", "run-2"), ("My_Run.v2", "my-run-v2-"), ("7up", "c-7up-")],
    ids=["plain", "hyphens", "mapped", "leading-digit"],
)
def test_azure_names_are_valid_linux_host_names(cluster: str, name: str) -> None:
    got = azure_name(cluster)
    assert re.fullmatch(r"[a-z][-a-z0-9]*[a-z0-9]", got) and len(got) <= 49
    if name.endswith("-"):
        assert re.fullmatch(re.escape(name) + r"[0-9a-f]{6}", got)
    else:
        assert got == name


def test_credentials_are_a_service_principal_from_the_environment() -> None:
    creds, _ = find_credentials(CREDS)
    assert creds == AzureCredentials("tenant", "client", "secret", SUB)
    none, why = find_credentials({"AZURE_TENANT_ID": "t"})
    assert none is None
    assert why == (
        "no Azure credentials: set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_SUBSCRIPTION_ID "
        "(a service principal)"
    )


def never(*_args: Any) -> Any:
    raise AssertionError("the driver must not be opened")


def test_check_without_credentials_says_how_and_opens_nothing(tmp_path: Path) -> None:
    check = AzureBackend(tmp_path, environ={}, driver_factory=never).check()
    assert not check.ok and "AZURE_TENANT_ID" in check.reason


def test_without_credentials_every_call_is_an_auth_error_for_the_whole_backend(
    tmp_path: Path,
) -> None:
    backend = AzureBackend(tmp_path, environ={}, driver_factory=never)
    for attempt in (lambda: backend.provision(ask()), lambda: backend.nodes("c")):
        with pytest.raises(AuthError) as caught:
            attempt()
        assert caught.value.scope == ALL


def test_the_backend_satisfies_the_protocol_and_declares_what_it_lacks(tmp_path: Path) -> None:
    backend = AzureBackend(tmp_path, environ={}, driver_factory=never)
    assert isinstance(backend, Backend)
    assert backend.offers() == []
    assert backend.capabilities.supports(Capability.STOP)
    assert "Spot priority" in (backend.capabilities.why_not(Capability.SPOT) or "")
    assert "security" in (backend.capabilities.why_not(Capability.OPEN_PORTS) or "")


def make_offer(
    region: str = EAST,
    *,
    zone: str | None = None,
    num_nodes: int = 1,
    spot: bool = False,
    cost: float = 1.0,
    instance_type: str = "Standard_NC4as_T4_v3",
) -> Offer:
    return Offer(
        cloud="azure",
        region=region,
        zone=zone,
        instance_type=instance_type,
        accelerators={"T4": 1},
        spot=spot,
        num_nodes=num_nodes,
        hourly_cost=cost,
        vcpus=4,
        memory_gib=28,
    )


def ask(cluster: str = "c", **offer: Any) -> ProvisionRequest:
    return ProvisionRequest(cluster=cluster, offer=make_offer(**offer))


# == FAKE AZURE: an in-memory test double of libcloud's AzureNodeDriver =======================

_POWER = {"running": "running", "deallocated": "stopped", "stopped": "paused"}
_NEXT = {"starting": "running", "deallocating": "deallocated"}


class FakeArm:
    """The two raw ARM requests the backend makes through `driver.connection`."""

    def __init__(self, azure: FakeAzure) -> None:
        self.azure = azure

    def request(
        self,
        action: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        method: str = "GET",
        raw: bool = False,
    ) -> Any:
        if method == "PUT" and "/Microsoft.Network/publicIPAddresses/" in action:
            assert data["sku"] == {"name": "Standard"}  # Azure creates no Basic ones any more
            assert data["properties"]["publicIPAllocationMethod"] == "Static"
            name = action.rsplit("/", 1)[1]
            self.azure.ips[action] = {"name": name, "tags": data["tags"], "nic": None}
            props = {"ipAddress": f"20.0.0.{len(self.azure.ips)}"}
            return SimpleNamespace(
                status=201, object={"id": action, "name": name, "properties": props}
            )
        if method == "GET" and action.endswith("/instanceView"):
            vm = self.azure.vms[action.rsplit("/", 1)[0]]
            return SimpleNamespace(status=200, object={"statuses": vm["statuses"]})
        raise AssertionError(f"unexpected raw ARM call {method} {action}")


class FakeAzure:
    """TEST DOUBLE of libcloud's `AzureNodeDriver` (see the module docstring).
    `create_faults` maps a region (or `"*"`) to the exception `create_node` raises there
    (synchronous refusals: SkuNotAvailable, quota, auth); `allocation_faults` maps a region to
    the code a VM created there fails with afterwards (AllocationFailed)."""

    type = "azure_arm"  # what libcloud's Node asks its driver for
    subscription_id = SUB

    def __init__(self) -> None:
        self.groups = {"skyplan": EAST}
        self.subnets = {
            f"/subscriptions/{SUB}/resourceGroups/skyplan/providers/Microsoft.Network/"
            f"virtualNetworks/skyplan-{r}/subnets/default"
            for r in (EAST, WEST)
        }
        self.vms: dict[str, dict[str, Any]] = {}
        self.nics: dict[str, dict[str, Any]] = {}
        self.ips: dict[str, dict[str, Any]] = {}
        self.disks: set[str] = set()
        self.create_faults: dict[str, Exception] = {}
        self.allocation_faults: dict[str, str] = {}
        self.created: list[dict[str, Any]] = []
        self.connection = FakeArm(self)

    def _rg(self, name: str) -> str:
        if name not in self.groups:
            raise arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
            )
        return f"/subscriptions/{SUB}/resourceGroups/{name}/providers"

    # -- what the backend calls ---------------------------------------------------------------

    def ex_list_resource_groups(self) -> list[Any]:
        from libcloud.compute.drivers.azure_arm import AzureResourceGroup

        return [AzureResourceGroup(f"/rg/{n}", n, loc, {}) for n, loc in self.groups.items()]

    def ex_create_network_interface(
        self,
        name: str,
        subnet: Any,
        resource_group: str,
        location: Any = None,
        public_ip: Any = None,
    ) -> Any:
        from libcloud.compute.drivers.azure_arm import AzureNic

        target = f"{self._rg(resource_group)}/Microsoft.Network/networkInterfaces/{name}"
        if subnet.id not in self.subnets:
            raise arm_error(
                400,
                "InvalidResourceReference",
                f"Resource {subnet.id} referenced by resource {target} was not found.",
            )
        ip = public_ip.id if public_ip is not None else None
        if ip is not None:
            self.ips[ip]["nic"] = target
        self.nics[target] = {
            "name": name,
            "ip": ip,
            "vm": None,
            "private": f"10.0.0.{len(self.nics) + 4}",
        }
        return AzureNic(target, name, location.id, {})

    def create_node(
        self,
        name: str,
        size: Any,
        image: Any,
        auth: Any,
        ex_resource_group: str,
        ex_storage_account: Any = None,
        ex_blob_container: str = "vhds",
        location: Any = None,
        ex_user_name: str = "azureuser",
        ex_network: Any = None,
        ex_subnet: Any = None,
        ex_nic: Any = None,
        ex_tags: Any = None,
        ex_customdata: str = "",
        ex_use_managed_disks: bool = False,
        ex_disk_size: int | None = None,
        ex_storage_account_type: str = "Standard_LRS",
        ex_os_disk_delete: bool = False,
    ) -> Any:
        from libcloud.compute.base import NodeAuthSSHKey
        from libcloud.compute.drivers.azure_arm import AzureImage

        if not ex_use_managed_disks and ex_storage_account is None:  # libcloud's own checks
            raise ValueError("ex_use_managed_disks is False, must provide ex_storage_account")
        assert isinstance(image, AzureImage) and isinstance(auth, NodeAuthSSHKey)
        assert ex_nic is not None and ex_nic.id in self.nics
        region = location.id
        fault = self.create_faults.get(region) or self.create_faults.get("*")
        if fault is not None:
            raise fault
        vm_id = f"{self._rg(ex_resource_group)}/Microsoft.Compute/virtualMachines/{name}"
        if vm_id in self.vms:
            raise arm_error(409, "Conflict", f"VM {name} exists")
        self.created.append(
            {
                "name": name,
                "size": size.id,
                "image": image.id,
                "user": ex_user_name,
                "key": auth.pubkey,
                "disk": (ex_storage_account_type, ex_disk_size, ex_os_disk_delete),
            }
        )
        disk = f"{self._rg(ex_resource_group)}/Microsoft.Compute/disks/{name}"
        self.disks.add(disk)
        self.nics[ex_nic.id]["vm"] = vm_id
        failed = self.allocation_faults.get(region)
        self.vms[vm_id] = {
            "name": name,
            "location": region,
            "tags": dict(ex_tags or {}),
            "size": size.id,
            "nic": ex_nic.id,
            "disk": disk,
            "provisioning": "Creating",
            "power": "starting",
            "fails": failed,
            "statuses": [{"code": "ProvisioningState/creating"}],
        }
        return self._node(vm_id)

    def list_nodes(
        self,
        ex_resource_group: str | None = None,
        ex_fetch_nic: bool = True,
        ex_fetch_power_state: bool = True,
    ) -> list[Any]:
        prefix = self._rg(ex_resource_group or "skyplan")
        return [self._node(v) for v in sorted(self.vms) if v.startswith(prefix)]

    def ex_get_node(self, id: str) -> Any:
        if id not in self.vms:
            raise arm_error(404, "ResourceNotFound", f"The Resource '{id}' was not found.")
        return self._node(id)

    def ex_stop_node(self, node: Any, deallocate: bool = True) -> Any:
        self.vms[node.id]["power"] = "deallocating" if deallocate else "stopped"
        return {}

    def ex_start_node(self, node: Any) -> Any:
        self.vms[node.id]["power"] = "starting"
        return {}

    def destroy_node(
        self,
        node: Any,
        ex_destroy_nic: bool = True,
        ex_destroy_vhd: bool = True,
        ex_poll_qty: int = 10,
        ex_poll_wait: int = 10,
        ex_destroy_os_disk: bool = True,
    ) -> bool:
        vm = self.vms.pop(node.id, None)
        if vm is None:
            return True  # ARM answers 204 for a VM already gone; libcloud stops there
        if ex_destroy_nic:
            self.nics.pop(vm["nic"], None)
        else:
            self.nics[vm["nic"]]["vm"] = None
        if ex_destroy_os_disk:
            self.disks.discard(vm["disk"])
        return True

    def ex_destroy_nic(self, nic: Any) -> bool:
        held = self.nics.get(nic.id)
        if held is not None and held["vm"] in self.vms:
            raise arm_error(400, "NicInUse", "Network Interface is used by existing VM")
        if held is not None and held["ip"] in self.ips:
            self.ips[held["ip"]]["nic"] = None
        self.nics.pop(nic.id, None)
        return True  # libcloud treats a 204 (already gone) as success here

    def ex_delete_public_ip(self, public_ip: Any) -> bool:
        from libcloud.common.exceptions import BaseHTTPError

        ip = self.ips.get(public_ip.id)
        if ip is None:
            raise BaseHTTPError(204, "", {})  # 204 is not a success to libcloud's JsonResponse
        if ip["nic"] in self.nics:
            raise arm_error(
                400,
                "PublicIPAddressCannotBeDeleted",
                "Public IP address can not be deleted since it is still allocated",
            )
        del self.ips[public_ip.id]
        return True

    def ex_list_nics(self, resource_group: str | None = None) -> list[Any]:
        from libcloud.compute.drivers.azure_arm import AzureNic

        self._rg(resource_group or "skyplan")
        return [AzureNic(i, n["name"], EAST, {}) for i, n in self.nics.items()]

    def ex_list_public_ips(self, resource_group: str) -> list[Any]:
        from libcloud.compute.drivers.azure_arm import AzureIPAddress

        self._rg(resource_group)
        return [AzureIPAddress(i, p["name"], {}) for i, p in self.ips.items()]

    # -- for the tests ------------------------------------------------------------------------

    def _node(self, vm_id: str) -> Any:
        """The VM as libcloud's `_to_node` builds it, one step further along."""
        from libcloud.compute.base import Node

        vm = self.vms[vm_id]
        if vm["provisioning"] == "Creating":
            vm["provisioning"] = "Failed" if vm["fails"] else "Succeeded"
            vm["statuses"] = (
                [
                    {
                        "code": f"ProvisioningState/failed/{vm['fails']}",
                        "message": "Allocation failed. We do not have sufficient capacity.",
                    }
                ]
                if vm["fails"]
                else [{"code": "ProvisioningState/succeeded"}]
            )
            state = "pending"
        elif vm["provisioning"] == "Failed":
            state = "error"
        else:
            state = _POWER.get(
                vm["power"], "pending" if vm["power"] == "deallocating" else "unknown"
            )
            vm["power"] = _NEXT.get(vm["power"], vm["power"])
        nic = self.nics.get(vm["nic"]) or {}
        ip = self.ips.get(nic.get("ip") or "")
        public = (
            [f"20.0.0.{sorted(self.ips).index(nic['ip']) + 1}"] if ip and state == "running" else []
        )
        extra = {
            "id": vm_id,
            "name": vm["name"],
            "location": vm["location"],
            "tags": vm["tags"],
            "properties": {
                "hardwareProfile": {"vmSize": vm["size"]},
                "networkProfile": {"networkInterfaces": [{"id": vm["nic"]}]},
                "storageProfile": {"osDisk": {"managedDisk": {"id": vm["disk"]}}},
                "provisioningState": vm["provisioning"],
            },
        }
        private = [nic["private"]] if nic else []
        return Node(vm_id, vm["name"], state, public, private, self, extra=extra)

    def left(self) -> list[str]:
        """Every VM (`cluster/rank@region`), NIC, IP and disk the fake still holds."""
        vms = [
            f"{v['tags'].get(CLUSTER_TAG)}/{v['tags'].get(RANK_TAG)}@{v['location']}"
            for v in self.vms.values()
        ]
        rest = [
            f"{kind}:{i.rsplit('/', 1)[1]}"
            for kind, ids in (("nic", self.nics), ("ip", self.ips), ("disk", self.disks))
            for i in ids
        ]
        return sorted(vms) + sorted(rest)


@pytest.fixture
def fake() -> FakeAzure:
    return FakeAzure()


@pytest.fixture
def azure(tmp_path: Path, fake: FakeAzure) -> Iterator[AzureBackend]:
    """FAKE AZURE: a backend whose driver is the fake, polling without pause."""
    backend = AzureBackend(
        tmp_path / "home",
        environ=CREDS,
        driver_factory=lambda _creds, _timeout: fake,
        poll_interval=0,
        wait_timeout=5,
    )
    yield backend
    backend.close()


def test_fake_azure_check_reports_the_resource_group(azure: AzureBackend, fake: FakeAzure) -> None:
    check = azure.check()
    assert check.ok, check.reason
    assert "resource group 'skyplan'" in check.reason
    del fake.groups["skyplan"]
    check = azure.check()
    assert not check.ok and "az group create -n skyplan" in check.reason


def test_fake_azure_check_reports_refused_credentials(tmp_path: Path) -> None:
    class Refusing(FakeAzure):
        def ex_list_resource_groups(self) -> list[Any]:
            raise aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")

    backend = AzureBackend(tmp_path, environ=CREDS, driver_factory=lambda _c, _t: Refusing())
    check = backend.check()
    assert not check.ok and "AADSTS7000215" in check.reason


def test_fake_azure_provisions_tagged_vms_with_nic_ip_and_key(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    nodes = azure.provision(ask(num_nodes=2))
    assert [(n.rank, n.node_id, n.status, n.region, n.zone) for n in nodes] == [
        (0, "c-0", NodeStatus.RUNNING, EAST, None),
        (1, "c-1", NodeStatus.RUNNING, EAST, None),
    ]
    assert azure.nodes("c") == nodes and azure.owned() == {"c": nodes}
    assert fake.left() == [
        "c/0@eastus",
        "c/1@eastus",
        "disk:c-0",
        "disk:c-1",
        "ip:c-0-ip",
        "ip:c-1-ip",
        "nic:c-0-nic",
        "nic:c-1-nic",
    ]
    node = nodes[0]
    assert node.ip == node.extra["private_ip"] and node.extra["host"] == node.extra["public_ip"]
    assert node.extra["public_ip"].startswith("20.0.0.")
    assert (node.extra["user"], node.extra["root"]) == (
        "azureuser",
        "/home/azureuser/.skyplan/node",
    )
    assert (
        node.instance_type == "Standard_NC4as_T4_v3" and node.extra["resource_group"] == "skyplan"
    )
    public = Path(node.extra["identity_file"]).with_name("id_skyplan.pub").read_text()
    created = fake.created[0]
    assert created["key"] == public.rsplit(" ", 1)[0]
    assert created["image"] == "Canonical:ubuntu-24_04-lts:server:latest"
    assert created["disk"] == ("StandardSSD_LRS", 100, True)
    [ip] = [i for i in fake.ips.values() if i["name"] == "c-0-ip"]
    assert ip["tags"] == {CLUSTER_TAG: "c", RANK_TAG: "0"}
    assert json.loads((azure.home.dir / "resource_groups.json").read_text()) == {
        "resource_groups": ["skyplan"]
    }
    azure.terminate("c")
    assert fake.left() == [] and azure.owned() == {}


def test_fake_azure_maps_a_cluster_name_azure_would_refuse(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    nodes = azure.provision(ask("My_Run.v2"))
    assert nodes[0].node_id == f"{azure_name('My_Run.v2')}-0"
    assert nodes[0].cluster == "My_Run.v2"  # the tag keeps the real name
    azure.terminate("My_Run.v2")
    assert fake.left() == []


def test_fake_azure_refuses_spot_zones_ports_and_containers(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    with pytest.raises(InvalidRequestError, match="Spot priority") as caught:
        azure.provision(ask(spot=True))
    assert caught.value.scope == ALL
    with pytest.raises(InvalidRequestError, match="availability zone"):
        azure.provision(ask(zone="1"))
    with pytest.raises(InvalidRequestError, match="security rules"):
        azure.provision(ProvisionRequest(cluster="c", offer=make_offer(), ports=(80,)))
    with pytest.raises(InvalidRequestError, match="container images"):
        azure.provision(ProvisionRequest(cluster="c", offer=make_offer(), image="docker:x"))
    with pytest.raises(InvalidRequestError, match="Marketplace image URN"):
        azure.provision(ProvisionRequest(cluster="c", offer=make_offer(), image="ubuntu"))
    assert fake.left() == []


def test_fake_azure_provisioning_again_keeps_ranks_and_fills_gaps(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    first = azure.provision(ask(num_nodes=3))
    assert [n.node_id for n in azure.provision(ask(num_nodes=3))] == ["c-0", "c-1", "c-2"]
    fake.destroy_node(fake.ex_get_node(first[1].extra["resource_id"]))  # lost out of band
    refilled = azure.provision(ask(num_nodes=3))
    assert [n.rank for n in refilled] == [0, 1, 2]
    assert [c["name"] for c in fake.created] == ["c-0", "c-1", "c-2", "c-1"]
    azure.terminate("c")
    assert fake.left() == []


def test_fake_azure_stop_deallocates_and_start_brings_it_back(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    azure.provision(ask(num_nodes=2))
    azure.stop("c")
    assert [n.status for n in azure.nodes("c")] == [NodeStatus.STOPPED] * 2
    assert {v["power"] for v in fake.vms.values()} == {"deallocated"}
    assert [n.status for n in azure.start("c")] == [NodeStatus.RUNNING] * 2
    azure.stop("c")
    assert [n.node_id for n in azure.provision(ask(num_nodes=2))] == ["c-0", "c-1"]
    assert len(fake.created) == 2
    azure.terminate("c")
    assert fake.left() == []


def test_fake_azure_an_allocation_failure_is_a_capacity_error_for_the_region(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    fake.allocation_faults[EAST] = "AllocationFailed"
    with pytest.raises(CapacityError, match="Allocation failed") as caught:
        azure.provision(ask(num_nodes=2))
    assert (caught.value.scope, caught.value.code) == (AT_REGION, "AllocationFailed")
    assert [n.status for n in azure.nodes("c")] == [NodeStatus.UNREACHABLE] * 2  # Failed VMs
    azure.terminate("c")
    assert fake.left() == []


@pytest.mark.parametrize(
    ("fault", "kind", "scope"),
    [
        pytest.param(sku_not_available(), CapacityError, AT_REGION, id="sku-not-available"),
        pytest.param(core_quota(), QuotaError, AT_REGION, id="core-quota"),
        pytest.param(
            arm_error(403, "AuthorizationFailed", "no write permission"), AuthError, ALL, id="auth"
        ),
    ],
)
def test_fake_azure_a_refused_create_leaves_no_vm_nic_or_ip(
    azure: AzureBackend,
    fake: FakeAzure,
    fault: Exception,
    kind: type[BackendError],
    scope: Scope,
) -> None:
    fake.create_faults["*"] = fault
    with pytest.raises(kind) as caught:
        azure.provision(ask(num_nodes=2))
    assert caught.value.scope == scope
    assert fake.left() == []  # the NIC and IP made for rank 0 went with the refusal


def test_fake_azure_a_missing_network_says_what_to_create(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    with pytest.raises(InvalidRequestError, match="virtual network 'skyplan-centralus'") as caught:
        azure.provision(ask(region="centralus"))
    assert caught.value.scope == Scope("azure", "centralus")
    assert fake.left() == []


def test_fake_azure_terminate_sweeps_what_a_killed_create_left(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    group = f"/subscriptions/{SUB}/resourceGroups/skyplan/providers/Microsoft.Network"
    for name in ("c-3", "c-1-0", "cx-0"):  # c-3 is ours; c-1-0 and cx-0 belong to others
        fake.connection.request(
            f"{group}/publicIPAddresses/{name}-ip",
            data={
                "location": EAST,
                "tags": {},
                "sku": {"name": "Standard"},
                "properties": {"publicIPAllocationMethod": "Static"},
            },
            method="PUT",
        )
        fake.nics[f"{group}/networkInterfaces/{name}-nic"] = {
            "name": f"{name}-nic",
            "ip": f"{group}/publicIPAddresses/{name}-ip",
            "vm": None,
            "private": "10.0.0.9",
        }
        fake.ips[f"{group}/publicIPAddresses/{name}-ip"]["nic"] = (
            f"{group}/networkInterfaces/{name}-nic"
        )
    azure.terminate("c")
    assert fake.left() == ["ip:c-1-0-ip", "ip:cx-0-ip", "nic:c-1-0-nic", "nic:cx-0-nic"]


def test_fake_azure_terminate_is_idempotent_and_forgets_host_keys(
    azure: AzureBackend, fake: FakeAzure
) -> None:
    nodes = azure.provision(ask(num_nodes=2, region=WEST))
    azure.known_hosts.write_text(
        "".join(f"{n.extra['host']} ssh-ed25519 AAAA\n" for n in nodes) + "10.9.9.9 ssh-rsa BBBB\n"
    )
    azure.terminate("c")
    azure.terminate("c")
    azure.terminate("never-existed")
    assert azure.nodes("c") == [] and azure.owned() == {} and fake.left() == []
    assert azure.known_hosts.read_text() == "10.9.9.9 ssh-rsa BBBB\n"


def test_fake_azure_a_group_launched_in_is_searched_after_the_setting_changes(
    azure: AzureBackend, fake: FakeAzure, tmp_path: Path
) -> None:
    azure.provision(ask())
    fake.groups["other"] = WEST
    moved = AzureBackend(
        tmp_path / "home",
        environ={**CREDS, "SKYPLAN_AZURE_RESOURCE_GROUP": "other"},
        driver_factory=lambda _c, _t: fake,
        poll_interval=0,
    )
    assert moved.groups() == ["other", "skyplan"]
    assert [n.node_id for n in moved.nodes("c")] == ["c-0"]
    del fake.groups["other"]  # a group deleted meanwhile holds nothing
    moved.terminate("c")
    assert fake.left() == []


def test_fake_azure_runner_pins_host_keys_under_home(azure: AzureBackend) -> None:
    [node] = azure.provision(ask())
    runner = azure.runner(node)  # not connected: the fake boots no VM
    assert (runner.host, runner.user, runner.trust_new) == (node.extra["host"], "azureuser", True)
    assert runner.known_hosts == azure.home.dir / "known_hosts"
    assert runner.scope == AT_REGION
    azure.terminate("c")


# == FAKE AZURE: failover end to end through the runtime's Launcher ===========================

#: Cheapest first: eastus, westus2.
CHOICES = [make_offer(EAST, cost=1.0), make_offer(WEST, cost=1.1)]


def cheapest(num_nodes: int) -> Planner:
    choices = [o.model_copy(update={"num_nodes": num_nodes}) for o in CHOICES]

    def planner(blocked: frozenset[Scope]) -> Offer:
        left = [o for o in choices if not any(s.covers(o.cloud, o.region, o.zone) for s in blocked)]
        if not left:
            raise NoFeasiblePlacement(None, "every offer is blocked")
        return min(left, key=lambda o: o.hourly_cost)

    return planner


@pytest.mark.parametrize(
    ("sync", "lasting", "outcomes"),
    [
        pytest.param({}, {}, ["ok"], id="no-fault"),
        pytest.param({}, {EAST: "AllocationFailed"}, ["capacity", "ok"], id="allocation-failed"),
        pytest.param({EAST: sku_not_available()}, {}, ["capacity", "ok"], id="sku-not-available"),
        pytest.param({EAST: core_quota()}, {}, ["quota", "ok"], id="core-quota"),
    ],
)
def test_fake_azure_failover_lands_where_there_is_room_and_leaks_nothing(
    azure: AzureBackend,
    fake: FakeAzure,
    tmp_path: Path,
    sync: dict[str, Exception],
    lasting: dict[str, str],
    outcomes: list[str],
) -> None:
    fake.create_faults.update(sync)
    fake.allocation_faults.update(lasting)
    lands = EAST if outcomes == ["ok"] else WEST
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        launcher = Launcher(store, {"azure": azure}.__getitem__, sleep=lambda _s: None)
        spec = LaunchSpec(cluster="c", task=Task(num_nodes=2), base_dir=tmp_path)
        record = launcher.launch(spec, cheapest(2), lambda _r: None)
        assert record.region == lands
        assert [a.outcome for a in store.attempts("c")] == [AttemptOutcome(o) for o in outcomes]
        assert [f"{n.cluster}/{n.rank}@{n.region}" for n in azure.nodes("c")] == [
            f"c/0@{lands}",
            f"c/1@{lands}",
        ]
        Lifecycle(store, {"azure": azure}.__getitem__).down("c")
        assert store.get_cluster("c") is None
    assert fake.left() == [] and azure.owned() == {}
