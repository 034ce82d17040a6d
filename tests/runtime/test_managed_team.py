"""Two controllers over one real PostgreSQL store, as replicas of a team deployment would run:
each job is stepped by one controller at a time (per-job leases), and when one controller is
SIGKILLed mid-way the other finishes its jobs — each run once, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyplan.execution.session import Session
from skyplan.model.managed import ManagedJobStatus
from tests.runtime.conftest import kill_leftovers, local_task, wait_until
from tests.services.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

CONTROLLER = textwrap.dedent(
    """
    from skyplan.execution.session import Session
    from skyplan.runtime.managed import ControllerSettings

    with Session(say=lambda m: print(m, flush=True)) as session:
        controller = session.jobs.controller(ControllerSettings(poll=0.1, tick=1, workers=2))
        controller.run()
        controller.close()
    """
)


@pytest.fixture
def pg_session(postgres_url: str, home: Path) -> Iterator[Session]:  # noqa: F811
    opened = Session(home=home, db_url=postgres_url)
    try:
        yield opened
    finally:
        kill_leftovers(home)
        opened.close()


def start(session: Session, name: str, logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SKYPLAN_HOME": str(session.home), "SKYPLAN_DB_URL": session.db_url}
    with (logs / f"{name}.log").open("wb") as out:  # the child keeps its own copy of the fd
        return subprocess.Popen([sys.executable, "-c", CONTROLLER], env=env, stdout=out, stderr=out)


def test_two_controllers_share_the_jobs_and_one_survives_the_others_death(
    pg_session: Session, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    runs = tmp_path / "runs"
    runs.mkdir()
    ids = [
        pg_session.jobs.launch(
            local_task(run=f"echo $SKYPLAN_CLUSTER >> {runs}/$SKYPLAN_CLUSTER; "
                       f"until [ -f {go} ]; do sleep 0.05; done"),
            base_dir=tmp_path,
            start_controller=False,
        )
        for _ in range(8)
    ]  # fmt: skip
    a = start(pg_session, "a", tmp_path)
    b = start(pg_session, "b", tmp_path)
    try:
        wait_until(
            lambda: all(pg_session.jobs.get(i).status == ManagedJobStatus.RUNNING for i in ids),
            timeout=60,
            what="every job running",
        )
        a.send_signal(signal.SIGKILL)
        a.wait()
        go.touch()
        wait_until(
            lambda: all(pg_session.jobs.get(i).status.done for i in ids),
            timeout=60,
            what="every job to end",
        )
        b.wait(timeout=30)  # it exits once no job is active
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    time.sleep(0.2)

    assert {pg_session.jobs.get(i).status for i in ids} == {ManagedJobStatus.SUCCEEDED}
    # Each job ran once: one line in its run file, whichever controller launched it.
    assert sorted(p.read_text().count("\n") for p in runs.iterdir()) == [1] * len(ids)
    launched = {name: (tmp_path / f"{name}.log").read_text().count("provisioning") for name in "ab"}
    assert sum(launched.values()) == len(ids), launched
    assert pg_session.store.clusters() == []
    assert not (pg_session.home / "local").exists() or not any(
        (pg_session.home / "local").iterdir()
    )
