"""`session.jobs`: managed jobs from Python — launch, queue, logs, wait, cancel — and the
controller process that carries them out.

`launch` validates everything it can before anything is recorded (the task, the strategy, the
durations, that the task can be planned at all), records the job and returns its id at once;
the controller (`python -m skyplan.execution.jobs_controller`, started in the background when
none runs) does the rest. Waiting and streaming are separate calls.

Secrets never enter the store: their values go to a mode-0600 file under the skyplan home that
the controller reads at each (re)launch and deletes when the job ends.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.errors import InputError, JobNotFound, NoFeasiblePlacement, Scope, StateError
from skyplan.execution.background import start_detached
from skyplan.model import Dag, Offer, Policy, RequestContext, Task
from skyplan.model.managed import (
    ACTIVE,
    ManagedJobRecord,
    ManagedJobStatus,
    SegmentRecord,
    managed_cluster,
)
from skyplan.runtime.launch import Say, redacted
from skyplan.runtime.lease import abandoned as lease_abandoned
from skyplan.runtime.managed import ControllerSettings, ManagedJobController, kept_log
from skyplan.runtime.recovery import RecoveryStrategy, Target, strategy_named

if TYPE_CHECKING:
    from skyplan.catalog import Catalog
    from skyplan.execution.session import Session

CONTROLLER_LOCK = "jobs-controller"


@dataclass(frozen=True)
class ManagedJobView:
    """A managed job with what `jobs queue` shows: time on spot and on-demand, cost so far."""

    job: ManagedJobRecord
    segments: tuple[SegmentRecord, ...]
    now: datetime

    @property
    def spot_seconds(self) -> float:
        return sum(s.seconds(self.now) for s in self.segments if s.spot)

    @property
    def ondemand_seconds(self) -> float:
        return sum(s.seconds(self.now) for s in self.segments if not s.spot)

    @property
    def cost(self) -> float:
        return sum(s.cost(self.now) for s in self.segments)

    @property
    def placement(self) -> str:
        if not self.segments:
            return "-"
        s = self.segments[-1]
        where = "/".join(p for p in (s.cloud, s.region, s.zone) if p)
        return f"{s.num_nodes}x {s.instance_type}{' (spot)' if s.spot else ''} in {where}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.job.model_dump(mode="json", exclude={"tasks", "envs"})
        data.update(
            spot_hours=round(self.spot_seconds / 3600, 4),
            ondemand_hours=round(self.ondemand_seconds / 3600, 4),
            cost=round(self.cost, 4),
            placement=self.placement,
            segments=[s.model_dump(mode="json") for s in self.segments],
        )
        return data


class SecretFiles:
    """Managed jobs' secret values, one mode-0600 JSON file per job under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, values: Mapping[str, str]) -> str:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{_secrets.token_hex(8)}.json"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(dict(values), out)
        return name

    def read(self, job: ManagedJobRecord) -> dict[str, str]:
        name = job.planning.get("secrets_file")
        if not name:
            return {}
        try:
            data = json.loads((self.directory / name).read_text())
        except (OSError, ValueError) as exc:
            raise StateError(
                f"managed job {job.job_id}: its secrets ({self.directory / name}) cannot be "
                f"read: {exc}"
            ) from None
        return {str(k): str(v) for k, v in data.items()}

    def forget(self, job: ManagedJobRecord) -> None:
        name = job.planning.get("secrets_file")
        if name:
            (self.directory / name).unlink(missing_ok=True)


