"""The `gcp` backend (`GceBackend`) and its error classification.

Nothing here talks to Google. Two kinds of test:

- **classification**: GCE error payloads (operation errors and refused requests, as the
  Compute Engine API documents and returns them) are fed through libcloud's own `GCEResponse`,
  so the exceptions classified are exactly those libcloud 3.9.1 raises for those bodies.
- **FAKE GCE** (`FakeGce`, a TEST DOUBLE): an in-memory stand-in for libcloud's
  `GCENodeDriver` with only the methods the backend calls, handed to the backend through its
  `driver_factory` seam. It keeps instances shaped like the driver's (`libcloud Node`s whose
  `extra` has GCE's `status`, `zone`, `labels`, `metadata`, `scheduling`), checks the rules the
  real API enforces on what the backend sends (RFC 1035 names, label values, accelerators only
  with TERMINATE on maintenance), moves instances through PROVISIONING → STAGING → RUNNING one
  listing at a time, and raises the libcloud errors the API's payloads produce. It shows the
  backend's use of the driver, naming, labelling, idempotency, classification and cleanup —
  not GCE's real behaviour, which has never been exercised (see docs/backends/gcp.md).
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skyplan.backends.base import Backend
from skyplan.backends.gce import CLUSTER_LABEL, RANK_LABEL, GceBackend, gce_name
from skyplan.backends.gce_errors import classify
from skyplan.backends.gce_project import GceCredentials, find_credentials, machine_args
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

REGION, OTHER = "us-central1", "europe-west4"
ZONE_A, ZONE_B, ZONE_C = "us-central1-a", "us-central1-b", "us-central1-c"
ZONES = {REGION: [ZONE_A, ZONE_B, ZONE_C], OTHER: ["europe-west4-a", "europe-west4-b"]}


def gce_error(status: int, body: dict[str, Any] | str) -> Exception:
    """What libcloud's GCE connection raises for an HTTP `status` with `body`."""
    from libcloud.compute.drivers.gce import GCEResponse

    text = body if isinstance(body, str) else json.dumps(body)
    http = SimpleNamespace(
        headers={}, reason="", status_code=status, request=None, iter_content=None, text=text
    )
    try:
        GCEResponse(http, None)
    except Exception as exc:
        return exc
    raise AssertionError(f"libcloud accepted {body!r}")


def operation_error(code: str, message: str) -> Exception:
    """A zone operation that finished with an error (how create/start failures come back)."""
    body = {
        "kind": "compute#operation",
        "operationType": "insert",
        "status": "DONE",
        "error": {"errors": [{"code": code, "message": message}]},
    }
    return gce_error(200, body)


def refused(status: int, reason: str, message: str) -> Exception:
    """A request the API refused, with Google's standard error body."""
    item = {"message": message, "domain": "global", "reason": reason}
    return gce_error(status, {"error": {"code": status, "message": message, "errors": [item]}})


def exhausted(zone: str) -> Exception:
    return operation_error(
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        f"The zone 'projects/proj/zones/{zone}' does not have enough resources available to "
        "fulfill the request.  Try a different zone, or try again later.",
    )


def cpu_quota(region: str = REGION) -> Exception:
    return gce_error(
        200,
        {
            "status": "DONE",
            "error": {
                "errors": [
                    {
                        "code": "QUOTA_EXCEEDED",
                        "message": f"Quota 'CPUS' exceeded.  Limit: 24.0 in region {region}.",
                    }
                ]
            },
        },
    )


# == classification ===========================================================================

AT_ZONE = Scope("gcp", REGION, ZONE_A)
AT_REGION = Scope("gcp", REGION)
ALL = Scope("gcp")


#: Insert/start operations that finished with an error: (GCE code, message, kind, scope).
OPERATION_CASES = [
    ("ZONE_RESOURCE_POOL_EXHAUSTED", "The zone 'projects/proj/zones/us-central1-a' does not "
     "have enough resources available to fulfill the request.", CapacityError, AT_ZONE),
    ("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "The zone 'projects/proj/zones/us-central1-a' "
     "does not have enough resources available to fulfill the request. '(resource "
     "type:compute)'.", CapacityError, AT_ZONE),
    ("UNSUPPORTED_OPERATION", "Instance was preempted during creation.", CapacityError, AT_ZONE),
    ("QUOTA_EXCEEDED", "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1.", QuotaError,
     AT_REGION),
    ("QUOTA_EXCEEDED", "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.", QuotaError,
     ALL),
    ("RESOURCE_NOT_READY", "The resource 'c-0' is not ready", TransientError, AT_ZONE),
    ("INVALID_FIELD_VALUE", "Invalid value for field 'resource.machineType'.",
     InvalidRequestError, AT_ZONE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "message", "kind", "scope"),
    OPERATION_CASES,
    ids=[f"{c[0]}-{c[3]}" for c in OPERATION_CASES],
)
def test_operation_error_codes_decide_the_kind_and_scope(
    code: str, message: str, kind: type[BackendError], scope: Scope
) -> None:
    err = classify(operation_error(code, message), REGION, ZONE_A)
    assert type(err) is kind, err
    assert (err.scope, err.code, err.message) == (scope, code, " ".join(message.split()))


