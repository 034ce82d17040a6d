"""The `local` backend: nodes are directories on this machine, commands are processes.

A node of cluster `c` is `<home>/local/c/node-<rank>/`; its commands run with that directory
as `HOME` (so `~/sky_workdir` is inside it) and an absolute file-mount target `/data` lands in
`<node>/data`: the node's file system is its directory. All nodes of a local cluster share this
machine's CPUs, memory and GPUs, and their address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from skyplan.backends.base import LineSink, RunResult
from skyplan.backends.layout import kill_jobs_script
from skyplan.backends.probe import probe_local
from skyplan.errors import InvalidRequestError, Scope
from skyplan.model.node import (
    BackendCheck,
    Capabilities,
    Capability,
    Node,
    NodeStatus,
    PoolOffer,
    ProvisionRequest,
)

NAME = "local"
_TAG = ".skyplan-node.json"
_STOPPED = ".skyplan-stopped"


class LocalRunner:
    """Runs commands as processes with the node directory as HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, remote: str) -> Path:
        if remote == "~" or remote.startswith("~/"):
            return self.root / remote[2:]
        path = Path(remote)
        if path.is_relative_to(self.root):
            return path
        return self.root / remote.lstrip("/")

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        sink: LineSink | None = None,
    ) -> RunResult:
        full_env = {**os.environ, "HOME": str(self.root), **(env or {})}
        workdir = self._path(cwd) if cwd else self.root
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=workdir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill) if timeout else None
        if timer:
            timer.start()
        kept: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if sink is not None:
                    sink(line.rstrip("\n"))
                else:
                    kept.append(line)
            code = proc.wait()
        except BaseException:
            # Interrupted (Ctrl-C while streaming a log): the command must not outlive us and
            # go on printing; jobs it started run in sessions of their own and are not touched.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()
            if proc.stdout is not None:
                proc.stdout.close()
        return RunResult(code, "".join(kept), timed_out.is_set())

    def put(self, local: Path, remote: str, skip: Callable[[str], bool] | None = None) -> None:
        target = self._path(remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        if local.is_dir():

            def ignored(folder: str, names: list[str]) -> list[str]:
                if skip is None:
                    return []
                rel = Path(folder).relative_to(local).as_posix()
                prefix = "" if rel == "." else f"{rel}/"
                return [
                    n
                    for n in names
                    if skip(prefix + n + ("/" if (Path(folder) / n).is_dir() else ""))
                ]

            shutil.copytree(local, target, dirs_exist_ok=True, symlinks=True, ignore=ignored)
        else:
            shutil.copy2(local, target)

    def close(self) -> None:
        return None


class LocalBackend:
    """This machine as a pool of one node shape; clusters are sets of directories."""

    name = NAME
    capabilities = Capabilities(
        missing={
            Capability.SPOT: "this machine cannot be preempted: local nodes are never spot",
            Capability.OPEN_PORTS: "local processes listen on this machine's own ports",
        }
    )

    def __init__(self, home: Path) -> None:
        self.base = home / "local"

    def check(self) -> BackendCheck:
        shape = probe_local()
        gpus = f", {shape.accelerator_count:g}x {shape.accelerator}" if shape.accelerator else ""
        return BackendCheck(
            backend=NAME,
            ok=True,
            reason=f"this machine: {shape.vcpus:g} CPUs, {shape.memory_gib:.1f} GiB{gpus}",
        )

    def offers(self) -> Sequence[PoolOffer]:
        shape = probe_local()
        return [
            PoolOffer(
                cloud=NAME,
                region=NAME,
                instance_type=NAME,
                vcpus=shape.vcpus,
                memory_gib=shape.memory_gib,
                accelerator=shape.accelerator,
                accelerator_count=shape.accelerator_count,
                accelerator_memory=shape.accelerator_memory,
                arch=shape.arch,
                source="this machine (probed)",
            )
        ]

    def _dir(self, cluster: str, rank: int | None = None) -> Path:
        d = self.base / cluster
        return d if rank is None else d / f"node-{rank}"

    def _node(self, path: Path) -> Node | None:
        try:
            tag = json.loads((path / _TAG).read_text())
        except (OSError, ValueError):
            return None
        stopped = (path / _STOPPED).exists()
        return Node(
            cluster=tag["cluster"],
            rank=tag["rank"],
            node_id=str(path),
            ip="127.0.0.1",
            status=NodeStatus.STOPPED if stopped else NodeStatus.RUNNING,
            cloud=NAME,
            region=NAME,
            instance_type=NAME,
            extra={"root": str(path)},
        )

    def provision(self, request: ProvisionRequest) -> list[Node]:
        offer = request.offer
        if offer.cloud != NAME or offer.instance_type != NAME:
            raise InvalidRequestError(
                f"the local backend has only the {NAME!r} instance type, "
                f"not {offer.instance_type!r}",
                Scope(NAME),
            )
        if offer.spot:
            raise InvalidRequestError(self.capabilities.why_not(Capability.SPOT) or "", Scope(NAME))
        nodes = []
        for rank in range(offer.num_nodes):
            path = self._dir(request.cluster, rank)
            path.mkdir(parents=True, exist_ok=True)
            tag = path / _TAG
            if not tag.exists():
                tmp = path / (_TAG + ".tmp")
                tmp.write_text(json.dumps({"cluster": request.cluster, "rank": rank}))
                tmp.replace(tag)
            (path / _STOPPED).unlink(missing_ok=True)
            node = self._node(path)
            assert node is not None
            nodes.append(node)
        return nodes

    def nodes(self, cluster: str) -> list[Node]:
        d = self._dir(cluster)
        if not d.is_dir():
            return []
        found = [n for p in sorted(d.iterdir()) if (n := self._node(p)) is not None]
        return sorted(found, key=lambda n: n.rank)

    def runner(self, node: Node) -> LocalRunner:
        return LocalRunner(Path(node.extra["root"]))

    def _kill_jobs(self, cluster: str) -> None:
        for node in self.nodes(cluster):
            self.runner(node).run(kill_jobs_script(node.extra["root"]), timeout=30)

    def stop(self, cluster: str) -> None:
        self._kill_jobs(cluster)
        for node in self.nodes(cluster):
            (Path(node.extra["root"]) / _STOPPED).touch()

    def start(self, cluster: str) -> list[Node]:
        for node in self.nodes(cluster):
            (Path(node.extra["root"]) / _STOPPED).unlink(missing_ok=True)
        return self.nodes(cluster)

    def terminate(self, cluster: str) -> None:
        self._kill_jobs(cluster)
        shutil.rmtree(self._dir(cluster), ignore_errors=True)

    def owned(self) -> dict[str, list[Node]]:
        if not self.base.is_dir():
            return {}
        found = {d.name: self.nodes(d.name) for d in sorted(self.base.iterdir()) if d.is_dir()}
        return {name: nodes for name, nodes in found.items() if nodes}
