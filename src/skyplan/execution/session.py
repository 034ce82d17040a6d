"""`Session`: the execution API — launch, exec, status, queue, logs, cancel, stop, start, down,
autostop, check — wiring the runtime to the state store, the backends and the planner.

A session is cheap; embedders may hold one per request or one for the process. Everything it
knows lives in the store (`SKYPLAN_DB_URL`, or SQLite under `SKYPLAN_HOME`), so any number of
sessions in any number of processes see one truth.
"""

from __future__ import annotations

import logging
import os
import re
import secrets as _secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skyplan.backends import BACKENDS, EXPLICIT_ONLY, Backend, BackendSettings
from skyplan.errors import (
    BackendError,
    ClusterStateError,
    InputError,
    LaunchFailed,
    NoFeasiblePlacement,
    Scope,
)
from skyplan.execution.background import start_detached
from skyplan.model import Dag, Offer, Plan, Policy, RequestContext, Task
from skyplan.model.node import BackendCheck, Node, PoolOffer
from skyplan.model.state import ClusterStatus, Event, JobRecord, JobStatus
from skyplan.paths import default_home
from skyplan.runtime import ClusterView, JobQueue, Launcher, LaunchSpec, Lifecycle, demand_of
from skyplan.runtime.agent import agent_lock
from skyplan.runtime.launch import Say
from skyplan.runtime.lease import abandoned as lease_abandoned
from skyplan.state import Store, default_url

if TYPE_CHECKING:  # planning (Polars, the solver) loads only when a launch needs it
    from skyplan.catalog import Catalog
    from skyplan.execution.managed import ManagedJobs


def _quiet(_message: str) -> None:
    return None


#: A session's progress (launches, failovers, stops, downs) goes to this logger at INFO as well
#: as to its `say`: an embedder sees it through their own logging set-up. skyplan adds no
#: handler of its own (a `NullHandler`, as libraries do).
log = logging.getLogger("skyplan")


def _logged(say: Say) -> Say:
    def both(message: str) -> None:
        log.info(message)
        say(message)

    return both


@dataclass(frozen=True)
class LaunchResult:
    """What `launch` did: the cluster it brought up and the job it queued (if the task runs
    something)."""

    cluster: str
    job: JobRecord | None
    reused: bool = False


def _strings(values: Mapping[str, object], what: str) -> dict[str, str]:
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise InputError(
            f"{what} {', '.join(missing)} need a value: set it in the task or pass "
            f"--{'secret' if what == 'secrets' else 'env'} {missing[0]}=VALUE"
        )
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