#: Requests the API refused, Google's standard error body: (status, reason, message, kind, scope)
REFUSED_CASES = [
    (404, "notFound", "The resource 'projects/proj/zones/us-central1-a/machineTypes/"
     "a2-highgpu-1g' was not found", CapacityError, AT_ZONE),
    (404, "notFound", "The resource 'projects/proj/zones/us-central1-a/instances/c-0' was not "
     "found", InvalidRequestError, AT_ZONE),
    (403, "rateLimitExceeded", "Rate Limit Exceeded", TransientError, AT_ZONE),
    (429, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries'", TransientError,
     AT_ZONE),
    (503, "backendError", "Backend Error", TransientError, AT_ZONE),
    (401, "authError", "Invalid Credentials", AuthError, ALL),
    (403, "forbidden", "Required 'compute.instances.create' permission", AuthError, ALL),
    (403, "accessNotConfigured", "Compute Engine API has not been used in project 1",
     AuthError, ALL),
    (403, "forbidden", "Location us-central1-a is not found or access is unauthorized.",
     InvalidRequestError, AT_ZONE),
    (400, "invalid", "Invalid value for field 'resource.name': 'C_0'.", InvalidRequestError,
     AT_ZONE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "reason", "message", "kind", "scope"),
    REFUSED_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[3].__name__}" for c in REFUSED_CASES],
)
def test_refused_request_reasons_decide_the_kind_and_scope(
    status: int, reason: str, message: str, kind: type[BackendError], scope: Scope
) -> None:
    err = classify(refused(status, reason, message), REGION, ZONE_A)
    assert type(err) is kind, err
    assert (err.scope, err.code) == (scope, reason)
    assert message in err.message


def _other_cases() -> list[Any]:
    from libcloud.common.google import GoogleAuthError
    from libcloud.common.types import LibcloudError
    from requests.exceptions import ConnectionError as RequestsConnectionError

    return [
        pytest.param(gce_error(502, "<html>Bad Gateway</html>"), TransientError, AT_ZONE, None,
                     id="502-not-json"),
        pytest.param(GoogleAuthError("Unable to decode provided PEM key: bad"), AuthError, ALL,
                     "authError", id="bad-pem"),
        pytest.param(LibcloudError("Job did not complete in 180 seconds"), TransientError,
                     AT_ZONE, None, id="operation-timeout"),
        pytest.param(RequestsConnectionError("refused"), TransientError, AT_ZONE, None,
                     id="no-connection"),
        pytest.param(TimeoutError("timed out"), TransientError, AT_ZONE, None, id="timeout"),
    ]  # fmt: skip


@pytest.mark.parametrize(("exc", "kind", "scope", "code"), _other_cases())
def test_auth_timeout_and_connection_errors_are_classified(
    exc: Exception, kind: type[BackendError], scope: Scope, code: str | None
) -> None:
    err = classify(exc, REGION, ZONE_A)
    assert type(err) is kind, err
    assert (err.scope, err.code) == (scope, code)


def test_a_capacity_error_without_a_zone_is_scoped_to_the_region() -> None:
    assert classify(exhausted(ZONE_A), REGION, None).scope == AT_REGION


def test_a_bug_is_not_turned_into_a_backend_error() -> None:
    with pytest.raises(KeyError):
        raise classify(KeyError("oops"), REGION, None)


# == names, accelerators, credentials ========================================================


@pytest.mark.parametrize(
    ("cluster", "name"),
    [
        ("train", "train"),
        ("my-run-2", "my-run-2"),
        ("My_Run.v2", "my-run-v2-"),  # mapped: a hash of the real name follows
        ("run-", "run-"),
        ("a" * 63, "a" * 40 + "-"),
    ],
    ids=["plain", "hyphens", "mapped", "trailing-hyphen", "long"],
)
def test_gce_names_are_rfc1035_and_stable(cluster: str, name: str) -> None:
    got = gce_name(cluster)
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", got) and len(got) <= 49
    if name.endswith("-"):
        assert re.fullmatch(re.escape(name) + r"[0-9a-f]{6}", got)
    else:
        assert got == name
    assert gce_name(cluster) == got


def make_offer(
    zone: str | None = ZONE_A,
    *,
    region: str = REGION,
    num_nodes: int = 1,
    spot: bool = False,
    cost: float = 1.0,
    instance_type: str = "n1-standard-4",
    accelerators: dict[str, float] | None = None,
) -> Offer:
    return Offer(
        cloud="gcp",
        region=region,
        zone=zone,
        instance_type=instance_type,
        accelerators=accelerators,
        spot=spot,
        num_nodes=num_nodes,
        hourly_cost=cost,
        vcpus=4,
        memory_gib=15,
    )


