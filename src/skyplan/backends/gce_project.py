"""One GCP project through one libcloud GCE driver: where the `gcp` backend finds its service
account, every call it makes, each turned into skyplan's scoped errors, the create arguments
for an offer's machine (accelerators, scheduling), the zone and image lookups done once, and the
polls that wait for instances to change state.

It knows zones, images, machine shapes and instance names; clusters, ranks and `Node`s belong to
`gce`. libcloud is imported only when the driver is opened (`open_driver`, the default factory).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyplan.backends.gce_errors import CLOUD, classify
from skyplan.errors import AuthError, CapacityError, InvalidRequestError, Scope, TransientError
from skyplan.model.plan import Offer

DEFAULT_IMAGE_FAMILY = "ubuntu-2404-lts-{arch}"
IMAGE_PROJECT = "ubuntu-os-cloud"
#: Catalog accelerator names → the GCE accelerator types that attach to N1 hosts.
N1_ACCELERATORS = {
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
    "K80": "nvidia-tesla-k80",
}
#: Machine families whose GPUs come with the machine type (A100, H100, L4, …).
BUILT_IN_GPUS = ("a2-", "a3-", "a4-", "g2-")


@dataclass(frozen=True)
class GceCredentials:
    email: str
    key_file: str
    project: str
    source: str  # where they were found, for `skyplan check`


#: `(credentials, timeout) → libcloud GCENodeDriver` (or a test double with its methods).
DriverFactory = Callable[[GceCredentials, float], Any]


def find_credentials(environ: Mapping[str, str]) -> tuple[GceCredentials | None, str]:
    """A service account from the JSON key file `GOOGLE_APPLICATION_CREDENTIALS`, the project
    from `SKYPLAN_GCP_PROJECT` or the file; `(None, why)` when they cannot be had. No network."""
    path = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return None, (
            "no GCP credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        )
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as err:
        return None, f"cannot read GOOGLE_APPLICATION_CREDENTIALS ({path}): {err}"
    if not isinstance(data, dict) or data.get("type") != "service_account":
        return None, f"{path} is not a service-account key (only those are supported)"
    if not data.get("client_email") or not data.get("private_key"):
        return None, f"{path} has no client_email or private_key"
    project = environ.get("SKYPLAN_GCP_PROJECT") or data.get("project_id")
    if not project:
        return None, f"no GCP project: set SKYPLAN_GCP_PROJECT ({path} names none)"
    return GceCredentials(str(data["client_email"]), path, str(project), path), ""


def open_driver(creds: GceCredentials, timeout: float, *, token_dir: Path) -> Any:
    """libcloud's GCE driver for the service account. It fetches an OAuth token at once (cached
    in `token_dir`); a refused token request is an auth error. `timeout` bounds each HTTP
    request and also each operation libcloud waits for (create, start, delete)."""
    from libcloud.compute.providers import get_driver
    from libcloud.compute.types import Provider

    token_dir.mkdir(parents=True, exist_ok=True)
    token = token_dir / f"token-{hashlib.sha1(creds.email.encode()).hexdigest()[:12]}.json"
    try:
        return get_driver(Provider.GCE)(
            creds.email,
            creds.key_file,
            project=creds.project,
            auth_type="SA",  # never guess: guessing probes the GCE metadata server
            credential_file=str(token),
            timeout=timeout,
        )
    except Exception as exc:  # classify re-raises what it does not know
        err = classify(exc, None, None)
        if isinstance(err, InvalidRequestError):  # the token endpoint said 400 (invalid_grant)
            err = AuthError(f"Google refused the service account: {err.message}", Scope(CLOUD))
        raise err from exc


def call(region: str | None, zone: str | None, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """`fn(*a, **kw)`, its failure classified for `region` (and `zone`)."""
    try:
        return fn(*a, **kw)
    except Exception as exc:  # classify re-raises what it does not know
        raise classify(exc, region, zone) from exc


def close_driver(driver: Any) -> None:
    """Close the driver's HTTP session (it reconnects when used again)."""
    conn = getattr(getattr(driver, "connection", None), "connection", None)
    session = getattr(conn, "session", None)
    if session is not None:
        session.close()


