"""The cluster agent (`runtime.agent.run_agent`) on a local cluster: it keeps the queue moving,
applies autostop, leaves when there is nothing to watch, and runs once per cluster."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyplan.errors import ClusterStateError
from skyplan.execution.session import Session
from skyplan.model.state import ClusterStatus, JobStatus
from skyplan.runtime import Lifecycle, run_agent
from skyplan.runtime.agent import agent_lock
from tests.runtime.conftest import ClusterFactory, demand, gate, status_of, submit, wait_until


class Agent:
    """`run_agent` in a thread, with what it logged."""

    def __init__(
        self, session: Session, cluster: str = "c", *, wait_for_lease: float = 3.0
    ) -> None:
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(session, cluster, wait_for_lease), name=f"agent {cluster}"
        )
        self.thread.start()

    def _run(self, session: Session, cluster: str, wait_for_lease: float) -> None:
        try:
            run_agent(
                session.store,
                session.backend,
                cluster,
                interval=0.1,
                log=self.lines.append,
                wait_for_lease=wait_for_lease,
            )
        except BaseException as exc:  # re-raised in the test's thread by `join`
            self.error = exc

    def join(self, timeout: float = 15.0) -> list[str]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the agent did not exit; it logged {self.lines}"
        if self.error is not None:
            raise self.error
        return self.lines

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


@pytest.fixture
def agents(session: Session) -> Iterator[list[Agent]]:
    """Agents a test starts; each is stopped (by tearing its clusters down) and joined after."""
    started: list[Agent] = []
    yield started
    if any(a.running for a in started):
        for record in session.store.clusters():
            session.down(record.name)
    for agent in started:
        agent.thread.join(15)


def start(agents: list[Agent], session: Session, wait_for_lease: float = 3.0) -> Agent:
    agent = Agent(session, wait_for_lease=wait_for_lease)
    agents.append(agent)
    return agent


def test_the_agent_starts_pending_jobs_as_earlier_ones_finish(
    local_cluster: ClusterFactory, session: Session, agents: list[Agent]
) -> None:
    queue = local_cluster(gpus=1)
    jobs = [submit(queue, "sleep 0.2", demand(1)) for _ in range(3)]
    start(agents, session).join()
    done = [session.store.job("c", j.job_id) for j in jobs]
    assert [j.status for j in done if j] == [JobStatus.SUCCEEDED] * 3
    for earlier, later in itertools.pairwise(done):
        assert earlier and later and earlier.ended_at and later.started_at
        assert later.started_at >= earlier.ended_at, "one GPU: the jobs ran one after another"


def test_the_agent_leaves_when_there_is_nothing_to_watch(
    local_cluster: ClusterFactory, session: Session, agents: list[Agent]
) -> None:
    local_cluster()
    began = time.monotonic()
    start(agents, session).join()
    assert time.monotonic() - began < 2
    assert session.store.require_cluster("c").status == ClusterStatus.UP
    assert session.store.try_lock(agent_lock("c"), owner="next agent") is not None


def test_the_agent_leaves_when_its_cluster_is_gone(session: Session, agents: list[Agent]) -> None:
    start(agents, session, wait_for_lease=0.1).join()


def test_only_one_agent_runs_per_cluster(
    local_cluster: ClusterFactory, session: Session, agents: list[Agent], tmp_path: Path
) -> None:
    queue = local_cluster()
    job = submit(queue, gate(tmp_path / "go"))
    first = start(agents, session)
    wait_until(
        lambda: status_of(session.store, "c", job.job_id) == JobStatus.RUNNING,
        what="the first agent to start the job",
    )
    second = start(agents, session, wait_for_lease=0.3)
    assert second.join() == ["another agent is running"]
    assert first.running

    (tmp_path / "go").touch()
    first.join()
    assert status_of(session.store, "c", job.job_id) == JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("down", "after"),
    [
        pytest.param(False, ClusterStatus.STOPPED, id="stop"),
        pytest.param(True, None, id="down"),
    ],
)
def test_the_agent_applies_autostop_once_the_last_job_has_ended(
    local_cluster: ClusterFactory,
    session: Session,
    agents: list[Agent],
    tmp_path: Path,
    down: bool,
    after: ClusterStatus | None,
) -> None:
    queue = local_cluster()
    job = submit(queue, gate(tmp_path / "go"))
    Lifecycle(session.store, session.backend).set_autostop("c", 0, down)
    agent = start(agents, session)
    wait_until(
        lambda: status_of(session.store, "c", job.job_id) == JobStatus.RUNNING,
        what="the agent to start the job",
    )
    time.sleep(0.3)
    assert session.store.require_cluster("c").status == ClusterStatus.UP, "busy, not idle"

    (tmp_path / "go").touch()
    lines = agent.join()
    assert f"autostop: {'down' if down else 'stopped'}" in lines
    record = session.store.get_cluster("c")
    assert (record.status if record else None) == after
    finished = session.events("c", limit=None)
    moves = [e.new for e in finished if e.job_id == job.job_id or e.new in ("stopped", "deleted")]
    assert moves[-2:] == ["succeeded", "stopped" if not down else "deleted"]


@pytest.mark.parametrize("which", ["agent", "controller"])
def test_a_background_process_that_cannot_start_is_an_error_not_a_log_line(
    session: Session, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    # Started through `sh -c "nohup setsid … &"`, a missing interpreter was only a line in a
    # log file and the call returned as if the agent or controller were running.
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    what = "the agent of cluster 'c'" if which == "agent" else "the managed-jobs controller"
    with pytest.raises(ClusterStateError, match=rf"cannot start {what} \(/nonexistent/python3\)"):
        if which == "agent":
            session.ensure_agent("c")
        else:
            session.jobs.ensure_controller()