def ask(cluster: str = "c", **offer: Any) -> ProvisionRequest:
    return ProvisionRequest(cluster=cluster, offer=make_offer(**offer))


@pytest.mark.parametrize(
    ("instance_type", "accelerators", "spot", "args"),
    [
        ("n1-standard-4", None, False, {}),
        (
            "n1-standard-8",
            {"T4": 2},
            False,
            {
                "ex_accelerator_type": "nvidia-tesla-t4",
                "ex_accelerator_count": 2,
                "ex_on_host_maintenance": "TERMINATE",
            },
        ),
        (
            "n1-highmem-8",
            {"V100": 1},
            True,
            {
                "ex_accelerator_type": "nvidia-tesla-v100",
                "ex_accelerator_count": 1,
                "ex_on_host_maintenance": "TERMINATE",
                "ex_preemptible": True,
                "ex_automatic_restart": False,
            },
        ),
        ("a2-highgpu-1g", {"A100": 1}, False, {"ex_on_host_maintenance": "TERMINATE"}),
        ("g2-standard-4", {"L4": 1}, False, {"ex_on_host_maintenance": "TERMINATE"}),
        (
            "e2-standard-4",
            None,
            True,
            {
                "ex_preemptible": True,
                "ex_on_host_maintenance": "TERMINATE",
                "ex_automatic_restart": False,
            },
        ),
    ],
    ids=["cpu", "n1-t4", "n1-v100-spot", "a2-built-in", "g2-built-in", "e2-spot"],
)
def test_machine_args_attach_gpus_to_n1_hosts_only(
    instance_type: str, accelerators: dict[str, float] | None, spot: bool, args: dict[str, Any]
) -> None:
    offer = make_offer(instance_type=instance_type, accelerators=accelerators, spot=spot)
    assert machine_args(offer) == {"size": instance_type, **args}


@pytest.mark.parametrize(
    ("instance_type", "accelerators"),
    [("n1-standard-8", {"A100": 1}), ("n1-standard-8", {"T4": 0.5}), ("e2-standard-8", {"T4": 1})],
    ids=["a100-on-n1", "fractional", "gpu-on-e2"],
)
def test_accelerators_gce_cannot_attach_are_refused(
    instance_type: str, accelerators: dict[str, float]
) -> None:
    with pytest.raises(InvalidRequestError):
        machine_args(make_offer(instance_type=instance_type, accelerators=accelerators))


def _key_file(tmp_path: Path, **fields: Any) -> str:
    data = {
        "type": "service_account",
        "project_id": "proj",
        "client_email": "sa@proj.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
        **fields,
    }
    path = tmp_path / "key.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return str(path)


def test_credentials_come_from_the_service_account_key(tmp_path: Path) -> None:
    key = _key_file(tmp_path)
    creds, _ = find_credentials({"GOOGLE_APPLICATION_CREDENTIALS": key})
    assert creds == GceCredentials("sa@proj.iam.gserviceaccount.com", key, "proj", key)
    over, _ = find_credentials(
        {"GOOGLE_APPLICATION_CREDENTIALS": key, "SKYPLAN_GCP_PROJECT": "other"}
    )
    assert over is not None and over.project == "other"


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"type": "authorized_user"}, "not a service-account key"),
        ({"private_key": None}, "no client_email or private_key"),
        ({"project_id": None}, "SKYPLAN_GCP_PROJECT"),
    ],
    ids=["user-credentials", "no-key", "no-project"],
)
def test_unusable_credentials_say_why(tmp_path: Path, fields: dict[str, Any], why: str) -> None:
    creds, reason = find_credentials(
        {"GOOGLE_APPLICATION_CREDENTIALS": _key_file(tmp_path, **fields)}
    )
    assert creds is None and why in reason
    assert find_credentials({})[1].startswith("no GCP credentials")
    missing = find_credentials({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "nope.json")})
    assert missing[0] is None and "cannot read" in missing[1]


def never(*_args: Any) -> Any:
    raise AssertionError("the driver must not be opened")


def test_check_without_credentials_says_how_and_opens_nothing(tmp_path: Path) -> None:
    check = GceBackend(tmp_path, environ={}, driver_factory=never).check()
    assert not check.ok and "GOOGLE_APPLICATION_CREDENTIALS" in check.reason


def test_without_credentials_every_call_is_an_auth_error_for_the_whole_backend(
    tmp_path: Path,
) -> None:
    backend = GceBackend(tmp_path, environ={}, driver_factory=never)
    for attempt in (lambda: backend.provision(ask()), lambda: backend.nodes("c")):
        with pytest.raises(AuthError) as caught:
            attempt()
        assert caught.value.scope == ALL


def test_the_backend_satisfies_the_protocol_and_declares_what_it_lacks(tmp_path: Path) -> None:
    backend = GceBackend(tmp_path, environ={}, driver_factory=never)
    assert isinstance(backend, Backend)
    assert backend.offers() == []
    assert backend.capabilities.supports(Capability.STOP)
    assert backend.capabilities.supports(Capability.SPOT)
    assert "firewall" in (backend.capabilities.why_not(Capability.OPEN_PORTS) or "")


