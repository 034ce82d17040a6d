"""The managed-job controller: a crash-safe state machine over the store, serving many jobs.

Each pass looks at every active managed job and, for the ones it can claim (a store lease
`managed:<id>`, so any number of controllers may share one store), moves it one step:

    PENDING ─► STARTING ─► RUNNING ─► SUCCEEDED
                  │           │ preempted / failed with restarts left / strategy switch
                  │           ▼
                  │       RECOVERING ─► RUNNING …
                  ▼
    FAILED_NO_RESOURCE · FAILED_SETUP · FAILED_PRECHECKS · FAILED · FAILED_CONTROLLER
    CANCELLING ─► CANCELLED (from any active state)

Crash safety rests on three facts. A job's cluster has a fixed name (`managed_cluster`), so a
relaunch after a crash resumes that cluster instead of creating a second one, and the launcher
itself resumes an interrupted launch. (A switch that keeps the job running while it launches
elsewhere uses the stage's second name, its other *slot*; a step finding a cluster in the slot
the job does not run on removes it, so an interrupted switch leaves nothing behind.) Every
decision is written to the store (status, target) *before* it is acted on, so a restarted
controller redoes the step it was in. And the run on the cluster carries the job's name, so a
controller that died between submitting it and recording it adopts the run instead of starting
it twice.

Where a job runs next is the recovery strategy's call (`runtime.recovery`); what counts as a
preemption is `runtime.preemption`'s. Steps that take long (launches, teardowns) run on a pool
of `workers` threads, so a burst of jobs launches concurrently up to that limit and a slow
launch never holds up the polling of running jobs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skyplan.errors import (
    BackendError,
    ClusterStateError,
    InputError,
    LaunchFailed,
    NoFeasiblePlacement,
    Scope,
    SkyplanError,
    StateError,
)
from skyplan.model import JobRecovery, Offer, Task
from skyplan.model.managed import (
    ACTIVE,
    ManagedJobRecord,
    ManagedJobStatus,
    SegmentRecord,
    managed_cluster,
)
from skyplan.model.node import NodeStatus
from skyplan.model.state import ClusterRecord, ClusterStatus, JobStatus, LaunchStep
from skyplan.runtime.launch import BackendFor, Launcher, LaunchSpec, Say, demand_of
from skyplan.runtime.lease import claimed
from skyplan.runtime.lifecycle import Lifecycle
from skyplan.runtime.preemption import Outcome, Verdict, judge
from skyplan.runtime.queue import JobQueue
from skyplan.runtime.recovery import (
    Keep,
    Launch,
    RecoveryView,
    Segment,
    Target,
    Trigger,
    Wait,
    strategy_named,
)
from skyplan.state import Store

S = ManagedJobStatus
#: Plans one stage (task) of a job for a target, outside `blocked`; raises
#: NoFeasiblePlacement. The job carries how to plan it (`planning`: policies, context).
ManagedPlanner = Callable[[ManagedJobRecord, Task, Target, frozenset[Scope]], Offer]
#: A managed job's secrets (kept by the caller, never in the store).
SecretsFor = Callable[[ManagedJobRecord], Mapping[str, str]]


def run_name(job_id: int) -> str:
    """The name of the cluster job that runs a managed job's task."""
    return f"managed-{job_id}"


def task_id(job: ManagedJobRecord) -> str:
    """`SKYPILOT_TASK_ID`: the same across every recovery, so checkpointing scripts resume."""
    stamp = job.submitted_at.strftime("%Y-%m-%d-%H-%M-%S-%f")
    return f"skyplan-managed-{stamp}_{job.name or 'job'}_{job.job_id}-{job.stage}"


@dataclass(frozen=True)
class ControllerSettings:
    #: Seconds between looks at a running job, and between strategy ticks.
    poll: float = 5.0
    tick: float = 60.0
    #: Launches and teardowns that may run at once.
    workers: int = 8
    #: Idle minutes before a failed job's cluster kept with `keep_on_failure` is torn down.
    keep_minutes: int = 60


def _target_json(target: Target) -> dict[str, Any]:
    data = asdict(target)
    data["exclude"] = sorted(
        [asdict(s) for s in target.exclude], key=lambda s: json.dumps(s, sort_keys=True)
    )
    data["prefer"] = asdict(target.prefer) if target.prefer else None
    return data


