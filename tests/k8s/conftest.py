"""Fixtures for the Kubernetes backend's contract tests: two contexts, on two FAKE API servers
(`fake_apiserver`) by default, or on a real cluster with `SKYPLAN_REAL_K8S=1` and a
`KUBECONFIG` (then the contexts are `$SKYPLAN_K8S_CONTEXTS`, else the current one, and tests
that need to stage faults are skipped).

The fake topology, made to exercise capacity discovery and failover:

    ctx-a   a-cpu-1, a-cpu-2    4 CPUs, 16 GiB each, no GPUs
            a-gpu               8 CPUs, 32 GiB, 1x A100 (label nvidia.com/gpu.product)
    ctx-b   b-cpu               4 CPUs, 16 GiB
            b-gpu               8 CPUs, 32 GiB, 2x A100 (GKE label), tainted nvidia.com/gpu
            b-l4                4 CPUs, 16 GiB, 1x L4 (label nvidia.com/gpu.product)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from skyplan.backends.kubernetes import KubernetesBackend
from skyplan.model import Offer
from skyplan.model.node import Node, PoolOffer, ProvisionRequest
from tests.k8s.fake_apiserver import FakeApiServer, fake_servers, kubeconfig

REAL = os.environ.get("SKYPLAN_REAL_K8S") == "1"
CONTEXTS = ("ctx-a", "ctx-b")
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def real_contexts() -> list[str]:
    from kubernetes import config

    wanted = [c for c in os.environ.get("SKYPLAN_K8S_CONTEXTS", "").split(",") if c]
    if wanted:
        return wanted
    _, current = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    return [current["name"]]


@dataclass
class Kube:
    """Where the contract tests run: a kubeconfig, its contexts, and (on the fake) the servers."""

    kubeconfig: str
    contexts: list[str]
    home: Path
    fakes: dict[str, FakeApiServer] = field(default_factory=dict)
    backends: list[KubernetesBackend] = field(default_factory=list)
    clusters: set[str] = field(default_factory=set)

    def backend(self, **kw: Any) -> KubernetesBackend:
        options: dict[str, Any] = {
            "kubeconfig": self.kubeconfig,
            "contexts": self.contexts,
            "poll_interval": 0.05 if self.fakes else 1.0,
            "provision_timeout": 20.0 if self.fakes else 300.0,
        }
        options.update(kw)
        backend = KubernetesBackend(self.home, **options)
        self.backends.append(backend)
        return backend

    def fake(self, context: str | None = None) -> FakeApiServer:
        """The fake server behind `context` (the first one by default); skips on a real
        cluster, where faults cannot be staged."""
        if not self.fakes:
            pytest.skip("needs the fake API server to stage this (a real cluster is in use)")
        return self.fakes[context or self.contexts[0]]

    def cluster(self, prefix: str = "t") -> str:
        """A cluster name unique to this run; torn down after the test."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.clusters.add(name)
        return name

    def pods(self, context: str, cluster: str, *, deleting: bool = False) -> list[Any]:
        """The cluster's pods as the official client sees them (V1Pod), on fake or real;
        those being deleted only with `deleting`."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            self.kubeconfig, context, client_configuration=cfg, persist_config=False
        )
        namespace = self.backend().contexts()[context]
        with client.ApiClient(cfg) as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(
                namespace, label_selector="skyplan.dev/cluster"
            )
        return [
            p
            for p in pods.items
            if (p.metadata.annotations or {}).get("skyplan.dev/cluster-name") == cluster
            and (deleting or not p.metadata.deletion_timestamp)
        ]


def offer_of(pool: PoolOffer, num_nodes: int = 1) -> Offer:
    """The `Offer` the planner makes of a pool offer."""
    return Offer(
        cloud=pool.cloud,
        region=pool.region,
        zone=None,
        instance_type=pool.instance_type,
        accelerators={pool.accelerator: pool.accelerator_count or 1} if pool.accelerator else None,
        spot=False,
        num_nodes=num_nodes,
        hourly_cost=pool.price * num_nodes,
        vcpus=pool.vcpus,
        memory_gib=pool.memory_gib,
    )


def small_offer(context: str, num_nodes: int = 1, **kw: Any) -> Offer:
    """Half a CPU and half a GiB per pod: fits anywhere, fake or real."""
    fields: dict[str, Any] = {
        "cloud": "kubernetes",
        "region": context,
        "zone": None,
        "instance_type": "0.5cpu-0.5gb",
        "accelerators": None,
        "spot": False,
        "num_nodes": num_nodes,
        "hourly_cost": 0.0,
        "vcpus": 0.5,
        "memory_gib": 0.5,
    }
    fields.update(kw)
    return Offer(**fields)


def _stage(servers: dict[str, FakeApiServer]) -> None:
    a, b = servers["ctx-a"], servers["ctx-b"]
    a.add_node("a-cpu-1")
    a.add_node("a-cpu-2")
    a.add_node(
        "a-gpu", cpu="8", memory="32Gi", gpus=1,
        labels={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
    )  # fmt: skip
    b.add_node("b-cpu")
    b.add_node(
        "b-gpu", cpu="8", memory="32Gi", gpus=2,
        labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}, taints=[GPU_TAINT],
    )  # fmt: skip
    b.add_node("b-l4", gpus=1, labels={"nvidia.com/gpu.product": "NVIDIA-L4"})


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kube]:
    for name in ("SKYPLAN_K8S_GPU_LABEL", "SKYPLAN_K8S_PRICE", "SKYPLAN_K8S_NAMESPACE"):
        if not REAL:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    if REAL:
        if not os.environ.get("KUBECONFIG"):
            pytest.fail("SKYPLAN_REAL_K8S=1 needs KUBECONFIG")
        env = Kube(os.environ["KUBECONFIG"], real_contexts(), home)
        yield env
        _teardown(env)
        return
    with fake_servers(tmp_path / "pods", list(CONTEXTS), token="t0ken") as servers:
        _stage(servers)
        path = tmp_path / "kubeconfig"
        path.write_text(kubeconfig(servers))
        env = Kube(str(path), list(CONTEXTS), home, fakes=servers)
        yield env
        _teardown(env)


def _teardown(env: Kube) -> None:
    for fake in env.fakes.values():
        fake.heal()
    backend = env.backend()
    for cluster in env.clusters:
        backend.terminate(cluster)


@pytest.fixture
def provisioned(kube: Kube) -> Callable[..., list[Node]]:
    """Provision a small CPU cluster in the first context: `provisioned(num_nodes=1)`."""

    def make(num_nodes: int = 1, **kw: Any) -> list[Node]:
        cluster = kube.cluster()
        offer = small_offer(kube.contexts[0], num_nodes, **kw)
        return kube.backend().provision(ProvisionRequest(cluster=cluster, offer=offer))

    return make