# == FAKE GCE: an in-memory test double of libcloud's GCENodeDriver ===========================

_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_NEXT = {"PROVISIONING": "STAGING", "STAGING": "RUNNING", "STOPPING": "TERMINATED"}


class FakeGce:
    """TEST DOUBLE of libcloud's `GCENodeDriver` (see the module docstring). `create_faults`
    and `start_faults` map a zone (or `"*"`) to the exception a create/start there raises,
    optionally after `n` successes: `(exc, n)`. `vanish` names instances that disappear at the
    next listing (preempted before they ran)."""

    type = "gce"  # what libcloud's Node asks its driver for

    def __init__(self) -> None:
        from libcloud.compute.drivers.gce import GCEZone

        self.zone_objects = [
            GCEZone(i, z, "UP", None, None, self, {"region": f"https://x/regions/{region}"})
            for region, zones in ZONES.items()
            for i, z in enumerate(zones)
        ]
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.create_faults: dict[str, Any] = {}
        self.start_faults: dict[str, Any] = {}
        self.vanish: set[str] = set()
        self.created: list[dict[str, Any]] = []
        self.images: list[tuple[str, Any]] = []
        self._ids = 1000

    # -- what the backend calls ---------------------------------------------------------------

    def ex_list_zones(self) -> list[Any]:
        return list(self.zone_objects)

    def ex_get_image_from_family(
        self, image_family: str, ex_project_list: Any = None, ex_standard_projects: bool = True
    ) -> Any:
        from libcloud.common.google import ResourceNotFoundError

        self.images.append((image_family, ex_project_list))
        if image_family.startswith("missing"):  # as libcloud reports a family it cannot find
            raise ResourceNotFoundError(
                f"Could not find image for family '{image_family}'", None, None
            )
        return SimpleNamespace(name=f"{image_family}-v1", extra={"selfLink": f"img/{image_family}"})

    def ex_get_image(
        self, partial_name: str, ex_project_list: Any = None, ex_standard_projects: bool = True
    ) -> Any:
        from libcloud.common.google import ResourceNotFoundError

        self.images.append((partial_name, ex_project_list))
        if partial_name.startswith("missing"):
            raise ResourceNotFoundError(f"Could not find image '{partial_name}'", None, None)
        return SimpleNamespace(name=partial_name, extra={"selfLink": f"img/{partial_name}"})

    def create_node(
        self,
        name: str,
        size: str,
        image: Any,
        location: Any = None,
        ex_network: str = "default",
        ex_tags: list[str] | None = None,
        ex_metadata: dict[str, str] | None = None,
        ex_disk_type: str = "pd-standard",
        ex_on_host_maintenance: str | None = None,
        ex_automatic_restart: bool | None = None,
        ex_preemptible: bool | None = None,
        ex_labels: dict[str, str] | None = None,
        ex_accelerator_type: str | None = None,
        ex_accelerator_count: int | None = None,
        ex_disk_size: int | None = None,
    ) -> Any:
        zone = location.name  # the backend passes the driver's zone object
        if ex_accelerator_type and ex_accelerator_count is None:
            raise ValueError("Missing accelerator count.")  # libcloud's own check
        if ex_preemptible and ex_on_host_maintenance == "MIGRATE":
            raise ValueError("host maintenance cannot be 'MIGRATE' if instance is preemptible.")
        if not _NAME.fullmatch(name):
            raise refused(400, "invalid", f"Invalid value for field 'resource.name': '{name}'.")
        for key, value in (ex_labels or {}).items():
            if not _LABEL_VALUE.fullmatch(value) or not _NAME.fullmatch(key):
                raise refused(400, "invalid", f"Invalid value for field 'labels': '{value}'.")
        if ex_accelerator_type and ex_on_host_maintenance != "TERMINATE":
            raise refused(
                400, "invalid", "Instances with guest accelerators do not support live migration."
            )
        for where in (zone, "*"):
            fault = self.create_faults.get(where)
            if fault is not None:
                exc, after = fault if isinstance(fault, tuple) else (fault, 0)
                if after <= 0:
                    raise exc
                self.create_faults[where] = (exc, after - 1)
        if (zone, name) in self.instances:
            raise refused(409, "alreadyExists", f"The resource '{name}' already exists")
        self._ids += 1
        self.created.append(
            {
                "name": name,
                "size": size,
                "zone": zone,
                "image": image.name,
                "network": ex_network,
                "tags": ex_tags,
                "disk": (ex_disk_type, ex_disk_size),
                "accelerator": (ex_accelerator_type, ex_accelerator_count),
                "maintenance": ex_on_host_maintenance,
                "preemptible": ex_preemptible,
            }
        )
        self.instances[(zone, name)] = {
            "id": str(self._ids),
            "name": name,
            "zone": location,
            "status": "PROVISIONING",
            "machineType": f"https://x/zones/{zone}/machineTypes/{size}",
            "labels": dict(ex_labels or {}),
            "metadata": {
                "fingerprint": "f",
                "items": [{"key": k, "value": v} for k, v in (ex_metadata or {}).items()],
            },
            "scheduling": {"preemptible": bool(ex_preemptible)},
            "private": f"10.128.0.{self._ids % 250}",
            "public": f"34.0.0.{self._ids % 250}",
        }
        return self._node(self.instances[(zone, name)])

    def list_nodes(self, ex_zone: Any = None, ex_use_disk_cache: bool = True) -> list[Any]:
        zone = getattr(ex_zone, "name", ex_zone)
        for key, inst in list(self.instances.items()):
            if inst["name"] in self.vanish or inst["status"] == "DELETING":
                del self.instances[key]
            elif inst["status"] in _NEXT:
                inst["status"] = _NEXT[inst["status"]]
        return [
            self._node(i)
            for (z, _), i in sorted(self.instances.items())
            if zone in (None, "all") or z == zone
        ]

    def ex_stop_node(self, node: Any, sync: bool = True) -> bool:
        self._live(node)["status"] = "STOPPING"
        return True

    def ex_start_node(self, node: Any, sync: bool = True) -> bool:
        inst = self._live(node)
        fault = self.start_faults.get(inst["zone"].name) or self.start_faults.get("*")
        if fault is not None:
            raise fault
        inst["status"] = "STAGING"
        return True

    def destroy_node(
        self, node: Any, destroy_boot_disk: bool = False, ex_sync: bool = True
    ) -> bool:
        self._live(node)["status"] = "DELETING"
        return True

    # -- for the tests ------------------------------------------------------------------------

    def _live(self, node: Any) -> dict[str, Any]:
        key = (node.extra["zone"].name, node.name)
        if key not in self.instances:
            raise refused(
                404,
                "notFound",
                f"The resource 'projects/proj/zones/{key[0]}/instances/{key[1]}' was not found",
            )
        return self.instances[key]

    def _node(self, inst: dict[str, Any]) -> Any:
        from libcloud.compute.base import Node

        running = inst["status"] == "RUNNING"
        extra = {
            k: inst[k]
            for k in ("status", "zone", "machineType", "labels", "metadata", "scheduling")
        }
        extra["id"] = inst["id"]
        state = "running" if running else "pending"
        public = [inst["public"]] if running else []
        return Node(inst["id"], inst["name"], state, public, [inst["private"]], self, extra=extra)

    def left(self) -> list[str]:
        """`cluster/rank@zone` of every labelled instance the fake holds."""
        return sorted(
            f"{i['labels'].get(CLUSTER_LABEL)}/{i['labels'].get(RANK_LABEL)}@{z}"
            for (z, _), i in self.instances.items()
            if CLUSTER_LABEL in i["labels"]
        )


