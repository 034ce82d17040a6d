"""A managed job on FAKE AWS (moto's EC2 server over HTTP) whose spot instance is terminated
behind skyplan's back: the controller sees a preemption and eager-next-region relaunches it in
the other region; nothing is left running.

moto boots no VM, so this test's backend is the real `Ec2Backend` with one change, labelled:
its runner runs each node's commands as local processes in a directory of that node (the
`LocalRunner`), so the run has somewhere to execute. Provisioning, listing, tagging,
termination and the preemption itself all go through EC2's API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skyplan.backends.ec2 import CLUSTER_TAG, Ec2Backend
from skyplan.backends.local import LocalRunner
from skyplan.model import Task
from skyplan.model.managed import ManagedJobRecord, ManagedJobStatus, managed_cluster
from skyplan.model.node import Node
from skyplan.runtime.managed import ControllerSettings, ManagedJobController
from skyplan.state import Store
from tests.backends.test_ec2 import CREDS, EAST, WEST, Observer, make_offer
from tests.runtime.conftest import wait_until
from tests.runtime.faulty import target_planner
from tests.services.moto_server import MotoServer, moto_server


class Ec2WithLocalRunner(Ec2Backend):
    """TEST DOUBLE for the VM only: the real EC2 backend, commands run on this machine."""

    def __init__(self, scratch: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scratch = scratch

    def runner(self, node: Node) -> LocalRunner:  # type: ignore[override]
        root = self.scratch / node.node_id
        root.mkdir(parents=True, exist_ok=True)
        return LocalRunner(root)

    def nodes(self, cluster: str) -> list[Node]:
        found = super().nodes(cluster)
        return [n.model_copy(update={"extra": {**n.extra, "root": str(self.scratch / n.node_id)}})
                for n in found]  # fmt: skip

    def provision(self, request: Any) -> list[Node]:
        return [
            n.model_copy(update={"extra": {**n.extra, "root": str(self.scratch / n.node_id)}})
            for n in super().provision(request)
        ]


SPOT = [
    make_offer(EAST, "us-east-1a", spot=True, cost=0.3),
    make_offer(WEST, "us-west-2a", spot=True, cost=0.4),
]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, tmp_path: Path) -> Iterator[Ec2Backend]:
    moto.reset()
    backend = Ec2WithLocalRunner(
        tmp_path / "vms",
        tmp_path / "home",
        endpoint=moto.endpoint,
        environ=CREDS,
        poll_interval=0.01,
        wait_timeout=5,
    )
    try:
        yield backend
    finally:
        backend.close()


def test_a_terminated_spot_instance_is_a_preemption_and_the_job_moves_region(
    aws: Ec2Backend,
    moto: MotoServer,
    tmp_path: Path,
) -> None:
    seen = Observer(moto.endpoint)
    now = datetime.now(UTC)
    task = Task.model_validate({"run": "echo started; sleep 3", "resources": {"use_spot": True}})
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        job = store.managed.submit(
            ManagedJobRecord(
                job_id=0,
                tasks=[task.model_dump(mode="json", exclude_defaults=True)],
                strategy="eager-next-region",
                base_dir=str(tmp_path),
                submitted_at=now,
                updated_at=now,
            )
        )
        controller = ManagedJobController(
            store,
            {"aws": aws}.__getitem__,
            target_planner(SPOT),
            lambda _j: {},
            settings=ControllerSettings(poll=0.1, tick=1.0),
        )
        try:

            def status() -> ManagedJobStatus:
                controller.pass_once()
                return store.managed.require(job.job_id).status

            wait_until(lambda: status() == ManagedJobStatus.RUNNING, timeout=30)
            (instance,) = seen.tagged(EAST)
            assert instance.extra["tags"][CLUSTER_TAG] == managed_cluster(job.job_id)
            seen.drivers[EAST].destroy_node(instance)  # the cloud reclaims it

            wait_until(lambda: status().done, timeout=60, what="the job to end")
            wait_until(lambda: not controller._in_flight(), what="the controller to go idle")
        finally:
            controller.close()
        final = store.managed.require(job.job_id)
        segments = store.managed.segments(job.job_id)
    assert (final.status, final.recoveries) == (ManagedJobStatus.SUCCEEDED, 1)
    assert [(s.region, s.spot, s.outcome) for s in segments] == [
        (EAST, True, "preempted"),
        (WEST, True, "succeeded"),
    ]
    assert seen.left() == {}
    seen.close()
