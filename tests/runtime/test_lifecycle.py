"""The cluster lifecycle after launch (`runtime.lifecycle.Lifecycle`) on the local backend:
stop and start, status reconciled with what the backend sees, down that survives a failing
backend, autostop, and orphaned nodes."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import skyplan
from skyplan.backends.local import LocalBackend
from skyplan.errors import ClusterStateError, InvalidRequestError, TransientError
from skyplan.execution.session import Session
from skyplan.model import Offer, Task
from skyplan.model.node import Capabilities, Capability, NodeStatus, ProvisionRequest
from skyplan.model.state import ClusterStatus, JobStatus, LaunchStep
from skyplan.runtime import Launcher, LaunchSpec, Lifecycle
from skyplan.runtime import lifecycle as lifecycle_module
from skyplan.runtime.lease import held
from skyplan.state import Store
from tests.runtime.conftest import (
    ClusterFactory,
    alive,
    demand,
    finished,
    gate,
    local_task,
    status_of,
    submit,
    wait_until,
)
from tests.runtime.faulty import Fault, FaultyBackend, cheapest_planner, offers


def lifecycle(session: Session) -> Lifecycle:
    return Lifecycle(session.store, session.backend)


def node_dirs(home: Path, cluster: str) -> list[str]:
    base = home / "local" / cluster
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


# -- stop and start ----------------------------------------------------------------------------


def test_stop_kills_the_jobs_and_start_brings_the_cluster_back(
    local_cluster: ClusterFactory, session: Session, tmp_path: Path
) -> None:
    queue = local_cluster(nodes=2)
    pid_file = tmp_path / "child.pid"
    job = submit(queue, f"sleep 600 & echo $! > {pid_file}; wait")
    queue.schedule()
    child = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip()))

    session.stop("c")
    (view,) = session.status(["c"])
    assert view.record.status == ClusterStatus.STOPPED
    assert [n.status for n in view.nodes] == [NodeStatus.STOPPED] * 2
    assert status_of(session.store, "c", job.job_id) == JobStatus.CANCELLED
    wait_until(lambda: not alive(child), timeout=5, what="the job's child to die")
    assert view.active_jobs == 0

    session.stop("c")  # stopping a stopped cluster is a no-op

    session.start("c")
    (view,) = session.status(["c"])
    assert view.record.status == ClusterStatus.UP
    assert [n.status for n in view.nodes] == [NodeStatus.RUNNING] * 2
    again = submit(queue, "echo back")
    queue.schedule()
    assert finished(queue, again.job_id).status == JobStatus.SUCCEEDED


def test_start_refuses_an_interrupted_launch(session: Session) -> None:
    session.launch(local_task(), cluster="c", start_agent=False)
    session.store.update_cluster("c", "as if a launch died", status=ClusterStatus.INIT)
    with pytest.raises(ClusterStateError, match="only a stopped cluster starts"):
        session.start("c")
    with pytest.raises(ClusterStateError, match="cluster 'c' is init; cannot stop"):
        session.stop("c")


# -- status reconciliation ---------------------------------------------------------------------


def test_status_notices_nodes_deleted_behind_skyplans_back(session: Session, home: Path) -> None:
    session.launch(local_task(num_nodes=2), cluster="c", start_agent=False)
    shutil.rmtree(home / "local" / "c")
    (view,) = session.status(["c"])
    assert view.record.status == ClusterStatus.INIT, "no longer claims to be up"
    assert "its nodes are gone" in view.note
    assert [n.status for n in view.nodes] == [NodeStatus.TERMINATED] * 2
    moves = [(e.old, e.new, e.reason) for e in session.events("c")][-1]
    assert moves == ("up", "init", "the backend no longer has its nodes")


def test_status_notes_a_single_missing_node(session: Session, home: Path) -> None:
    session.launch(local_task(num_nodes=2), cluster="c", start_agent=False)
    shutil.rmtree(home / "local" / "c" / "node-1")
    (view,) = session.status(["c"])
    assert view.record.status == ClusterStatus.UP
    assert view.note == "node 1 terminated"
    assert [n.status for n in view.nodes] == [NodeStatus.RUNNING, NodeStatus.TERMINATED]


def test_status_notices_nodes_stopped_behind_skyplans_back(
    session: Session, local: LocalBackend
) -> None:
    session.launch(local_task(), cluster="c", start_agent=False)
    local.stop("c")
    (view,) = session.status(["c"])
    assert view.record.status == ClusterStatus.STOPPED


def test_status_without_refresh_reports_the_record_as_stored(session: Session, home: Path) -> None:
    session.launch(local_task(), cluster="c", start_agent=False)
    shutil.rmtree(home / "local" / "c")
    (view,) = session.status(["c"], refresh=False)
    assert (view.record.status, view.note) == (ClusterStatus.UP, "")


def test_a_launch_after_the_nodes_vanished_provisions_syncs_and_sets_up_again(
    session: Session, home: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "data.txt").write_text("payload")
    task = local_task(workdir=str(workdir), setup="echo ran >> ~/setup-runs")
    session.launch(task, cluster="c", start_agent=False)
    shutil.rmtree(home / "local" / "c")
    session.status(["c"])

    session.launch(task, cluster="c", start_agent=False)
    root = Path(session.store.nodes("c")[0].extra["root"])
    assert (root / "sky_workdir" / "data.txt").read_text() == "payload"
    assert (root / "setup-runs").read_text() == "ran\n"
    assert session.store.require_cluster("c").status == ClusterStatus.UP


# -- down --------------------------------------------------------------------------------------


def test_down_removes_every_node_file_and_record(
    local_cluster: ClusterFactory, session: Session, home: Path, local: LocalBackend
) -> None:
    queue = local_cluster(nodes=2)
    submit(queue, "sleep 600")
    queue.schedule()
    session.down("c")
    assert session.store.get_cluster("c") is None
    assert local.owned() == {}
    assert node_dirs(home, "c") == []
    assert session.store.jobs("c") == []
    assert session.events("c")[-1].new == "deleted"


def test_down_when_the_backend_fails_keeps_the_record_and_a_second_down_finishes(
    session: Session, home: Path, local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.launch(local_task(), cluster="c", start_agent=False)

    def refuse(cluster: str) -> None:
        raise TransientError("the API timed out")

    with monkeypatch.context() as patch:
        patch.setattr(local, "terminate", refuse)
        with pytest.raises(ClusterStateError, match="not fully down: local: the API timed out"):
            session.down("c")
    record = session.store.require_cluster("c")
    assert record.status == ClusterStatus.DOWN
    assert session.events("c")[-1].reason == "local: the API timed out"
    assert node_dirs(home, "c") == ["node-0"]

    session.down("c")
    assert session.store.get_cluster("c") is None
    assert local.owned() == {}
    assert node_dirs(home, "c") == []


def test_down_terminates_on_every_backend_an_attempt_was_made_on(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        backends = {name: FaultyBackend(name, tmp_path) for name in ("fake", "other")}
        # The first attempt on `fake` created a node, failed, and could not clean it up.
        backends["fake"].faults["r1"] = [Fault("auth", after_nodes=1)]
        backends["fake"].terminate_failures = 1
        Launcher(store, backends.__getitem__, sleep=lambda _s: None).launch(
            LaunchSpec(cluster="c", task=Task()), cheapest_planner(offers()), lambda _r: None
        )
        assert store.require_cluster("c").cloud == "other"
        assert backends["fake"].owned() != {}
        Lifecycle(store, backends.__getitem__).down("c")
        assert {name: b.owned() for name, b in backends.items()} == {"fake": {}, "other": {}}


# -- autostop ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "done", "after"),
    [
        pytest.param(False, "stopped", ClusterStatus.STOPPED, id="stop"),
        pytest.param(True, "down", None, id="down"),
    ],
)
def test_autostop_acts_on_an_idle_cluster(
    session: Session,
    local: LocalBackend,
    down: bool,
    done: str,
    after: ClusterStatus | None,
) -> None:
    session.launch(local_task(), cluster="c", start_agent=False)
    life = lifecycle(session)
    life.set_autostop("c", 0, down)
    assert life.autostop("c") == done
    record = session.store.get_cluster("c")
    assert (record.status if record else None) == after
    if down:
        assert local.owned() == {}
    else:
        assert [n.status for n in local.nodes("c")] == [NodeStatus.STOPPED]


def test_autostop_never_stops_a_cluster_with_a_running_job(
    local_cluster: ClusterFactory, session: Session, tmp_path: Path
) -> None:
    queue = local_cluster()
    job = submit(queue, gate(tmp_path / "go"))
    queue.schedule()
    life = lifecycle(session)
    life.set_autostop("c", 0, down=True)
    assert life.autostop("c") is None
    assert session.store.require_cluster("c").status == ClusterStatus.UP
    (tmp_path / "go").touch()
    finished(queue, job.job_id)
    assert life.autostop("c") == "down"


def test_autostop_never_stops_a_cluster_with_a_pending_job(
    local_cluster: ClusterFactory, session: Session
) -> None:
    queue = local_cluster()
    submit(queue, "true", demand(cpus=4))
    life = lifecycle(session)
    life.set_autostop("c", 0, down=False)
    assert life.autostop("c") is None


AUTOSTOP_DUE = [
    pytest.param(None, 60, ClusterStatus.UP, LaunchStep.READY, False, id="autostop off"),
    pytest.param(10, 9, ClusterStatus.UP, LaunchStep.READY, False, id="not idle long enough"),
    pytest.param(10, 10, ClusterStatus.UP, LaunchStep.READY, True, id="idle long enough"),
    pytest.param(0, 0, ClusterStatus.UP, LaunchStep.READY, True, id="zero minutes"),
    pytest.param(0, 60, ClusterStatus.STOPPED, LaunchStep.READY, False, id="already stopped"),
    pytest.param(0, 60, ClusterStatus.INIT, LaunchStep.SYNCED, False, id="still launching"),
]


@pytest.mark.parametrize(("minutes", "idle", "status", "step", "due"), AUTOSTOP_DUE)
def test_autostop_due(
    session: Session,
    minutes: int | None,
    idle: int,
    status: ClusterStatus,
    step: LaunchStep,
    due: bool,
) -> None:
    session.launch(local_task(), cluster="c", start_agent=False)
    record = session.store.update_cluster(
        "c", "test", autostop_minutes=minutes, status=status, step=step
    )
    now = record.last_active_at + timedelta(minutes=idle)
    assert lifecycle(session).autostop_due(record, now) is due


def test_set_autostop_to_stop_needs_a_backend_that_can_stop(tmp_path: Path) -> None:
    caps = Capabilities(missing={Capability.STOP: "fake cannot stop a node; use down"})
    backend = FaultyBackend("fake", tmp_path, capabilities=caps)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        Launcher(store, lambda _name: backend).launch(
            LaunchSpec(cluster="c", task=Task()), cheapest_planner(offers()[:1]), lambda _r: None
        )
        life = Lifecycle(store, lambda _name: backend)
        with pytest.raises(InvalidRequestError, match=r"fake cannot stop a node; use down \(use"):
            life.set_autostop("c", 5, down=False)
        assert life.set_autostop("c", 5, down=True).autostop_minutes == 5
        with pytest.raises(InvalidRequestError, match="fake cannot stop a node"):
            life.stop("c")
        assert life.set_autostop("c", None, down=False).autostop_minutes is None


# -- orphans -----------------------------------------------------------------------------------


def test_orphans_lists_tagged_nodes_of_clusters_the_store_does_not_know(
    session: Session, local: LocalBackend
) -> None:
    session.launch(local_task(), cluster="known", start_agent=False)
    offer = Offer(
        cloud="local",
        region="local",
        zone=None,
        instance_type="local",
        accelerators=None,
        spot=False,
        num_nodes=2,
        hourly_cost=0.0,
        vcpus=1.0,
        memory_gib=1.0,
    )
    local.provision(ProvisionRequest(cluster="ghost", offer=offer))
    found = lifecycle(session).orphans(["local"])
    assert {c: [n.rank for n in nodes] for c, nodes in found.items()} == {"ghost": [0, 1]}
    local.terminate("ghost")
    assert lifecycle(session).orphans(["local"]) == {}


def test_autostop_rechecks_for_jobs_once_it_holds_the_lock(
    local_cluster: ClusterFactory,
    session: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = local_cluster()
    life = lifecycle(session)
    life.set_autostop("c", 0, down=False)
    raced: list[int] = []

    @contextlib.contextmanager
    def held_after_a_submit(store: Store, name: str, **kwargs: float) -> Iterator[None]:
        # Another CLI queues a job while autostop waits for the cluster lock.
        if not raced:
            job = submit(queue, gate(tmp_path / "go"))
            queue.schedule()
            raced.append(job.job_id)
        with held(store, name, **kwargs):
            yield

    monkeypatch.setattr(lifecycle_module, "held", held_after_a_submit)
    life.autostop("c")
    assert session.store.require_cluster("c").status == ClusterStatus.UP
    assert status_of(session.store, "c", raced[0]) == JobStatus.RUNNING


def test_a_sessions_progress_goes_to_the_skyplan_logger(
    local_cluster: ClusterFactory, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    # An embedder saw progress only by passing `say`; stdlib logging got nothing.
    local_cluster(nodes=1)
    session.stop("c")
    with caplog.at_level(logging.INFO, logger="skyplan"):
        session.start("c")
    assert ("skyplan", logging.INFO, "starting 'c'") in caplog.record_tuples


def test_a_task_files_relative_workdir_is_its_folder_from_the_library_too(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI read `workdir: data` next to the file, Session.launch next to the current
    # directory: the same task synced different folders.
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "marker.txt").write_text("the project's")
    task_file = project / "task.yaml"
    task_file.write_text("workdir: data\nresources:\n  infra: local\nrun: cat marker.txt\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "marker.txt").write_text("the wrong one")
    monkeypatch.chdir(elsewhere)

    result = session.launch(skyplan.load_task("../project/task.yaml"), cluster="w")
    assert result.job is not None
    lines: list[str] = []
    session.logs("w", result.job.job_id, follow=True, sink=lines.append)
    assert lines == ["the project's"]


def test_a_launch_syncs_the_workdir_to_every_node_without_what_gitignore_names(
    session: Session, tmp_path: Path
) -> None:
    # Every file was copied, node after node, whatever .gitignore said.
    workdir = tmp_path / "project"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "checkpoints" / "step-1.pt").write_bytes(b"\0" * 1024)
    (workdir / "train.py").write_text("print('train')\n")
    (workdir / "run.log").write_text("old output\n")
    (workdir / ".gitignore").write_text("checkpoints/\n*.log\n")
    task = local_task(workdir=str(workdir), num_nodes=2)
    session.launch(task, cluster="g", start_agent=False)
    for node in session.store.nodes("g"):
        synced = Path(node.extra["root"]) / "sky_workdir"
        assert sorted(p.name for p in synced.iterdir()) == [".gitignore", "train.py"]
