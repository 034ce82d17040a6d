"""The job queue (`runtime.queue.JobQueue`) on the local backend: real processes, a real SQLite
store. Clusters get a fake node shape (`local_cluster(gpus=...)`), so GPU accounting is
exercised on any machine; no job ever touches a GPU."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from skyplan.backends.base import RunResult
from skyplan.backends.local import LocalBackend
from skyplan.errors import ClusterStateError, JobNotFound, TransientError
from skyplan.execution.session import Session
from skyplan.model.node import Node, NodeStatus
from skyplan.model.state import ClusterStatus, JobDemand, JobStatus
from skyplan.runtime import JobQueue, fit, node_jobs
from skyplan.state import Store
from tests.runtime.conftest import (
    ClusterFactory,
    alive,
    demand,
    finished,
    gate,
    local_task,
    submit,
    wait_until,
)


def statuses(queue: JobQueue) -> dict[int, JobStatus]:
    return {j.job_id: j.status for j in queue.store.jobs(queue.cluster)}


def job_dir(queue: JobQueue, job_id: int, rank: int = 0) -> Path:
    return Path(queue.store.nodes(queue.cluster)[rank].extra["root"]) / "jobs" / str(job_id)


# -- running and recording ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "status", "code", "message"),
    [
        pytest.param("true", JobStatus.SUCCEEDED, 0, "exited with code 0", id="success"),
        pytest.param("exit 3", JobStatus.FAILED, 3, "exited with code 3", id="non-zero exit"),
        pytest.param("kill -9 $$", JobStatus.FAILED, 137, "exited with code 137", id="killed"),
    ],
)
def test_a_job_runs_and_its_exit_code_is_recorded(
    local_cluster: ClusterFactory, command: str, status: JobStatus, code: int, message: str
) -> None:
    queue = local_cluster()
    job = submit(queue, command)
    assert job.status == JobStatus.PENDING
    assert [j.job_id for j in queue.schedule()] == [job.job_id]
    done = finished(queue, job.job_id)
    assert (done.status, done.exit_code, done.message) == (status, code, message)
    assert done.started_at is not None and done.ended_at is not None


def test_a_job_killed_behind_the_queues_back_is_failed_without_an_exit_code(
    local_cluster: ClusterFactory,
) -> None:
    queue = local_cluster()
    job = submit(queue, "sleep 600")
    queue.schedule()
    pgid = int(wait_until(lambda: (job_dir(queue, job.job_id) / "pgid").read_text().strip()))
    os.killpg(pgid, signal.SIGKILL)
    done = finished(queue, job.job_id)
    assert (done.status, done.exit_code) == (JobStatus.FAILED, None)
    assert done.message == "its process on node 0 ended without an exit code"


# -- FIFO with backfill, fractional GPUs, multi-node ---------------------------------------------


def test_a_big_job_waits_and_a_later_small_one_backfills(
    local_cluster: ClusterFactory, tmp_path: Path
) -> None:
    queue = local_cluster(gpus=1)
    first = submit(queue, gate(tmp_path / "go"), demand(1))
    big = submit(queue, "true", demand(1))
    small = submit(queue, "true", demand(0))
    assert [j.job_id for j in queue.schedule()] == [first.job_id, small.job_id]
    assert statuses(queue)[big.job_id] == JobStatus.PENDING

    (tmp_path / "go").touch()
    finished(queue, first.job_id)
    assert [j.job_id for j in queue.schedule()] == [big.job_id]
    assert finished(queue, big.job_id).status == JobStatus.SUCCEEDED


def test_a_job_waiting_past_the_starvation_limit_is_not_passed_any_more(
    local_cluster: ClusterFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = local_cluster(gpus=1)
    first = submit(queue, gate(tmp_path / "go"), demand(1))
    queue.schedule()
    big = submit(queue, "true", demand(1))
    monkeypatch.setattr(fit, "STARVATION", timedelta(0))  # `big` has waited long enough
    small = submit(queue, "true", demand(0))
    assert queue.schedule() == []
    assert statuses(queue)[small.job_id] == JobStatus.PENDING
    (tmp_path / "go").touch()
    finished(queue, first.job_id)
    assert [j.job_id for j in queue.schedule()] == [big.job_id, small.job_id]


def test_fractional_gpu_jobs_share_a_device_up_to_one(
    local_cluster: ClusterFactory, tmp_path: Path
) -> None:
    queue = local_cluster(gpus=1)
    show = 'echo "cuda=$CUDA_VISIBLE_DEVICES gpus=$SKYPILOT_NUM_GPUS_PER_NODE"'
    command = f"{show}; {gate(tmp_path / 'go')}"
    jobs = [submit(queue, command, demand(0.5)) for _ in range(3)]
    assert [j.job_id for j in queue.schedule()] == [jobs[0].job_id, jobs[1].job_id]
    assert list(statuses(queue).values()) == [
        JobStatus.RUNNING,
        JobStatus.RUNNING,
        JobStatus.PENDING,
    ]
    (tmp_path / "go").touch()
    for job in jobs[:2]:
        finished(queue, job.job_id)
        lines: list[str] = []
        queue.logs(job.job_id, follow=False, sink=lines.append)
        assert lines == ["cuda=0 gpus=1"]
    assert [j.job_id for j in queue.schedule()] == [jobs[2].job_id]


def test_a_multi_node_job_sees_its_rank_and_the_node_ips(local_cluster: ClusterFactory) -> None:
    queue = local_cluster(nodes=3)
    command = (
        'echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES,'
        ' $(printf "%s\\n" "$SKYPILOT_NODE_IPS" | wc -l) ips, job $SKYPLAN_JOB_ID"'
    )
    job = submit(queue, command, demand(nodes=2))
    (started,) = queue.schedule()
    assert started.ranks == (0, 1)
    lines: list[str] = []
    done = queue.logs(job.job_id, follow=True, sink=lines.append, poll=0.05)
    assert done.status == JobStatus.SUCCEEDED
    assert sorted(lines) == [
        f"(rank=0) rank=0 of 2, 2 ips, job {job.job_id}",
        f"(rank=1) rank=1 of 2, 2 ips, job {job.job_id}",
    ]


def test_a_multi_node_job_fails_when_one_rank_fails_and_its_other_ranks_are_killed(
    local_cluster: ClusterFactory, tmp_path: Path
) -> None:
    queue = local_cluster(nodes=2)
    pid_file = tmp_path / "rank0.pid"
    command = f'[ "$SKYPILOT_NODE_RANK" = 1 ] && exit 5; sleep 600 & echo $! > {pid_file}; wait'
    job = submit(queue, command, demand(nodes=2))
    queue.schedule()
    survivor = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip()))
    done = finished(queue, job.job_id)
    assert (done.status, done.exit_code, done.message) == (
        JobStatus.FAILED,
        5,
        "exited with code 5",
    )
    assert not alive(survivor)


# -- environment and secrets -------------------------------------------------------------------


def test_envs_reach_the_job(local_cluster: ClusterFactory) -> None:
    queue = local_cluster()
    job = submit(queue, 'echo "$GREETING, $WHO"', envs={"GREETING": "hello world", "WHO": "'$x'"})
    queue.schedule()
    finished(queue, job.job_id)
    lines: list[str] = []
    queue.logs(job.job_id, follow=False, sink=lines.append)
    assert lines == ["hello world, '$x'"]


def test_secrets_reach_setup_and_job_and_are_kept_nowhere_else(
    session: Session, tmp_path: Path
) -> None:
    secret = secrets.token_hex(16)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    check = f'[ "$(printf %s "$TOKEN" | sha256sum | cut -d" " -f1)" = {digest} ]'
    result = session.launch(
        local_task(
            setup=f"{check} && echo setup-saw-it",
            run=f"{check} && echo job-saw-it",
            secrets={"TOKEN": secret},
        ),
        cluster="s",
        base_dir=tmp_path,
        start_agent=False,
    )
    assert result.job is not None
    queue = JobQueue(session.store, session.backend("local"), "s")
    job = finished(queue, result.job.job_id)
    assert job.status == JobStatus.SUCCEEDED, "the job saw the secret"
    assert job.secret_names == ("TOKEN",)
    lines: list[str] = []
    queue.logs(job.job_id, follow=False, sink=lines.append)
    assert lines == ["job-saw-it"]
    root = Path(session.store.nodes("s")[0].extra["root"])
    assert (root / "jobs" / "setup" / "log").read_text() == "setup-saw-it\n"

    store = session.store
    records = [
        *(r.model_dump_json() for r in store.clusters()),
        *(j.model_dump_json() for j in store.jobs("s")),
        *(e.model_dump_json() for e in store.events()),
        *(a.model_dump_json() for a in store.attempts("s")),
    ]
    assert not [r for r in records if secret in r], "a record holds the secret"
    assert store.require_cluster("s").task["secrets"] == {"TOKEN": "<redacted>"}
    files = [p for p in session.home.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files)
    assert [p for p in files if secret.encode() in p.read_bytes()] == [], (
        "the secret stays on disk (the store, its WAL, a log or a job file)"
    )
    assert not [p for p in files if p.name == "secrets"], "a secrets file was not deleted"


# -- cancel and logs ---------------------------------------------------------------------------


def test_cancel_kills_the_jobs_whole_process_group(
    local_cluster: ClusterFactory, tmp_path: Path
) -> None:
    queue = local_cluster()
    pid_file = tmp_path / "child.pid"
    job = submit(queue, f"sleep 600 & echo $! > {pid_file}; wait")
    pending = submit(queue, "true", demand(cpus=4))
    queue.schedule()
    child = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip()))
    assert alive(child)

    cancelled = queue.cancel()
    assert {(j.job_id, j.status) for j in cancelled} == {
        (job.job_id, JobStatus.CANCELLED),
        (pending.job_id, JobStatus.CANCELLED),
    }
    wait_until(lambda: not alive(child), timeout=5, what="the job's child to die")
    assert queue.schedule() == [], "a cancelled pending job never starts"
    assert queue.cancel() == []


def test_cancel_by_id_leaves_other_jobs_alone(
    local_cluster: ClusterFactory, tmp_path: Path
) -> None:
    queue = local_cluster()
    keep = submit(queue, gate(tmp_path / "go"))
    drop = submit(queue, "sleep 600")
    queue.schedule()
    assert [j.job_id for j in queue.cancel([drop.job_id])] == [drop.job_id]
    assert statuses(queue)[keep.job_id] == JobStatus.RUNNING
    (tmp_path / "go").touch()
    assert finished(queue, keep.job_id).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize("follow", [False, True], ids=["after it ended", "follow while it runs"])
def test_logs_show_the_jobs_output(local_cluster: ClusterFactory, follow: bool) -> None:
    queue = local_cluster()
    job = submit(queue, "for i in 1 2 3; do echo line $i; sleep 0.1; done; echo oops >&2; exit 4")
    queue.schedule()
    if not follow:
        finished(queue, job.job_id)
    lines: list[str] = []
    done = queue.logs(job.job_id, follow=follow, sink=lines.append, poll=0.05)
    assert lines == ["line 1", "line 2", "line 3", "oops"]
    assert (done.status, done.exit_code) == (JobStatus.FAILED, 4)


def test_following_a_pending_job_waits_for_it_to_start(local_cluster: ClusterFactory) -> None:
    queue = local_cluster()
    blocker = submit(queue, "sleep 0.3", demand(cpus=4))
    waiting = submit(queue, "echo second", demand(cpus=4))
    queue.schedule()
    # Whoever polls the queue (the agent, in real life) records the blocker's end.
    poller = threading.Thread(target=finished, args=(queue, blocker.job_id))
    poller.start()
    lines: list[str] = []
    done = queue.logs(waiting.job_id, follow=True, sink=lines.append, poll=0.05)
    poller.join()
    assert (done.status, lines) == (JobStatus.SUCCEEDED, ["second"])


def test_logs_of_an_unknown_job_name_the_recent_ones(local_cluster: ClusterFactory) -> None:
    queue = local_cluster()
    submit(queue, "true")
    with pytest.raises(JobNotFound, match=r"has no job 9 \(recent: 1\)"):
        queue.logs(9, follow=False, sink=print)


# -- what submit refuses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("need", "message"),
    [
        pytest.param(
            demand(1, accelerator="H100"), "asks for H100; cluster 'c' has A100", id="gpu"
        ),
        pytest.param(demand(2), "can never run.*needs 2 A100 per node; a node has 1", id="count"),
        pytest.param(demand(cpus=8), "can never run.*needs 8 CPUs per node", id="cpus"),
        pytest.param(
            demand(nodes=2), "can never run.*needs 2 nodes; the cluster has 1", id="nodes"
        ),
    ],
)
def test_submit_refuses_a_job_that_can_never_run(
    local_cluster: ClusterFactory, need: JobDemand, message: str
) -> None:
    queue = local_cluster(gpus=1)
    with pytest.raises(ClusterStateError, match=message):
        submit(queue, "true", need)
    assert queue.store.jobs("c") == []


def test_submit_refuses_a_cluster_that_is_not_up(
    local_cluster: ClusterFactory, session: Session
) -> None:
    queue = local_cluster()
    session.stop("c")
    with pytest.raises(ClusterStateError, match="cluster 'c' is stopped; jobs need it up"):
        submit(queue, "true")


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_schedulers_never_start_a_job_twice(
    local_cluster: ClusterFactory, session: Session, tmp_path: Path
) -> None:
    queue = local_cluster(vcpus=8)
    starts = tmp_path / "starts"
    starts.mkdir()
    jobs = [submit(queue, f"echo x >> {starts}/$SKYPLAN_JOB_ID") for _ in range(12)]
    barrier = threading.Barrier(4)
    started: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def scheduler(slot: int) -> None:
        try:
            with Store.open(session.db_url) as own:
                mine = JobQueue(own, session.backend("local"), "c")
                barrier.wait()
                for _ in range(3):
                    started[slot] += [j.job_id for j in mine.schedule()]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = sorted(i for ids in started for i in ids)
    assert every == [j.job_id for j in jobs], "each job started exactly once"
    for job in jobs:
        finished(queue, job.job_id)
        assert (starts / str(job.job_id)).read_text() == "x\n"
        moves = [e.new for e in queue.store.events("c", job_id=job.job_id)]
        assert moves == ["pending", "running", "succeeded"]


def test_the_cluster_record_counts_a_job_start_as_activity(local_cluster: ClusterFactory) -> None:
    queue = local_cluster()
    before = queue.store.require_cluster("c").last_active_at
    submit(queue, "true")
    queue.schedule()
    record = queue.store.require_cluster("c")
    assert record.status == ClusterStatus.UP
    assert record.last_active_at > before


def test_a_node_that_misses_two_polls_in_a_row_loses_its_jobs(
    local_cluster: ClusterFactory,
    local: LocalBackend,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = local_cluster(nodes=2)
    job = submit(queue, "sleep 600", demand(nodes=2))
    queue.schedule()
    reachable = local.runner

    class Unreachable:
        def run(self, command: str, **_options: object) -> RunResult:
            raise TransientError("connection refused")

    def runner(node: Node) -> object:
        return Unreachable() if node.rank == 1 else reachable(node)

    with monkeypatch.context() as patch:
        patch.setattr(local, "runner", runner)
        assert queue.refresh() == []  # one missed poll may be a blip: the node is suspect
        assert [n.status for n in session.store.nodes("c")][1] == NodeStatus.UNREACHABLE
        (lost,) = queue.refresh()
        assert (lost.status, lost.message) == (
            JobStatus.LOST,
            "node 1 unreachable: connection refused",
        )
        lines: list[str] = []
        queue.logs(job.job_id, follow=False, sink=lines.append)
        assert lines == ["(rank=1) node 1 is unreachable; its log cannot be read"]
    nodes = session.store.nodes("c")
    assert [n.status for n in nodes] == [NodeStatus.RUNNING, NodeStatus.UNREACHABLE]
    moves = [e.new for e in session.events("c")]
    assert moves.index("unreachable (node 1)") < moves.index("lost")


def test_a_log_follower_ends_when_its_node_is_torn_down(tmp_path: Path) -> None:
    # A follower left behind (by a Ctrl-C detach, or a dropped client) waited for ever once the
    # node's directory was deleted: the job's rc file could never appear. Leftover followers
    # from earlier test runs were still spinning on this machine.
    root = tmp_path / "node"
    job = root / "jobs" / "1"
    job.mkdir(parents=True)
    (job / "log").write_text("line\n")
    follower = subprocess.Popen(
        ["bash", "-c", node_jobs.log_script(str(root), 1, follow=True)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        assert follower.poll() is None  # the job has not ended: it follows
        shutil.rmtree(root)
        out, _ = follower.communicate(timeout=10)
    finally:
        follower.kill()
    assert out == "line\n"
