"""Contract tests of the `kubernetes` backend, written against its public behaviour so the same
tests run on the FAKE API server (default) and on a real cluster (`SKYPLAN_REAL_K8S=1` with a
`KUBECONFIG`; tests that stage faults or need the fake's topology are skipped there).

What a user of the backend may rely on: `check` names every context; offers are free node
capacity (allocatable minus requests) in catalog names; provisioning makes one labelled pod per
rank, idempotently, or fails with a scoped error (capacity, auth, transient) and leaves nothing;
the runner behaves like `LocalRunner` (exit codes, streamed lines, env, cwd, timeouts, uploads)
so the runtime's detached jobs work; failover moves between contexts; pods cannot be stopped.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from kubernetes.utils import parse_quantity

from skyplan import api
from skyplan.backends import BACKENDS, Backend, CommandRunner
from skyplan.backends.k8s_capacity import gpu_from_label
from skyplan.backends.k8s_exec import TIMEOUT_EXIT
from skyplan.backends.kubernetes import KubernetesBackend
from skyplan.catalog import load_catalog
from skyplan.catalog.pools import launch_catalog
from skyplan.errors import (
    AuthError,
    CapacityError,
    InvalidRequestError,
    Scope,
    TransientError,
)
from skyplan.execution.session import Session
from skyplan.model import Offer, Task
from skyplan.model.node import Capability, Node, NodeStatus, ProvisionRequest
from skyplan.model.state import AttemptOutcome
from skyplan.runtime import Launcher, LaunchSpec, Lifecycle, node_jobs
from skyplan.state import Store
from tests.k8s.conftest import REAL, Kube, offer_of, small_offer

Provisioned = Callable[..., list[Node]]


def wait_for(probe: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {probe}")
        time.sleep(0.05)


# -- check --------------------------------------------------------------------------------------


def test_it_is_a_backend(kube: Kube) -> None:
    assert isinstance(kube.backend(), Backend)


def test_importing_the_backend_does_not_import_the_client() -> None:
    code = "import sys, skyplan.backends.kubernetes; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_check_reports_every_context(kube: Kube) -> None:
    check = kube.backend().check()
    assert check.ok, check
    assert check.backend == "kubernetes"
    for ctx in kube.contexts:
        assert any(line.startswith(f"{ctx}: reachable") for line in check.detail), check.detail


def test_check_without_a_kubeconfig_says_so(tmp_path: Path) -> None:
    check = KubernetesBackend(tmp_path, kubeconfig=str(tmp_path / "missing")).check()
    assert not check.ok
    assert "no kubeconfig contexts" in check.reason


def test_check_names_the_context_that_is_down(kube: Kube) -> None:
    kube.fake("ctx-b").close()
    check = kube.backend(request_timeout=2).check()
    assert check.ok
    assert check.reason == "1/2 context(s) reachable: ctx-a"
    assert any("reaching context ctx-b" in line for line in check.detail), check.detail


def test_check_names_refused_credentials(kube: Kube) -> None:
    kube.fake("ctx-a").refuse_auth()
    check = kube.backend().check()
    assert any("ctx-a" in d and "credentials refused (401)" in d for d in check.detail)


# -- offers -------------------------------------------------------------------------------------


def test_offers_are_well_formed(kube: Kube) -> None:
    offers = kube.backend().offers()
    assert offers, "a reachable cluster with free nodes offers something"
    for offer in offers:
        assert offer.cloud == "kubernetes"
        assert offer.region in kube.contexts
        assert offer.capacity is not None and offer.capacity >= 1
        assert re.fullmatch(r"[\d.]+cpu-[\d.]+gb(-[\w-]+x\d+)?(-arm64)?", offer.instance_type)


def test_offers_are_allocatable_minus_requests(kube: Kube) -> None:
    fake = kube.fake("ctx-a")
    fake.occupy("a-cpu-1", cpu="1", memory="2Gi")
    fake.occupy("a-cpu-2", cpu="3", memory="8Gi", phase="Succeeded")  # ended: holds nothing
    cpu = {o.instance_type: o.capacity for o in kube.backend().offers()
           if o.region == "ctx-a" and o.accelerator is None}  # fmt: skip
    # a-cpu-1 has 3 CPUs and 14 GiB left, a-cpu-2 all of its 4 and 16: the 3-CPU shape fits
    # once on each, the 4-CPU shape only on a-cpu-2.
    assert cpu == {"3cpu-14gb": 2, "4cpu-16gb": 1}


def test_gpu_node_labels_become_accelerator_names(kube: Kube) -> None:
    kube.fake("ctx-b")
    found = {
        (o.region, o.instance_type): (o.accelerator, o.accelerator_count, o.capacity)
        for o in kube.backend().offers()
    }
    assert found == {
        ("ctx-a", "4cpu-16gb"): (None, None, 2),
        ("ctx-a", "8cpu-32gb-A100x1"): ("A100", 1.0, 1),
        ("ctx-b", "4cpu-16gb"): (None, None, 1),  # b-cpu; b-l4 and tainted b-gpu offer no CPU
        ("ctx-b", "4cpu-16gb-A100x1"): ("A100", 1.0, 2),
        ("ctx-b", "8cpu-32gb-A100x2"): ("A100", 2.0, 1),
        ("ctx-b", "4cpu-16gb-L4x1"): ("L4", 1.0, 1),
    }


def test_a_configured_gpu_label_is_read(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    kube.fake("ctx-a").add_node("a-h100", gpus=8, labels={"example.com/gpu": "H100-80GB"})
    monkeypatch.setenv("SKYPLAN_K8S_GPU_LABEL", "example.com/gpu")
    names = {o.instance_type for o in kube.backend().offers() if o.accelerator == "H100"}
    # 4 CPUs, 16 GiB, 8 GPUs: one shape per GPU count, CPUs and memory in proportion.
    assert names == {"0.5cpu-2gb-H100x1", "1cpu-4gb-H100x2", "2cpu-8gb-H100x4", "4cpu-16gb-H100x8"}


def test_the_price_comes_from_the_environment(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYPLAN_K8S_PRICE", "0.25")
    assert {o.price for o in kube.backend().offers()} == {0.25}


@pytest.mark.parametrize(
    ("label", "memory_mib", "name"),
    [
        ("NVIDIA-A100-SXM4-80GB", None, "A100-80GB"),
        ("NVIDIA-A100-SXM4-40GB", None, "A100"),
        ("NVIDIA-A100-PCIE", 81920, "A100-80GB"),
        ("nvidia-tesla-a100", None, "A100"),
        ("nvidia-a100-80gb", None, "A100-80GB"),
        ("nvidia-l4", None, "L4"),
        ("nvidia-h100-80gb", None, "H100"),
        ("nvidia-h100-mega-80gb", None, "H100-MEGA"),
        ("Tesla-T4", None, "T4"),
        ("NVIDIA-GeForce-RTX-4090", None, "RTX4090"),
        ("NVIDIA-L40S", None, "L40S"),
        ("nvidia", None, None),
    ],
    ids=lambda v: str(v),
)
def test_gpu_label_values_map_to_catalog_names(
    label: str, memory_mib: float | None, name: str | None
) -> None:
    assert gpu_from_label(label, memory_mib) == name


# -- provisioning -------------------------------------------------------------------------------


def test_provision_makes_one_labelled_pod_per_rank(kube: Kube, provisioned: Provisioned) -> None:
    nodes = provisioned(2)
    ctx = kube.contexts[0]
    assert [n.rank for n in nodes] == [0, 1]
    for node in nodes:
        assert node.status == NodeStatus.RUNNING
        assert node.cloud == "kubernetes" and node.region == ctx
        assert node.ip and node.extra["context"] == ctx and node.extra["pod"] == node.node_id
        assert node.extra["root"].endswith("/.skyplan/node")
    pods = sorted(kube.pods(ctx, nodes[0].cluster), key=lambda p: p.metadata.name)
    assert [p.metadata.labels["skyplan.dev/rank"] for p in pods] == ["0", "1"]
    for pod in pods:
        assert pod.metadata.labels["skyplan.dev/cluster"] == nodes[0].cluster
        resources = pod.spec.containers[0].resources  # a real server rewrites 2**29 as 512Mi
        assert {k: parse_quantity(v) for k, v in resources.requests.items()} == {
            "cpu": Decimal("0.5"),
            "memory": 2**29,
        }
        assert {k: parse_quantity(v) for k, v in resources.limits.items()} == {"memory": 2**29}


def test_provision_is_idempotent(kube: Kube, provisioned: Provisioned) -> None:
    first = provisioned(2)
    cluster, ctx = first[0].cluster, kube.contexts[0]
    uids = {p.metadata.uid for p in kube.pods(ctx, cluster)}
    again = kube.backend().provision(ProvisionRequest(cluster=cluster, offer=small_offer(ctx, 2)))
    assert again == first
    assert {p.metadata.uid for p in kube.pods(ctx, cluster)} == uids


def test_provision_grows_a_cluster_keeping_its_pods(kube: Kube, provisioned: Provisioned) -> None:
    first = provisioned(1)
    cluster, ctx = first[0].cluster, kube.contexts[0]
    grown = kube.backend().provision(ProvisionRequest(cluster=cluster, offer=small_offer(ctx, 2)))
    assert [n.node_id for n in grown][:1] == [first[0].node_id]
    assert len(kube.pods(ctx, cluster)) == 2


def test_a_gpu_pod_asks_for_the_model_by_label(kube: Kube) -> None:
    fake = kube.fake("ctx-b")
    gpu = next(o for o in kube.backend().offers() if o.instance_type == "4cpu-16gb-A100x1")
    cluster = kube.cluster()
    kube.backend().provision(ProvisionRequest(cluster=cluster, offer=offer_of(gpu)))
    (pod,) = kube.pods("ctx-b", cluster)
    (term,) = (
        pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    )
    (expr,) = term.match_expressions
    assert (expr.key, expr.operator, expr.values) == (
        "cloud.google.com/gke-accelerator",
        "In",
        ["nvidia-tesla-a100"],
    )
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert [
        p["spec"]["nodeName"] for p in fake.pods() if p["metadata"]["name"] == pod.metadata.name
    ] == ["b-gpu"]


def test_nodes_and_owned_find_the_pods(kube: Kube, provisioned: Provisioned) -> None:
    nodes = provisioned(2)
    backend = kube.backend()
    assert backend.nodes(nodes[0].cluster) == nodes
    assert backend.owned()[nodes[0].cluster] == nodes
    assert backend.nodes("no-such-cluster") == []


# -- errors -------------------------------------------------------------------------------------


def test_an_unschedulable_pod_is_a_capacity_error_and_leaves_nothing(kube: Kube) -> None:
    ctx, cluster = kube.contexts[0], kube.cluster()
    huge = small_offer(ctx, 1, vcpus=10000.0, instance_type="10000cpu-0.5gb")
    with pytest.raises(CapacityError) as caught:
        kube.backend().provision(ProvisionRequest(cluster=cluster, offer=huge))
    assert caught.value.scope == Scope("kubernetes", ctx)
    assert "Insufficient cpu" in str(caught.value)
    assert kube.pods(ctx, cluster) == []


def test_too_many_gpus_is_a_capacity_error(kube: Kube) -> None:
    kube.fake("ctx-b")
    offer = small_offer("ctx-b", 2, accelerators={"A100": 2.0}, instance_type="x")
    cluster = kube.cluster()
    with pytest.raises(CapacityError, match=r"1 Insufficient nvidia.com/gpu"):
        kube.backend().provision(ProvisionRequest(cluster=cluster, offer=offer))
    assert kube.pods("ctx-b", cluster) == []


def test_a_gpu_model_no_node_has_is_a_capacity_error(kube: Kube) -> None:
    ctx = kube.contexts[0]
    offer = small_offer(ctx, accelerators={"NO-SUCH-GPU": 1.0})
    with pytest.raises(CapacityError, match="no node has NO-SUCH-GPU GPUs"):
        kube.backend().provision(ProvisionRequest(cluster=kube.cluster(), offer=offer))


def test_refused_credentials_are_an_auth_error(kube: Kube) -> None:
    kube.fake("ctx-a").refuse_auth()
    with pytest.raises(AuthError) as caught:
        kube.backend().provision(
            ProvisionRequest(cluster=kube.cluster(), offer=small_offer("ctx-a"))
        )
    assert caught.value.scope == Scope("kubernetes", "ctx-a")
    assert caught.value.code == "401"


def test_forbidden_is_an_auth_error(kube: Kube) -> None:
    kube.fake("ctx-a").forbid("/api/v1/namespaces/default/pods")
    with pytest.raises(AuthError, match=r"permission denied \(403\)"):
        kube.backend().provision(
            ProvisionRequest(cluster=kube.cluster(), offer=small_offer("ctx-a"))
        )


def test_server_errors_are_transient(kube: Kube) -> None:
    fake = kube.fake("ctx-a")
    cluster = kube.cluster()
    fake.fail_next(1)
    with pytest.raises(TransientError) as caught:
        kube.backend().provision(ProvisionRequest(cluster=cluster, offer=small_offer("ctx-a")))
    assert caught.value.scope == Scope("kubernetes", "ctx-a")
    nodes = kube.backend().provision(ProvisionRequest(cluster=cluster, offer=small_offer("ctx-a")))
    assert len(nodes) == 1


def test_a_failing_context_offers_nothing_and_the_others_still_do(kube: Kube) -> None:
    kube.fake("ctx-a").refuse_auth()
    assert {o.region for o in kube.backend().offers()} == {"ctx-b"}


def test_an_unknown_context_is_an_invalid_request(kube: Kube) -> None:
    with pytest.raises(InvalidRequestError, match="no kubeconfig context 'nope'"):
        kube.backend().provision(ProvisionRequest(cluster="x", offer=small_offer("nope")))


# -- the runner -----------------------------------------------------------------------------------


def test_the_runner_is_a_command_runner(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    assert isinstance(kube.backend().runner(node), CommandRunner)


@pytest.mark.parametrize(
    ("command", "code"),
    [("true", 0), ("false", 1), ("exit 7", 7), ("no-such-command", 127), ("kill -9 $$", 137)],
    ids=["zero", "one", "seven", "not-found", "killed"],
)
def test_exit_codes(kube: Kube, provisioned: Provisioned, command: str, code: int) -> None:
    (node,) = provisioned()
    assert kube.backend().runner(node).run(command).exit_code == code


def test_output_is_streamed_line_by_line_in_order(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    seen: list[tuple[float, str]] = []
    result = (
        kube.backend()
        .runner(node)
        .run(
            "for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.3; done; printf tail",
            sink=lambda line: seen.append((time.monotonic(), line)),
        )
    )
    assert result.exit_code == 0 and result.output == ""
    assert [line for _, line in seen] == [
        "out 1", "err 1", "out 2", "err 2", "out 3", "err 3", "tail"
    ]  # fmt: skip
    assert seen[-1][0] - seen[0][0] > 0.5, "lines arrive as they are printed, not at the end"


def test_output_is_kept_without_a_sink(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    result = kube.backend().runner(node).run("echo a; echo b >&2; printf 'ü\\n'")
    assert result.output == "a\nb\nü\n"


def test_env_and_cwd(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    runner = kube.backend().runner(node)
    assert runner.run("mkdir -p ~/w/sub").exit_code == 0
    result = runner.run(
        'echo "$GREETING|$OTHER"; pwd', env={"GREETING": "hi 'there'", "OTHER": "$x"}, cwd="~/w/sub"
    )
    home = runner.run('printf %s "$HOME"').output
    assert result.output == f"hi 'there'|$x\n{home}/w/sub\n"
    assert runner.run("true", cwd="~/missing").exit_code != 0


def test_a_command_past_its_timeout_is_stopped(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    runner = kube.backend().runner(node)
    start = time.monotonic()
    result = runner.run("echo started; sleep 30; echo never", timeout=1)
    assert result.timed_out and result.exit_code == TIMEOUT_EXIT
    assert result.output == "started\n"
    assert time.monotonic() - start < 8
    assert not runner.run("sleep 0.1", timeout=5).timed_out


def test_put_copies_a_tree_and_a_file(kube: Kube, provisioned: Provisioned, tmp_path: Path) -> None:
    (node,) = provisioned()
    runner = kube.backend().runner(node)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("A")
    (tree / "sub" / "b.sh").write_text("echo B")
    (tree / "sub" / "b.sh").chmod(0o755)
    (tree / "big.bin").write_bytes(bytes(range(256)) * 4096)
    runner.put(tree, "~/sky_workdir")
    runner.put(tree / "a.txt", "~/deep/er/copy.txt")
    result = runner.run(
        "cd ~/sky_workdir && cat a.txt && ./sub/b.sh && wc -c < big.bin && cat ~/deep/er/copy.txt"
    )
    assert result.output == f"AB\n{256 * 4096}\nA"
    (tmp_path / "c.txt").write_text("C")
    runner.put(tmp_path / "c.txt", "~/sky_workdir")  # a file onto a directory lands inside it
    assert runner.run("cat ~/sky_workdir/c.txt").output == "C"


def test_put_leaves_out_what_skip_names(
    kube: Kube, provisioned: Provisioned, tmp_path: Path
) -> None:
    (node,) = provisioned()
    runner = kube.backend().runner(node)
    tree = tmp_path / "tree"
    (tree / "venv" / "lib").mkdir(parents=True)
    (tree / "venv" / "lib" / "big.so").write_text("binary")
    (tree / "keep.py").write_text("kept")
    (tree / "out.log").write_text("log")
    runner.put(tree, "~/skipped", lambda path: path in ("venv/", "out.log"))
    assert runner.run("cd ~/skipped && ls -A").output.split() == ["keep.py"]


def test_a_runner_for_a_deleted_pod_is_transient(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    backend = kube.backend()
    backend.terminate(node.cluster)
    wait_for(lambda: not kube.pods(node.region, node.cluster, deleting=True), timeout=60)
    with pytest.raises(TransientError):
        backend.runner(node).run("true")


def test_runner_errors_are_auth_or_transient(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    fake = kube.fake(node.region)
    runner = kube.backend().runner(node)
    fake.fail_next(1)
    with pytest.raises(TransientError):
        runner.run("true")
    fake.refuse_auth()
    with pytest.raises(AuthError, match=r"\(401\)"):
        runner.run("true")
    fake.heal()
    assert runner.run("true").exit_code == 0


# -- jobs through node_jobs ----------------------------------------------------------------------


def test_a_detached_job_runs_and_is_polled_to_completion(
    kube: Kube, provisioned: Provisioned
) -> None:
    (node,) = provisioned()
    runner, root = kube.backend().runner(node), node.extra["root"]
    node_jobs.write_job(
        runner, root, 1, 'echo "$GREETING $TOKEN $SKYPILOT_NODE_RANK"; sleep 0.5; exit 3',
        {"GREETING": "hello"}, {"TOKEN": "s3cret"},
    )  # fmt: skip
    started = runner.run(node_jobs.start_script(root, 1, {"SKYPILOT_NODE_RANK": "0"}), timeout=30)
    assert started.exit_code == 0, started.output
    assert node_jobs.parse_poll(runner.run(node_jobs.poll_script(root, [1])).output) == {
        1: "running"
    }

    def ended() -> object:
        return node_jobs.parse_poll(runner.run(node_jobs.poll_script(root, [1])).output)[1] == 3

    wait_for(ended)
    lines: list[str] = []
    node_jobs.stream_log(runner, root, 1, True, lines.append)
    assert lines == ["hello s3cret 0"]
    assert runner.run(f"test -e {root}/jobs/1/secrets").exit_code == 1


def test_a_detached_job_can_be_killed(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    runner, root = kube.backend().runner(node), node.extra["root"]
    node_jobs.write_job(runner, root, 2, "sleep 60", {}, {})
    assert runner.run(node_jobs.start_script(root, 2, {}), timeout=30).exit_code == 0
    runner.run(node_jobs.kill_script(root, 2), timeout=30)
    wait_for(
        lambda: (
            node_jobs.parse_poll(runner.run(node_jobs.poll_script(root, [2])).output)[2]
            != "running"
        )
    )


# -- failover, teardown, stop --------------------------------------------------------------------


def test_failover_moves_to_the_next_context(kube: Kube, tmp_path: Path) -> None:
    """ctx-a's only GPU is taken after the offers were read, so the planner tries ctx-a first
    (equal price; ties go by region), gets Unschedulable, blocks ctx-a and lands on ctx-b."""
    fake_a = kube.fake("ctx-a")
    backend = kube.backend()
    offers = list(backend.offers())
    fake_a.occupy("a-gpu", gpus=1)
    catalog = load_catalog()
    setup = "echo set up on $SKYPILOT_SETUP_NODE_RANK"
    task = Task.model_validate(
        {"resources": {"accelerators": "A100:1"}, "setup": setup, "workdir": str(tmp_path / "wd")}
    )
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "hello.txt").write_text("hi")

    def planner(blocked: frozenset[Scope]) -> Offer:
        candidates = launch_catalog(catalog, [], offers, blocked)
        return api.plan(task, catalog=candidates).placements[0].choice

    said: list[str] = []
    out: list[str] = []
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        launcher = Launcher(store, lambda _: backend, say=said.append, sink=out.append)
        cluster = kube.cluster("fo")
        record = launcher.launch(
            LaunchSpec(cluster=cluster, task=task, base_dir=tmp_path), planner, lambda _: None
        )
        assert record.region == "ctx-b"
        attempts = store.attempts(cluster)
        assert [(a.region, a.outcome) for a in attempts] == [
            ("ctx-a", AttemptOutcome.CAPACITY),
            ("ctx-b", AttemptOutcome.OK),
        ]
        assert "Insufficient nvidia.com/gpu" in (attempts[0].message or "")
        assert kube.pods("ctx-a", cluster) == []
        (node,) = store.nodes(cluster)
        assert out == ["(setup) set up on 0"]
        assert backend.runner(node).run("cat ~/sky_workdir/hello.txt").output == "hi"
        Lifecycle(store, lambda _: backend).down(cluster)
        assert cluster not in backend.owned()


def test_terminate_deletes_every_pod_and_is_idempotent(
    kube: Kube, provisioned: Provisioned
) -> None:
    nodes = provisioned(2)
    backend = kube.backend()
    backend.terminate(nodes[0].cluster)
    backend.terminate(nodes[0].cluster)
    wait_for(lambda: nodes[0].cluster not in backend.owned(), timeout=30)
    backend.terminate("never-existed")


def test_pods_cannot_be_stopped(kube: Kube, provisioned: Provisioned) -> None:
    (node,) = provisioned()
    backend = kube.backend()
    for action in (backend.stop, backend.start):
        with pytest.raises(
            InvalidRequestError, match="Kubernetes cannot stop a pod; use `skyplan down`"
        ):
            action(node.cluster)
    assert backend.nodes(node.cluster)[0].status == NodeStatus.RUNNING
    caps = backend.capabilities
    for missing in (Capability.STOP, Capability.AUTOSTOP, Capability.SPOT):
        assert not caps.supports(missing) and caps.why_not(missing)
    assert "--down" in (caps.why_not(Capability.AUTOSTOP) or "")
    assert caps.supports(Capability.MULTI_NODE) and caps.supports(Capability.ACCELERATORS)


# -- through a Session --------------------------------------------------------------------------


def test_a_session_launches_and_runs_on_a_context(
    kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = kube.contexts[0]
    monkeypatch.setenv("KUBECONFIG", kube.kubeconfig)
    monkeypatch.setenv("SKYPLAN_K8S_CONTEXTS", ",".join(kube.contexts))
    monkeypatch.setitem(
        BACKENDS._items, "kubernetes", lambda s: KubernetesBackend(s.home, poll_interval=0.1)
    )
    task = Task.model_validate(
        {"resources": {"infra": f"k8s/{ctx}", "cpus": "1+"}, "num_nodes": 2,
         "run": 'echo "hello from $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES"'}
    )  # fmt: skip
    cluster = kube.cluster("sess")
    lines: list[str] = []
    with Session(home=tmp_path / "session") as session:
        result = session.launch(task, cluster=cluster, start_agent=False)
        assert result.job is not None
        session.logs(cluster, result.job.job_id, follow=True, sink=lines.append)
        assert sorted(lines) == ["(rank=0) hello from 0 of 2", "(rank=1) hello from 1 of 2"]
        job = session.exec_command(cluster, "echo again on $SKYPILOT_NODE_RANK", start_agent=False)
        lines.clear()
        assert session.logs(cluster, job.job_id, sink=lines.append).status.value == "succeeded"
        assert lines == ["again on 0"]  # a bare command runs on one node, as `sky exec` does
        with pytest.raises(InvalidRequestError, match="cannot stop a pod"):
            session.stop(cluster)
        with pytest.raises(InvalidRequestError, match="--down"):
            session.autostop(cluster, 10)
        session.autostop(cluster, 10, down=True)
        (view,) = session.status([cluster])
        assert view.record.autostop_down
        session.down(cluster)
    assert view.record.cloud == "kubernetes" and view.record.region == ctx
    assert not REAL or cluster not in KubernetesBackend(tmp_path).owned()
