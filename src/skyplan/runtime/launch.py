"""`launch`: plan → provision (with failover) → sync → setup, resumable after a crash.

Crash safety rests on one order of writes: the cluster record and the attempt (which backend,
which place) are in the store *before* the backend is asked for anything, and every node a
backend creates carries the cluster's tag. So whenever a launch dies, the store names every
backend that may hold nodes for the cluster, `down` can list them by tag and delete them, and a
repeated `launch` picks up at the step after the last one recorded.

Failover: a capacity error blocklists its zone, a quota error its region, an auth error the
whole backend; a transient error retries the same place with backoff (then gives up on it).
After each failure the nodes the attempt may have created are deleted before the next try, and
the plan is made again outside the blocklist. `retry_until_up` starts over, with backoff, when
every place has failed.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skyplan.backends.base import Backend, LineSink
from skyplan.backends.layout import WORKDIR
from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    ClusterStateError,
    InvalidRequestError,
    LaunchFailed,
    NoFeasiblePlacement,
    QuotaError,
    Scope,
    TransientError,
)
from skyplan.model import Offer, Task
from skyplan.model.node import Node, NodeStatus, ProvisionRequest
from skyplan.model.state import (
    AttemptOutcome,
    ClusterRecord,
    ClusterStatus,
    JobDemand,
    LaunchStep,
)
from skyplan.runtime import node_jobs
from skyplan.runtime.lease import held
from skyplan.runtime.sync import skip_for
from skyplan.state import Store

#: Re-plans outside the blocklist; raises NoFeasiblePlacement when nothing is left.
Planner = Callable[[frozenset[Scope]], Offer]
BackendFor = Callable[[str], Backend]
#: Why an existing cluster cannot take the task (None: it can).
FitCheck = Callable[[ClusterRecord], str | None]
Say = Callable[[str], None]

_STEPS = list(LaunchStep)
TRANSIENT_RETRIES = 3


def _now() -> datetime:
    return datetime.now(UTC)


def launch_lock(cluster: str) -> str:
    return f"cluster:{cluster}"


def demand_of(task: Task) -> JobDemand:
    """What one job of `task` takes from each node it runs on."""
    option = task.resources.option_groups()[0][0]
    acc = option.accelerator
    cpus = option.cpus.count if option.cpus is not None else 0.5
    return JobDemand(
        num_nodes=task.num_nodes,
        cpus=cpus,
        accelerator=acc.name if acc else None,
        accelerator_count=acc.count if acc else 0.0,
    )


def _outcome(exc: BackendError) -> AttemptOutcome:
    for kind, outcome in (
        (CapacityError, AttemptOutcome.CAPACITY),
        (QuotaError, AttemptOutcome.QUOTA),
        (AuthError, AttemptOutcome.AUTH),
        (TransientError, AttemptOutcome.TRANSIENT),
    ):
        if isinstance(exc, kind):
            return outcome
    return AttemptOutcome.INVALID


def blocked_scope(exc: BackendError, offer: Offer) -> Scope:
    """The scope to stop trying after `exc` at `offer`: the error's own, else by its kind."""
    if exc.scope is not None:
        return exc.scope
    if isinstance(exc, AuthError):
        return Scope(offer.cloud)
    if isinstance(exc, QuotaError):
        return Scope(offer.cloud, offer.region)
    return Scope(offer.cloud, offer.region, offer.zone)


@dataclass
class LaunchSpec:
    """Everything a launch needs besides the plan; `base_dir` resolves relative paths."""

    cluster: str
    task: Task
    base_dir: Path = field(default_factory=Path.cwd)
    envs: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    retry_until_up: bool = False
    backoff: float = 2.0
    max_backoff: float = 60.0