class Session:
    """One view of skyplan's clusters and jobs; see the module docstring."""

    def __init__(
        self,
        *,
        home: Path | None = None,
        db_url: str | None = None,
        catalog: Catalog | None = None,
        trust_new_host_keys: bool = False,
        say: Say = _quiet,
        sink: Say = _quiet,
    ) -> None:
        self.home = home or default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url or default_url(self.home)
        self.store = Store.open(self.db_url)
        self._catalog = catalog
        self.settings = BackendSettings(self.home, trust_new_host_keys)
        self._backends: dict[str, Backend] = {}
        self.say = _logged(say)
        self.sink = sink
        self._jobs: ManagedJobs | None = None

    @property
    def jobs(self) -> ManagedJobs:
        """Managed jobs: `session.jobs.launch(task)`, `.queue()`, `.logs(id)`, `.cancel(...)`."""
        if self._jobs is None:
            from skyplan.execution.managed import ManagedJobs

            self._jobs = ManagedJobs(self)
        return self._jobs

    def close(self) -> None:
        for backend in self._backends.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
        self._backends.clear()
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- backends -----------------------------------------------------------------------------

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = BACKENDS.get(name)(self.settings)
        return self._backends[name]

    def check(self) -> list[BackendCheck]:
        """Is each registered backend usable here, and if not, why."""
        return [self.backend(name).check() for name in BACKENDS]

    def _candidates(self, task: Task) -> tuple[list[str], list[PoolOffer], dict[str, str]]:
        """Clouds whose price-catalog rows a launch may use, discovered pool offers, and why
        each backend the task could use is not usable here."""
        pinned = {o.infra.cloud for g in task.resources.option_groups() for o in g}
        clouds: list[str] = []
        offers: list[PoolOffer] = []
        unusable: dict[str, str] = {}
        for name in BACKENDS:
            if name in EXPLICIT_ONLY and name not in pinned:
                continue
            if None not in pinned and name not in pinned:
                continue
            backend = self.backend(name)
            check = backend.check()
            if not check.ok:
                unusable[name] = "; ".join((check.reason, *check.detail))
                continue
            found = list(backend.offers())
            if found:
                offers.extend(found)
            else:
                clouds.append(name)
        return clouds, offers, unusable

    # -- launch and exec ----------------------------------------------------------------------

    def launch(
        self,
        work: Task | Dag,
        *,
        cluster: str | None = None,
        base_dir: Path | None = None,
        envs: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        retry_until_up: bool = False,
        idle_minutes: int | None = None,
        down: bool = False,
        policy: Policy | None = None,
        context: RequestContext | None = None,
        overrides: Mapping[str, str] | None = None,
        start_agent: bool = True,
    ) -> LaunchResult:
        """Bring a cluster up for `work` (one task) and queue its `run` as a job."""
        from skyplan.execution.fit import cluster_fits

        task = _single(work)
        name = _cluster_name(cluster) if cluster else f"skyplan-{_secrets.token_hex(2)}"
        env = _strings({**task.envs, **(envs or {})}, "envs")
        secret = _strings({**task.secrets, **(secrets or {})}, "secrets")
        clouds, offers, unusable = self._candidates(task)

        def planner(blocked: frozenset[Scope]) -> Offer:
            chosen = self._plan(task, clouds, offers, blocked, policy, context, overrides)
            return chosen.placements[0].choice

        spec = LaunchSpec(
            cluster=name,
            task=task,
            base_dir=base_dir or Path.cwd(),
            envs=env,
            secrets=secret,
            retry_until_up=retry_until_up,
        )
        existed = self.store.get_cluster(name)
        launcher = Launcher(self.store, self.backend, say=self.say, sink=self.sink)
        try:
            record = launcher.launch(spec, planner, lambda r: cluster_fits(r, task))
        except LaunchFailed as exc:
            if not exc.attempts and isinstance(exc.__cause__, NoFeasiblePlacement):
                raise self._explain_nothing(exc.__cause__, clouds, offers, unusable) from None
            raise
        autostop = task.resources.autostop
        if autostop is not None and autostop.enabled and idle_minutes is None:
            idle_minutes, down = autostop.idle_minutes, down or autostop.down
        if idle_minutes is not None:
            Lifecycle(self.store, self.backend).set_autostop(name, idle_minutes, down)
        reused = existed is not None and existed.step == record.step
        job = self._submit(name, task, env, secret, start_agent) if task.run else None
        if job is None and start_agent and idle_minutes is not None:
            self.ensure_agent(name)  # nothing else would start the autostop countdown
        return LaunchResult(name, job, reused)

    def _plan(
        self,
        task: Task,
        clouds: list[str],
        offers: list[PoolOffer],
        blocked: frozenset[Scope],
        policy: Policy | None,
        context: RequestContext | None,
        overrides: Mapping[str, str] | None,
        *,
        catalog: Catalog | None = None,
    ) -> Plan:
        from skyplan import api
        from skyplan.catalog import load_catalog
        from skyplan.catalog.pools import launch_catalog

        catalog = catalog or self._catalog or load_catalog()
        candidates = launch_catalog(catalog, clouds, offers, blocked)
        return api.plan(
            task,
            catalog=candidates,
            policy=policy,
            context=context,
            overrides=dict(overrides) if overrides else None,
        )

    def plan_launch(
        self,
        work: Task | Dag,
        *,
        policy: Policy | None = None,
        context: RequestContext | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> Plan:
        """What `launch` would pick now (over usable backends and discovered pools), without
        launching anything: `skyplan launch --dryrun`."""
        task = _single(work)
        clouds, offers, unusable = self._candidates(task)
        try:
            return self._plan(task, clouds, offers, frozenset(), policy, context, overrides)
        except NoFeasiblePlacement as exc:
            raise self._explain_nothing(exc, clouds, offers, unusable) from None

    def _explain_nothing(
        self,
        exc: NoFeasiblePlacement,
        clouds: list[str],
        offers: list[PoolOffer],
        unusable: Mapping[str, str],
    ) -> NoFeasiblePlacement:
        usable = sorted({*clouds, *(o.cloud for o in offers)})
        hint = f"backends usable here: {', '.join(usable) or 'none'}"
        hint += "".join(f"; {name} is not usable: {why}" for name, why in unusable.items())
        if "local" not in usable:
            hint += "; `--infra local` runs on this machine"
        if not usable:  # the requirements removed nothing: there was nothing to start with
            return NoFeasiblePlacement(exc.task, f"nothing to place it on: {hint}")
        return NoFeasiblePlacement(exc.task, f"{exc.summary} ({hint})", exc.reasons)

    def exec(
        self,
        cluster: str,
        work: Task | Dag,
        *,
        base_dir: Path | None = None,
        envs: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        start_agent: bool = True,
    ) -> JobRecord:
        """Queue `work`'s `run` on an existing cluster (syncing its workdir first, no setup)."""
        from skyplan.execution.fit import cluster_fits

        task = _single(work)
        if not task.run:
            raise InputError("the task has no `run` command to execute")
        record = self.store.require_cluster(cluster)
        why = cluster_fits(record, task)
        if why:
            raise ClusterStateError(f"cluster {cluster!r} cannot run this task: {why}")
        env = _strings({**task.envs, **(envs or {})}, "envs")
        secret = _strings({**task.secrets, **(secrets or {})}, "secrets")
        backend = self.backend(record.cloud or "")
        launcher = Launcher(self.store, self.backend, say=self.say, sink=self.sink)
        spec = LaunchSpec(cluster=cluster, task=task, base_dir=base_dir or Path.cwd())
        launcher.sync(spec, backend, self.store.nodes(cluster))
        return self._submit(cluster, task, env, secret, start_agent)

    def exec_command(
        self,
        cluster: str,
        command: str,
        *,
        envs: Mapping[str, str] | None = None,
        start_agent: bool = True,
    ) -> JobRecord:
        """Queue a shell command as a one-node job on `cluster` (as `skyplan exec NAME 'CMD'`)."""
        return self.exec(cluster, Task(run=command), envs=envs, start_agent=start_agent)

    def _submit(
        self,
        cluster: str,
        task: Task,
        env: Mapping[str, str],
        secret: Mapping[str, str],
        start_agent: bool,
    ) -> JobRecord:
        record = self.store.require_cluster(cluster)
        queue = JobQueue(self.store, self.backend(record.cloud or ""), cluster)
        job = queue.submit(
            task.run or "",
            name=task.name,
            demand=demand_of(task),
            envs=env,
            secrets=secret,
            user=os.environ.get("USER"),
        )
        queue.schedule()
        if start_agent:
            self.ensure_agent(cluster)
        return self.store.job(cluster, job.job_id) or job

    def ensure_agent(self, cluster: str) -> None:
        """Start the cluster's agent in the background unless one is running."""
        lease = self.store.try_lock(
            agent_lock(cluster), owner="probe", ttl=1.0, abandoned=lease_abandoned
        )
        if lease is None:
            return
        lease.release()
        start_detached(
            [sys.executable, "-m", "skyplan.execution.agent", cluster],
            self.home / "agents" / f"{cluster}.log",
            {**os.environ, "SKYPLAN_HOME": str(self.home), "SKYPLAN_DB_URL": self.db_url},
            f"the agent of cluster {cluster!r}",
        )

    # -- observing and operating --------------------------------------------------------------

    def _lifecycle(self) -> Lifecycle:
        return Lifecycle(self.store, self.backend, self.say)

    def status(self, names: Sequence[str] = (), *, refresh: bool = True) -> list[ClusterView]:
        """Clusters as they are now; with `refresh`, asked of their backends, and their job
        queues polled (so the answer is true even when no agent has been running)."""
        life = self._lifecycle()
        wanted = list(names) or [r.name for r in self.store.clusters()]
        if refresh:
            for name in wanted:
                self._catch_up(name)
        return [life.view(n, refresh=refresh) for n in wanted]

    def _catch_up(self, cluster: str) -> None:
        """Poll the cluster's running jobs and start what fits; restart its agent if jobs are
        still active (it may have died, or this machine may have slept)."""
        record = self.store.get_cluster(cluster)
        if record is None or record.status != ClusterStatus.UP:
            return
        if not self.store.count_jobs(cluster, [JobStatus.PENDING, JobStatus.RUNNING]):
            return
        queue = self._queue(cluster)
        try:
            queue.refresh()
            queue.schedule()
        except BackendError:
            return  # the view says what the backend answered
        if self.store.count_jobs(cluster, [JobStatus.PENDING, JobStatus.RUNNING]):
            self.ensure_agent(cluster)

    def orphans(self) -> dict[str, list[Node]]:
        usable = [c.backend for c in self.check() if c.ok]
        return self._lifecycle().orphans(usable)

    def _queue(self, cluster: str) -> JobQueue:
        record = self.store.require_cluster(cluster)
        return JobQueue(self.store, self.backend(record.cloud or ""), cluster)

    def queue(
        self, cluster: str, *, all_jobs: bool = False, limit: int | None = None
    ) -> list[JobRecord]:
        statuses = None if all_jobs else [JobStatus.PENDING, JobStatus.RUNNING]
        self.store.require_cluster(cluster)
        self._catch_up(cluster)
        return self.store.jobs(cluster, statuses, limit=limit)

    def logs(
        self,
        cluster: str,
        job_id: int | None = None,
        *,
        follow: bool = True,
        sink: Say | None = None,
    ) -> JobRecord:
        queue = self._queue(cluster)  # an unknown cluster is ClusterNotFound, not "no jobs"
        if job_id is None:
            latest = self.store.jobs(cluster, limit=1)
            if not latest:
                raise ClusterStateError(f"cluster {cluster!r} has no jobs yet")
            job_id = latest[-1].job_id
        return queue.logs(job_id, follow=follow, sink=sink or self.sink)

    def cancel(self, cluster: str, job_ids: Sequence[int] | None = None) -> list[JobRecord]:
        """Cancel `job_ids` (every active job when None); returns the jobs cancelled. An id
        the cluster never had is `JobNotFound` and cancels nothing; a job that already
        ended is left as it is."""
        queue = self._queue(cluster)
        for job_id in job_ids or ():
            queue.known(job_id)
        return queue.cancel(job_ids)

    def stop(self, cluster: str) -> None:
        self._lifecycle().stop(cluster)

    def start(self, cluster: str) -> None:
        self._lifecycle().start(cluster)

    def down(self, cluster: str) -> None:
        self._lifecycle().down(cluster)

    def down_orphan(self, cluster: str) -> None:
        """Delete nodes tagged with a cluster the store does not know, on every usable backend."""
        for check in self.check():
            if check.ok:
                self.backend(check.backend).terminate(cluster)

    def autostop(self, cluster: str, idle_minutes: int | None, *, down: bool = False) -> None:
        self._lifecycle().set_autostop(cluster, idle_minutes, down)
        if idle_minutes is not None:
            self.ensure_agent(cluster)

    def events(self, cluster: str | None = None, limit: int | None = None) -> list[Event]:
        """Recorded events, oldest first; with `limit`, the latest `limit` of them."""
        found = self.store.events(cluster=cluster)
        return found[-limit:] if limit else found


_NAME = re.compile(r"[a-zA-Z]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?")


def _cluster_name(name: str) -> str:
    """A cluster name is used in paths, tags and labels on every backend: keep it to
    letters, digits, `-`, `_` and `.`, starting with a letter (SkyPilot's rule)."""
    if not _NAME.fullmatch(name):
        raise InputError(
            f"invalid cluster name {name!r}: use letters, digits, '-', '_' and '.', start with "
            "a letter, end with a letter or digit, at most 63 characters"
        )
    return name


def _single(work: Task | Dag) -> Task:
    if isinstance(work, Task):
        return work
    if len(work.tasks) != 1:
        raise InputError(
            f"launch takes one task; this file has {len(work.tasks)} "
            "(run a pipeline as a managed job: `skyplan jobs launch`)"
        )
    return work.tasks[0]


def failed(job: JobRecord | None) -> bool:
    return job is not None and job.status in (JobStatus.FAILED, JobStatus.LOST)
