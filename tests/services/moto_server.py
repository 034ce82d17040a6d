"""moto's EC2 server over HTTP, with injectable faults: a real AWS endpoint for backend tests.

This is a fake AWS, and the tests that use it say so. It runs in its own process from its own
virtual environment, `<repo>/.venv-moto` (moto pins botocore/dateutil versions that fight the
project's own dependencies, see TESTING.md). When that venv is missing the harness creates it
once (`pip install 'moto[server,ec2]==5.2.5'`, about 30 s); when that fails (no network) the
fixture skips, unless SKYPLAN_REQUIRE_MOTO=1, which makes it fail.

This same file is the launcher: `.venv-moto/bin/python moto_server.py serve AMIS FAULTS`
imports moto, applies two patches, starts moto's threaded server on 127.0.0.1 (a free port,
printed as `PORT <n>` on stdout) and serves until stdin closes. The patches fix the fake, never
the code under test:

- **Namespace.** moto 5.1+ answers EC2 calls in the namespace `.../doc/2016-11-15` (no trailing
  slash) and puts a namespace on error bodies; real AWS sends `.../2016-11-15/` and none on
  errors. libcloud matches exactly, so without the patch every list is empty and every error
  message blank.
- **Faults.** moto has no capacity or quota model. `run_instances` is wrapped to raise an AWS
  error code read from the JSON file FAULTS, re-read on every call, so a test changes faults
  between calls without restarting the server. Its shape, per region (or "*" for all)::

      {"us-east-1": {
          "region": "VcpuLimitExceeded",                         # every launch in the region
          "zones": {"us-east-1a": "InsufficientInstanceCapacity"},
          "instance_types": {"p4d.24xlarge": "InsufficientInstanceCapacity"},
          "spot": "InsufficientInstanceCapacity",                # spot launches only
          "actions": {"DescribeAvailabilityZones": "AuthFailure"}  # any API call, by action
      }}

  A value is an error code (a realistic AWS message is added) or `{"code": ..., "message": ...,
  "after": n}`: with `after`, the first n calls the rule matches succeed (a launch that fails
  half-way). Counts start again with every `set_faults`.

Only the AMIs in AMIS exist (MOTO_AMIS_PATH), which also keeps moto's start fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REQUIRE_ENV = "SKYPLAN_REQUIRE_MOTO"
START_TIMEOUT = 120.0  # seconds for moto to import and listen (about 6 s here)
MOTO_SPEC = "moto[server,ec2]==5.2.5"
REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-moto"
_READY = VENV / ".skyplan-ready"

#: Canonical's owner id; the backend's default image lookup asks for it.
CANONICAL = "099720109477"
#: The AMIs the fake holds, in every region: one Ubuntu 24.04 per architecture.
AMIS = [
    {
        "ami_id": f"ami-0{arch_id}5ky91a0",
        "name": f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-20250115",
        "description": "Canonical, Ubuntu, 24.04, amd64 noble image (fake, for tests)",
        "owner_id": CANONICAL,
        "public": True,
        "state": "available",
        "architecture": "x86_64" if arch == "amd64" else "arm64",
        "virtualization_type": "hvm",
        "hypervisor": "xen",
        "root_device_type": "ebs",
        "root_device_name": "/dev/sda1",
        "image_type": "machine",
        "creation_date": "2025-01-15T00:00:00.000Z",
    }
    for arch, arch_id in (("amd64", "a1"), ("arm64", "b2"))
]
AMD64_AMI = str(AMIS[0]["ami_id"])

_MESSAGES = {
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient {type} capacity in the Availability Zone you "
        "requested ({zone}). Our system will be working on provisioning additional capacity."
    ),
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the "
        "instance bucket that the specified instance type belongs to."
    ),
    "InstanceLimitExceeded": "You have requested more instances than your current limit allows.",
    "RequestLimitExceeded": "Request limit exceeded.",
    "AuthFailure": "AWS was not able to validate the provided access credentials",
    "UnauthorizedOperation": "You are not authorized to perform this operation.",
}


class MotoUnavailable(Exception):
    """moto cannot be installed or started here."""


# -- the test side -------------------------------------------------------------------------------


def ensure_venv() -> Path:
    """The moto venv's python, creating the venv once (under a file lock) if it is missing."""
    python = VENV / "bin" / "python"
    if _READY.exists():
        return python
    with open(Path(tempfile.gettempdir()) / "skyplan-venv-moto.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _READY.exists():
            return python
        try:
            if not python.exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True
                )
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", MOTO_SPEC],
                check=True,
                capture_output=True,
                timeout=600,
            )
            subprocess.run(
                [str(python), "-c", "import moto.server"], check=True, capture_output=True
            )
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", b"") or b""
            tail = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(err)]
            raise MotoUnavailable(f"cannot install {MOTO_SPEC} into {VENV}: {tail[0]}") from err
        _READY.write_text(MOTO_SPEC + "\n")
    return python


