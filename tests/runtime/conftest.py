"""Fixtures for runtime tests: a skyplan home in `tmp_path` driven by a real `Session` (SQLite
store, the local backend), factories for local clusters and jobs, and a poller.

Every test leaves nothing running: the `session` fixture downs every cluster it still knows and
kills any job process group left under the home.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from skyplan.backends.local import LocalBackend
from skyplan.errors import SkyplanError
from skyplan.execution.session import Session
from skyplan.model import Task
from skyplan.model.state import JobDemand, JobRecord, JobStatus
from skyplan.runtime import JobQueue
from skyplan.runtime.recovery import STRATEGIES, RecoveryStrategy, register
from skyplan.state import Store

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], *, timeout: float = 10.0, every: float = 0.05, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what or probe}")
        time.sleep(every)


def gate(path: Path) -> str:
    """A command that blocks until `path` exists (the test opens the gate with `touch`)."""
    return f"until [ -f {path} ]; do sleep 0.05; done"


def local_task(**fields: Any) -> Task:
    """A task pinned to this machine (`infra: local`)."""
    return Task.model_validate({"resources": {"infra": "local"}, **fields})


def demand(
    gpus: float = 0.0, *, cpus: float = 0.5, nodes: int = 1, accelerator: str | None = None
) -> JobDemand:
    return JobDemand(
        num_nodes=nodes,
        cpus=cpus,
        accelerator=accelerator or ("A100" if gpus else None),
        accelerator_count=gpus,
    )


@contextlib.contextmanager
def registered(strategy: RecoveryStrategy) -> Iterator[RecoveryStrategy]:
    """A test's recovery strategy, registered only while a test runs: left registered, it
    would join every later `sim jobs --strategy all`."""
    register(strategy)
    try:
        yield strategy
    finally:
        STRATEGIES.unregister(strategy.name)


def alive(pid: int) -> bool:
    """Is `pid` a live (not zombie) process?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_leftovers(root: Path) -> None:
    """Kill every job process group recorded under `root` (a safety net for failed tests)."""
    for pgid_file in root.rglob("pgid"):
        with contextlib.suppress(ValueError, OSError):
            os.killpg(int(pgid_file.read_text().strip()), signal.SIGKILL)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach ~/.skyplan or a store named by the environment."""
    monkeypatch.setenv("SKYPLAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKYPLAN_DB_URL", raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    return path


def down_everything(session: Session) -> None:
    for record in session.store.clusters():
        with contextlib.suppress(SkyplanError):
            session.down(record.name)
    kill_leftovers(session.home)


@pytest.fixture
def session(home: Path) -> Iterator[Session]:
    """A session over `home`; every cluster still known is torn down afterwards."""
    opened = Session(home=home)
    try:
        yield opened
    finally:
        down_everything(opened)
        opened.close()


@pytest.fixture
def store(session: Session) -> Store:
    return session.store


@pytest.fixture
def local(session: Session) -> LocalBackend:
    backend = session.backend("local")
    assert isinstance(backend, LocalBackend)
    return backend


class ClusterFactory(Protocol):
    def __call__(
        self,
        name: str = "c",
        *,
        nodes: int = 1,
        vcpus: float = 4.0,
        gpus: float | None = None,
        **task: Any,
    ) -> JobQueue: ...


@pytest.fixture
def local_cluster(session: Session, tmp_path: Path) -> ClusterFactory:
    """Launch a local cluster (no `run`) and give it a fake node shape, so the queue accounts
    `vcpus` CPUs and `gpus` A100s per node whatever this machine has; returns its queue."""

    def make(
        name: str = "c",
        *,
        nodes: int = 1,
        vcpus: float = 4.0,
        gpus: float | None = None,
        **task: Any,
    ) -> JobQueue:
        session.launch(
            local_task(num_nodes=nodes, **task),
            cluster=name,
            base_dir=tmp_path,
            start_agent=False,
        )
        session.store.update_cluster(
            name,
            "a fake node shape for the test",
            vcpus=vcpus,
            accelerators={"A100": gpus} if gpus else None,
        )
        return JobQueue(session.store, session.backend("local"), name)

    return make


def submit(
    queue: JobQueue,
    command: str,
    need: JobDemand | None = None,
    *,
    envs: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    name: str | None = None,
) -> JobRecord:
    return queue.submit(
        command,
        name=name,
        demand=need or demand(),
        envs=envs or {},
        secrets=secrets or {},
    )


def finished(queue: JobQueue, job_id: int, *, timeout: float = 10.0) -> JobRecord:
    """Refresh the queue until job `job_id` has ended; returns its record."""

    def probe() -> JobRecord | None:
        queue.refresh()
        job = queue.store.job(queue.cluster, job_id)
        assert job is not None
        return job if job.status.done else None

    job = wait_until(probe, timeout=timeout, what=f"job {job_id} to end")
    assert job is not None
    return job


def status_of(store: Store, cluster: str, job_id: int) -> JobStatus:
    job = store.job(cluster, job_id)
    assert job is not None, f"cluster {cluster!r} has no job {job_id}"
    return job.status