@pytest.fixture
def fake() -> FakeGce:
    return FakeGce()


@pytest.fixture
def gcp(tmp_path: Path, fake: FakeGce) -> Iterator[GceBackend]:
    """FAKE GCE: a backend whose driver is the fake, polling without pause."""
    opened: list[tuple[GceCredentials, float]] = []

    def factory(creds: GceCredentials, timeout: float) -> FakeGce:
        opened.append((creds, timeout))
        return fake

    env = {"GOOGLE_APPLICATION_CREDENTIALS": _key_file(tmp_path)}
    backend = GceBackend(
        tmp_path / "home", environ=env, driver_factory=factory, poll_interval=0, wait_timeout=5
    )
    yield backend
    backend.close()


def test_fake_gce_check_reports_the_project(gcp: GceBackend) -> None:
    check = gcp.check()
    assert check.ok, check.reason
    assert "sa@proj.iam.gserviceaccount.com" in check.reason and "project proj" in check.reason


def test_fake_gce_check_reports_refused_credentials(tmp_path: Path) -> None:
    def refuse(_creds: GceCredentials, _timeout: float) -> Any:
        raise classify(refused(401, "authError", "Invalid Credentials"), None, None)

    env = {"GOOGLE_APPLICATION_CREDENTIALS": _key_file(tmp_path)}
    check = GceBackend(tmp_path, environ=env, driver_factory=refuse).check()
    assert not check.ok and "Invalid Credentials" in check.reason


