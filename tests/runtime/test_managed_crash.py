"""Kill the managed-job controller for real, at every state, and bring it back.

A controller runs in a child process over the test's home and pauses right after the write it
is to die at (a test hook around one store or queue method), so each SIGKILL lands at a known
point. Then a fresh controller resumes; the job must end as it would have, its run must have
started exactly once per placement, no second cluster may have been created for it, and
nothing (record, node directory, process) may be left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyplan.execution.session import Session
from skyplan.model.managed import ManagedJobStatus, managed_cluster
from tests.runtime.conftest import alive, kill_leftovers, local_task, wait_until
from tests.runtime.test_managed import FAST, finish, preempt

S = ManagedJobStatus

CHILD = textwrap.dedent(
    """
    import functools, os, sys, time

    from skyplan.execution.session import Session
    from skyplan.runtime import queue as queue_module
    from skyplan.runtime.lifecycle import Lifecycle
    from skyplan.runtime.managed import ControllerSettings
    from skyplan.state import Store
    from skyplan.state.managed import ManagedJobTable

    pause_at = os.environ["PAUSE_AT"]

    def pause():
        print("paused at", pause_at, flush=True)
        time.sleep(120)

    def after(owner, name, here):
        method = getattr(owner, name)

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            if here(args, kwargs):
                pause()
            return result

        setattr(owner, name, wrapper)

    def before(owner, name, here):
        method = getattr(owner, name)

        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            if here(args, kwargs):
                pause()
            return method(self, *args, **kwargs)

        setattr(owner, name, wrapper)

    after(ManagedJobTable, "update", lambda a, kw: str(kw.get("status", "")) == pause_at)
    after(Store, "update_cluster", lambda a, kw: str(kw.get("step", "")) == pause_at)
    after(queue_module.JobQueue, "submit", lambda a, kw: pause_at == "submitted")
    after(queue_module.JobQueue, "cancel", lambda a, kw: pause_at == "run-cancelled")
    before(Lifecycle, "down", lambda a, kw: pause_at == "teardown")

    with Session() as session:
        controller = session.jobs.controller(ControllerSettings(poll=0.1, tick=0.5))
        controller.run()
        controller.close()
    """
)


@pytest.fixture
def child(home: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            kill(proc)


def run_until_paused(
    home: Path, pause_at: str, started: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    env = {**os.environ, "SKYPLAN_HOME": str(home), "PAUSE_AT": pause_at}
    env.pop("SKYPLAN_DB_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    started.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == f"paused at {pause_at}", f"the child ended early: {line!r}"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def leftovers(session: Session, job_id: int) -> list[str]:
    """Anything of the job still alive: cluster records, node directories, processes."""
    found = [f"cluster {c.name}" for c in session.store.clusters()]
    local = session.home / "local"
    if local.exists():
        found += [f"directory {p.name}" for p in local.iterdir()]
    for pgid in session.home.rglob("pgid"):
        text = pgid.read_text().strip()
        if text.isdigit() and alive(int(text)):
            found.append(f"process group {text}")
    return found


@pytest.mark.parametrize(
    "pause_at",
    [
        pytest.param("STARTING", id="decided-to-launch"),
        pytest.param("provisioned", id="mid-launch-nodes-up"),
        pytest.param("set-up", id="mid-launch-after-setup"),
        pytest.param("submitted", id="run-submitted-not-recorded"),
        pytest.param("RUNNING", id="running"),
        pytest.param("teardown", id="succeeded-before-teardown"),
    ],
)
def test_a_controller_killed_on_the_way_resumes_without_a_second_run_or_cluster(
    session: Session, tmp_path: Path, child: list[subprocess.Popen[str]], pause_at: str
) -> None:
    runs = tmp_path / "runs"
    job_id = session.jobs.launch(
        local_task(setup="sleep 0.2", run=f"echo run >> {runs}; sleep 0.5"),
        base_dir=tmp_path,
        start_controller=False,
    )

    kill(run_until_paused(session.home, pause_at, child))
    controller = session.jobs.controller(FAST)
    try:
        job = finish(controller, session.jobs, job_id)
    finally:
        controller.close()

    assert job.status == S.SUCCEEDED, job.message
    assert runs.read_text().splitlines() == ["run"]
    launches = session.store.events(cluster=managed_cluster(job_id))
    assert sum(e.reason == "launch requested" for e in launches) == 1
    assert leftovers(session, job_id) == []


def test_a_controller_killed_while_recovering_finishes_the_recovery(
    session: Session, tmp_path: Path, child: list[subprocess.Popen[str]]
) -> None:
    runs = tmp_path / "runs"
    go = tmp_path / "go"
    job_id = session.jobs.launch(
        local_task(run=f"echo run >> {runs}; until [ -f {go} ]; do sleep 0.05; done"),
        base_dir=tmp_path,
        start_controller=False,
    )
    kill(run_until_paused(session.home, "RUNNING", child))
    wait_until(runs.exists, what="the run to start")

    preempt(session, job_id)
    kill(run_until_paused(session.home, "RECOVERING", child))
    assert session.jobs.get(job_id).status == S.RECOVERING
    go.touch()
    controller = session.jobs.controller(FAST)
    try:
        job = finish(controller, session.jobs, job_id)
    finally:
        controller.close()

    assert (job.status, job.recoveries) == (S.SUCCEEDED, 1)
    assert runs.read_text().splitlines() == ["run", "run"]
    assert leftovers(session, job_id) == []


def test_a_controller_killed_while_cancelling_finishes_the_cancel(
    session: Session, tmp_path: Path, child: list[subprocess.Popen[str]]
) -> None:
    job_id = session.jobs.launch(
        local_task(run="sleep 60"), base_dir=tmp_path, start_controller=False
    )
    kill(run_until_paused(session.home, "RUNNING", child))
    session.jobs.cancel([job_id], start_controller=False)

    kill(run_until_paused(session.home, "run-cancelled", child))
    controller = session.jobs.controller(FAST)
    try:
        job = finish(controller, session.jobs, job_id)
    finally:
        controller.close()

    assert job.status == S.CANCELLED
    assert leftovers(session, job_id) == []
    kill_leftovers(session.home)