class ManagedJobs:
    """Managed jobs of a session's store; see the module docstring."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.store = session.store
        self.secrets = SecretFiles(session.home / "managed" / "secrets")
        self.logs_dir = session.home / "managed" / "logs"
        self._policies: dict[tuple[str, ...], Policy] = {}
        self._catalogs: dict[str, Catalog] = {}

    # -- submitting ---------------------------------------------------------------------------

    def launch(
        self,
        work: Task | Dag,
        *,
        name: str | None = None,
        base_dir: Path | None = None,
        envs: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        policy_files: Sequence[str | os.PathLike[str]] = (),
        catalog_path: str | os.PathLike[str] | None = None,
        context: RequestContext | None = None,
        retry_until_up: bool = False,
        keep_on_failure: bool = False,
        start_controller: bool = True,
    ) -> int:
        """Record a managed job for `work` (one task, or a pipeline of stages) and return its
        id; the controller launches it. A job group (`execution: parallel`) is recorded as one
        job per task, all at once, sharing a `group_id`: the first member's id, which is
        returned. InputError (nothing recorded) for what cannot run."""
        from skyplan.execution.session import _strings

        tasks = [work] if isinstance(work, Task) else list(work.tasks)
        if not tasks:
            raise InputError("the file has no task to run")
        group = isinstance(work, Dag) and work.kind == "job_group"
        if isinstance(work, Dag) and name is None:
            name = work.name
        planning: dict[str, Any] = {
            "policies": [str(Path(p).resolve()) for p in policy_files],
            "context": context.model_dump(mode="json") if context else None,
            "catalog": str(Path(catalog_path).resolve()) if catalog_path else None,
        }
        # A group's members are jobs of their own; a pipeline's stages are one job.
        jobs = [[t] for t in tasks] if group else [tasks]
        strategies = [_strategy_of(stages[0]) for stages in jobs]
        probe = ManagedJobRecord(
            job_id=0,
            tasks=[],
            strategy=strategies[0].name,
            planning=planning,
            submitted_at=_now(),
            updated_at=_now(),
        )
        for index, task in enumerate(tasks):
            what = "member" if group else "stage"
            self._precheck(probe, task, index, len(tasks), what)
        if isinstance(work, Dag) and len(tasks) > 1 and not group:
            planning["pipeline"] = self._place_pipeline(probe, work)
        records: list[ManagedJobRecord] = []
        for stages, strategy in zip(jobs, strategies, strict=True):
            first = stages[0]
            recovery = first.resources.job_recovery
            env = _strings({**first.envs, **(envs or {})}, "envs")
            secret = _strings({**first.secrets, **(secrets or {})}, "secrets")
            mine = dict(planning)
            if secret:
                mine["secrets_file"] = self.secrets.write(secret)
            label: str | None
            if group:
                member = first.name or f"task-{len(records)}"
                label = f"{name}/{member}" if name else member
            else:
                label = name or first.name
            now = _now()
            records.append(
                ManagedJobRecord(
                    job_id=0,
                    name=label,
                    tasks=[redacted(t) for t in stages],
                    envs=env,
                    secret_names=tuple(sorted(secret)),
                    strategy=strategy.name,
                    recovery=(recovery.model_dump(mode="json") if recovery else {}),
                    base_dir=str((base_dir or Path.cwd()).resolve()),
                    planning=mine,
                    keep_on_failure=keep_on_failure,
                    retry_until_up=retry_until_up,
                    user=os.environ.get("USER"),
                    submitted_at=now,
                    updated_at=now,
                )
            )
        if group:
            job = self.store.managed.submit_group(records)[0]
        else:
            job = self.store.managed.submit(records[0])
        placed = planning.get("pipeline")
        if placed:
            where = ", ".join(
                f"stage {i} {p['cloud']}/{p['region']}" for i, p in enumerate(placed["stages"])
            )
            self.store.managed.note(
                job.job_id,
                f"stages placed together: {where} (egress ${placed['egress_cost']:.2f})",
            )
        if start_controller:
            self.ensure_controller()
        return job.job_id

    def owned_clusters(self) -> set[str]:
        """Every cluster name an active managed job may run on (each stage, both slots)."""
        return {
            managed_cluster(job.job_id, stage, slot)
            for job in self.store.managed.jobs(ACTIVE)
            for stage in range(len(job.tasks))
            for slot in (0, 1)
        }

    def members(self, job_id: int) -> list[ManagedJobRecord]:
        """The job group `job_id` belongs to, by member id (just the job, if in no group)."""
        job = self.get(job_id)
        return [job] if job.group_id is None else self.store.managed.group(job.group_id)

    def _place_pipeline(self, probe: ManagedJobRecord, work: Dag) -> dict[str, Any]:
        """Place a pipeline's stages jointly (the pipeline optimizer: compute plus the egress
        of each stage's outputs to the next) over the backends usable here. Each stage is then
        launched in its region first (`plan`); a recovery may move it, as its strategy says.
        A stage's runtime is its `job_recovery.duration` where given, else an hour."""
        from skyplan import api
        from skyplan.catalog import load_catalog
        from skyplan.catalog.pools import launch_catalog

        clouds: list[str] = []
        offers: list[Any] = []
        for task in work.tasks:
            found_clouds, found_offers, _unusable = self.session._candidates(task)
            clouds += [c for c in found_clouds if c not in clouds]
            offers += [o for o in found_offers if o not in offers]
        catalog = self._catalog(probe) or self.session._catalog or load_catalog()
        runtimes = {
            t.name: t.resources.job_recovery.duration_hours
            for t in work.tasks
            if t.name and t.resources.job_recovery and t.resources.job_recovery.duration_hours
        }
        plan = api.plan_pipeline(
            work,
            catalog=launch_catalog(catalog, clouds, offers, frozenset()),
            policy=self._policy(probe),
            context=self._context(probe),
            runtime_hours=runtimes,
        )
        return {
            "stages": [
                {"cloud": s.offer.cloud, "region": s.offer.region, "zone": s.offer.zone}
                for s in plan.steps
            ],
            "egress_cost": plan.egress_cost,
            "total_cost": plan.total_cost,
        }

    def _precheck(
        self, probe: ManagedJobRecord, task: Task, index: int, count: int, what: str = "stage"
    ) -> None:
        stage = f"{what} {index} ({task.name})" if count > 1 else "the task"
        if not task.run:
            raise InputError(f"{stage} has no `run` command: a managed job runs something")
        try:
            self.plan(probe, task, Target(), frozenset())
        except NoFeasiblePlacement as exc:
            raise NoFeasiblePlacement(exc.task, f"{stage}: {exc.summary}", exc.reasons) from None

    # -- planning (the controller's injected planner) -----------------------------------------

    def plan(
        self, job: ManagedJobRecord, task: Task, target: Target, blocked: frozenset[Scope]
    ) -> Offer:
        """Where `task` of `job` would run now on `target`, outside `blocked`: over usable
        backends, under the job's policy files, with the target's spot choice and its
        preferred region tried first."""
        from skyplan.api import with_overrides

        if target.spot is not None:
            task = with_overrides(Dag(tasks=(task,)), {"use_spot": target.spot}).tasks[0]
        policy = self._policy(job)
        catalog = self._catalog(job)
        ctx = self._context(job)
        stages = (job.planning.get("pipeline") or {}).get("stages") or []
        if target.prefer is None and job.stage < len(stages):
            # A pipeline's stage goes where the joint placement put it, when it still can.
            joint = stages[job.stage]
            target = replace(target, prefer=Scope(joint["cloud"], joint["region"]))
        if target.prefer is not None:
            where = "/".join(p for p in (target.prefer.cloud, target.prefer.region) if p)
            near = with_overrides(Dag(tasks=(task,)), {"infra": where}).tasks[0]
            try:
                return self._plan_one(near, blocked, policy, ctx, catalog)
            except NoFeasiblePlacement:
                pass
        return self._plan_one(task, blocked, policy, ctx, catalog)

    def _plan_one(
        self,
        task: Task,
        blocked: frozenset[Scope],
        policy: Policy | None,
        context: RequestContext | None,
        catalog: Catalog | None,
    ) -> Offer:
        session = self.session
        clouds, offers, unusable = session._candidates(task)
        try:
            plan = session._plan(
                task, clouds, offers, blocked, policy, context, None, catalog=catalog
            )
        except NoFeasiblePlacement as exc:
            raise session._explain_nothing(exc, clouds, offers, unusable) from None
        return plan.placements[0].choice

    def _context(self, job: ManagedJobRecord) -> RequestContext | None:
        context = job.planning.get("context")
        if not context:
            return None
        return RequestContext.model_validate(context).model_copy(update={"kind": "job"})

    def _catalog(self, job: ManagedJobRecord) -> Catalog | None:
        path = job.planning.get("catalog")
        if not path:
            return None
        if path not in self._catalogs:
            from skyplan.catalog import load_catalog

            self._catalogs[path] = load_catalog(path)
        return self._catalogs[path]

    def _policy(self, job: ManagedJobRecord) -> Policy | None:
        paths = tuple(job.planning.get("policies") or ())
        if not paths:
            return None
        if paths not in self._policies:
            from skyplan import api

            self._policies[paths] = api.load_policy(paths)
        return self._policies[paths]

    # -- observing ----------------------------------------------------------------------------

    def get(self, job_id: int) -> ManagedJobRecord:
        job = self.store.managed.get(job_id)
        if job is None:
            recent = [str(j.job_id) for j in self.store.managed.jobs(limit=10)]
            raise JobNotFound(f"no managed job {job_id} (recent: {', '.join(recent) or 'none'})")
        return job

    def resolve(self, ref: str | int) -> ManagedJobRecord:
        """A job by id, or the latest job of that name."""
        if isinstance(ref, int) or str(ref).isdigit():
            return self.get(int(ref))
        named = self.store.managed.jobs(name=str(ref))
        if not named:
            raise JobNotFound(f"no managed job named {ref!r}")
        return named[-1]

    def queue(
        self, *, all_jobs: bool = False, limit: int | None = None, start_controller: bool = True
    ) -> list[ManagedJobView]:
        """Active jobs (with `all_jobs`, every job), oldest first, with their segments; starts
        the controller if active jobs have none (it may have died, or this machine slept)."""
        jobs = self.store.managed.jobs(None if all_jobs else ACTIVE, limit=limit)
        segments = self.store.managed.segments_by_job([j.job_id for j in jobs])
        if start_controller and any(not j.status.done for j in jobs):
            self.ensure_controller()
        now = _now()
        return [ManagedJobView(j, tuple(segments[j.job_id]), now) for j in jobs]

    def view(self, job_id: int) -> ManagedJobView:
        job = self.get(job_id)
        return ManagedJobView(job, tuple(self.store.managed.segments(job_id)), _now())

    def wait(
        self, job_id: int, *, timeout: float | None = None, poll: float = 0.5
    ) -> ManagedJobRecord:
        """Block until the job ends (or `timeout` seconds pass) and return its record."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.status.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(poll)

    def logs(
        self, ref: str | int, *, follow: bool = True, sink: Say | None = None, poll: float = 0.5
    ) -> ManagedJobRecord:
        """Stream the job's output. With `follow`, across its recoveries: each run's log in
        turn, with a line saying why a new run started, until the job ends. A run whose
        cluster is gone is read from the copy the controller kept."""
        out = sink or self.session.sink
        job = self.resolve(ref)
        shown: set[tuple[int, int]] = set()  # (stage, run_number) of the runs shown
        while True:
            run = job.cluster_job_id
            fresh = run is not None and (job.stage, job.run_number) not in shown
            previous = max(shown)[0] if shown else None
            if fresh and self._show_run(job, run or 0, follow, out, previous=previous):
                shown.add((job.stage, job.run_number))
            job = self.get(job.job_id)
            if job.status.done and (
                job.cluster_job_id is None or (job.stage, job.run_number) in shown
            ):
                return job
            if not follow:
                return job
            time.sleep(poll)

    def _show_run(
        self, job: ManagedJobRecord, run: int, follow: bool, out: Say, *, previous: int | None
    ) -> bool:
        """Print one run's output (live, or the kept copy); `previous` is the stage of the run
        shown before it (None: this is the first)."""
        cluster = managed_cluster(job.job_id, job.stage, job.slot)
        kept = kept_log(self.logs_dir, job.job_id, job.stage, job.run_number)
        live = self.store.get_cluster(cluster) is not None and self.store.job(cluster, run)
        if not live and not kept.exists():
            return job.status.done  # nothing to show, and nothing will come
        if previous is not None:
            name = Task.model_validate(job.tasks[job.stage]).name
            stage = f"stage {job.stage}" + (f" ({name})" if name else "")
            if previous != job.stage:
                out(f"(job {job.job_id}: {stage} started)")
            else:
                out(f"(job {job.job_id}: a new run of {stage} after a recovery)")
        if live:
            stream = follow and job.status == ManagedJobStatus.RUNNING
            self.session.logs(cluster, run, follow=stream, sink=out)
        else:
            for line in kept.read_text(errors="replace").splitlines():
                out(line)
        return True

    def controller_log(self, ref: str | int, *, sink: Say | None = None) -> ManagedJobRecord:
        """The job's recorded history: every status change and decision with its cause."""
        out = sink or self.session.sink
        job = self.resolve(ref)
        for event in self.store.managed.events(job.job_id):
            move = f"{event.old or ''} -> {event.new}" if event.new else ""
            stamp = event.at.isoformat(timespec="seconds")
            out(f"{stamp} {move + ': ' if move else ''}{event.reason}")
        return job

    # -- cancelling ---------------------------------------------------------------------------

    def cancel(
        self,
        refs: Sequence[str | int] = (),
        *,
        name: str | None = None,
        all_jobs: bool = False,
        start_controller: bool = True,
    ) -> list[ManagedJobRecord]:
        """Cancel jobs by id, by name, or all active ones; returns the jobs asked to stop.
        A pending job is cancelled at once; others move to CANCELLING and the controller
        stops their runs and tears their clusters down."""
        if all_jobs:
            wanted = self.store.managed.jobs(ACTIVE)
        elif name is not None:
            wanted = self.store.managed.jobs(ACTIVE, name=name)
            if not wanted:
                raise InputError(f"no active managed job named {name!r}")
        else:
            wanted = [self.resolve(r) for r in refs]
        # A job group runs together and is cancelled together.
        seen: dict[int, ManagedJobRecord] = {}
        for job in wanted:
            for member in [job] if job.group_id is None else self.store.managed.group(job.group_id):
                seen.setdefault(member.job_id, member)
        wanted = list(seen.values())
        asked = []
        for job in wanted:
            try:
                if job.status == ManagedJobStatus.PENDING:
                    asked.append(self._cancel_pending(job))
                elif job.status in ACTIVE and job.status != ManagedJobStatus.CANCELLING:
                    asked.append(self._cancel_active(job))
            except StateError:
                # It moved meanwhile (the controller took it, or it ended): ask again once.
                job = self.get(job.job_id)
                if job.status in ACTIVE and job.status != ManagedJobStatus.CANCELLING:
                    asked.append(self._cancel_active(job))
        if start_controller and any(j.status == ManagedJobStatus.CANCELLING for j in asked):
            self.ensure_controller()
        return asked

    def _cancel_active(self, job: ManagedJobRecord) -> ManagedJobRecord:
        return self.store.managed.update(
            job.job_id,
            "cancel requested by the user",
            expect=[s for s in ACTIVE if s != ManagedJobStatus.CANCELLING],
            status=ManagedJobStatus.CANCELLING,
            message="cancelled by the user",
        )

    def _cancel_pending(self, job: ManagedJobRecord) -> ManagedJobRecord:
        ended = self.store.managed.update(
            job.job_id,
            "cancelled by the user before it started",
            expect=[ManagedJobStatus.PENDING],
            status=ManagedJobStatus.CANCELLED,
            ended_at=_now(),
            message="cancelled before it started",
        )
        self.secrets.forget(ended)
        return ended

    # -- the controller -----------------------------------------------------------------------

    def controller(self, settings: ControllerSettings | None = None) -> ManagedJobController:
        """A controller over this session's store and backends (run it with `.run()`)."""
        return ManagedJobController(
            self.store,
            self.session.backend,
            self.plan,
            self.secrets.read,
            settings=settings,
            log=self.session.say,
            on_end=self.secrets.forget,
            logs_dir=self.logs_dir,
        )

    def ensure_controller(self) -> None:
        """Start the controller process in the background unless one is running."""
        lease = self.store.try_lock(
            CONTROLLER_LOCK, owner="probe", ttl=1.0, abandoned=lease_abandoned
        )
        if lease is None:
            return
        lease.release()
        home = self.session.home
        start_detached(
            [sys.executable, "-m", "skyplan.execution.jobs_controller"],
            home / "managed" / "controller.log",
            {**os.environ, "SKYPLAN_HOME": str(home), "SKYPLAN_DB_URL": self.session.db_url},
            "the managed-jobs controller",
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _strategy_of(task: Task) -> RecoveryStrategy:
    recovery = task.resources.job_recovery
    return strategy_named(recovery.strategy if recovery else None)
