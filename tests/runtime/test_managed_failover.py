"""Where a managed job goes after a preemption, and what happens when nowhere will take it:
the real controller and strategies over `FaultyBackend` (a TEST DOUBLE cloud in memory whose
provisioning fails on cue; commands run as local processes), with a planner over its offers
that honours the strategy's target (spot, exclude, prefer) the way `session.jobs.plan` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skyplan.errors import Scope
from skyplan.model import Offer, Task
from skyplan.model.managed import ManagedJobRecord, ManagedJobStatus, managed_cluster
from skyplan.runtime.managed import ControllerSettings, ManagedJobController, ManagedPlanner
from skyplan.runtime.recovery import (
    Decision,
    Keep,
    Launch,
    RecoveryView,
    Target,
    Trigger,
)
from skyplan.runtime.strategies import eager
from skyplan.state import Store
from skyplan.state.managed import ManagedJobTable
from tests.runtime.conftest import registered, wait_until
from tests.runtime.faulty import Fault, FaultyBackend, offers, target_planner

S = ManagedJobStatus


class World:
    def __init__(self, tmp_path: Path, faults: dict[str, Any] | None = None) -> None:
        self.cloud = FaultyBackend("fake", tmp_path / "cloud", faults)
        self.store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
        self.tmp = tmp_path
        self.controller = ManagedJobController(
            self.store,
            {"fake": self.cloud}.__getitem__,
            target_planner([o for o in offers() if o.cloud == "fake"]),
            lambda _j: {},
            settings=ControllerSettings(poll=0.05, tick=0.5),
        )

    def submit(self, run: str, strategy: str = "eager-next-region", **fields: Any) -> int:
        now = datetime.now(UTC)
        task = Task.model_validate({"run": run})
        job = self.store.managed.submit(
            ManagedJobRecord(
                job_id=0,
                tasks=[task.model_dump(mode="json", exclude_defaults=True)],
                strategy=strategy,
                base_dir=str(self.tmp),
                submitted_at=now,
                updated_at=now,
                **fields,
            )
        )
        return job.job_id

    def until(
        self, job_id: int, *statuses: ManagedJobStatus, recoveries: int = 0
    ) -> ManagedJobRecord:
        def probe() -> bool:
            self.controller.pass_once()
            job = self.store.managed.require(job_id)
            return job.status in statuses and job.recoveries >= recoveries

        wait_until(probe, timeout=20, what=f"job {job_id} to be {statuses}")
        wait_until(lambda: not self.controller._in_flight(), what="the controller to go idle")
        return self.store.managed.require(job_id)

    def reclaim(self, job_id: int) -> None:
        """The cloud takes the job's nodes back (its processes die with them)."""
        cluster = managed_cluster(job_id)
        for node in self.cloud.nodes(cluster):
            self.cloud.runner(node).run(f"pkill -f {self.tmp} || true")
        self.cloud.terminate(cluster)

    def places(self, job_id: int) -> list[tuple[str, str | None, str | None]]:
        return [(s.region, s.zone, s.outcome) for s in self.store.managed.segments(job_id)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.controller.close()
    made.store.close()


def gated(world: World) -> tuple[str, Path]:
    go = world.tmp / "go"
    return f"until [ -f {go} ]; do sleep 0.05; done # {world.tmp}", go


@pytest.mark.parametrize(
    ("strategy", "second"),
    [
        pytest.param("eager-next-region", ("r2", "r2a"), id="eager-leaves-the-preempted-region"),
        pytest.param("failover", ("r1", "r1a"), id="failover-stays-in-the-region"),
    ],
)
def test_after_a_preemption_the_strategy_decides_the_region(
    world: World, strategy: str, second: tuple[str, str]
) -> None:
    run, go = gated(world)
    job_id = world.submit(run, strategy)
    world.until(job_id, S.RUNNING)

    world.reclaim(job_id)
    world.until(job_id, S.RUNNING, recoveries=1)
    # r1 is cheapest and has room again; only eager-next-region refuses to go back.
    assert world.places(job_id) == [("r1", "r1a", "preempted"), (*second, None)]
    go.touch()
    assert world.until(job_id, S.SUCCEEDED).recoveries == 1
    assert world.cloud.owned() == {}


def test_nothing_anywhere_at_the_first_launch_is_failed_no_resource(tmp_path: Path) -> None:
    world = World(tmp_path, {"r1": Fault("capacity"), "r2": Fault("capacity")})
    try:
        job_id = world.submit("echo never")
        job = world.until(job_id, S.FAILED_NO_RESOURCE)
        assert "every place failed" in job.message
        assert world.cloud.owned() == {} and world.store.clusters() == []
    finally:
        world.controller.close()
        world.store.close()


def test_eager_widens_to_the_preempted_region_when_nothing_else_has_room(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    try:
        run, go = gated(world)
        job_id = world.submit(run)
        world.until(job_id, S.RUNNING)
        world.cloud.faults["r2"] = [Fault("capacity")]

        world.reclaim(job_id)
        world.until(job_id, S.RUNNING, recoveries=1)
        assert world.places(job_id) == [("r1", "r1a", "preempted"), ("r1", "r1a", None)]
        notes = [e.reason for e in world.store.managed.events(job_id)]
        assert any("nothing outside the preempted region: widening" in n for n in notes)
        go.touch()
        world.until(job_id, S.SUCCEEDED)
    finally:
        world.controller.close()
        world.store.close()


def test_when_every_place_refuses_a_recovery_it_waits_then_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eager, "backoff", lambda attempt, **_kw: 0.2)
    world = World(tmp_path)
    try:
        run, go = gated(world)
        job_id = world.submit(run)
        world.until(job_id, S.RUNNING)
        # Refused outside r1, then everywhere once widened (r1a, r1b, r2a), then room again.
        world.cloud.faults = {
            "r1": [Fault("capacity", times=2)],
            "r2": [Fault("capacity", times=2)],
        }

        world.reclaim(job_id)
        job = world.until(job_id, S.RUNNING, recoveries=1)
        assert job.no_place == 0 and job.status == S.RUNNING
        notes = [e.reason for e in world.store.managed.events(job_id)]
        assert any("wait 0s: nowhere to run" in n for n in notes), "\n".join(notes)
        assert world.places(job_id) == [("r1", "r1a", "preempted"), ("r1", "r1a", None)]
        go.touch()
        assert world.until(job_id, S.SUCCEEDED).recoveries == 1
        assert world.cloud.owned() == {}
    finally:
        world.controller.close()
        world.store.close()


# -- a switch that keeps the job running (make before break) -----------------------------------


class TrySpotBeside:
    """TEST STRATEGY: on demand first; while on demand, at every tick, try spot beside it."""

    name = "test-try-spot-beside"

    def decide(self, view: RecoveryView) -> Decision:
        if view.running is None:
            return Launch(Target(spot=False, reason="on demand first"))
        if view.trigger == Trigger.TICK and not view.running.spot:
            return Launch(Target(spot=True, keep_running=True, reason="trying spot"))
        return Keep()


def spot_planner() -> ManagedPlanner:
    """`target_planner` over the fake cloud's offers, each on demand and as spot (cheaper),
    keeping only the kind the target asks for."""
    choices = [o for o in offers() if o.cloud == "fake"]
    choices += [
        o.model_copy(update={"spot": True, "hourly_cost": o.hourly_cost / 3}) for o in choices
    ]

    def plan(job: Any, task: Any, target: Target, blocked: frozenset[Scope]) -> Offer:
        kind = [o for o in choices if target.spot is None or o.spot == target.spot]
        return target_planner(kind)(job, task, target, blocked)

    return plan


@pytest.fixture
def beside(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    made.controller.planner = spot_planner()
    with registered(TrySpotBeside()):
        yield made
    made.controller.close()
    made.store.close()


def notes(world: World, job_id: int) -> list[str]:
    return [e.reason for e in world.store.managed.events(job_id)]


def spots(world: World, job_id: int) -> list[tuple[bool, str | None]]:
    return [(s.spot, s.outcome) for s in world.store.managed.segments(job_id)]


def test_a_switch_that_finds_no_place_leaves_the_job_running_where_it_is(beside: World) -> None:
    run, go = gated(beside)
    job_id = beside.submit(run, TrySpotBeside.name)
    beside.until(job_id, S.RUNNING)
    beside.cloud.faults = {"r1": [Fault("capacity")], "r2": [Fault("capacity")]}

    wait_until(
        lambda: (
            beside.controller.pass_once() >= 0
            and sum("switch not made" in n for n in notes(beside, job_id)) >= 2
        ),
        timeout=20,
        what="two switches that found no place",
    )
    wait_until(lambda: not beside.controller._in_flight(), what="the controller to go idle")
    job = beside.store.managed.require(job_id)
    assert (job.status, job.slot, job.recoveries) == (S.RUNNING, 0, 0)
    assert spots(beside, job_id) == [(False, None)]  # the on-demand run never stopped
    assert set(beside.cloud.owned()) == {managed_cluster(job_id)}
    assert [c.name for c in beside.store.clusters()] == [managed_cluster(job_id)]

    beside.cloud.faults = {}
    job = beside.until(job_id, S.RUNNING)
    wait_until(
        lambda: beside.controller.pass_once() >= 0 and len(spots(beside, job_id)) == 2,
        timeout=20,
        what="the switch to spot",
    )
    job = beside.until(job_id, S.RUNNING)
    assert spots(beside, job_id) == [(False, "switched"), (True, None)]
    assert job.slot == 1 and set(beside.cloud.owned()) == {managed_cluster(job_id, 0, 1)}
    assert [c.name for c in beside.store.clusters()] == [managed_cluster(job_id, 0, 1)]
    go.touch()
    assert beside.until(job_id, S.SUCCEEDED).exit_code == 0
    assert beside.cloud.owned() == {} and beside.store.clusters() == []


class Died(BaseException):
    """The controller's death, at a chosen point (not an Exception: nothing catches it)."""


@pytest.mark.parametrize(
    "point",
    [
        pytest.param("before-the-move", id="new-cluster-up-move-not-recorded"),
        pytest.param("after-the-move", id="move-recorded-old-cluster-not-down"),
    ],
)
def test_a_controller_that_dies_mid_switch_leaves_one_cluster_and_the_job_running(
    beside: World, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    run, go = gated(beside)
    job_id = beside.submit(run, TrySpotBeside.name)
    beside.until(job_id, S.RUNNING)
    dying = beside.controller
    if point == "before-the-move":
        original = ManagedJobTable.close_segment

        def close_segment(table: ManagedJobTable, job: int, outcome: str, at: Any = None) -> None:
            if outcome == "switched":
                raise Died
            original(table, job, outcome, at)

        monkeypatch.setattr(ManagedJobTable, "close_segment", close_segment)
    else:
        down = dying._down_if_there

        def down_if_there(cluster: str, why: str) -> None:
            if why == "the managed job moved":
                raise Died
            down(cluster, why)

        monkeypatch.setattr(dying, "_down_if_there", down_if_there)
    with pytest.raises(Died):  # the first tick tries spot: this thread dies in the switch
        for _ in range(200):
            dying.step(job_id)
            time.sleep(0.05)
    assert len(beside.cloud.owned()) == 2  # both slots are up at the moment of death
    monkeypatch.undo()
    dying.close()

    beside.controller = ManagedJobController(
        beside.store,
        {"fake": beside.cloud}.__getitem__,
        spot_planner(),
        lambda _j: {},
        settings=ControllerSettings(poll=0.05, tick=60),  # no further switch during the test
    )
    job = beside.until(job_id, S.RUNNING)
    wait_until(lambda: len(beside.cloud.owned()) == 1, what="the interrupted switch's leftover")
    slot = 0 if point == "before-the-move" else 1
    assert job.slot == slot
    assert set(beside.cloud.owned()) == {managed_cluster(job_id, 0, slot)}
    assert [c.name for c in beside.store.clusters()] == [managed_cluster(job_id, 0, slot)]
    go.touch()
    assert beside.until(job_id, S.SUCCEEDED).exit_code == 0
    assert beside.cloud.owned() == {} and beside.store.clusters() == []