class MotoServer:
    """A running moto server; `endpoint` is its URL (set `SKYPLAN_AWS_ENDPOINT` to it)."""

    def __init__(self, workdir: Path) -> None:
        python = ensure_venv()
        self.workdir = workdir
        self.faults_path = workdir / "faults.json"
        self._generation = 0
        self.faults_path.write_text("{}")
        amis = workdir / "amis.json"
        amis.write_text(json.dumps(AMIS))
        self._log = open(workdir / "moto.log", "wb")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(
            [str(python), __file__, "serve", str(amis), str(self.faults_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "MOTO_AMIS_PATH": str(amis), "PYTHONUNBUFFERED": "1"},
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT)
        line = self._proc.stdout.readline().decode().strip() if ready else "(no answer)"
        if not line.startswith("PORT "):
            self.stop()
            log = (workdir / "moto.log").read_text(errors="replace")[-2000:]
            raise MotoUnavailable(f"moto did not start: {line!r}\n{log}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Replace the injected faults (see the module docstring); the next call sees them."""
        self._generation += 1  # `after` counts start again, even for equal faults
        tmp = self.faults_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**faults, "_generation": self._generation}))
        tmp.replace(self.faults_path)

    def reset(self) -> None:
        """Forget every resource in every region, and every fault."""
        self.set_faults({})
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the server exits when its stdin closes
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self._log.close()


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    """A moto server for the duration of the block; skips (or fails, with SKYPLAN_REQUIRE_MOTO=1)
    when moto cannot be had."""
    import pytest

    workdir = Path(tempfile.mkdtemp(prefix="skyplan-moto-"))
    try:
        server = MotoServer(workdir)
    except MotoUnavailable as err:
        shutil.rmtree(workdir, ignore_errors=True)
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {err}")
        pytest.skip(str(err))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- the server side (runs under .venv-moto) -----------------------------------------------------


_COUNTS: dict[tuple[str, ...], int] = {}


def _fault(faults_path: str, region: str, **where: Any) -> tuple[str, str] | None:
    """The (code, message) injected for a call, or None."""
    try:
        text = Path(faults_path).read_text() or "{}"
        faults = json.loads(text)
    except (OSError, ValueError):
        return None
    for key in (region, "*"):
        rules = faults.get(key) or {}
        action = where.get("action")
        candidates = (
            [("actions", rules.get("actions", {}).get(action))]
            if action
            else [
                ("zones", rules.get("zones", {}).get(where["zone"])),
                ("instance_types", rules.get("instance_types", {}).get(where["type"])),
                ("spot", rules.get("spot") if where["spot"] else None),
                ("region", rules.get("region")),
            ]
        )
        for rule, found in candidates:
            if not found:
                continue
            spec = found if isinstance(found, dict) else {"code": found}
            if spec.get("after"):
                counter = (text, key, rule)
                _COUNTS[counter] = _COUNTS.get(counter, 0) + 1
                if _COUNTS[counter] <= int(spec["after"]):
                    continue
            code = spec["code"]
            template = spec.get("message") or _MESSAGES.get(code, f"injected fault {code}")
            return code, template.format(
                type=where.get("type"), zone=where.get("zone"), region=region
            )
    return None


def _patch(faults_path: str) -> None:
    from moto.core.serialize import EC2Serializer
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses import EC2Response

    def namespace(self: Any, serialized: dict[str, Any]) -> None:
        if "Errors" in serialized:  # real AWS error bodies carry no namespace
            return
        ns = self.operation_model.metadata.get("xmlNamespace")
        if ns:
            serialized["@xmlns"] = ns.rstrip("/") + "/"

    EC2Serializer._serialize_namespace_attribute = namespace

    run_instances = InstanceBackend.run_instances

    def faulty_run_instances(self: Any, image_id: str, count: int, *args: Any, **kw: Any) -> Any:
        zone = kw.get("placement") or self.region_name + "a"
        spot = kw.get("instance_market_options") == "spot"
        hit = _fault(
            faults_path, self.region_name, zone=zone, type=kw.get("instance_type"), spot=spot
        )
        if hit:
            raise EC2ClientError(*hit)
        return run_instances(self, image_id, count, *args, **kw)

    InstanceBackend.run_instances = faulty_run_instances

    call_action = EC2Response.call_action

    def faulty_call_action(self: Any) -> Any:
        hit = _fault(faults_path, self.region, action=self._get_action())
        if hit:
            from moto.core.responses import ActionResult

            return self.serialized(ActionResult(EC2ClientError(*hit)))
        return call_action(self)

    EC2Response.call_action = faulty_call_action


def _serve(faults_path: str) -> None:
    _patch(faults_path)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    print(f"PORT {server.get_host_and_port()[1]}", flush=True)
    sys.stdin.read()  # until the test side closes our stdin (or dies)
    server.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    _serve(sys.argv[3])
