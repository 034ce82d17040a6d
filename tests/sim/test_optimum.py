"""The omniscient optimum equals a brute force over every tick-aligned schedule on tiny
traces, and no strategy's replay ever costs less."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.sim import JobSpec, ZoneTrace, optimum_cost, optimum_costs
from tests.sim.conftest import make_trace


def brute_force(traces: Sequence[ZoneTrace], spec: JobSpec, start: int = 0) -> float:
    """Try every per-tick choice (idle, on demand, spot in a zone) with the replay's
    accounting: one changeover per run, progress max(0, run time - C), done at T."""
    gap = traces[0].gap_seconds
    total = spec.duration_hours * 3600
    deadline = spec.deadline_hours * 3600
    change = spec.changeover_hours * 3600
    ticks = math.ceil(deadline / gap - 1e-9)
    modes = ["idle", "od", *range(len(traces))]
    best = math.inf
    for plan in itertools.product(modes, repeat=ticks):
        done, cost, mode, began = 0.0, 0.0, "idle", 0.0
        for t, choice in enumerate(plan):
            if isinstance(choice, int):
                trace = traces[choice]
                if trace.available[start + t] < spec.num_nodes:
                    break
            if choice != mode:
                if mode != "idle":
                    done += max(0.0, t * gap - began - change)
                mode, began = choice, t * gap
            if choice == "idle":
                continue
            if isinstance(choice, int):
                prices = traces[choice].prices
                price = spec.spot_price if prices is None else float(prices[start + t])
            else:
                price = spec.ondemand_price
            price *= spec.num_nodes
            if done + max(0.0, (t + 1) * gap - began - change) >= total - 1e-9:
                finish = began + change + (total - done)
                if finish <= deadline + 1e-9:
                    best = min(best, cost + price * (finish - t * gap) / 3600)
                break
            cost += price * gap / 3600
    return best


CASES = [
    pytest.param([[1, 1, 1, 1]], JobSpec(2, 4, 0.5), id="spot-throughout"),
    pytest.param([[0, 0, 0, 0]], JobSpec(2, 4, 0.5), id="no-spot: all on demand"),
    pytest.param([[1, 0, 1, 1, 0]], JobSpec(2.5, 5, 0.3), id="a gap waited out"),
    pytest.param([[1, 0, 0, 1, 1, 0]], JobSpec(3, 4, 0.4), id="tight: on demand fills"),
    pytest.param([[0, 1, 0, 1, 0, 1]], JobSpec(1.5, 6, 0.7), id="changeover-heavy"),
    pytest.param([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]], JobSpec(3, 5, 0.25), id="two zones"),
    pytest.param([[2, 1, 2, 2]], JobSpec(2, 4, 0.5, num_nodes=2), id="multi-node"),
    pytest.param(
        [[1, 1, 0, 1]], JobSpec(2, 4, 0, spot_price=1, ondemand_price=2), id="no-changeover"
    ),
]


@pytest.mark.parametrize(("data", "spec"), CASES)
def test_the_optimum_is_the_brute_force_minimum(data: list[list[int]], spec: JobSpec) -> None:
    zones = ("us-west-2a", "us-east-1b")
    traces = [make_trace(d, zone=zones[i]) for i, d in enumerate(data)]
    assert optimum_cost(traces, spec) == pytest.approx(brute_force(traces, spec), abs=1e-9)


def test_trace_prices_are_used() -> None:
    traces = [make_trace([1, 1, 1, 1], prices=[5.0, 0.1, 0.1, 0.1])]
    spec = JobSpec(2, 4, 0.5, spot_price=0.5, ondemand_price=3.0)
    assert optimum_cost(traces, spec) == pytest.approx(brute_force(traces, spec))
    assert optimum_cost(traces, spec) == pytest.approx(0.25)  # idle one hour, then spot


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.integers(0, 1), min_size=6, max_size=6),
    duration=st.sampled_from([1.0, 1.5, 2.5, 3.0]),
    extra=st.sampled_from([0.5, 1.0, 2.5]),
    change=st.sampled_from([0.0, 0.25, 0.4]),
)
def test_the_optimum_matches_the_brute_force_on_random_traces(
    data: list[int], duration: float, extra: float, change: float
) -> None:
    spec = JobSpec(duration, min(6.0, duration + change + extra), change)
    traces = [make_trace(data + [0] * 4)]
    assert optimum_cost(traces, spec) == pytest.approx(brute_force(traces, spec), abs=1e-9)


def test_starts_are_solved_together_and_alike() -> None:
    traces = [make_trace([1, 0, 1, 1, 0, 1, 1, 1, 0, 0])]
    spec = JobSpec(2, 4, 0.5)
    together = optimum_costs(traces, spec, [0, 3, 5])
    assert list(together) == pytest.approx([brute_force(traces, spec, s) for s in (0, 3, 5)])
