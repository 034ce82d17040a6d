"""The job queue of one cluster: submit, schedule (FIFO with backfill), poll, cancel, logs.

The store is the queue; nodes only run what the queue started. Every pass takes the cluster's
queue lock in the store, so any number of processes (CLIs, the cluster's agent) may call
`refresh()` and `schedule()` at once without starting a job twice.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from skyplan.backends.base import Backend, LineSink
from skyplan.errors import BackendError, ClusterStateError, JobNotFound
from skyplan.model.node import Node, NodeStatus
from skyplan.model.state import ClusterRecord, ClusterStatus, JobDemand, JobRecord, JobStatus
from skyplan.runtime import fit, node_jobs
from skyplan.runtime.lease import locked
from skyplan.state import Store

ACTIVE = (JobStatus.PENDING, JobStatus.RUNNING)


def queue_lock(cluster: str) -> str:
    return f"queue:{cluster}"


def _now() -> datetime:
    return datetime.now(UTC)


def _gpus(record: ClusterRecord) -> float:
    return sum(record.accelerators.values()) if record.accelerators else 0.0


def _assignment(job: JobRecord) -> fit.Assignment:
    return fit.Assignment(job.ranks, {int(r): tuple(s) for r, s in job.slots.items()})


class JobQueue:
    """Jobs of one cluster over its backend."""

    def __init__(self, store: Store, backend: Backend, cluster: str) -> None:
        self.store = store
        self.backend = backend
        self.cluster = cluster

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self,
        command: str,
        *,
        name: str | None,
        demand: JobDemand,
        envs: Mapping[str, str],
        secrets: Mapping[str, str],
        user: str | None = None,
    ) -> JobRecord:
        """Queue a job: record it and put its files on every node it might run on.

        Both happen under the queue lock, which `schedule` (so no job starts before its files
        are there) and autostop (so no job is queued on a cluster being stopped) also take."""
        with locked(self.store, queue_lock(self.cluster)):
            record = self.store.require_cluster(self.cluster)
            self._check_fits(record, demand)
            job = self.store.submit_job(
                self.cluster, name=name, demand=demand, secret_names=sorted(secrets), user=user
            )
            try:
                for node in self._nodes():
                    node_jobs.write_job(
                        self.backend.runner(node),
                        node.extra["root"],
                        job.job_id,
                        command,
                        envs,
                        secrets,
                    )
            except BackendError as exc:
                return self._fail(job, "its files could not be written", exc)
        return job

    def _check_fits(self, record: ClusterRecord, demand: JobDemand) -> None:
        """Refuse a job the cluster cannot take: not up, or never enough room."""
        if record.status != ClusterStatus.UP:
            raise ClusterStateError(
                f"cluster {self.cluster!r} is {record.status.value}; jobs need it up "
                f"(`skyplan start {self.cluster}` or `skyplan launch`)"
            )
        if (
            demand.accelerator
            and record.accelerators
            and (demand.accelerator not in record.accelerators)
        ):
            have = ", ".join(record.accelerators)
            raise ClusterStateError(
                f"the job asks for {demand.accelerator}; cluster {self.cluster!r} has {have}"
            )
        why = fit.never_fits(demand, record.num_nodes, record.vcpus, _gpus(record))
        if why:
            raise ClusterStateError(f"the job can never run on cluster {self.cluster!r}: {why}")

    def _fail(self, job: JobRecord, what: str, exc: Exception) -> JobRecord:
        return self.store.update_job(
            self.cluster,
            job.job_id,
            f"{what}: {exc}",
            status=JobStatus.FAILED,
            ended_at=_now(),
            message=str(exc),
        )

    # -- scheduling ---------------------------------------------------------------------------

    def _nodes(self) -> list[Node]:
        return self.store.nodes(self.cluster)

    def schedule(self) -> list[JobRecord]:
        """Start every pending job that fits now (FIFO with backfill); returns those started."""
        with locked(self.store, queue_lock(self.cluster)):
            record = self.store.get_cluster(self.cluster)
            if record is None or record.status != ClusterStatus.UP:
                return []
            pending = self.store.jobs(self.cluster, [JobStatus.PENDING])
            if not pending:
                return []
            running = self.store.jobs(self.cluster, [JobStatus.RUNNING])
            free = fit.free_after(
                fit.empty_cluster(record.num_nodes, record.vcpus, _gpus(record)),
                [(j.demand, _assignment(j)) for j in running],
            )
            oldest = pending[0]
            starving = oldest.job_id if _now() - oldest.submitted_at >= fit.STARVATION else None
            chosen = fit.schedule([(j.job_id, j.demand) for j in pending], free, starving=starving)
            by_id = {j.job_id: j for j in pending}
            nodes = {n.rank: n for n in self._nodes()}
            return [
                self._start(by_id[job_id], assignment, nodes, record)
                for job_id, assignment in chosen
            ]

    def _start(
        self,
        job: JobRecord,
        assignment: fit.Assignment,
        nodes: Mapping[int, Node],
        record: ClusterRecord,
    ) -> JobRecord:
        ips = "\n".join(nodes[r].ip for r in assignment.ranks)
        started = self.store.update_job(
            self.cluster,
            job.job_id,
            "scheduled",
            status=JobStatus.RUNNING,
            started_at=_now(),
            ranks=assignment.ranks,
            slots={str(r): list(s) for r, s in assignment.slots.items()},
        )
        self.store.update_cluster(self.cluster, "a job started", last_active_at=_now())
        try:
            for job_rank, rank in enumerate(assignment.ranks):
                env = {
                    "SKYPILOT_NODE_RANK": str(job_rank),
                    "SKYPILOT_NODE_IPS": ips,
                    "SKYPILOT_NUM_NODES": str(len(assignment.ranks)),
                    "SKYPILOT_NUM_GPUS_PER_NODE": str(math.ceil(job.demand.accelerator_count)),
                    "SKYPLAN_CLUSTER": self.cluster,
                    "SKYPLAN_JOB_ID": str(job.job_id),
                }
                if record.accelerators:
                    env["CUDA_VISIBLE_DEVICES"] = ",".join(
                        str(s) for s in assignment.slots.get(rank, ())
                    )
                node = nodes[rank]
                result = self.backend.runner(node).run(
                    node_jobs.start_script(
                        node.extra["root"],
                        job.job_id,
                        env,
                        # A managed job sets its own, stable across its recoveries.
                        {"SKYPILOT_TASK_ID": f"skyplan-{self.cluster}-{job.job_id}"},
                    ),
                    timeout=60,
                )
                if result.exit_code != 0:
                    raise ClusterStateError(f"node {rank} did not start it: {result.output}")
        except (BackendError, ClusterStateError) as exc:
            self._kill(started)
            return self._fail(job, "could not start", exc)
        return started

    # -- observing ----------------------------------------------------------------------------

    def refresh(self) -> list[JobRecord]:
        """Poll running jobs on their nodes and record those that ended; returns them."""
        running = self.store.jobs(self.cluster, [JobStatus.RUNNING])
        if not running:
            return []
        nodes = {n.rank: n for n in self._nodes()}
        seen: dict[int, dict[int, int | str | None]] = {}
        unreachable: dict[int, str] = {}
        for rank, node in nodes.items():
            ids = [j.job_id for j in running if rank in j.ranks]
            if not ids:
                continue
            try:
                out = self.backend.runner(node).run(
                    node_jobs.poll_script(node.extra["root"], ids), timeout=30
                )
                seen[rank] = node_jobs.parse_poll(out.output)
            except BackendError as exc:
                unreachable[rank] = str(exc)
        # A node missing one poll may be a blip: it is marked unreachable and its jobs are given
        # up as lost only if it was already unreachable at the previous poll.
        lost = {
            r: why for r, why in unreachable.items() if nodes[r].status == NodeStatus.UNREACHABLE
        }
        ended = []
        for job in running:
            outcome = self._outcome(job, seen, lost, set(unreachable))
            if outcome is None:
                continue
            status, code, why = outcome
            # Only processes seen running need killing (an ended group's zombies would stall it).
            still_running = any(seen.get(r, {}).get(job.job_id) == "running" for r in job.ranks)
            with locked(self.store, queue_lock(self.cluster)):
                current = self.store.job(self.cluster, job.job_id)
                if current is None or current.status != JobStatus.RUNNING:
                    continue
                if status != JobStatus.SUCCEEDED and still_running:
                    self._kill(job, skip=set(unreachable))
                ended.append(
                    self.store.update_job(
                        self.cluster,
                        job.job_id,
                        why,
                        status=status,
                        exit_code=code,
                        ended_at=_now(),
                        message=why,
                    )
                )
                self.store.update_cluster(self.cluster, "a job ended", last_active_at=_now())
        back = {r for r in seen if nodes[r].status == NodeStatus.UNREACHABLE}
        if back or set(unreachable) - set(lost):
            self._mark_nodes(nodes, unreachable, back)
        return ended

    @staticmethod
    def _outcome(
        job: JobRecord,
        seen: Mapping[int, Mapping[int, int | str | None]],
        lost: Mapping[int, str],
        silent: set[int],
    ) -> tuple[JobStatus, int | None, str] | None:
        """How `job` ended, or None while it runs. `lost` nodes are given up on; `silent` ones
        missed this poll only, and count as still running."""
        gone = [r for r in job.ranks if r in lost]
        if gone:
            return JobStatus.LOST, None, f"node {gone[0]} unreachable: {lost[gone[0]]}"
        states = ["running" if r in silent else seen.get(r, {}).get(job.job_id) for r in job.ranks]
        if any(s is None for s in states):
            rank = job.ranks[states.index(None)]
            return JobStatus.FAILED, None, f"its process on node {rank} ended without an exit code"
        codes = [s for s in states if isinstance(s, int)]
        failed = [c for c in codes if c != 0]
        if failed:
            return JobStatus.FAILED, failed[0], f"exited with code {failed[0]}"
        if len(codes) == len(states):
            return JobStatus.SUCCEEDED, 0, "exited with code 0"
        return None

    def _mark_nodes(
        self, nodes: Mapping[int, Node], unreachable: Mapping[int, str], back: set[int]
    ) -> None:
        """Record nodes that stopped answering, and nodes that answer again."""
        updated = []
        for rank, node in sorted(nodes.items()):
            if rank in unreachable and node.status != NodeStatus.UNREACHABLE:
                node = node.model_copy(update={"status": NodeStatus.UNREACHABLE})
                self.store.record_event(
                    "node",
                    unreachable[rank],
                    cluster=self.cluster,
                    old="running",
                    new=f"unreachable (node {rank})",
                )
            elif rank in back:
                node = node.model_copy(update={"status": NodeStatus.RUNNING})
                self.store.record_event(
                    "node", "answers again", cluster=self.cluster, new=f"running (node {rank})"
                )
            updated.append(node)
        self.store.set_nodes(self.cluster, updated)

    # -- cancelling and logs ------------------------------------------------------------------

    def _kill(self, job: JobRecord, skip: set[int] | None = None) -> None:
        nodes = {n.rank: n for n in self._nodes()}
        for rank in job.ranks:
            if rank in (skip or set()) or rank not in nodes:
                continue
            node = nodes[rank]
            try:
                self.backend.runner(node).run(
                    node_jobs.kill_script(node.extra["root"], job.job_id), timeout=30
                )
            except BackendError:
                continue

    def cancel(self, job_ids: Sequence[int] | None = None) -> list[JobRecord]:
        """Cancel the given jobs (all active ones when None); returns those cancelled."""
        cancelled = []
        with locked(self.store, queue_lock(self.cluster)):
            active = self.store.jobs(self.cluster, ACTIVE)
            wanted = active if job_ids is None else [j for j in active if j.job_id in job_ids]
            for job in wanted:
                if job.status == JobStatus.RUNNING:
                    self._kill(job)
                cancelled.append(
                    self.store.update_job(
                        self.cluster,
                        job.job_id,
                        "cancelled by the user",
                        status=JobStatus.CANCELLED,
                        ended_at=_now(),
                    )
                )
        return cancelled

    def known(self, job_id: int) -> JobRecord:
        """The job `job_id`; `JobNotFound` naming the recent ones when there is none."""
        job = self.store.job(self.cluster, job_id)
        if job is None:
            known = [str(j.job_id) for j in self.store.jobs(self.cluster, limit=20)]
            raise JobNotFound(
                f"cluster {self.cluster!r} has no job {job_id} "
                f"(recent: {', '.join(known) or 'none'})"
            )
        return job

    def logs(self, job_id: int, *, follow: bool, sink: LineSink, poll: float = 0.3) -> JobRecord:
        """Stream a job's output (every node's, prefixed by rank when it ran on several);
        with `follow`, wait for a pending job to start and print until it ends."""
        job = self.known(job_id)
        while follow and job.status == JobStatus.PENDING:
            time.sleep(poll)
            self.refresh()
            self.schedule()
            job = self.store.job(self.cluster, job_id) or job
        nodes = {n.rank: n for n in self._nodes()}
        multi = len(job.ranks) > 1
        lock = threading.Lock()

        def stream(job_rank: int, rank: int) -> None:
            prefix = f"(rank={job_rank}) " if multi else ""

            def out(line: str) -> None:
                with lock:
                    sink(prefix + line)

            node = nodes.get(rank)
            if node is None or node.status == NodeStatus.UNREACHABLE:
                out(f"node {rank} is unreachable; its log cannot be read")
                return
            try:
                node_jobs.stream_log(
                    self.backend.runner(node), node.extra["root"], job_id, follow, out
                )
            except BackendError as exc:
                out(f"node {rank}: {exc}")

        # Daemon threads: a caller interrupted while following (Ctrl-C) returns at once; the
        # readers die with the process and the remote tails at their next line or the job's end.
        threads = [
            threading.Thread(
                target=stream, args=(i, r), name=f"logs {self.cluster}/{r}", daemon=True
            )
            for i, r in enumerate(job.ranks)
        ]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # short waits: a Ctrl-C delivered to another thread lands here
                t.join(0.2)
        if follow:
            self.refresh()
        return self.store.job(self.cluster, job_id) or job