class Project:
    """See the module docstring. Thread-safe enough: its caches only ever gain equal values."""

    def __init__(self, driver: Any, *, poll_interval: float = 3.0, wait_timeout: float = 600.0):
        self.driver = driver
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self._zones: dict[str, Any] = {}  # zone name → the driver's zone object
        self._images: dict[str, Any] = {}

    def zones(self, region: str) -> list[Any]:
        """The region's zones that are up, by name."""
        found = call(region, None, self.driver.ex_list_zones)
        ours = [z for z in found if _region_of_zone(z) == region and z.status == "UP"]
        self._zones.update({z.name: z for z in ours})
        return sorted(ours, key=lambda z: str(z.name))

    def zone(self, region: str, name: str) -> Any:
        """The driver's object for zone `name` (create_node would look it up on every call)."""
        if name not in self._zones:
            self.zones(region)
        if name not in self._zones:
            raise InvalidRequestError(
                f"{name} is not a zone of {region} that is up", Scope(CLOUD, region, name)
            )
        return self._zones[name]

    def first_zone(self, region: str, create: Callable[[str], str]) -> tuple[str, str]:
        """Create in the region's zones in order until one has room: `(zone, instance name)`."""
        failures = []
        for zone in self.zones(region):
            try:
                return zone.name, create(zone.name)
            except CapacityError as exc:
                failures.append(f"{zone.name}: {exc.message}")
        if not failures:
            raise InvalidRequestError(f"GCE has no zone up in {region}", Scope(CLOUD, region))
        raise CapacityError(
            "no zone has capacity: " + "; ".join(failures),
            Scope(CLOUD, region),
            "ZONE_RESOURCE_POOL_EXHAUSTED",
        )

    def image(self, value: str, arch: str) -> Any:
        """The image for `value`: `projects/P/global/images/family/F`, `projects/P/global/
        images/NAME`, an image name or https link, or (empty) the newest Ubuntu 24.04 LTS of
        `arch`. Images are global, so a missing one is an error for the whole backend."""
        if value.startswith("docker:"):
            raise InvalidRequestError(
                "the gcp backend boots GCE images; container images are not supported yet",
                Scope(CLOUD),
            )
        ubuntu_arch = "arm64" if arch in ("arm64", "aarch64") else "amd64"
        key = value or f"default-{ubuntu_arch}"
        if key not in self._images:
            d = self.driver
            family = re.fullmatch(r"projects/([^/]+)/global/images/family/([^/]+)", value)
            named = re.fullmatch(r"projects/([^/]+)/global/images/([^/]+)", value)
            where: dict[str, Any] = {}
            if not value:
                how = (d.ex_get_image_from_family, DEFAULT_IMAGE_FAMILY.format(arch=ubuntu_arch))
                where = {"ex_project_list": [IMAGE_PROJECT], "ex_standard_projects": False}
            elif family is not None or named is not None:
                match = family or named
                assert match is not None
                how = (d.ex_get_image_from_family if family else d.ex_get_image, match[2])
                where = {"ex_project_list": [match[1]], "ex_standard_projects": False}
            else:
                how = (d.ex_get_image, value)
            try:
                self._images[key] = call(None, None, *how, **where)
            except InvalidRequestError as exc:
                raise InvalidRequestError(
                    f"no GCE image {how[1]!r} ({exc.message}); set SKYPLAN_GCP_IMAGE",
                    Scope(CLOUD),
                    exc.code,
                ) from exc
        return self._images[key]

    def wait(
        self, region: str, zone: str, names: Sequence[str], want: str, *, restart: bool = False
    ) -> None:
        """Poll until every instance of `names` in `zone` is `want` (`RUNNING` with an address,
        or `TERMINATED`), starting stopped ones again if `restart`. An instance that goes away
        meanwhile is a capacity error (preempted, or GCE could not place it)."""
        deadline = time.monotonic() + self.wait_timeout
        started: set[str] = set()
        while True:
            found = {i.name: i for i in call(region, zone, self.driver.list_nodes, ex_zone=zone)}
            pending = []
            for name in names:
                inst = found.get(name)
                if inst is None:
                    raise CapacityError(
                        f"instance {name} went away before it was {want} "
                        "(preempted, or GCE could not place it)",
                        Scope(CLOUD, region, zone),
                    )
                state = str(inst.extra.get("status"))
                if state == want and (want != "RUNNING" or inst.private_ips or inst.public_ips):
                    continue
                if state == "TERMINATED" and restart and name not in started:
                    # synchronous: a zone out of stock for the restart raises a CapacityError
                    call(region, zone, self.driver.ex_start_node, inst)
                    started.add(name)
                pending.append(name)
            if not pending:
                return
            self._pause(deadline, f"{len(pending)} instance(s) not {want}", pending, region, zone)

    def wait_gone(self, region: str, zone: str, names: Sequence[str]) -> None:
        """Poll until GCE lists none of `names` in `zone`."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            listed = {i.name for i in call(region, zone, self.driver.list_nodes, ex_zone=zone)}
            left = sorted(set(names) & listed)
            if not left:
                return
            self._pause(deadline, f"{len(left)} instance(s) not deleted", left, region, zone)

    def _pause(self, deadline: float, what: str, names: list[str], region: str, zone: str) -> None:
        if time.monotonic() >= deadline:
            raise TransientError(
                f"{what} after {self.wait_timeout:.0f}s: {', '.join(names)}",
                Scope(CLOUD, region, zone),
            )
        time.sleep(self.poll_interval)


def machine_args(offer: Offer) -> dict[str, Any]:
    """The `create_node` arguments for `offer`'s machine: type, accelerators, scheduling.
    Raises `InvalidRequestError` for accelerators GCE cannot give that machine type."""
    where = Scope(CLOUD, offer.region, offer.zone)
    out: dict[str, Any] = {"size": offer.instance_type}
    accelerators = offer.accelerators or {}
    if len(accelerators) > 1:
        raise InvalidRequestError(f"one accelerator model per node, not {accelerators}", where)
    for model, count in accelerators.items():
        if offer.instance_type.startswith("n1-"):
            gce_type = N1_ACCELERATORS.get(model)
            if gce_type is None or count != int(count) or count < 1:
                raise InvalidRequestError(
                    f"GCE attaches {', '.join(N1_ACCELERATORS)} to N1 hosts in whole numbers, "
                    f"not {count:g}x {model} (A100, L4 and H100 come with a2/g2/a3 types)",
                    where,
                )
            out.update(ex_accelerator_type=gce_type, ex_accelerator_count=int(count))
        elif not offer.instance_type.startswith(BUILT_IN_GPUS):
            raise InvalidRequestError(
                f"the gcp backend does not know how GCE gives {model} to "
                f"{offer.instance_type} (only N1 hosts with attached GPUs, and a2/a3/a4/g2 "
                "types with built-in ones)",
                where,
            )
        out["ex_on_host_maintenance"] = "TERMINATE"  # GCE cannot live-migrate GPU VMs
    if offer.spot:
        out.update(ex_preemptible=True, ex_on_host_maintenance="TERMINATE")
        out["ex_automatic_restart"] = False
    return out


def _region_of_zone(zone: Any) -> str:
    link = str((getattr(zone, "extra", None) or {}).get("region") or "")
    return link.rsplit("/", 1)[-1] if link else str(zone.name).rsplit("-", 1)[0]
