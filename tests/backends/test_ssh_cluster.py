"""Clusters on existing machines, end to end: `Session` over the SSH backend and real sshd
hosts on loopback (pool `lab`: hosts 0, 2, 3 are CPU hosts shaped like this machine, host 1
has two A100s).

The issue's cases: a multi-node job sees the right ranks and IPs; a host killed mid-job; a hung
host; a wrong host key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import skyplan
from skyplan.model.node import NodeStatus
from skyplan.model.state import JobStatus
from tests.backends.sshd import SshdFarm

CPU_HOSTS = {0, 2, 3}


def _task(text: str) -> skyplan.Dag:
    return skyplan.parse_task(text)


@pytest.fixture
def session(ssh_home: Path) -> Iterator[skyplan.Session]:
    lines: list[str] = []
    s = skyplan.Session(home=ssh_home, sink=lines.append)
    s.lines = lines  # type: ignore[attr-defined]
    # Probe hosts afresh on every call: the tests kill and revive hosts within seconds.
    s.backend("ssh").ok_ttl = s.backend("ssh").fail_ttl = 0  # type: ignore[attr-defined]
    yield s
    for view in s.status(refresh=False):
        with contextlib.suppress(skyplan.SkyplanError):
            s.down(view.record.name)
    s.close()


def _wait(session: skyplan.Session, cluster: str, job_id: int, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    queue = session._queue(cluster)
    while time.monotonic() < deadline:
        queue.refresh()
        job = session.store.job(cluster, job_id)
        assert job is not None
        if job.status.done:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout}s")


def test_a_three_node_job_sees_its_ranks_and_the_nodes_ips(
    session: skyplan.Session, farm: SshdFarm
) -> None:
    task = _task(
        """
        num_nodes: 3
        resources: {infra: ssh/lab}
        setup: echo "set up $SKYPILOT_SETUP_NODE_RANK"
        run: |
          echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES"
          echo "ips=$(echo "$SKYPILOT_NODE_IPS" | paste -sd, -)"
        """
    )
    result = session.launch(task, cluster="trio", start_agent=False)
    assert result.job is not None
    lines: list[str] = []
    job = session.logs("trio", result.job.job_id, follow=True, sink=lines.append)
    assert job.status == JobStatus.SUCCEEDED
    nodes = session.store.nodes("trio")
    expected_ips = ",".join(n.ip for n in nodes)
    assert sorted(n.ip for n in nodes) == sorted(farm.hosts[i].ip for i in CPU_HOSTS)
    for rank in range(3):
        assert f"(rank={rank}) rank={rank} of 3" in lines
        assert f"(rank={rank}) ips={expected_ips}" in lines
    assert sum("set up" in line for line in session.lines) == 3  # type: ignore[attr-defined]


def test_a_host_killed_mid_job_marks_the_job_lost_and_status_says_so(
    session: skyplan.Session, farm: SshdFarm
) -> None:
    task = _task("num_nodes: 2\nresources: {infra: ssh/lab}\nrun: sleep 60\n")
    result = session.launch(task, cluster="duo", start_agent=False)
    assert result.job is not None and result.job.status == JobStatus.RUNNING
    victim = next(n for n in session.store.nodes("duo") if n.rank == 1)
    farm.kill(next(h.index for h in farm.hosts if h.ip == victim.ip))
    job = _wait(session, "duo", result.job.job_id)
    assert job.status == JobStatus.LOST  # type: ignore[attr-defined]
    assert "node 1 unreachable" in job.message  # type: ignore[attr-defined]
    (view,) = session.status(["duo"])
    statuses = {n.rank: n.status for n in view.nodes}
    assert statuses == {0: NodeStatus.RUNNING, 1: NodeStatus.UNREACHABLE}
    assert "node 1 unreachable" in view.note
    # The host comes back: down then cleans both hosts, sleeps included.
    farm.reset()
    session.down("duo")
    assert session.backend("ssh").owned() == {}


def test_a_hung_host_is_reported_and_skipped(session: skyplan.Session, farm: SshdFarm) -> None:
    farm.hang(0)
    try:
        started = time.monotonic()
        (check,) = [c for c in session.check() if c.backend == "ssh"]
        assert check.ok
        assert any(farm.hosts[0].ip in line for line in check.detail)
        task = _task("num_nodes: 2\nresources: {infra: ssh/lab}\nrun: echo up\n")
        result = session.launch(task, cluster="pair", start_agent=False)
        assert time.monotonic() - started < 30
        used = {n.ip for n in session.store.nodes("pair")}
        assert farm.hosts[0].ip not in used and len(used) == 2
        assert result.job is not None
    finally:
        farm.resume(0)


def test_a_changed_host_key_is_refused_and_nothing_is_claimed(
    ssh_home: Path, farm: SshdFarm
) -> None:
    (ssh_home / "ssh_node_pools.yaml").write_text(farm.pools_yaml({"solo": [2]}))
    farm.restart(2, key=farm.other_key(2))
    with skyplan.Session(home=ssh_home) as session:
        task = _task("resources: {infra: ssh/solo}\nrun: echo never\n")
        with pytest.raises(skyplan.SkyplanError) as err:
            session.launch(task, cluster="imposter", start_agent=False)
        assert "CHANGED" in str(err.value)
        assert session.store.get_cluster("imposter") is None
        farm.reset()
        assert session.backend("ssh").owned() == {}


def test_launch_fails_over_from_a_full_pool_to_the_next(ssh_home: Path, farm: SshdFarm) -> None:
    (ssh_home / "ssh_node_pools.yaml").write_text(
        farm.pools_yaml({"small": [0]}) + farm.pools_yaml({"big": [2, 3]}, price=0.5)
    )
    with skyplan.Session(home=ssh_home) as session:
        session.launch(_task("resources: {infra: ssh/small}\n"), cluster="first")
        result = session.launch(_task("resources: {infra: ssh}\n"), cluster="second")
        assert session.store.require_cluster(result.cluster).region == "big"
        for name in ("first", "second"):
            session.down(name)
        assert session.backend("ssh").owned() == {}
