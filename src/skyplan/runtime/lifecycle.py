"""Cluster lifecycle after launch: status (reconciled with what backends see), stop, start,
down, autostop, and orphan detection. Every operation holds the cluster's lock and records its
events in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from skyplan.errors import BackendError, ClusterStateError, InvalidRequestError
from skyplan.model.node import Capability, Node, NodeStatus
from skyplan.model.state import ClusterRecord, ClusterStatus, JobStatus, LaunchStep
from skyplan.runtime.launch import BackendFor, Say, launch_lock
from skyplan.runtime.lease import TTL, abandoned, held, locked
from skyplan.runtime.queue import ACTIVE, JobQueue, queue_lock
from skyplan.state import Store


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClusterView:
    """A cluster as `status` shows it: the record, its nodes as the backend sees them now, and
    the active jobs."""

    record: ClusterRecord
    nodes: tuple[Node, ...]
    active_jobs: int
    note: str = ""


class Lifecycle:
    def __init__(self, store: Store, backend_for: BackendFor, say: Say = lambda _m: None) -> None:
        self.store = store
        self.backend_for = backend_for
        self.say = say

    def _backend_clouds(self, record: ClusterRecord) -> list[str]:
        """Every backend that may hold nodes of the cluster: the current one and every one an
        attempt was made on."""
        clouds = [a.cloud for a in self.store.attempts(record.name)]
        if record.cloud:
            clouds.append(record.cloud)
        return list(dict.fromkeys(clouds))

    # -- status -------------------------------------------------------------------------------

    def view(self, name: str, *, refresh: bool = True) -> ClusterView:
        record = self.store.require_cluster(name)
        nodes = tuple(self.store.nodes(name))
        note = ""
        if refresh and record.cloud and record.status != ClusterStatus.DOWN:
            try:
                seen = tuple(self.backend_for(record.cloud).nodes(name))
            except BackendError as exc:
                note = f"could not ask {record.cloud}: {exc}"
            else:
                record, nodes, note = self._reconcile(record, nodes, seen)
        if not note and record.status == ClusterStatus.INIT:
            note = self._init_note(record)
        active = self.store.count_jobs(name, ACTIVE)
        return ClusterView(record, nodes, active, note)

    def _reconcile(
        self, record: ClusterRecord, recorded: tuple[Node, ...], seen: tuple[Node, ...]
    ) -> tuple[ClusterRecord, tuple[Node, ...], str]:
        """Make the record agree with what the backend reports."""
        by_rank = {n.rank: n for n in seen}
        merged = (
            tuple(
                by_rank.get(n.rank, n.model_copy(update={"status": NodeStatus.TERMINATED}))
                for n in recorded
            )
            or seen
        )
        note = ""
        if merged != recorded and merged:
            self.store.set_nodes(record.name, list(merged))
        if record.status == ClusterStatus.UP:
            if not seen:
                note = "its nodes are gone (deleted outside skyplan?); `skyplan down` clears it"
                record = self.store.update_cluster(
                    record.name, "the backend no longer has its nodes", status=ClusterStatus.INIT
                )
            elif all(n.status == NodeStatus.STOPPED for n in seen):
                record = self.store.update_cluster(
                    record.name, "its nodes are stopped", status=ClusterStatus.STOPPED
                )
            elif any(n.status != NodeStatus.RUNNING for n in merged):
                bad = [f"node {n.rank} {n.status.value}" for n in merged if n.status != "running"]
                note = "; ".join(bad)
        return record, merged, note

    def _init_note(self, record: ClusterRecord) -> str:
        if self._launching(record.name):
            return f"being launched (step {record.step} done)"
        return f"launch interrupted after step {record.step}; `skyplan launch` resumes it"

    def _launching(self, name: str) -> bool:
        """True while a live process holds the cluster's launch lock."""
        lease = self.store.try_lock(launch_lock(name), ttl=1.0, abandoned=abandoned)
        if lease is None:
            return True
        lease.release()
        return False

    def views(self, *, refresh: bool = True) -> list[ClusterView]:
        return [self.view(r.name, refresh=refresh) for r in self.store.clusters()]

    def orphans(self, clouds: list[str]) -> dict[str, list[Node]]:
        """Nodes backends hold under a skyplan tag whose cluster the store does not know."""
        known = {r.name for r in self.store.clusters()}
        found: dict[str, list[Node]] = {}
        for cloud in clouds:
            try:
                owned = self.backend_for(cloud).owned()
            except BackendError:
                continue
            for cluster, nodes in owned.items():
                if cluster not in known:
                    found.setdefault(cluster, []).extend(nodes)
        return found

    # -- stop / start / down ------------------------------------------------------------------

    def stop(self, name: str) -> ClusterRecord:
        with held(self.store, launch_lock(name)):
            record = self.store.require_cluster(name)
            if record.status == ClusterStatus.STOPPED:
                return record
            backend = self.backend_for(record.cloud or "")
            if not backend.capabilities.supports(Capability.STOP):
                raise InvalidRequestError(backend.capabilities.why_not(Capability.STOP) or "")
            if record.status != ClusterStatus.UP:
                raise ClusterStateError(f"cluster {name!r} is {record.status.value}; cannot stop")
            self.say(f"stopping {name!r}")
            JobQueue(self.store, backend, name).cancel()
            backend.stop(name)
            self.store.set_nodes(name, backend.nodes(name))
            return self.store.update_cluster(
                name, "stopped by the user", status=ClusterStatus.STOPPED
            )

    def start(self, name: str) -> ClusterRecord:
        with held(self.store, launch_lock(name)):
            record = self.store.require_cluster(name)
            if record.status == ClusterStatus.UP:
                return record
            if record.status != ClusterStatus.STOPPED:
                raise ClusterStateError(
                    f"cluster {name!r} is {record.status.value}; only a stopped cluster starts "
                    "(an interrupted launch resumes with `skyplan launch`)"
                )
            self.say(f"starting {name!r}")
            nodes = self.backend_for(record.cloud or "").start(name)
            self.store.set_nodes(name, nodes)
            return self.store.update_cluster(
                name, "started by the user", status=ClusterStatus.UP, last_active_at=_now()
            )

    def down(self, name: str, reason: str = "torn down by the user") -> None:
        """Delete every node of the cluster on every backend that may hold one, then the record.
        If a backend fails, the record stays (status down) so `down` can be run again."""
        with held(self.store, launch_lock(name)):
            self._teardown(name, reason)

    def _teardown(self, name: str, reason: str) -> None:
        record = self.store.require_cluster(name)
        if record.status != ClusterStatus.DOWN:
            record = self.store.update_cluster(name, reason, status=ClusterStatus.DOWN)
        self.say(f"tearing down {name!r}")
        failures = []
        for cloud in self._backend_clouds(record):
            try:
                self.backend_for(cloud).terminate(name)
            except BackendError as exc:
                failures.append(f"{cloud}: {exc}")
        if failures:
            self.store.record_event("operation", "; ".join(failures), cluster=name)
            raise ClusterStateError(
                f"cluster {name!r} is not fully down: {'; '.join(failures)}. "
                f"Its record is kept; run `skyplan down {name}` again"
            )
        for job in self.store.jobs(name, ACTIVE):
            self.store.update_job(name, job.job_id, "cluster down", status=JobStatus.CANCELLED)
        self.store.delete_cluster(name, reason)

    # -- autostop -----------------------------------------------------------------------------

    def set_autostop(self, name: str, idle_minutes: int | None, down: bool) -> ClusterRecord:
        record = self.store.require_cluster(name)
        if idle_minutes is not None and not down and record.cloud:
            caps = self.backend_for(record.cloud).capabilities
            if not caps.supports(Capability.STOP):
                raise InvalidRequestError(
                    f"{caps.why_not(Capability.STOP)} (use `--down` to tear it down when idle)"
                )
        what = (
            "off"
            if idle_minutes is None
            else f"{idle_minutes} idle min, {'down' if down else 'stop'}"
        )
        return self.store.update_cluster(
            name,
            f"autostop {what}",
            autostop_minutes=idle_minutes,
            autostop_down=down,
            last_active_at=_now(),
        )

    def autostop_due(self, record: ClusterRecord, now: datetime | None = None) -> bool:
        if record.autostop_minutes is None or record.status != ClusterStatus.UP:
            return False
        if record.step != LaunchStep.READY or self.store.count_jobs(record.name, ACTIVE):
            return False
        idle_since = record.last_active_at
        return (now or _now()) - idle_since >= timedelta(minutes=record.autostop_minutes)

    def autostop(self, name: str) -> str | None:
        """Stop or tear down the cluster if its idle time is up; returns what was done.

        The idle check is made again under the cluster's queue lock, and the status changes
        there before any node is touched, so a job submitted meanwhile is either seen (and the
        cluster kept) or refused (the cluster is no longer up)."""
        record = self.store.get_cluster(name)
        if record is None or not self.autostop_due(record):
            return None
        with held(self.store, launch_lock(name)):
            with locked(self.store, queue_lock(name), ttl=TTL):
                record = self.store.get_cluster(name)
                if record is None or not self.autostop_due(record):
                    return None
                why = f"autostop: idle for {record.autostop_minutes} min"
                status = ClusterStatus.DOWN if record.autostop_down else ClusterStatus.STOPPED
                self.store.update_cluster(name, why, status=status)
            if record.autostop_down:
                self._teardown(name, why)
                return "down"
            backend = self.backend_for(record.cloud or "")
            try:
                backend.stop(name)
            except BackendError:
                self.store.update_cluster(name, "autostop could not stop it", status=record.status)
                raise
            self.store.set_nodes(name, backend.nodes(name))
        return "stopped"