class Launcher:
    """Carries out launches over a store and backends; prints through `say` and `sink`."""

    def __init__(
        self,
        store: Store,
        backend_for: BackendFor,
        *,
        say: Say = lambda _msg: None,
        sink: LineSink = lambda _line: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.backend_for = backend_for
        self.say = say
        self.sink = sink
        self.sleep = sleep

    # -- entry point --------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec, planner: Planner, fits: FitCheck) -> ClusterRecord:
        """Bring `spec.cluster` up (reusing, restarting or resuming it) and return its record."""
        with held(self.store, launch_lock(spec.cluster)):
            record = self.store.get_cluster(spec.cluster)
            if record is not None and record.status == ClusterStatus.DOWN:
                raise ClusterStateError(
                    f"cluster {spec.cluster!r} is being torn down; "
                    f"finish with `skyplan down {spec.cluster}` first"
                )
            if record is not None and record.status in (ClusterStatus.UP, ClusterStatus.STOPPED):
                why = fits(record)
                if why:
                    raise ClusterStateError(
                        f"cluster {spec.cluster!r} exists and cannot take this task: {why}; "
                        "use another name or `skyplan down` it first"
                    )
                if record.status == ClusterStatus.STOPPED:
                    record = self._restart(record)
                if record.step == LaunchStep.READY:
                    # As SkyPilot does: the new task's files are synced and its setup runs.
                    self.say(f"reusing cluster {spec.cluster!r}")
                    backend = self.backend_for(record.cloud or "")
                    nodes = self.store.nodes(spec.cluster)
                    self.sync(spec, backend, nodes)
                    self._setup(spec, backend, nodes)
                    return record
            if record is None:
                now = _now()
                record = self.store.create_cluster(
                    ClusterRecord(
                        name=spec.cluster,
                        status=ClusterStatus.INIT,
                        num_nodes=spec.task.num_nodes,
                        task=redacted(spec.task),
                        created_at=now,
                        updated_at=now,
                        last_active_at=now,
                    ),
                    "launch requested",
                )
            else:
                self.say(f"resuming the launch of {spec.cluster!r} after step {record.step}")
            nodes = self._provisioned(spec, record, planner)
            record = self.store.require_cluster(spec.cluster)
            backend = self.backend_for(record.cloud or "")
            if _STEPS.index(record.step) < _STEPS.index(LaunchStep.SYNCED):
                self.sync(spec, backend, nodes)
                record = self._step(spec.cluster, LaunchStep.SYNCED, "workdir and files synced")
            if _STEPS.index(record.step) < _STEPS.index(LaunchStep.SET_UP):
                self._setup(spec, backend, nodes)
                record = self._step(spec.cluster, LaunchStep.SET_UP, "setup finished")
            record = self.store.update_cluster(
                spec.cluster,
                "launch finished",
                status=ClusterStatus.UP,
                step=LaunchStep.READY,
                last_active_at=_now(),
            )
            self.say(f"cluster {spec.cluster!r} is up")
            return record

    def _step(self, cluster: str, step: LaunchStep, reason: str) -> ClusterRecord:
        return self.store.update_cluster(cluster, reason, step=step)

    def _restart(self, record: ClusterRecord) -> ClusterRecord:
        self.say(f"starting stopped cluster {record.name!r}")
        nodes = self.backend_for(record.cloud or "").start(record.name)
        self.store.set_nodes(record.name, nodes)
        return self.store.update_cluster(
            record.name, "started", status=ClusterStatus.UP, last_active_at=_now()
        )

    # -- provisioning with failover ------------------------------------------------------------

    def _provisioned(self, spec: LaunchSpec, record: ClusterRecord, planner: Planner) -> list[Node]:
        """The cluster's nodes, provisioning (or re-finding) them if needed."""
        for attempt in self.store.attempts(spec.cluster):
            if attempt.outcome is None:
                self.store.finish_attempt(
                    spec.cluster, attempt.number, AttemptOutcome.INTERRUPTED, "the launch died"
                )
        first: Offer | None = None
        if record.cloud is not None and record.instance_type is not None:
            if _STEPS.index(record.step) >= _STEPS.index(LaunchStep.PROVISIONED):
                nodes = self.backend_for(record.cloud).nodes(spec.cluster)
                if len(nodes) == record.num_nodes and all(
                    n.status == NodeStatus.RUNNING for n in nodes
                ):
                    return nodes
            first = _recorded_offer(record)
        return self._failover(spec, planner, first)

    def _failover(self, spec: LaunchSpec, planner: Planner, first: Offer | None) -> list[Node]:
        blocked: set[Scope] = set()
        backoff = spec.backoff
        offer = first
        transient = 0
        while True:
            if offer is None:
                try:
                    offer = planner(frozenset(blocked))
                except NoFeasiblePlacement as exc:
                    if not spec.retry_until_up:
                        self._give_up(spec.cluster, exc)
                    self.say(f"no place left to try; retrying everywhere in {backoff:.0f}s")
                    self.sleep(backoff)
                    backoff = min(backoff * 2, spec.max_backoff)
                    blocked.clear()
                    continue
            try:
                return self._attempt(spec.cluster, offer, image_for(spec.task, offer))
            except BackendError as exc:
                if isinstance(exc, TransientError) and transient < TRANSIENT_RETRIES:
                    transient += 1
                    self.say(f"transient error, retrying the same place in {backoff:.0f}s")
                    self.sleep(backoff)
                    backoff = min(backoff * 2, spec.max_backoff)
                    continue
                scope = blocked_scope(exc, offer)
                self.say(f"failed: {exc}; not trying {scope} again")
                blocked.add(scope)
                offer = None
                transient = 0

    def _attempt(self, cluster: str, offer: Offer, image: str | None) -> list[Node]:
        where = "/".join(p for p in (offer.cloud, offer.region, offer.zone) if p)
        self.say(
            f"provisioning {offer.num_nodes}x {offer.instance_type}"
            f"{' (spot)' if offer.spot else ''} in {where} (${offer.hourly_cost:.2f}/h)"
        )
        attempt = self.store.start_attempt(
            cluster,
            cloud=offer.cloud,
            region=offer.region,
            zone=offer.zone,
            instance_type=offer.instance_type,
            spot=offer.spot,
        )
        self.store.update_cluster(
            cluster,
            f"attempt {attempt.number}",
            cloud=offer.cloud,
            region=offer.region,
            zone=offer.zone,
            instance_type=offer.instance_type,
            spot=offer.spot,
            num_nodes=offer.num_nodes,
            hourly_cost=offer.hourly_cost,
            vcpus=offer.vcpus,
            memory_gib=offer.memory_gib,
            accelerators=offer.accelerators,
        )
        try:
            backend = self.backend_for(offer.cloud)
            request = ProvisionRequest(cluster=cluster, offer=offer, image=image)
            nodes = backend.provision(request)
        except BackendError as exc:
            self.store.finish_attempt(cluster, attempt.number, _outcome(exc), str(exc))
            self._clean_after_failure(cluster, offer.cloud)
            raise
        self.store.finish_attempt(cluster, attempt.number, AttemptOutcome.OK)
        self.store.set_nodes(cluster, nodes)
        self._step(cluster, LaunchStep.PROVISIONED, f"{len(nodes)} node(s) running")
        return nodes

    def _clean_after_failure(self, cluster: str, cloud: str) -> None:
        try:
            self.backend_for(cloud).terminate(cluster)
        except BackendError as exc:
            # The attempt stays recorded, so `down` will retry this backend.
            self.store.record_event(
                "operation", f"cleanup after a failed attempt failed: {exc}", cluster=cluster
            )

    def _give_up(self, cluster: str, exc: NoFeasiblePlacement) -> None:
        attempts = self.store.attempts(cluster)
        leftovers = [a for a in attempts if a.outcome != AttemptOutcome.OK]
        clouds = {a.cloud for a in leftovers}
        for cloud in clouds:
            self._clean_after_failure(cluster, cloud)
        still = [c for c in clouds if self.backend_for(c).nodes(cluster)]
        if not still:
            self.store.delete_cluster(cluster, "launch failed; nothing was left running")
        summary = "every place failed" if attempts else exc.summary
        raise LaunchFailed(cluster, summary, attempts) from exc

    # -- sync and setup -----------------------------------------------------------------------

    def sync(self, spec: LaunchSpec, backend: Backend, nodes: list[Node]) -> None:
        """Copy the task's workdir and local file mounts to every node, the nodes at once; a
        directory's `.skyignore` (else its `.gitignore`) leaves paths out."""
        mounts = _mounts(spec)
        if not mounts:
            return
        self.say(f"syncing {len(mounts)} path(s) to {len(nodes)} node(s)")
        skips = {remote: skip_for(local) for remote, local in mounts.items()}

        def one(node: Node) -> None:
            runner = backend.runner(node)
            for remote, local in mounts.items():
                runner.put(local, remote, skips[remote])

        with ThreadPoolExecutor(max_workers=min(len(nodes), 16) or 1) as pool:
            for done in [pool.submit(one, node) for node in nodes]:
                done.result()  # the first node's error, as a serial sync raised it

    def _setup(self, spec: LaunchSpec, backend: Backend, nodes: list[Node]) -> None:
        if not spec.task.setup:
            return
        self.say(f"running setup on {len(nodes)} node(s)")
        ips = "\n".join(n.ip for n in nodes)
        failures: list[str] = []
        lock = threading.Lock()

        def one(node: Node) -> None:
            runner = backend.runner(node)
            root = node.extra["root"]
            env = {
                **spec.envs,
                "SKYPILOT_SETUP_NODE_RANK": str(node.rank),
                "SKYPILOT_SETUP_NODE_IPS": ips,
                "SKYPILOT_NUM_NODES": str(len(nodes)),
            }
            # A setup left running by a launch that died must not run twice at once.
            runner.run(node_jobs.kill_script(root, "setup"), timeout=60)
            node_jobs.write_job(runner, root, "setup", spec.task.setup or "", env, spec.secrets)
            prefix = f"(setup, node {node.rank}) " if len(nodes) > 1 else "(setup) "

            def out(line: str) -> None:
                with lock:
                    self.sink(prefix + line)

            result = runner.run(node_jobs.setup_script(root), sink=out)
            if result.exit_code != 0:
                with lock:
                    failures.append(f"node {node.rank} exited with code {result.exit_code}")

        threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise ClusterStateError(
                f"setup failed on cluster {spec.cluster!r}: {'; '.join(failures)}. The nodes "
                f"stay up: fix the setup and `skyplan launch` again (it resumes at setup), "
                f"or `skyplan down {spec.cluster}`"
            )


def image_for(task: Task, offer: Offer) -> str | None:
    """The task's `image_id` for `offer`: one image, or a region → image mapping."""
    image = task.resources.image_id
    if isinstance(image, dict):
        return image.get(offer.region)
    return image


def _recorded_offer(record: ClusterRecord) -> Offer:
    return Offer(
        cloud=record.cloud or "",
        region=record.region or "",
        zone=record.zone,
        instance_type=record.instance_type or "",
        accelerators=record.accelerators,
        spot=record.spot,
        num_nodes=record.num_nodes,
        hourly_cost=record.hourly_cost,
        vcpus=record.vcpus,
        memory_gib=record.memory_gib,
    )


def redacted(task: Task) -> dict[str, Any]:
    data = task.model_dump(mode="json", exclude_defaults=True)
    if data.get("secrets"):
        data["secrets"] = {k: "<redacted>" for k in data["secrets"]}
    return data


def _mounts(spec: LaunchSpec) -> dict[str, Path]:
    """Remote path → local path for the workdir and local file mounts."""
    out: dict[str, Path] = {}
    task = spec.task
    if isinstance(task.workdir, str):
        out[WORKDIR] = _local(spec.base_dir, task.workdir, "workdir")
    elif task.workdir is not None:
        raise InvalidRequestError(
            "a git workdir (a mapping with `url`) is not supported yet; use a local directory"
        )
    for remote, source in (task.file_mounts or {}).items():
        if not isinstance(source, str) or "://" in source:
            raise InvalidRequestError(
                f"file_mounts.{remote}: only local paths can be mounted for now, got "
                f"{shlex.quote(str(source))}"
            )
        out[remote] = _local(spec.base_dir, source, f"file_mounts.{remote}")
    return out


def _local(base: Path, path: str, what: str) -> Path:
    local = (base / Path(path).expanduser()).resolve()
    if not local.exists():
        raise InvalidRequestError(f"{what}: {local} does not exist")
    return local
