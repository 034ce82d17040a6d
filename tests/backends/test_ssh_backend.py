"""The ssh backend against real sshd hosts: discovery, claims, teardown, faults, host keys.

Pool `lab` holds hosts 0-3; host 1 has two (fake) A100-80GB, the others are CPU-only with this
machine's shape. Host 4 is in no pool unless a test adds it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from skyplan.backends.base import Backend
from skyplan.backends.layout import job_dir
from skyplan.backends.ssh import SshBackend
from skyplan.errors import (
    AuthError,
    CapacityError,
    InvalidRequestError,
    Scope,
    TransientError,
)
from skyplan.model.node import Capability, Node, NodeStatus, PoolOffer, ProvisionRequest
from skyplan.model.plan import Offer
from tests.backends.conftest import GPU_HOST
from tests.backends.sshd import SshdFarm

CPU_HOSTS = [0, 2, 3]


def cpu_offer(backend: SshBackend) -> PoolOffer:
    return next(o for o in backend.offers() if o.accelerator is None)


def request(pool_offer: PoolOffer, cluster: str, num_nodes: int, **kw: object) -> ProvisionRequest:
    offer = Offer(
        cloud=pool_offer.cloud,
        region=pool_offer.region,
        zone=None,
        instance_type=pool_offer.instance_type,
        accelerators=None,
        spot=False,
        num_nodes=num_nodes,
        hourly_cost=pool_offer.price * num_nodes,
        vcpus=pool_offer.vcpus,
        memory_gib=pool_offer.memory_gib,
    )
    if kw:
        offer = offer.model_copy(update=kw)
    return ProvisionRequest(cluster=cluster, offer=offer)


def claims(farm: SshdFarm, *, owners: bool = False) -> dict[int, dict[str, Any]]:
    """The claim on each host, read from its home directory (the hosts are local); without
    the owner unless asked."""
    found = {}
    for h in farm.hosts:
        path = h.home / ".skyplan" / "claim"
        if path.exists():
            claim = json.loads(path.read_text())
            if not owners:
                del claim["owner"]
            found[h.index] = claim
    return found


def host_index(farm: SshdFarm, ip: str) -> int:
    return next(h.index for h in farm.hosts if h.ip == ip)


def test_it_is_a_backend_that_declares_what_it_cannot_do(backend: SshBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "ssh"
    for capability in (Capability.STOP, Capability.SPOT, Capability.AUTOSTOP):
        assert not backend.capabilities.supports(capability)
    with pytest.raises(InvalidRequestError, match="use `skyplan down`"):
        backend.stop("c")
    with pytest.raises(InvalidRequestError, match="cannot be stopped"):
        backend.start("c")


def test_check_without_a_pool_file_says_what_to_write(tmp_path: Path) -> None:
    result = SshBackend(tmp_path).check()
    assert not result.ok
    assert (
        result.reason == f"no SSH node pools: write {tmp_path / 'ssh_node_pools.yaml'} (see docs)"
    )
    assert SshBackend(tmp_path).offers() == []


def test_check_with_a_bad_pool_file_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "ssh_node_pools.yaml").write_text("lab:\n  hosts: [a]\n  prt: 22\n")
    result = SshBackend(tmp_path).check()
    assert not result.ok and "invalid" in result.reason
    assert any(":3: lab.prt: unknown field" in line for line in result.detail)


def test_offers_group_hosts_by_shape_with_free_capacity(
    backend: SshBackend, ssh_home: Path, farm: SshdFarm
) -> None:
    (ssh_home / "ssh_node_pools.yaml").write_text(
        farm.pools_yaml({"lab": [0, 1, 2, 3]}, price=0.25)
    )
    offers = sorted(backend.offers(), key=lambda o: o.accelerator or "")
    assert len(offers) == 2
    cpu, gpu = offers
    assert (cpu.cloud, cpu.region, cpu.zone, cpu.capacity, cpu.price) == (
        "ssh",
        "lab",
        None,
        3,
        0.25,
    )
    assert cpu.source == "ssh pool lab (probed)"
    assert (gpu.accelerator, gpu.accelerator_count, gpu.accelerator_memory) == ("A100-80GB", 2, 80)
    assert gpu.capacity == 1
    assert gpu.instance_type.endswith("-A100-80GBx2")
    assert (gpu.vcpus, gpu.memory_gib) == (cpu.vcpus, cpu.memory_gib)

    backend.provision(request(cpu, "a", 2))
    capacity = {o.instance_type: o.capacity for o in backend.offers()}
    assert capacity == {cpu.instance_type: 1, gpu.instance_type: 1}


def test_check_reports_reachable_hosts(backend: SshBackend) -> None:
    result = backend.check()
    assert result.ok
    assert result.reason == "1 pool, 4/4 hosts reachable"
    assert result.detail == ()


def test_a_down_and_a_hung_host_are_reported_skipped_and_used_again(
    backend: SshBackend, farm: SshdFarm
) -> None:
    backend.check()  # cached connections to every host: the hung one must not block on its own
    backend.ok_ttl = 0
    farm.kill(2)
    farm.hang(3)
    start = time.monotonic()
    result = backend.check()
    assert time.monotonic() - start < 4
    assert result.ok and result.reason == "1 pool, 2/4 hosts reachable"
    assert len(result.detail) == 2
    down, hung = result.detail
    assert down.startswith(f"lab/{farm.hosts[2].address}: ") and "refused" in down
    assert hung.startswith(f"lab/{farm.hosts[3].address}: ")
    assert [h for h, _ in backend.problems] == [f"lab/{farm.hosts[i].address}" for i in (2, 3)]
    start = time.monotonic()
    assert cpu_offer(backend).capacity == 1
    assert time.monotonic() - start < 4

    farm.resume(3)
    farm.start(2)
    backend.fail_ttl = 0
    assert cpu_offer(backend).capacity == 3
    assert backend.check().reason == "1 pool, 4/4 hosts reachable"


def test_provision_claims_one_host_per_rank(backend: SshBackend, farm: SshdFarm) -> None:
    nodes = backend.provision(request(cpu_offer(backend), "train", 3))
    assert [n.rank for n in nodes] == [0, 1, 2]
    assert len({n.ip for n in nodes}) == 3
    assert {host_index(farm, n.ip) for n in nodes} == set(CPU_HOSTS)
    for node in nodes:
        h = farm.hosts[host_index(farm, node.ip)]
        assert node.node_id == f"lab/{h.address}"
        assert (node.cloud, node.region, node.status) == ("ssh", "lab", NodeStatus.RUNNING)
        assert node.extra["root"] == f"{h.home}/.skyplan/clusters/train"
        assert Path(node.extra["root"]).is_dir()
        assert node.extra["port"] == str(h.port) and node.extra["pool"] == "lab"
        assert claims(farm)[h.index] == {"cluster": "train", "rank": node.rank}
    assert backend.nodes("train") == nodes
    assert backend.owned() == {"train": nodes}
    runner = backend.runner(nodes[1])
    try:
        assert (
            runner.run("echo $HOME").output == f"{farm.hosts[host_index(farm, nodes[1].ip)].home}\n"
        )
    finally:
        runner.close()


def test_provision_is_idempotent(backend: SshBackend, farm: SshdFarm) -> None:
    first = backend.provision(request(cpu_offer(backend), "train", 2))
    before = claims(farm)
    again = SshBackend(backend.home, probe_timeout=1.0)
    try:
        assert again.provision(request(cpu_offer(again), "train", 2)) == first
        assert claims(farm) == before
        grown = again.provision(request(cpu_offer(again), "train", 3))
        assert grown[:2] == first and grown[2].rank == 2
    finally:
        again.close()


def test_not_enough_free_hosts_is_a_capacity_error_leaving_no_claim(
    backend: SshBackend, farm: SshdFarm
) -> None:
    offer = cpu_offer(backend)
    other = backend.provision(request(offer, "other", 1))
    with pytest.raises(CapacityError) as caught:
        backend.provision(request(offer, "big", 3))
    assert caught.value.scope == Scope("ssh", "lab")
    assert f"pool 'lab' has 2 free hosts of shape {offer.instance_type}" in str(caught.value)
    assert "the cluster needs 3" in str(caught.value)
    assert list(claims(farm).values()) == [{"cluster": "other", "rank": 0}]
    assert not any((h.home / ".skyplan/clusters/big").exists() for h in farm.hosts)
    assert backend.owned() == {"other": other}


def test_clusters_of_another_skyplan_home_are_neither_reused_nor_listed_nor_deleted(
    backend: SshBackend, ssh_home: Path, farm: SshdFarm, tmp_path: Path
) -> None:
    offer = cpu_offer(backend)
    theirs = backend.provision(request(offer, "train", 2))
    other_home = tmp_path / "other"
    other_home.mkdir()
    for name in ("ssh_node_pools.yaml", "ssh_known_hosts"):
        (other_home / name).write_text((ssh_home / name).read_text())
    other = SshBackend(other_home, probe_timeout=1.0)
    try:
        assert other.owner != backend.owner
        assert other.owned() == {}
        (mine,) = other.provision(request(offer, "train", 1))  # same name, a third host
        assert mine.ip not in {n.ip for n in theirs}
        other.terminate("train")
        assert other.nodes("train") == []
    finally:
        other.close()
    assert backend.nodes("train") == theirs
    owners = {c["owner"] for c in claims(farm, owners=True).values()}
    assert owners == {backend.owner}
    assert backend.owner == (ssh_home / "ssh_owner").read_text().strip()


def test_requests_the_backend_cannot_serve_are_invalid(backend: SshBackend) -> None:
    offer = cpu_offer(backend)
    with pytest.raises(InvalidRequestError, match="never preempted"):
        backend.provision(request(offer, "c", 1, spot=True))
    with pytest.raises(InvalidRequestError, match="did you mean 'lab'"):
        backend.provision(request(offer, "c", 1, region="labb"))


def test_concurrent_provisions_never_share_a_host(backend: SshBackend, farm: SshdFarm) -> None:
    offer = cpu_offer(backend)
    backends = [SshBackend(backend.home, probe_timeout=1.0) for _ in range(2)]
    results: dict[str, object] = {}

    def launch(b: SshBackend, cluster: str) -> None:
        try:
            results[cluster] = b.provision(request(offer, cluster, 2))
        except CapacityError as err:
            results[cluster] = err

    threads = [
        threading.Thread(target=launch, args=(b, c)) for b, c in zip(backends, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in backends:
        b.close()

    won = [c for c, r in results.items() if isinstance(r, list)]
    assert len(won) == 1  # 3 hosts, 2 each: exactly one launch fits, the other one fails
    lost = "b" if won == ["a"] else "a"
    assert isinstance(results[lost], CapacityError)
    winner = results[won[0]]
    assert isinstance(winner, list)
    held = claims(farm)  # the loser released what it had claimed
    assert held == {host_index(farm, n.ip): {"cluster": won[0], "rank": n.rank} for n in winner}


def start_job(backend: SshBackend, node: Node) -> None:
    """Start a long job the way the runtime does: its own process group, pgid in the job dir."""
    jobs = job_dir(node.extra["root"], 1)
    runner = backend.runner(node)
    try:
        result = runner.run(
            f"mkdir -p {jobs}\n"
            "setsid sleep 53.1 > /dev/null 2>&1 < /dev/null &\n"
            f"echo $! > {jobs}/pgid; sleep 0.2; pgrep -f 'sleep 5[3].1'"
        )
        assert result.exit_code == 0, result.output
    finally:
        runner.close()


def running(farm: SshdFarm) -> bool:
    import subprocess

    return subprocess.run(["pgrep", "-f", "sleep 5[3].1"], capture_output=True).returncode == 0


def test_terminate_kills_jobs_removes_roots_and_claims(backend: SshBackend, farm: SshdFarm) -> None:
    nodes = backend.provision(request(cpu_offer(backend), "train", 2))
    keep = backend.provision(request(cpu_offer(backend), "keep", 1))
    start_job(backend, nodes[0])
    assert running(farm)

    backend.terminate("train")
    assert not running(farm)
    assert not any(Path(n.extra["root"]).exists() for n in nodes)
    assert [c["cluster"] for c in claims(farm).values()] == ["keep"]
    assert backend.nodes("train") == []
    assert backend.owned() == {"keep": keep}
    backend.terminate("train")  # nothing left: not an error


def test_owned_lists_nodes_by_cluster(backend: SshBackend) -> None:
    offer = cpu_offer(backend)
    a = backend.provision(request(offer, "a", 1))
    b = backend.provision(request(offer, "b", 2))
    assert backend.owned() == {"a": a, "b": b}


def test_terminate_with_a_down_host_cleans_the_others_then_raises(
    backend: SshBackend, farm: SshdFarm
) -> None:
    nodes = backend.provision(request(cpu_offer(backend), "train", 3))
    down = host_index(farm, nodes[1].ip)
    farm.kill(down)
    with pytest.raises(TransientError, match=f"lab/{farm.hosts[down].address}") as caught:
        backend.terminate("train")
    assert caught.value.scope == Scope("ssh", "lab")
    assert list(claims(farm)) == [down]  # the others are released
    left = backend.nodes("train")
    assert [(n.rank, n.status) for n in left] == [(1, NodeStatus.UNREACHABLE)]

    # Another process on this machine knows it too (the last claims seen are kept on disk).
    later = SshBackend(backend.home, probe_timeout=1.0)
    try:
        with pytest.raises(TransientError):
            later.terminate("train")
        farm.start(down)
        later.fail_ttl = 0  # a new `skyplan down` would not remember the failure either
        later.terminate("train")
        assert claims(farm) == {}
        assert later.nodes("train") == []
    finally:
        later.close()


def test_a_down_host_holding_a_rank_blocks_reprovisioning_that_rank(
    backend: SshBackend, farm: SshdFarm
) -> None:
    offer = cpu_offer(backend)
    nodes = backend.provision(request(offer, "train", 2))
    farm.kill(host_index(farm, nodes[1].ip))
    with pytest.raises(TransientError, match="cannot be reached"):
        backend.provision(request(offer, "train", 2))
    assert len(claims(farm)) == 2  # no second host claimed for rank 1


def test_unknown_host_keys_are_refused_until_trusted(ssh_home: Path, farm: SshdFarm) -> None:
    known = ssh_home / "ssh_known_hosts"
    known.write_text(farm.known_hosts([0, 2, 3]))  # host 1 (the GPU host) was never trusted
    strict = SshBackend(ssh_home, probe_timeout=1.0)
    try:
        result = strict.check()
        assert result.reason == "1 pool, 3/4 hosts reachable"
        (detail,) = result.detail
        assert "is not known" in detail and "skyplan check --trust-new-host-keys" in detail
        gpu = PoolOffer(
            cloud="ssh", region="lab", instance_type="x", vcpus=1, memory_gib=1, source="t"
        )
        with pytest.raises(AuthError, match="is not known") as caught:
            strict.provision(request(gpu, "g", 1))
        assert caught.value.scope == Scope("ssh", "lab")
    finally:
        strict.close()

    trusting = SshBackend(ssh_home, trust_new_hosts=True, probe_timeout=1.0)
    try:
        assert trusting.check().reason == "1 pool, 4/4 hosts reachable"
    finally:
        trusting.close()
    assert farm.hosts[GPU_HOST].known_hosts_line() in known.read_text()
    assert len(known.read_text().splitlines()) == 4

    strict_again = SshBackend(ssh_home, probe_timeout=1.0)  # the recorded key is used thereafter
    try:
        assert strict_again.check().reason == "1 pool, 4/4 hosts reachable"
    finally:
        strict_again.close()


def test_a_changed_host_key_is_refused_even_when_trusting(ssh_home: Path, farm: SshdFarm) -> None:
    farm.restart(GPU_HOST, farm.other_key(GPU_HOST))
    trusting = SshBackend(ssh_home, trust_new_hosts=True, probe_timeout=1.0)
    try:
        result = trusting.check()
        (detail,) = result.detail
        assert "CHANGED" in detail and "man-in-the-middle" in detail
    finally:
        trusting.close()
