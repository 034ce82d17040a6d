"""Replay invariants: the deadline strategies meet every feasible deadline, nothing beats the
omniscient optimum, all-on-demand costs exactly its run, skipping quiet ticks changes nothing."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.errors import InputError
from skyplan.runtime.recovery import Decision, Keep, Launch, RecoveryView, Target, Trigger, Wait
from skyplan.sim import (
    JobSpec,
    load_traces,
    optimum_costs,
    replay,
    replay_many,
    shape_groups,
    start_ticks,
)
from tests.conftest import SHARED, require_shared
from tests.sim.conftest import TINY, make_trace


@dataclass(frozen=True)
class OnDemandOnly:
    name: str = "test-on-demand"

    def decide(self, view: RecoveryView) -> Decision:
        return Launch(Target(spot=False)) if view.running is None else Keep()


@dataclass(frozen=True)
class AlwaysSpot:
    """Asks for spot again at once after every failure: a looping strategy."""

    name: str = "test-always-spot"

    def decide(self, view: RecoveryView) -> Decision:
        return Keep() if view.running is not None else Launch(Target(spot=True))


@dataclass(frozen=True)
class SpotWithWaits:
    name: str = "test-spot-waits"

    def decide(self, view: RecoveryView) -> Decision:
        if view.trigger == Trigger.NO_PLACE:
            return Wait(1800)
        return Keep() if view.running is not None else Launch(Target(spot=True))


@dataclass(frozen=True)
class OnDemandThenSpot:
    """On demand first; from the first tick on, asks for spot (beside it with `keep_running`)."""

    keep_running: bool
    name: str = "test-od-then-spot"

    def decide(self, view: RecoveryView) -> Decision:
        if view.running is None:
            spot = view.trigger != Trigger.NO_PLACE and view.trigger != Trigger.START
            return Launch(Target(spot=spot))
        if view.trigger == Trigger.TICK and not view.running.spot:
            return Launch(Target(spot=True, keep_running=self.keep_running))
        return Keep()


@pytest.mark.parametrize("nodes", [1, 3])
def test_all_on_demand_costs_duration_plus_changeover(nodes: int) -> None:
    spec = JobSpec(5, 8, 0.25, num_nodes=nodes, ondemand_price=2.0)
    result = replay([make_trace([0] * 10)], spec, OnDemandOnly())
    assert result.cost == pytest.approx(spec.all_on_demand_cost)
    assert result.cost == pytest.approx(5.25 * 2.0 * nodes)
    assert result.finished_at == pytest.approx(5.25)
    assert result.deadline_met and result.launches == 1 and result.recoveries == 0
    assert result.ondemand_hours == pytest.approx(5.25) and result.spot_hours == 0


def test_a_preempted_spot_run_is_recovered_and_charged() -> None:
    # Spot for two hours, gone for one, back: 0.5 h changeover each time.
    spec = JobSpec(3, 8, 0.5, spot_price=1.0)
    result = replay([make_trace([1, 1, 0, 1, 1, 1, 1, 1])], spec, SpotWithWaits())
    assert result.recoveries == 1 and result.launches == 2
    # 2 h (1.5 of work), idle 1 h (retried after a 30-minute wait), then 0.5 + 1.5 h.
    assert result.finished_at == pytest.approx(5.0)
    assert result.spot_hours == pytest.approx(4.0) and result.cost == pytest.approx(4.0)


def test_a_strategy_that_never_waits_is_stopped() -> None:
    with pytest.raises(InputError, match="it must Wait"):
        replay([make_trace([0] * 10)], JobSpec(2, 4, 0.1), AlwaysSpot())


def test_starts_fit_the_deadline_and_are_seeded() -> None:
    traces = [make_trace([1] * 20)]
    spec = JobSpec(5, 10, 0.1)
    ticks = start_ticks(traces, spec, 50, seed=4)
    assert ticks == start_ticks(traces, spec, 50, seed=4)
    assert all(0 <= t <= 10 for t in ticks)
    with pytest.raises(InputError, match="shorter than the deadline"):
        start_ticks(traces, JobSpec(5, 30, 0.1), 1)


traces_st = st.lists(st.integers(0, 1), min_size=40, max_size=40)


@settings(max_examples=30, deadline=None)
@given(
    a=traces_st,
    b=traces_st,
    duration=st.sampled_from([2.0, 3.0, 4.5]),
    slack=st.sampled_from([0.5, 1.0, 2.0]),
    two_zones=st.booleans(),
    change=st.sampled_from([0.0, 0.2, 0.3]),
    strategy=st.sampled_from(["uniform-progress", "regional-progress", "eager-next-region"]),
)
def test_deadlines_are_met_and_no_replay_beats_the_optimum(
    a: list[int],
    b: list[int],
    duration: float,
    slack: float,
    two_zones: bool,
    change: float,
    strategy: str,
) -> None:
    gap = 900.0  # 15-minute ticks, 10 hours
    traces = [make_trace(a, gap=gap)]
    if two_zones:
        traces.append(make_trace(b, gap=gap, zone="us-east-1b"))
    spec = JobSpec(duration, duration + change + slack, change)
    starts = [0, 3]
    best = optimum_costs(traces, spec, starts)
    for start, optimum in zip(starts, best, strict=True):
        fast = replay(traces, spec, strategy, start)
        slow = replay(traces, spec, strategy, start, skip_quiet_ticks=False)
        assert fast == slow
        if strategy != "eager-next-region":
            assert fast.deadline_met, fast
        if fast.deadline_met:
            assert fast.cost >= optimum - 1e-9


def test_the_tiny_fixture_replays_every_strategy() -> None:
    traces = load_traces(TINY)
    spec = JobSpec(8, 10, 0.2)
    for strategy in ("eager-next-region", "failover", "uniform-progress", "regional-progress"):
        results = replay_many(traces, spec, strategy, starts=10, seed=1)
        assert len(results) == 10
        if strategy.endswith("progress"):
            assert all(r.deadline_met for r in results)
            assert all(r.cost < spec.all_on_demand_cost * 1.2 for r in results)


@pytest.mark.shared
def test_uniform_progress_reproduces_the_papers_two_week_savings() -> None:
    root = require_shared(SHARED / "traces" / "availability" / "1-node" / "aws-10-26-2022")
    spec = JobSpec(48, 60, 0.2, spot_price=0.918, ondemand_price=3.06)
    costs = []
    for group in shape_groups(load_traces(root)):
        for trace in group:
            results = replay_many([trace], spec, "uniform-progress", starts=150, seed=0)
            assert all(r.deadline_met for r in results)
            costs += [r.cost for r in results]
    savings = 1 - statistics.fmean(costs) / spec.all_on_demand_cost
    assert 0.25 < savings < 0.31  # ≈ 28 % in a faithful replay of the paper's setup


def test_a_switch_that_keeps_running_moves_only_when_spot_is_there() -> None:
    # No spot for three hours, then spot to the end; a 0.5 h changeover at every start.
    spec = JobSpec(4, 9, 0.5, spot_price=1.0, ondemand_price=2.0)
    trace = [make_trace([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])]
    beside = replay(trace, spec, OnDemandThenSpot(keep_running=True))
    # On demand 0-3 h (2.5 h of work) while two tries find nothing, then spot from 3 h.
    assert (beside.launches, beside.recoveries) == (2, 0)
    assert beside.finished_at == pytest.approx(5.0)
    assert (beside.ondemand_hours, beside.spot_hours) == pytest.approx((3.0, 2.0))
    assert beside.cost == pytest.approx(3.0 * 2.0 + 2.0 * 1.0)
    # Break before make: every try ends the on-demand run, and each restart pays a changeover.
    broken = replay(trace, spec, OnDemandThenSpot(keep_running=False))
    assert broken.launches == 4 and broken.finished_at == pytest.approx(6.0)
    assert broken.cost > beside.cost
