"""Managed jobs on the local backend, end to end: a real controller over a real SQLite store
runs real processes; preemptions are real too (a node's directory removed, its processes
killed behind skyplan's back).

Each test drives the controller in this process (`drive`), so it is quick and its failures
point here; `test_managed_crash.py` kills a controller process for real.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skyplan.api import load_task
from skyplan.errors import InputError, NoFeasiblePlacement, Scope
from skyplan.execution.managed import ManagedJobs
from skyplan.execution.session import Session
from skyplan.model import Dag, Task
from skyplan.model.managed import ManagedJobRecord, ManagedJobStatus, managed_cluster
from skyplan.runtime.managed import ControllerSettings, ManagedJobController
from skyplan.runtime.recovery import (
    Decision,
    Keep,
    Launch,
    RecoveryView,
    Target,
    Trigger,
)
from tests.runtime.conftest import gate, local_task, registered, wait_until

S = ManagedJobStatus
FAST = ControllerSettings(poll=0.1, tick=0.5, workers=4)


@pytest.fixture
def jobs(session: Session) -> ManagedJobs:
    return session.jobs


@pytest.fixture
def controller(jobs: ManagedJobs) -> Iterator[ManagedJobController]:
    made = jobs.controller(FAST)
    yield made
    made.close()


def drive(
    controller: ManagedJobController,
    until: Callable[[], object],
    *,
    timeout: float = 20.0,
    what: str = "",
) -> None:
    """Run controller passes until `until()` is truthy."""

    def probe() -> object:
        controller.pass_once()
        return until()

    wait_until(probe, timeout=timeout, every=0.05, what=what)


def status_is(jobs: ManagedJobs, job_id: int, *statuses: ManagedJobStatus) -> Callable[[], bool]:
    return lambda: jobs.get(job_id).status in statuses


def finish(controller: ManagedJobController, jobs: ManagedJobs, job_id: int) -> ManagedJobRecord:
    drive(controller, lambda: jobs.get(job_id).status.done, what=f"job {job_id} to end")
    # Let the step that wrote the end finish its teardown.
    wait_until(lambda: not controller._in_flight(), what="the controller to go idle")
    return jobs.get(job_id)


def moves(jobs: ManagedJobs, job_id: int) -> list[str]:
    return [e.new for e in jobs.store.managed.events(job_id) if e.new]


def output(jobs: ManagedJobs, job_id: int) -> list[str]:
    lines: list[str] = []
    jobs.logs(job_id, follow=False, sink=lines.append)
    return lines


def launch(jobs: ManagedJobs, tmp_path: Path, **fields: object) -> int:
    return jobs.launch(local_task(**fields), base_dir=tmp_path, start_controller=False)


def node_root(session: Session, job_id: int, rank: int = 0) -> Path:
    return session.home / "local" / managed_cluster(job_id) / f"node-{rank}"


def preempt(session: Session, job_id: int, rank: int = 0) -> None:
    """Reclaim a node the way a cloud does: its processes die and the machine is gone."""
    root = node_root(session, job_id, rank)
    for pgid in root.rglob("pgid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.killpg(int(pgid.read_text().strip()), signal.SIGKILL)
    shutil.rmtree(root)


# -- the happy path ----------------------------------------------------------------------------


def test_a_job_runs_on_its_own_cluster_and_the_cluster_goes_when_it_succeeds(
    session: Session, jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    job_id = launch(jobs, tmp_path, name="hello", run="echo hello from $SKYPILOT_TASK_ID")
    assert jobs.get(job_id).status == S.PENDING

    job = finish(controller, jobs, job_id)

    assert job.status == S.SUCCEEDED and job.exit_code == 0
    assert moves(jobs, job_id) == ["PENDING", "STARTING", "RUNNING", "SUCCEEDED"]
    assert session.store.clusters() == []
    assert not (session.home / "local" / managed_cluster(job_id)).exists()
    (line,) = output(jobs, job_id)
    assert line.startswith("hello from skyplan-managed-") and line.endswith(f"_hello_{job_id}-0")


def test_launch_returns_at_once_and_records_nothing_for_a_task_that_cannot_run(
    jobs: ManagedJobs, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="no `run` command"):
        jobs.launch(local_task(), start_controller=False)
    with pytest.raises(NoFeasiblePlacement):
        jobs.launch(
            Task.model_validate({"run": "x", "resources": {"infra": "local", "cpus": "4096+"}}),
            start_controller=False,
        )
    for strategy, message in (
        ("json:failovr", "no recovery strategy named 'json:failovr'"),
        ("no_such_pkg.mod:hop", "cannot import 'no_such_pkg.mod'"),
    ):
        task = {"run": "x", "resources": {"infra": "local", "job_recovery": strategy}}
        with pytest.raises(InputError, match=message):
            jobs.launch(Task.model_validate(task), start_controller=False)
    assert jobs.store.managed.jobs() == []


# -- failures and restarts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recovery", "expected", "restarts", "runs"),
    [
        pytest.param({}, S.FAILED, 0, 1, id="no-restarts-fails-at-once"),
        pytest.param({"max_restarts_on_errors": 2}, S.FAILED, 2, 3, id="restarts-then-fails"),
        pytest.param(
            {"recover_on_exit_codes": [3], "max_restarts_on_errors": 0},
            S.SUCCEEDED,
            0,
            2,
            id="recover-on-exit-code-does-not-count",
        ),
    ],
)
def test_a_failing_job_restarts_as_its_job_recovery_says(
    jobs: ManagedJobs,
    controller: ManagedJobController,
    tmp_path: Path,
    recovery: dict[str, object],
    expected: ManagedJobStatus,
    restarts: int,
    runs: int,
) -> None:
    tries = tmp_path / "tries"
    # Exits 3 on its first run and then succeeds (with recover_on_exit_codes); otherwise 3 always.
    succeed_later = "recover_on_exit_codes" in recovery
    run = f"echo x >> {tries}; " + (
        f'[ "$(wc -l < {tries})" -ge 2 ] && exit 0; exit 3' if succeed_later else "exit 3"
    )
    job_id = launch(jobs, tmp_path, run=run, resources={"infra": "local", "job_recovery": recovery})

    job = finish(controller, jobs, job_id)

    assert (job.status, job.restarts) == (expected, restarts)
    assert len(tries.read_text().splitlines()) == runs
    if expected == S.FAILED:
        assert job.exit_code == 3 and "exited with code 3" in job.message
    assert jobs.store.clusters() == []


def test_a_setup_that_fails_ends_the_job_as_failed_setup(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    job_id = launch(jobs, tmp_path, setup="echo broken; exit 7", run="echo never")

    job = finish(controller, jobs, job_id)

    assert job.status == S.FAILED_SETUP and "setup failed" in job.message
    assert jobs.store.clusters() == []


def test_keep_on_failure_leaves_the_cluster_up_with_autostop_down(
    session: Session, controller: ManagedJobController, tmp_path: Path
) -> None:
    job_id = session.jobs.launch(
        local_task(run="exit 1"), base_dir=tmp_path, keep_on_failure=True, start_controller=False
    )

    job = finish(controller, session.jobs, job_id)

    assert job.status == S.FAILED and "kept for debugging" in job.message
    record = session.store.require_cluster(managed_cluster(job_id))
    assert (record.status.value, record.autostop_minutes, record.autostop_down) == (
        "up",
        FAST.keep_minutes,
        True,
    )


# -- preemption ---------------------------------------------------------------------------------


CHECKPOINTED = (
    'ckpt={dir}/"$SKYPILOT_TASK_ID"; step=$(cat "$ckpt" 2>/dev/null || echo 0); '
    'echo "start at $step"; while [ "$step" -lt 6 ]; do step=$((step+1)); '
    'echo "$step" > "$ckpt"; sleep 0.2; done; echo done'
)


def test_a_preempted_job_is_relaunched_and_resumes_from_its_checkpoint(
    session: Session, jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    job_id = launch(jobs, tmp_path, run=CHECKPOINTED.format(dir=tmp_path))
    drive(controller, lambda: list(tmp_path.glob("skyplan-managed-*")), what="a checkpoint")
    task_ids = [p.name for p in tmp_path.glob("skyplan-managed-*")]
    time.sleep(0.4)

    preempt(session, job_id)
    job = finish(controller, jobs, job_id)

    assert job.status == S.SUCCEEDED
    assert (job.recoveries, job.restarts) == (1, 0)
    assert moves(jobs, job_id) == [
        "PENDING", "STARTING", "RUNNING", "RECOVERING", "RUNNING", "SUCCEEDED"
    ]  # fmt: skip
    reasons = [e.reason for e in jobs.store.managed.events(job_id)]
    assert any("preempted: node 0 no longer running" in r for r in reasons)
    # SKYPILOT_TASK_ID is stable, so the second run resumed where the first one stopped.
    assert [p.name for p in tmp_path.glob("skyplan-managed-*")] == task_ids
    second_start = [line for line in output(jobs, job_id) if line.startswith("start at")]
    assert second_start and second_start[-1] != "start at 0"
    segments = jobs.store.managed.segments(job_id)
    assert [s.outcome for s in segments] == ["preempted", "succeeded"]


class MoveOnce:
    """TEST STRATEGY: at the first tick, move the job once, beside its running cluster."""

    name = "tests.runtime.test_managed:move-once"

    def decide(self, view: RecoveryView) -> Decision:
        if view.running is None:
            return Launch(Target(reason="launch"))
        if view.trigger == Trigger.TICK and not view.history:
            return Launch(Target(keep_running=True, reason="moving once"))
        return Keep()


def test_every_run_keeps_its_own_log_when_the_job_moves_to_a_new_cluster(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    with registered(MoveOnce()):
        moves_once(jobs, controller, tmp_path)


def moves_once(jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path) -> None:
    # Both runs are job 1 of their cluster (managed-N, then managed-N-b): their logs must
    # not be one file, and following must show the second run too.
    moved = tmp_path / "moved"
    run = (
        f"if [ -f {moved} ]; then echo second run; "
        f"else touch {moved}; echo first run; {gate(tmp_path / 'never')}; fi"
    )
    task = local_task(run=run, resources={"infra": "local", "job_recovery": MoveOnce.name})
    job_id = jobs.launch(task, base_dir=tmp_path, start_controller=False)
    job = finish(controller, jobs, job_id)

    assert (job.status, job.slot, job.run_number) == (S.SUCCEEDED, 1, 2)
    assert [s.outcome for s in jobs.store.managed.segments(job_id)] == ["switched", "succeeded"]
    kept = sorted(p.name for p in (jobs.logs_dir / str(job_id)).iterdir())
    assert kept == ["stage-0-run-1.log", "stage-0-run-2.log"]
    assert (jobs.logs_dir / str(job_id) / "stage-0-run-1.log").read_text() == "first run\n"
    assert output(jobs, job_id) == ["second run"]


def test_a_run_killed_behind_skyplans_back_is_a_preemption_not_a_failure(
    session: Session, jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    started, go = tmp_path / "started", tmp_path / "go"
    # The run waits at a gate (it ended on its own under load when it slept 0.5 s instead).
    job_id = launch(jobs, tmp_path, run=f"echo x >> {started}; {gate(go)}")
    drive(
        controller,
        lambda: started.exists() and any(node_root(session, job_id).rglob("pgid")),
        what="the run to start",
    )

    for pgid in node_root(session, job_id).rglob("pgid"):
        os.killpg(int(pgid.read_text().strip()), signal.SIGKILL)
    go.write_text("")
    job = finish(controller, jobs, job_id)

    assert (job.status, job.recoveries, job.restarts) == (S.SUCCEEDED, 1, 0)
    assert len(started.read_text().splitlines()) == 2


def test_a_multi_node_job_that_loses_one_node_replaces_only_that_node(
    session: Session, jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    ranks = tmp_path / "ranks"
    job_id = launch(
        jobs,
        tmp_path,
        num_nodes=3,
        run=f"echo $SKYPILOT_NODE_RANK >> {ranks}; {gate(go)}",
    )
    drive(
        controller,
        lambda: ranks.exists() and len(ranks.read_text().split()) == 3,
        what="3 ranks running",
    )
    healthy = node_root(session, job_id, 0) / "healthy-marker"
    healthy.write_text("this node was never replaced")

    preempt(session, job_id, rank=2)
    drive(
        controller,
        lambda: len(ranks.read_text().split()) == 6,
        what="the run to restart on all 3 nodes",
    )
    # The healthy nodes were kept (node 0's files are still there), node 2 came back, and the
    # run started again on all three; the cluster was never launched a second time.
    assert healthy.exists()
    assert node_root(session, job_id, 2).is_dir()
    assert sorted(ranks.read_text().split()) == ["0", "0", "1", "1", "2", "2"]
    launches = session.store.events(cluster=managed_cluster(job_id))
    assert sum(1 for e in launches if e.reason == "launch requested") == 1
    go.touch()
    job = finish(controller, jobs, job_id)

    assert (job.status, job.recoveries) == (S.SUCCEEDED, 1)
    reasons = [e.reason for e in jobs.store.managed.events(job_id)]
    assert any("replacing node(s) lost from managed-" in r for r in reasons)


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_stops_a_running_job_and_tears_its_cluster_down(
    session: Session, jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    job_id = launch(jobs, tmp_path, run=f"touch {started}; sleep 60")
    drive(controller, started.exists, what="the run to start")

    (asked,) = jobs.cancel([job_id], start_controller=False)
    assert asked.status == S.CANCELLING
    job = finish(controller, jobs, job_id)

    assert job.status == S.CANCELLED
    assert session.store.clusters() == []
    assert [s.outcome for s in jobs.store.managed.segments(job_id)] == ["cancelled"]


def test_cancel_of_a_pending_job_is_immediate_and_by_name_or_all(
    jobs: ManagedJobs, tmp_path: Path
) -> None:
    a = jobs.launch(local_task(name="a", run="true"), start_controller=False)
    b = jobs.launch(local_task(name="b", run="true"), start_controller=False)
    c = jobs.launch(local_task(name="b", run="true"), start_controller=False)

    assert [j.job_id for j in jobs.cancel([a])] == [a]
    assert [j.job_id for j in jobs.cancel(name="b")] == [b, c]
    assert jobs.cancel(all_jobs=True) == []
    assert {jobs.get(i).status for i in (a, b, c)} == {S.CANCELLED}


# -- pipelines ----------------------------------------------------------------------------------


def test_a_pipeline_runs_its_stages_in_order_each_on_its_own_cluster(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    trail = tmp_path / "trail"
    dag = Dag(
        tasks=(
            local_task(name="prep", run=f"echo prep $SKYPILOT_TASK_ID >> {trail}"),
            local_task(name="train", run=f"echo train $SKYPILOT_TASK_ID >> {trail}"),
        )
    )
    job_id = jobs.launch(dag, base_dir=tmp_path, start_controller=False)

    job = finish(controller, jobs, job_id)

    assert (job.status, job.stage) == (S.SUCCEEDED, 1)
    first, second = trail.read_text().splitlines()
    assert first.startswith("prep ") and first.endswith("-0")
    assert second.startswith("train ") and second.endswith("-1")
    assert jobs.store.clusters() == []


PIPELINE_EGRESS = Path(__file__).resolve().parents[2] / "examples" / "pipeline_egress.yaml"


def test_a_pipelines_stages_are_placed_together_with_the_egress_between_them(
    jobs: ManagedJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Planned alone, `train` goes to another cloud than `preprocess`; with the 400 GB that
    # preprocess hands to train, one region for both is cheaper. (AWS and Lambda stand in for
    # usable backends: the plan is the shipped catalog's, nothing is launched.)
    monkeypatch.setattr(jobs.session, "_candidates", lambda _task: (["aws", "lambda"], [], {}))
    dag = load_task(PIPELINE_EGRESS)
    job_id = jobs.launch(dag, base_dir=PIPELINE_EGRESS.parent, start_controller=False)
    job = jobs.get(job_id)

    first, second = job.planning["pipeline"]["stages"]
    assert (first["cloud"], first["region"]) == (second["cloud"], second["region"])
    assert job.planning["pipeline"]["egress_cost"] == 0
    train = dag.tasks[1]
    alone = jobs.plan(job.model_copy(update={"planning": {}}), train, Target(), frozenset())
    assert alone.cloud != second["cloud"]
    together = jobs.plan(job.model_copy(update={"stage": 1}), train, Target(), frozenset())
    assert (together.cloud, together.region) == (second["cloud"], second["region"])
    notes = [e.reason for e in jobs.store.managed.events(job_id)]
    assert any(n.startswith("stages placed together: stage 0 ") for n in notes)
    # A recovery that must leave the joint region still finds a place.
    away = Target(exclude=frozenset({Scope(second["cloud"], second["region"])}))
    moved = jobs.plan(job.model_copy(update={"stage": 1}), train, away, away.exclude)
    assert (moved.cloud, moved.region) != (second["cloud"], second["region"])


# -- job groups ---------------------------------------------------------------------------------


def group_of(tmp_path: Path, *runs: str) -> Dag:
    """A job group `grp` of members m0, m1, … running `runs` on this machine."""
    tasks = tuple(local_task(name=f"m{i}", run=run) for i, run in enumerate(runs))
    return Dag(kind="job_group", name="grp", tasks=tasks)


def test_a_job_groups_members_run_at_the_same_time_each_on_its_own_cluster(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    runs = [f"touch {tmp_path}/m{i}-up; {gate(go)}; echo m{i} done" for i in range(2)]
    first = jobs.launch(group_of(tmp_path, *runs), base_dir=tmp_path, start_controller=False)
    members = jobs.members(first)
    assert [(m.name, m.group_id) for m in members] == [("grp/m0", first), ("grp/m1", first)]

    drive(
        controller,
        lambda: (
            all((tmp_path / f"m{i}-up").exists() for i in range(2))
            and {jobs.get(m.job_id).status for m in members} == {S.RUNNING}
        ),
        what="both members to run, at the same time",
    )
    clusters = sorted(c.name for c in jobs.store.clusters())
    assert clusters == sorted(managed_cluster(m.job_id) for m in members)
    go.touch()
    finals = [finish(controller, jobs, m.job_id) for m in members]
    assert [f.status for f in finals] == [S.SUCCEEDED, S.SUCCEEDED]
    assert output(jobs, members[1].job_id) == ["m1 done"]
    assert jobs.store.clusters() == []


def test_when_a_member_fails_for_good_the_rest_of_its_group_is_cancelled(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    runs = ["sleep 0.3; exit 3", gate(tmp_path / "never")]
    first = jobs.launch(group_of(tmp_path, *runs), base_dir=tmp_path, start_controller=False)
    failed, other = jobs.members(first)

    assert finish(controller, jobs, failed.job_id).status == S.FAILED
    ended = finish(controller, jobs, other.job_id)
    assert ended.status == S.CANCELLED
    assert ended.message == f"job {failed.job_id} of its group ended FAILED: the group stops"
    assert jobs.store.clusters() == []


def test_cancelling_one_member_cancels_its_whole_group(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    runs = [gate(tmp_path / "never")] * 2
    first = jobs.launch(group_of(tmp_path, *runs), base_dir=tmp_path, start_controller=False)
    members = jobs.members(first)
    drive(
        controller,
        lambda: all(jobs.get(m.job_id).status == S.RUNNING for m in members),
        what="both members to run",
    )

    asked = jobs.cancel([members[1].job_id], start_controller=False)
    assert sorted(a.job_id for a in asked) == [m.job_id for m in members]
    assert [finish(controller, jobs, m.job_id).status for m in members] == [S.CANCELLED] * 2
    assert jobs.store.clusters() == []


def test_a_job_group_is_recorded_whole_or_not_at_all(jobs: ManagedJobs, tmp_path: Path) -> None:
    group = group_of(tmp_path, "true", "")
    with pytest.raises(InputError, match="member 1 \\(m1\\) has no `run` command"):
        jobs.launch(group, base_dir=tmp_path, start_controller=False)
    assert jobs.store.managed.jobs() == []


# -- many jobs ----------------------------------------------------------------------------------


def test_one_controller_serves_many_jobs_concurrently(
    jobs: ManagedJobs, controller: ManagedJobController, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    ids = [launch(jobs, tmp_path, run=gate(go)) for _ in range(6)]

    drive(
        controller,
        lambda: all(jobs.get(i).status == S.RUNNING for i in ids),
        what="every job running",
    )
    go.touch()
    for job_id in ids:
        assert finish(controller, jobs, job_id).status == S.SUCCEEDED
    assert jobs.store.clusters() == []