def test_fake_gce_provisions_labelled_nodes_with_the_ssh_key(
    gcp: GceBackend, fake: FakeGce
) -> None:
    nodes = gcp.provision(ask(num_nodes=2))
    assert [(n.rank, n.node_id, n.status, n.zone, n.region) for n in nodes] == [
        (0, "c-0", NodeStatus.RUNNING, ZONE_A, REGION),
        (1, "c-1", NodeStatus.RUNNING, ZONE_A, REGION),
    ]
    assert fake.left() == [f"c/0@{ZONE_A}", f"c/1@{ZONE_A}"]
    assert gcp.nodes("c") == nodes and gcp.owned() == {"c": nodes}
    node = nodes[0]
    assert node.ip == node.extra["private_ip"] and node.extra["host"] == node.extra["public_ip"]
    assert (node.extra["user"], node.extra["root"]) == ("skyplan", "/home/skyplan/.skyplan/node")
    assert node.instance_type == "n1-standard-4" and not node.spot
    key = Path(node.extra["identity_file"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    [inst] = [i for i in fake.instances.values() if i["name"] == "c-0"]
    meta = {m["key"]: m["value"] for m in inst["metadata"]["items"]}
    public = key.with_name("id_skyplan.pub").read_text().rsplit(" ", 1)[0]
    assert meta == {"ssh-keys": f"skyplan:{public} skyplan", CLUSTER_LABEL: "c"}
    created = fake.created[0]
    assert (created["network"], created["tags"]) == ("default", ["skyplan"])
    assert created["disk"] == ("pd-balanced", 100)
    assert created["image"] == "ubuntu-2404-lts-amd64-v1"
    assert fake.images == [("ubuntu-2404-lts-amd64", ["ubuntu-os-cloud"])]
    gcp.terminate("c")
    assert fake.left() == [] and gcp.owned() == {}


def test_fake_gce_maps_a_cluster_name_gce_would_refuse(gcp: GceBackend, fake: FakeGce) -> None:
    nodes = gcp.provision(ask("My_Run.v2", num_nodes=2))
    slug = gce_name("My_Run.v2")
    assert [n.node_id for n in nodes] == [f"{slug}-0", f"{slug}-1"]
    assert {n.cluster for n in nodes} == {"My_Run.v2"}  # the real name, from the metadata
    assert gcp.nodes("my-run-v2") == []  # a different cluster, even if its slug looks alike
    gcp.terminate("My_Run.v2")
    assert fake.left() == []


def test_fake_gce_attaches_gpus_to_n1_hosts(gcp: GceBackend, fake: FakeGce) -> None:
    gcp.provision(ask(instance_type="n1-standard-8", accelerators={"T4": 2}))
    assert (fake.created[0]["accelerator"], fake.created[0]["maintenance"]) == (
        ("nvidia-tesla-t4", 2),
        "TERMINATE",
    )
    gcp.terminate("c")
    with pytest.raises(InvalidRequestError, match="N1 hosts"):
        gcp.provision(ask(instance_type="n1-standard-8", accelerators={"A100": 1}))
    assert fake.left() == [] and len(fake.created) == 1  # refused before any call


def test_fake_gce_spot_is_preemptible_and_cannot_stop(gcp: GceBackend, fake: FakeGce) -> None:
    [node] = gcp.provision(ask(spot=True))
    assert node.spot and fake.created[0]["preemptible"] is True
    with pytest.raises(InvalidRequestError, match="preemptible"):
        gcp.stop("c")
    gcp.terminate("c")
    assert fake.left() == []


def test_fake_gce_provisioning_again_keeps_ranks_and_fills_gaps(
    gcp: GceBackend, fake: FakeGce, tmp_path: Path
) -> None:
    first = gcp.provision(ask(num_nodes=3))
    assert gcp.provision(ask(num_nodes=3)) == first
    del fake.instances[(ZONE_A, "c-1")]  # lost out of band
    refilled = gcp.provision(ask(num_nodes=3))
    assert [n.rank for n in refilled] == [0, 1, 2]
    assert refilled[0].extra["instance_id"] == first[0].extra["instance_id"]
    assert refilled[1].extra["instance_id"] != first[1].extra["instance_id"]
    assert [c["name"] for c in fake.created] == ["c-0", "c-1", "c-2", "c-1"]
    gcp.terminate("c")
    assert fake.left() == []


def test_fake_gce_stops_and_starts_a_cluster(gcp: GceBackend, fake: FakeGce) -> None:
    nodes = gcp.provision(ask(num_nodes=2))
    gcp.stop("c")
    assert [n.status for n in gcp.nodes("c")] == [NodeStatus.STOPPED] * 2
    started = gcp.start("c")
    assert [n.status for n in started] == [NodeStatus.RUNNING] * 2
    assert [n.extra["instance_id"] for n in started] == [n.extra["instance_id"] for n in nodes]
    gcp.stop("c")
    # provisioning a stopped cluster starts it again rather than creating new instances
    assert [n.node_id for n in gcp.provision(ask(num_nodes=2))] == ["c-0", "c-1"]
    assert len(fake.created) == 2
    gcp.terminate("c")
    assert fake.left() == []


def test_fake_gce_a_stockout_on_restart_is_a_capacity_error_for_the_zone(
    gcp: GceBackend, fake: FakeGce
) -> None:
    gcp.provision(ask())
    gcp.stop("c")
    fake.start_faults[ZONE_A] = exhausted(ZONE_A)
    with pytest.raises(CapacityError) as caught:
        gcp.start("c")
    assert caught.value.scope == AT_ZONE
    gcp.terminate("c")


def test_fake_gce_terminate_is_idempotent_and_forgets_host_keys(
    gcp: GceBackend, fake: FakeGce
) -> None:
    nodes = gcp.provision(ask(num_nodes=2, region=OTHER, zone="europe-west4-b"))
    gcp.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    gcp.known_hosts.write_text(
        "".join(f"{n.extra['host']} ssh-ed25519 AAAA\n" for n in nodes) + "10.9.9.9 ssh-rsa BBBB\n"
    )
    gcp.terminate("c")
    gcp.terminate("c")
    gcp.terminate("never-existed")
    assert gcp.nodes("c") == [] and gcp.owned() == {} and fake.left() == []
    assert gcp.known_hosts.read_text() == "10.9.9.9 ssh-rsa BBBB\n"


def test_fake_gce_runner_pins_host_keys_under_home(gcp: GceBackend) -> None:
    [node] = gcp.provision(ask())
    runner = gcp.runner(node)  # not connected: the fake boots no VM
    assert (runner.host, runner.user, runner.trust_new) == (node.extra["host"], "skyplan", True)
    assert runner.known_hosts == gcp.home.dir / "known_hosts"
    assert runner.scope == AT_ZONE
    gcp.terminate("c")


def test_fake_gce_a_zone_less_offer_takes_the_first_zone_with_room(
    gcp: GceBackend, fake: FakeGce
) -> None:
    fake.create_faults[ZONE_A] = exhausted(ZONE_A)
    nodes = gcp.provision(ask(zone=None, num_nodes=2))
    assert {n.zone for n in nodes} == {ZONE_B}
    gcp.terminate("c")
    fake.create_faults.update({z: exhausted(z) for z in ZONES[REGION]})
    with pytest.raises(CapacityError) as caught:
        gcp.provision(ask(zone=None))
    assert caught.value.scope == AT_REGION  # re-planning must leave the region
    assert fake.left() == []


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (exhausted(ZONE_A), CapacityError),
        (refused(403, "rateLimitExceeded", "Rate Limit Exceeded"), TransientError),
        (refused(400, "invalid", "Invalid value for field 'resource.disks'"), InvalidRequestError),
    ],
    ids=["capacity", "throttled", "invalid"],
)
def test_fake_gce_errors_of_a_zone_less_offer_are_scoped_to_its_region(
    gcp: GceBackend, fake: FakeGce, exc: Exception, kind: type[BackendError]
) -> None:
    """A zone scope would not cover the zone-less offer, so failover would retry it forever."""
    fake.create_faults[ZONE_A] = (exc, 1)  # rank 0 lands in zone a, rank 1 fails there
    with pytest.raises(kind) as caught:
        gcp.provision(ask(zone=None, num_nodes=2))
    assert caught.value.scope == AT_REGION
    assert fake.left() == [f"c/0@{ZONE_A}"]  # rank 0 stays labelled for terminate
    gcp.terminate("c")
    assert fake.left() == []


