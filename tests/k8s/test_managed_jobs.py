"""A managed job on Kubernetes whose pod is deleted behind skyplan's back: the controller sees
a preemption (not a failure), and eager-next-region relaunches it in the *other* context.

Runs on the labelled FAKE API server by default and, like the contract tests, against a real
cluster with `SKYPLAN_REAL_K8S=1` (then it needs two contexts in `$SKYPLAN_K8S_CONTEXTS`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skyplan.backends import BACKENDS
from skyplan.backends.kubernetes import KubernetesBackend
from skyplan.execution.session import Session
from skyplan.model import Task
from skyplan.model.managed import ManagedJobStatus, managed_cluster
from skyplan.runtime.managed import ControllerSettings
from tests.k8s.conftest import Kube
from tests.runtime.conftest import wait_until


def delete_pod(kube: Kube, context: str, name: str, namespace: str) -> None:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        kube.kubeconfig, context, client_configuration=cfg, persist_config=False
    )
    with client.ApiClient(cfg) as api:
        client.CoreV1Api(api).delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_a_deleted_pod_is_a_preemption_and_the_job_moves_to_the_other_context(
    kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if len(kube.contexts) < 2:
        pytest.skip("needs two contexts")
    monkeypatch.setenv("KUBECONFIG", kube.kubeconfig)
    monkeypatch.setenv("SKYPLAN_K8S_CONTEXTS", ",".join(kube.contexts))
    monkeypatch.setitem(
        BACKENDS._items, "kubernetes", lambda s: KubernetesBackend(s.home, poll_interval=0.1)
    )
    # Long enough to be preempted while it runs; the run after the recovery finishes.
    task = Task.model_validate(
        {"resources": {"infra": "k8s", "cpus": "1+"}, "run": "echo started; sleep 4"}
    )
    with Session(home=tmp_path / "session") as session:
        job_id = session.jobs.launch(task, start_controller=False)
        cluster = managed_cluster(job_id)
        kube.clusters.add(cluster)
        controller = session.jobs.controller(ControllerSettings(poll=0.2, tick=1.0))
        try:

            def running() -> bool:
                controller.pass_once()
                return session.jobs.get(job_id).status == ManagedJobStatus.RUNNING

            wait_until(running, timeout=60, what="the job to run")
            (first,) = session.store.nodes(cluster)
            delete_pod(kube, first.extra["context"], first.extra["pod"], first.extra["namespace"])

            def done() -> bool:
                controller.pass_once()
                return session.jobs.get(job_id).status.done

            wait_until(done, timeout=90, what="the job to end")
            wait_until(lambda: not controller._in_flight(), what="the controller to go idle")
        finally:
            controller.close()
        job = session.jobs.get(job_id)
        segments = session.store.managed.segments(job_id)

    assert (job.status, job.recoveries, job.restarts) == (ManagedJobStatus.SUCCEEDED, 1, 0)
    assert [s.outcome for s in segments] == ["preempted", "succeeded"]
    first_ctx, second_ctx = (s.region for s in segments)
    assert first_ctx == first.extra["context"] and second_ctx != first_ctx
    assert cluster not in KubernetesBackend(tmp_path).owned()
