"""Crash safety with real kills: a launch runs in a child process (a `Session` on `infra: local`)
and is SIGKILLed at each step; the store must then tell the truth, a repeated `launch` must
resume and bring the cluster up, and `down` must leave nothing behind.

The child pauses right after the write it is to die at (a test hook around two store
methods), so each kill lands at a known point rather than wherever a race puts it. Setup sleeps
(`$SETUP_SLEEP`, inherited through the local runner) only in the child, so a kill during setup
has a window and the resume is quick. The killed launch's cluster lock is taken over at once
(its owner's pid is gone), so the resume does not wait for the lease to expire.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skyplan.backends.local import LocalBackend
from skyplan.execution.session import Session
from skyplan.model.state import AttemptOutcome, ClusterStatus, JobStatus, LaunchStep
from skyplan.runtime import JobQueue
from skyplan.runtime.launch import launch_lock
from skyplan.runtime.lease import abandoned
from skyplan.state import Store
from tests.runtime.conftest import alive, finished, kill_leftovers, local_task, wait_until

CLUSTER = "crash"

CHILD = textwrap.dedent(
    """
    import functools, json, os, sys, time
    from pathlib import Path

    from skyplan.execution.session import Session
    from skyplan.model import Task
    from skyplan.state import Store

    pause_at = os.environ.get("PAUSE_AT", "")

    def pausing(method, here):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            if here(kwargs):
                print("paused at", pause_at, flush=True)
                time.sleep(120)
            return result
        return wrapper

    Store.start_attempt = pausing(Store.start_attempt, lambda kw: pause_at == "attempt")
    Store.update_cluster = pausing(
        Store.update_cluster, lambda kw: "step" in kw and str(kw["step"]) == pause_at
    )
    task = Task.model_validate(json.loads(os.environ["TASK"]))
    with Session(home=Path(os.environ["SKYPLAN_HOME"])) as session:
        session.launch(task, cluster=sys.argv[1], base_dir=Path(sys.argv[2]), start_agent=False)
    print("launched", flush=True)
    """
)


class Child:
    """A launch in a child process, to be killed."""

    def __init__(self, home: Path, base: Path, task: dict[str, object], pause_at: str) -> None:
        self.log = base / "child.log"
        script = base / "child.py"
        script.write_text(CHILD)
        env = {
            **os.environ,
            "SKYPLAN_HOME": str(home),
            "TASK": json.dumps(task),
            "PAUSE_AT": pause_at,
            "SETUP_SLEEP": "1",
        }
        env.pop("SKYPLAN_DB_URL", None)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), CLUSTER, str(base)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, probe: Callable[[], object], what: str) -> None:
        def ready() -> object:
            if self.proc.poll() is not None:
                pytest.fail(f"the child exited before {what}:\n{self.output()}")
            return probe()

        wait_until(ready, timeout=30, every=0.02, what=what)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "wd"
    path.mkdir()
    (path / "data.txt").write_text("payload")
    return path


@pytest.fixture
def child_factory(home: Path, tmp_path: Path) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def make(task: dict[str, object], pause_at: str = "") -> Child:
        child = Child(home, tmp_path, task, pause_at)
        children.append(child)
        return child

    yield make
    for child in children:
        child.kill()


def has_event(store: Store, kind: str, new: str) -> bool:
    return any(e.kind == kind and e.new == new for e in store.events(CLUSTER))


def setup_log(home: Path) -> Path:
    return home / "local" / CLUSTER / "node-0" / "jobs" / "setup" / "log"


def task_spec(
    workdir: Path, setup: str = 'echo setting up; sleep "${SETUP_SLEEP:-0}"'
) -> dict[str, object]:
    return {
        "resources": {"infra": "local"},
        "workdir": str(workdir),
        "setup": setup,
        "run": "cat ~/sky_workdir/data.txt",
    }


# (the write the child pauses after, the event that says it is there — None: wait for setup's
# output instead —, the step the store must show after the kill)
KILL_POINTS = [
    pytest.param("attempt", ("attempt", "started"), LaunchStep.PLANNED, id="attempt recorded"),
    pytest.param(
        "provisioned", ("cluster", "provisioned"), LaunchStep.PROVISIONED, id="provisioned"
    ),
    pytest.param("synced", ("cluster", "synced"), LaunchStep.SYNCED, id="synced"),
    pytest.param("", None, LaunchStep.SYNCED, id="during setup"),
]


@pytest.mark.parametrize(("pause_at", "event", "step"), KILL_POINTS)
def test_a_killed_launch_is_reported_resumed_and_torn_down(
    session: Session,
    local: LocalBackend,
    home: Path,
    workdir: Path,
    child_factory: Callable[..., Child],
    pause_at: str,
    event: tuple[str, str] | None,
    step: LaunchStep,
) -> None:
    spec = task_spec(workdir)
    child = child_factory(spec, pause_at)
    if event is None:
        log = setup_log(home)
        child.wait_for(lambda: log.exists() and "setting up" in log.read_text(), "setup")
    else:
        child.wait_for(lambda: has_event(session.store, *event), f"event {event}")
    child.kill()

    # The store tells the truth: the cluster is not up, and how far the launch got.
    (view,) = session.status()
    assert (view.record.name, view.record.status, view.record.step) == (
        CLUSTER,
        ClusterStatus.INIT,
        step,
    )
    if view.record.cloud is not None:  # before that, status has nothing to reconcile
        assert view.note == f"launch interrupted after step {step}; `skyplan launch` resumes it"
    attempts = session.store.attempts(CLUSTER)
    expected = None if pause_at == "attempt" else AttemptOutcome.OK
    assert [a.outcome for a in attempts] == [expected]

    # A repeated launch resumes where the killed one stopped and runs the job.
    result = session.launch(local_task(**spec), cluster=CLUSTER, start_agent=False)
    assert result.job is not None
    record = session.store.require_cluster(CLUSTER)
    assert (record.status, record.step) == (ClusterStatus.UP, LaunchStep.READY)
    outcomes = [a.outcome for a in session.store.attempts(CLUSTER)]
    if pause_at == "attempt":
        assert outcomes == [AttemptOutcome.INTERRUPTED, AttemptOutcome.OK]
    else:
        assert outcomes == [AttemptOutcome.OK], "the nodes were found again, not provisioned"
    queue = JobQueue(session.store, local, CLUSTER)
    assert finished(queue, result.job.job_id).status == JobStatus.SUCCEEDED
    lines: list[str] = []
    queue.logs(result.job.job_id, follow=False, sink=lines.append)
    assert lines == ["payload"]
    reasons = [e.reason for e in session.events(CLUSTER)]
    assert reasons.count("setup finished") == 1
    assert reasons.count("workdir and files synced") == 1

    # Down leaves nothing: no node the backend owns, no file of the cluster.
    session.down(CLUSTER)
    assert session.store.get_cluster(CLUSTER) is None
    assert local.owned() == {}
    assert not (home / "local" / CLUSTER).exists()


def test_down_after_a_launch_killed_during_setup_stops_the_setup(
    session: Session,
    home: Path,
    tmp_path: Path,
    workdir: Path,
    child_factory: Callable[..., Child],
) -> None:
    pid_file = tmp_path / "setup.pid"
    spec = task_spec(workdir, setup=f"echo $$ > {pid_file}; echo setting up; sleep 30")
    child = child_factory(spec)
    log = setup_log(home)
    child.wait_for(lambda: log.exists() and "setting up" in log.read_text(), "setup")
    child.kill()
    setup = int(pid_file.read_text())
    try:
        assert alive(setup)
        session.down(CLUSTER)
        wait_until(lambda: not alive(setup), timeout=1, what="the setup to die")
    finally:
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(setup), signal.SIGKILL)
        kill_leftovers(home)


def test_status_while_a_launch_is_alive_does_not_call_it_interrupted(
    session: Session, workdir: Path, child_factory: Callable[..., Child]
) -> None:
    child = child_factory(task_spec(workdir), "provisioned")
    child.wait_for(lambda: has_event(session.store, "cluster", "provisioned"), "provisioned")
    (view,) = session.status()
    assert view.record.status == ClusterStatus.INIT
    assert "interrupted" not in view.note


def test_the_lock_of_a_killed_launch_is_free_at_once(
    session: Session, workdir: Path, child_factory: Callable[..., Child]
) -> None:
    child = child_factory(task_spec(workdir), "provisioned")
    child.wait_for(lambda: has_event(session.store, "cluster", "provisioned"), "provisioned")
    name = launch_lock(CLUSTER)
    assert session.store.try_lock(name, owner="probe", abandoned=abandoned) is None, "alive"
    child.kill()
    taken = session.store.try_lock(name, owner="probe", abandoned=abandoned)
    assert taken is not None, "a dead process's lease is taken over before it expires"
    taken.release()