FAULT_CASES = [
    pytest.param(ZONE_A, exhausted(ZONE_A), CapacityError, AT_ZONE, id="stockout-in-zone"),
    pytest.param("*", cpu_quota(), QuotaError, AT_REGION, id="cpu-quota"),
    pytest.param(
        "*",
        refused(403, "rateLimitExceeded", "Rate Limit"),
        TransientError,
        AT_ZONE,
        id="throttled",
    ),
    pytest.param("*", refused(401, "authError", "Invalid Credentials"), AuthError, ALL, id="auth"),
]


@pytest.mark.parametrize(("where", "exc", "kind", "scope"), FAULT_CASES)
def test_fake_gce_create_failures_are_classified_and_leave_nothing(
    gcp: GceBackend,
    fake: FakeGce,
    where: str,
    exc: Exception,
    kind: type[BackendError],
    scope: Scope,
) -> None:
    fake.create_faults[where] = exc
    with pytest.raises(kind) as caught:
        gcp.provision(ask(num_nodes=2, spot=True))
    assert caught.value.scope == scope
    assert fake.left() == [] and gcp.owned() == {}


def test_fake_gce_a_create_failing_half_way_leaves_its_nodes_labelled_for_terminate(
    gcp: GceBackend, fake: FakeGce
) -> None:
    fake.create_faults[ZONE_A] = (exhausted(ZONE_A), 1)
    with pytest.raises(CapacityError):
        gcp.provision(ask(num_nodes=3))
    assert fake.left() == [f"c/0@{ZONE_A}"]
    gcp.terminate("c")
    assert fake.left() == []


def test_fake_gce_an_instance_gone_before_it_ran_is_a_capacity_error(
    gcp: GceBackend, fake: FakeGce
) -> None:
    fake.vanish.add("c-1")
    with pytest.raises(CapacityError, match="went away") as caught:
        gcp.provision(ask(num_nodes=2))
    assert caught.value.scope == AT_ZONE
    gcp.terminate("c")
    assert fake.left() == []