def _target_of(data: Mapping[str, Any] | None) -> Target | None:
    if data is None:
        return None
    prefer = data.get("prefer")
    return Target(
        spot=data.get("spot"),
        exclude=frozenset(Scope(**s) for s in data.get("exclude", ())),
        prefer=Scope(**prefer) if prefer else None,
        reason=data.get("reason", ""),
        keep_running=bool(data.get("keep_running", False)),
    )


def _segment(seg: SegmentRecord, origin: datetime) -> Segment:
    def at(moment: datetime | None) -> float | None:
        return None if moment is None else (moment - origin).total_seconds()

    return Segment(
        spot=seg.spot,
        cloud=seg.cloud,
        region=seg.region,
        zone=seg.zone,
        started=at(seg.started_at) or 0.0,
        ended=at(seg.ended_at),
        outcome=seg.outcome,
        hourly_cost=seg.hourly_cost,
    )


class ManagedJobController:
    """Moves managed jobs through their states; see the module docstring."""

    def __init__(
        self,
        store: Store,
        backend_for: BackendFor,
        planner: ManagedPlanner,
        secrets_for: SecretsFor,
        *,
        settings: ControllerSettings | None = None,
        log: Say = lambda _m: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_end: Callable[[ManagedJobRecord], None] = lambda _job: None,
        logs_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.backend_for = backend_for
        self.planner = planner
        self.secrets_for = secrets_for
        self.settings = settings or ControllerSettings()
        self.log = log
        self.now = now
        self.on_end = on_end
        self.logs_dir = logs_dir
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="managed")
        self._busy: dict[int, Future[None]] = {}
        self._next_poll: dict[int, float] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, *, stop: threading.Event | None = None, exit_when_idle: bool = True) -> None:
        """Pass over the jobs until `stop` is set (or, with `exit_when_idle`, until no job is
        active and no step is in flight)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            active = self.pass_once()
            if exit_when_idle and not active and not self._in_flight():
                return
            stop.wait(min(1.0, self.settings.poll))

    def _in_flight(self) -> bool:
        with self._lock:
            self._busy = {k: f for k, f in self._busy.items() if not f.done()}
            return bool(self._busy)

    def pass_once(self) -> int:
        """Start a step for every active job that is due and not already being stepped;
        returns how many jobs are active."""
        jobs = self.store.managed.jobs(ACTIVE)
        clock = time.monotonic()
        now = self.now()
        for job in jobs:
            job_id = job.job_id
            asleep = job.next_check_at is not None and job.next_check_at > now
            if asleep and job.status not in (S.RUNNING, S.CANCELLING):
                continue  # a strategy's Wait: not even worth a claim
            with self._lock:
                busy = self._busy.get(job_id)
                if busy is not None and not busy.done():
                    continue
                if self._next_poll.get(job_id, 0.0) > clock:
                    continue
                self._busy[job_id] = self._pool.submit(self._step_claimed, job_id)
        return len(jobs)

    def step(self, job_id: int) -> None:
        """One step of one job, in this thread (tests, and the simulator's driver)."""
        self._step_claimed(job_id)

    def _step_claimed(self, job_id: int) -> None:
        with claimed(self.store, f"managed:{job_id}") as mine:
            if not mine:
                return  # another controller has it
            try:
                self._step(job_id)
            except StateError as exc:
                self.log(f"job {job_id}: store: {exc}")
            except Exception as exc:  # a bug, or a backend that broke its contract
                self.log(f"job {job_id}: controller error: {type(exc).__name__}: {exc}")
                self._fail_controller(job_id, exc)

    def _later(self, job_id: int, seconds: float) -> None:
        with self._lock:
            self._next_poll[job_id] = time.monotonic() + seconds

    def _step(self, job_id: int) -> None:
        job = self.store.managed.get(job_id)
        if job is None or job.status.done:
            return
        waiting = job.next_check_at is not None and job.next_check_at > self.now()
        if waiting and job.status not in (S.RUNNING, S.CANCELLING):
            return
        if job.group_id is not None and job.status != S.CANCELLING:
            job = self._follow_group(job)
        if job.status in (S.RUNNING, S.RECOVERING):
            self._sweep(job)
        if job.status == S.CANCELLING:
            self._cancel(job)
        elif job.status == S.PENDING:
            self._decide(job, Trigger.START)
        elif job.status in (S.STARTING, S.RECOVERING):
            target = _target_of(job.target)
            if target is None:  # a strategy's Wait is over: time passed, nothing runs
                self._decide(job, Trigger.TICK)
            else:
                self._launch(job, target)
        elif job.status == S.RUNNING:
            self._watch(job)

    # -- deciding -----------------------------------------------------------------------------

    def _recovery(self, job: ManagedJobRecord) -> JobRecovery:
        return JobRecovery.model_validate(job.recovery)

    def view(self, job: ManagedJobRecord, trigger: Trigger) -> RecoveryView:
        """What the strategy sees of `job` now (rebuilt from the store every time)."""
        now = self.now()
        segments = [_segment(s, job.submitted_at) for s in self.store.managed.segments(job.job_id)]
        running = segments[-1] if segments and segments[-1].ended is None else None
        history = tuple(s for s in segments if s is not running)
        task = self._task(job)
        return RecoveryView(
            trigger=trigger,
            now=(now - job.submitted_at).total_seconds(),
            recovery=self._recovery(job),
            history=history,
            running=running,
            num_nodes=task.num_nodes,
            spot_requested=_spot_requested(task),
            no_place=job.no_place,
            last_target=_target_of(job.target),
            extra={"tick_seconds": self.settings.tick},
        )

    def _decide(self, job: ManagedJobRecord, trigger: Trigger) -> None:
        strategy = strategy_named(job.strategy)
        decision = strategy.decide(self.view(job, trigger))
        moving = S.STARTING if job.started_at is None else S.RECOVERING
        if isinstance(decision, Launch):
            reason = decision.target.reason or "launch"
            if job.status == moving:  # no status change, so no event: say what was decided
                self.store.managed.note(job.job_id, f"{strategy.name}: {reason}")
            job = self.store.managed.update(
                job.job_id,
                f"{trigger}: {reason}",
                expect=(job.status,),
                status=moving,
                target=_target_json(decision.target),
                next_check_at=None,
            )
            self._launch(job, decision.target)
        elif isinstance(decision, Wait):
            until = self.now() + timedelta(seconds=decision.seconds)
            self.store.managed.update(
                job.job_id,
                f"{trigger}: {decision.reason or 'waiting'}",
                expect=(job.status,),
                status=moving if job.status != S.RUNNING else S.RUNNING,
                target=None if job.status != S.RUNNING else job.target,
                next_check_at=until,
            )
            self.store.managed.note(
                job.job_id, f"{strategy.name}: wait {decision.seconds:.0f}s: {decision.reason}"
            )
        elif isinstance(decision, Keep) and job.status != S.RUNNING:
            # Nothing runs and the strategy wants nothing: look again after a tick.
            self.store.managed.update(
                job.job_id,
                "waiting",
                next_check_at=self.now() + timedelta(seconds=self.settings.tick),
            )

    # -- launching ----------------------------------------------------------------------------

    def _task(self, job: ManagedJobRecord, stage: int | None = None) -> Task:
        return Task.model_validate(job.tasks[job.stage if stage is None else stage])

    def _launch(self, job: ManagedJobRecord, target: Target) -> None:
        """Bring the stage's cluster up on `target` and start the run on it."""
        cluster = _cluster(job)
        record = self.store.get_cluster(cluster)
        if record is not None and self._adoptable(job, record):
            self._running(job, record, adopted=True)
            return
        if record is not None:
            self._prepare(job, record, target)
        first = job.started_at is None
        try:
            record = self._bring_up(job, cluster, target)
        except LaunchFailed as exc:
            self._no_place(job, first, str(exc), infeasible=not exc.attempts)
            return
        except NoFeasiblePlacement as exc:
            self._no_place(job, first, str(exc), infeasible=True)
            return
        except ClusterStateError as exc:
            if "setup failed" in str(exc):
                self._finish(job, S.FAILED_SETUP, str(exc), keep=job.keep_on_failure)
            else:
                self._finish(job, S.FAILED_PRECHECKS, str(exc))
            return
        except (InputError, SkyplanError) as exc:
            if isinstance(exc, BackendError) and exc.retryable:
                self.log(f"job {job.job_id}: launch interrupted ({exc}); will retry")
                self._later(job.job_id, self.settings.poll)
                return
            self._finish(job, S.FAILED_PRECHECKS, str(exc))
            return
        self._running(job, record, adopted=False)

    def _bring_up(self, job: ManagedJobRecord, cluster: str, target: Target) -> ClusterRecord:
        """Launch (or resume launching) `cluster` for the job's stage on `target`."""
        task = self._task(job)
        spec = LaunchSpec(
            cluster=cluster,
            task=task,
            base_dir=Path(job.base_dir or "."),
            envs=job.envs,
            secrets=dict(self.secrets_for(job)),
        )

        def plan(blocked: frozenset[Scope]) -> Offer:
            return self.planner(job, task, target, blocked | target.exclude)

        launcher = Launcher(self.store, self.backend_for, say=self.log)
        return launcher.launch(spec, plan, lambda _r: None)

    def _adoptable(self, job: ManagedJobRecord, record: ClusterRecord) -> bool:
        """A live run of this job already on the cluster (its submitter died before recording
        it). Runs judged over are retired (`_retire_run`), so only such a one can be found."""
        if record.status != ClusterStatus.UP or record.step != LaunchStep.READY:
            return False
        active = self.store.jobs(record.name, [JobStatus.PENDING, JobStatus.RUNNING])
        if not any(j.name == run_name(job.job_id) for j in active):
            return False
        nodes = self.backend_for(record.cloud or "").nodes(record.name)
        return sum(n.status == NodeStatus.RUNNING for n in nodes) == record.num_nodes

    def _retire_run(self, job: ManagedJobRecord, why: str) -> None:
        """Mark the job's run ended in its cluster's queue if the queue still calls it active
        (its nodes vanished before the queue could see it end)."""
        cluster = _cluster(job)
        run = self.store.job(cluster, job.cluster_job_id) if job.cluster_job_id else None
        if run is not None and not run.status.done:
            self.store.update_job(
                cluster,
                run.job_id,
                f"managed job: {why}",
                status=JobStatus.LOST,
                ended_at=self.now(),
                message=why,
            )

    def _prepare(self, job: ManagedJobRecord, record: ClusterRecord, target: Target) -> None:
        """Before relaunching: keep a cluster the target still allows (the launcher repairs it
        in place: missing nodes are provisioned again, healthy ones kept); tear down one it
        does not."""
        keep = (
            record.cloud is not None
            and record.status != ClusterStatus.DOWN
            and (target.spot is None or target.spot == record.spot)
            and not any(s.covers(record.cloud, record.region, record.zone) for s in target.exclude)
            and (target.prefer is None or target.prefer.covers(record.cloud, record.region, None))
        )
        if keep and record.status == ClusterStatus.UP:
            nodes = self.backend_for(record.cloud or "").nodes(record.name)
            if len(nodes) == record.num_nodes and all(
                n.status == NodeStatus.RUNNING for n in nodes
            ):
                return  # healthy: the run is simply started again
            self.log(f"job {job.job_id}: replacing lost nodes of {record.name}")
            self.store.update_cluster(
                record.name,
                "replacing lost nodes",
                status=ClusterStatus.INIT,
                step=LaunchStep.PLANNED,
            )
            return
        if keep:
            return  # an interrupted launch: the launcher resumes it
        self.log(f"job {job.job_id}: tearing down {record.name} to move")
        Lifecycle(self.store, self.backend_for, self.log).down(record.name, "managed job moves")

    def _no_place(self, job: ManagedJobRecord, first: bool, why: str, *, infeasible: bool) -> None:
        if first and (infeasible or not job.retry_until_up):
            self._finish(job, S.FAILED_NO_RESOURCE, why)
            return
        self.store.managed.note(job.job_id, f"no place to run: {why}")
        job = self.store.managed.update(job.job_id, "no place", no_place=job.no_place + 1)
        self._decide(job, Trigger.NO_PLACE)

    def _running(self, job: ManagedJobRecord, record: ClusterRecord, *, adopted: bool) -> None:
        """The cluster is up: start (or adopt) the run and open a segment."""
        if adopted:
            run = next(
                j
                for j in self.store.jobs(record.name, [JobStatus.PENDING, JobStatus.RUNNING])
                if j.name == run_name(job.job_id)
            )
        else:
            task = self._task(job)
            queue = JobQueue(self.store, self.backend_for(record.cloud or ""), record.name)
            envs = {**job.envs, "SKYPILOT_TASK_ID": task_id(job)}
            run = queue.submit(
                task.run or "true",
                name=run_name(job.job_id),
                demand=demand_of(task),
                envs=envs,
                secrets=dict(self.secrets_for(job)),
                user=job.user,
            )
            queue.schedule()
        now = self.now()
        self.store.managed.close_segment(job.job_id, "lost-controller", now)
        segment = self.store.managed.open_segment(
            SegmentRecord(
                job_id=job.job_id,
                number=0,
                stage=job.stage,
                cloud=record.cloud or "",
                region=record.region or "",
                zone=record.zone,
                instance_type=record.instance_type or "",
                spot=record.spot,
                num_nodes=record.num_nodes,
                hourly_cost=record.hourly_cost,
                started_at=now,
            ),
            f"running on {record.cloud}/{record.region}{' (spot)' if record.spot else ''}",
        )
        self.store.managed.update(
            job.job_id,
            f"running on {record.name}",
            expect=(S.STARTING, S.RECOVERING),
            status=S.RUNNING,
            cluster_job_id=run.job_id,
            run_number=segment.number,
            started_at=job.started_at or now,
            no_place=0,
            next_check_at=now + timedelta(seconds=self.settings.tick),
        )
        self._later(job.job_id, self.settings.poll)

    # -- watching -----------------------------------------------------------------------------

    def verdict(self, job: ManagedJobRecord) -> Verdict:
        """Poll the job's run and judge it (see `runtime.preemption`)."""
        cluster = _cluster(job)
        record = self.store.get_cluster(cluster)
        if record is None or record.cloud is None:
            return Verdict(Outcome.PREEMPTED, "its cluster is gone")
        backend = self.backend_for(record.cloud)
        nodes = backend.nodes(cluster)
        if sum(n.status == NodeStatus.RUNNING for n in nodes) < record.num_nodes:
            return judge(record.num_nodes, nodes, None)  # do not poll nodes that are gone
        queue = JobQueue(self.store, backend, cluster)
        queue.refresh()
        queue.schedule()  # a run adopted while still pending starts here
        run = self.store.job(cluster, job.cluster_job_id or 0)
        return judge(record.num_nodes, nodes, run)

    def _watch(self, job: ManagedJobRecord) -> None:
        try:
            verdict = self.verdict(job)
        except BackendError as exc:
            self.log(f"job {job.job_id}: cannot poll its cluster ({exc}); will retry")
            self._later(job.job_id, self.settings.poll)
            return
        now = self.now()
        if verdict.outcome == Outcome.RUNNING:
            if job.next_check_at is None or job.next_check_at <= now:
                self._tick(job)
            self._later(job.job_id, self.settings.poll)
            return
        self.store.managed.close_segment(job.job_id, verdict.outcome.value, now)
        if verdict.outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
            self.save_log(job)
        self._retire_run(job, verdict.why)
        if verdict.outcome == Outcome.SUCCEEDED:
            self._succeeded(job)
        elif verdict.outcome == Outcome.CANCELLED:
            self._finish(job, S.CANCELLED, verdict.why)
        elif verdict.outcome == Outcome.FAILED:
            self._failed(job, verdict)
        else:
            self._preempted(job, verdict)

    def _tick(self, job: ManagedJobRecord) -> None:
        strategy = strategy_named(job.strategy)
        decision = strategy.decide(self.view(job, Trigger.TICK))
        job = self.store.managed.update(
            job.job_id, "tick", next_check_at=self.now() + timedelta(seconds=self.settings.tick)
        )
        if isinstance(decision, Launch) and decision.target.keep_running:
            self._switch_beside(job, decision.target)
        elif isinstance(decision, Launch):
            self.store.managed.close_segment(job.job_id, "switched", self.now())
            self._kill_run(job)
            self.save_log(job)
            job = self.store.managed.update(
                job.job_id,
                f"tick: {decision.target.reason or 'switching'}",
                status=S.RECOVERING,
                target=_target_json(decision.target),
            )
            self._launch(job, decision.target)

    def _switch_beside(self, job: ManagedJobRecord, target: Target) -> None:
        """Make before break: bring the target up in the stage's other slot while the job
        runs on; move only once it is up. Whatever goes wrong with the new cluster (no place,
        a failed setup) leaves the job running where it is, and the strategy is asked again at
        the next tick. A controller that dies in here leaves at most the other slot's cluster,
        which the next step removes (`_sweep`) unless the move was already recorded."""
        here, there = _cluster(job), managed_cluster(job.job_id, job.stage, 1 - job.slot)
        reason = target.reason or "switching"
        self.store.managed.note(job.job_id, f"tick: {reason}: launching {there} beside {here}")
        try:
            record = self._bring_up(job, there, target)
        except (SkyplanError, InputError) as exc:
            self.store.managed.note(job.job_id, f"switch not made, keeps running on {here}: {exc}")
            self._down_if_there(there, "the switch did not come up")
            return
        self.store.managed.close_segment(job.job_id, "switched", self.now())
        self._kill_run(job)
        self.save_log(job)
        job = self.store.managed.update(
            job.job_id,
            f"tick: {reason}: moving to {there}",
            expect=(S.RUNNING,),
            status=S.RECOVERING,
            slot=1 - job.slot,
            target=_target_json(target),
            cluster_job_id=None,
        )
        self._down_if_there(here, "the managed job moved")
        self._running(job, record, adopted=False)

    def _sweep(self, job: ManagedJobRecord) -> None:
        """Remove the cluster in the stage's other slot: only a switch that was interrupted
        before the job moved (or after it moved, before the old one went) leaves one."""
        self._down_if_there(
            managed_cluster(job.job_id, job.stage, 1 - job.slot), "an interrupted switch"
        )

    def _down_if_there(self, cluster: str, why: str) -> None:
        if self.store.get_cluster(cluster) is not None:
            Lifecycle(self.store, self.backend_for, self.log).down(cluster, why)

    def _succeeded(self, job: ManagedJobRecord) -> None:
        if job.stage + 1 < len(job.tasks):
            self._teardown(job)
            job = self.store.managed.update(
                job.job_id,
                f"stage {job.stage} succeeded",
                stage=job.stage + 1,
                slot=0,
                status=S.STARTING,
                target=None,
                cluster_job_id=None,
            )
            self._decide(job, Trigger.START)
            return
        self._finish(job, S.SUCCEEDED, "succeeded", exit_code=0)

    def _failed(self, job: ManagedJobRecord, verdict: Verdict) -> None:
        recovery = self._recovery(job)
        code = verdict.exit_code
        free = code is not None and code in recovery.recover_on_exit_codes
        if not free and job.restarts >= recovery.max_restarts_on_errors:
            self._finish(job, S.FAILED, verdict.why, exit_code=code, keep=job.keep_on_failure)
            return
        restarts = job.restarts if free else job.restarts + 1
        why = f"{verdict.why}: restart {restarts}/{recovery.max_restarts_on_errors}"
        if free:
            why = f"{verdict.why}: exit code {code} is in recover_on_exit_codes"
        job = self.store.managed.update(
            job.job_id, why, status=S.RECOVERING, restarts=restarts, exit_code=code
        )
        self._decide(job, Trigger.FAILED)

    def _preempted(self, job: ManagedJobRecord, verdict: Verdict) -> None:
        job = self.store.managed.update(
            job.job_id,
            f"preempted: {verdict.why}",
            status=S.RECOVERING,
            recoveries=job.recoveries + 1,
        )
        if verdict.partial:
            # Replace the lost nodes where the healthy ones are, and run again on all of them.
            record = self.store.get_cluster(_cluster(job))
            if record is not None and record.cloud is not None:
                here = Target(
                    spot=record.spot,
                    prefer=Scope(record.cloud, record.region),
                    reason=f"replacing node(s) lost from {record.name}",
                )
                self.store.managed.note(job.job_id, here.reason)
                job = self.store.managed.update(job.job_id, here.reason, target=_target_json(here))
                self._launch(job, here)
                return
        self._decide(job, Trigger.PREEMPTED)

    # -- ending -------------------------------------------------------------------------------

    def log_path(self, job_id: int, stage: int, run: int) -> Path | None:
        """Where the output of a run (`run`: its `run_number`) is kept once its cluster is
        gone."""
        return None if self.logs_dir is None else kept_log(self.logs_dir, job_id, stage, run)

    def save_log(self, job: ManagedJobRecord) -> None:
        """Copy the current run's output off its cluster (before the cluster goes away)."""
        path = self.log_path(job.job_id, job.stage, job.run_number)
        cluster = _cluster(job)
        record = self.store.get_cluster(cluster)
        if path is None or record is None or record.cloud is None or not job.cluster_job_id:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        try:
            with tmp.open("w") as out:

                def keep(line: str) -> None:
                    out.write(line + "\n")

                JobQueue(self.store, self.backend_for(record.cloud), cluster).logs(
                    job.cluster_job_id, follow=False, sink=keep
                )
            tmp.replace(path)
        except (BackendError, OSError) as exc:
            self.log(f"job {job.job_id}: could not keep its log: {exc}")
            tmp.unlink(missing_ok=True)

    def _kill_run(self, job: ManagedJobRecord) -> None:
        cluster = _cluster(job)
        record = self.store.get_cluster(cluster)
        if record is None or record.cloud is None or job.cluster_job_id is None:
            return
        try:
            JobQueue(self.store, self.backend_for(record.cloud), cluster).cancel(
                [job.cluster_job_id]
            )
        except BackendError as exc:
            self.log(f"job {job.job_id}: could not cancel its run: {exc}")

    def _teardown(self, job: ManagedJobRecord) -> None:
        for stage in range(len(job.tasks)):
            for slot in (0, 1):
                cluster = managed_cluster(job.job_id, stage, slot)
                if self.store.get_cluster(cluster) is not None:
                    Lifecycle(self.store, self.backend_for, self.log).down(
                        cluster, "managed job ended"
                    )

    def _follow_group(self, job: ManagedJobRecord) -> ManagedJobRecord:
        """A job group stops as one: once a member has failed for good, every other member
        is cancelled. Asked at each member's step (not pushed by the failing one), so a
        controller that died right after a member failed still stops the rest."""
        failed = next(
            (m for m in self.store.managed.group(job.group_id or 0) if m.status.failed), None
        )
        if failed is None:
            return job
        why = f"job {failed.job_id} of its group ended {failed.status.value}: the group stops"
        return self.store.managed.update(
            job.job_id, why, expect=(job.status,), status=S.CANCELLING, message=why
        )

    def _cancel(self, job: ManagedJobRecord) -> None:
        self._kill_run(job)
        self.save_log(job)
        self.store.managed.close_segment(job.job_id, "cancelled", self.now())
        self._finish(job, S.CANCELLED, job.message or "cancelled by the user")

    def _finish(
        self,
        job: ManagedJobRecord,
        status: ManagedJobStatus,
        why: str,
        *,
        exit_code: int | None = None,
        keep: bool = False,
    ) -> None:
        """End the job: its clusters are torn down (or, with `keep`, left up with autostop)
        before the terminal status is written, so a crash in between only repeats the
        teardown."""
        if keep:
            cluster = _cluster(job)
            if self.store.get_cluster(cluster) is not None:
                Lifecycle(self.store, self.backend_for, self.log).set_autostop(
                    cluster, self.settings.keep_minutes, True
                )
                why += (
                    f"; its cluster {cluster} is kept for debugging and goes down after "
                    f"{self.settings.keep_minutes} idle minutes"
                )
        else:
            self._teardown(job)
        self.store.managed.close_segment(job.job_id, status.value.lower(), self.now())
        ended = self.store.managed.update(
            job.job_id,
            why,
            expect=ACTIVE,
            status=status,
            ended_at=self.now(),
            exit_code=exit_code if exit_code is not None else job.exit_code,
            message=why,
            next_check_at=None,
        )
        self.on_end(ended)

    def _fail_controller(self, job_id: int, exc: Exception) -> None:
        job = self.store.managed.get(job_id)
        if job is None or job.status.done:
            return
        why = f"controller error: {type(exc).__name__}: {exc}"
        try:
            self._finish(job, S.FAILED_CONTROLLER, why)
        except SkyplanError as again:
            self.store.managed.update(
                job_id, f"{why}; teardown failed: {again}", status=S.FAILED_CONTROLLER
            )


def kept_log(logs_dir: Path, job_id: int, stage: int, run: int) -> Path:
    """The file a run's output is copied to (`run`: the job's `run_number` for it)."""
    return logs_dir / str(job_id) / f"stage-{stage}-run-{run}.log"


def _cluster(job: ManagedJobRecord) -> str:
    """The cluster the job's current stage runs on (its slot's)."""
    return managed_cluster(job.job_id, job.stage, job.slot)


def _spot_requested(task: Task) -> bool | None:
    options = [o for group in task.resources.option_groups() for o in group]
    kinds = {o.use_spot for o in options}
    return kinds.pop() if len(kinds) == 1 else None