@pytest.mark.parametrize(
    ("image", "lookup"),
    [
        ("projects/acme/global/images/family/trainer", ("trainer", ["acme"])),
        ("projects/acme/global/images/trainer-v3", ("trainer-v3", ["acme"])),
        ("debian-12-bookworm-v20240110", ("debian-12-bookworm-v20240110", None)),
    ],
    ids=["family", "named", "bare-name"],
)
def test_fake_gce_finds_the_image_asked_for(
    gcp: GceBackend, fake: FakeGce, image: str, lookup: tuple[str, Any]
) -> None:
    gcp.provision(ProvisionRequest(cluster="c", offer=make_offer(), image=image))
    assert fake.images == [lookup]
    gcp.terminate("c")


def test_fake_gce_the_default_image_follows_the_offers_architecture(
    gcp: GceBackend, fake: FakeGce
) -> None:
    gcp.provision(ask("x86"))
    arm = make_offer(instance_type="t2a-standard-4").model_copy(update={"arch": "arm64"})
    gcp.provision(ProvisionRequest(cluster="arm", offer=arm))
    assert [c["image"] for c in fake.created] == [
        "ubuntu-2404-lts-amd64-v1",
        "ubuntu-2404-lts-arm64-v1",
    ]
    gcp.terminate("x86")
    gcp.terminate("arm")


@pytest.mark.parametrize("image", ["missing-image", "projects/x/global/images/family/missing"])
def test_fake_gce_a_missing_image_is_invalid_for_the_whole_backend(
    gcp: GceBackend, fake: FakeGce, image: str
) -> None:
    with pytest.raises(InvalidRequestError, match="SKYPLAN_GCP_IMAGE") as caught:
        gcp.provision(ProvisionRequest(cluster="c", offer=make_offer(), image=image))
    assert caught.value.scope == ALL and fake.left() == []


def test_fake_gce_refuses_ports_and_container_images(gcp: GceBackend) -> None:
    with pytest.raises(InvalidRequestError, match="firewall"):
        gcp.provision(ProvisionRequest(cluster="c", offer=make_offer(), ports=(8080,)))
    with pytest.raises(InvalidRequestError, match="container images"):
        gcp.provision(ProvisionRequest(cluster="c", offer=make_offer(), image="docker:x"))
    with pytest.raises(InvalidRequestError, match="not a zone"):
        gcp.provision(ask(zone="us-central1-z"))


# == FAKE GCE: failover end to end through the runtime's Launcher =============================

#: Cheapest first: us-central1-a, us-central1-b, europe-west4-a.
CHOICES = [
    make_offer(ZONE_A, cost=1.0),
    make_offer(ZONE_B, cost=1.1),
    make_offer("europe-west4-a", region=OTHER, cost=1.2),
]


def cheapest(num_nodes: int) -> Planner:
    choices = [o.model_copy(update={"num_nodes": num_nodes}) for o in CHOICES]

    def planner(blocked: frozenset[Scope]) -> Offer:
        left = [o for o in choices if not any(s.covers(o.cloud, o.region, o.zone) for s in blocked)]
        if not left:
            raise NoFeasiblePlacement(None, "every offer is blocked")
        return min(left, key=lambda o: o.hourly_cost)

    return planner


@pytest.mark.parametrize(
    ("faults", "lands", "outcomes"),
    [
        pytest.param({}, ZONE_A, ["ok"], id="no-fault"),
        pytest.param({ZONE_A: exhausted(ZONE_A)}, ZONE_B, ["capacity", "ok"], id="zone-a-full"),
        pytest.param(  # the quota blocks all of us-central1: zone b is not tried
            {ZONE_A: cpu_quota(), ZONE_B: cpu_quota()},
            "europe-west4-a",
            ["quota", "ok"],
            id="region-quota",
        ),
        pytest.param(  # rank 0 lands in zone a, rank 1 does not: both go, then zone b
            {ZONE_A: (exhausted(ZONE_A), 1)}, ZONE_B, ["capacity", "ok"], id="half-way"
        ),
    ],
)
def test_fake_gce_failover_lands_where_there_is_room_and_leaks_nothing(
    gcp: GceBackend,
    fake: FakeGce,
    tmp_path: Path,
    faults: dict[str, Any],
    lands: str,
    outcomes: list[str],
) -> None:
    fake.create_faults.update(faults)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        launcher = Launcher(store, {"gcp": gcp}.__getitem__, sleep=lambda _s: None)
        spec = LaunchSpec(cluster="c", task=Task(num_nodes=2), base_dir=tmp_path)
        record = launcher.launch(spec, cheapest(2), lambda _r: None)
        assert record.zone == lands
        assert [a.outcome for a in store.attempts("c")] == [AttemptOutcome(o) for o in outcomes]
        assert fake.left() == [f"c/0@{lands}", f"c/1@{lands}"]
        Lifecycle(store, {"gcp": gcp}.__getitem__).down("c")
        assert store.get_cluster("c") is None
    assert fake.left() == [] and gcp.owned() == {}
