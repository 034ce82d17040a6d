"""Comparing recovery strategies over trace sets: the rows of `skyplan sim jobs` and of the
recovery benchmark, the omniscient optimum's row included.

A *trace set* is the zones one job may choose from (a single zone, or the zones of one node
shape). Every strategy is replayed from the same submission ticks on every set, the results
are pooled, and each row is summarized against running the whole job on demand.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

from skyplan.sim.optimum import optimum_costs
from skyplan.sim.replay import JobSpec, RunResult, replay_many, start_ticks
from skyplan.sim.trace import ZoneTrace

#: The row name of the omniscient optimum.
OPTIMUM = "omniscient-optimum"


@dataclass(frozen=True)
class Summary:
    """One row: a strategy's runs, pooled over the trace sets."""

    strategy: str
    runs: int
    savings_pct: float  # mean cost against all on demand
    deadlines_met: int
    mean_spot_hours: float | None
    mean_ondemand_hours: float | None
    mean_recoveries: float | None
    mean_cost: float
    costs: tuple[float, ...] = ()
    #: Runs not done by the end of the trace: their cost stops there, so a strategy that
    #: misses deadlines can look cheaper than one that meets them.
    unfinished: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "runs": self.runs,
            "savings_pct": round(self.savings_pct, 3),
            "deadlines_met": self.deadlines_met,
            "mean_spot_hours": _round(self.mean_spot_hours),
            "mean_ondemand_hours": _round(self.mean_ondemand_hours),
            "mean_recoveries": _round(self.mean_recoveries),
            "mean_cost": round(self.mean_cost, 4),
            "unfinished": self.unfinished,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarize(strategy: str, results: Sequence[RunResult], spec: JobSpec) -> Summary:
    cost = statistics.fmean(r.cost for r in results)
    return Summary(
        strategy=strategy,
        runs=len(results),
        savings_pct=100.0 * (1.0 - cost / spec.all_on_demand_cost),
        deadlines_met=sum(r.deadline_met for r in results),
        mean_spot_hours=statistics.fmean(r.spot_hours for r in results),
        mean_ondemand_hours=statistics.fmean(r.ondemand_hours for r in results),
        mean_recoveries=statistics.fmean(r.recoveries for r in results),
        mean_cost=cost,
        costs=tuple(r.cost for r in results),
        unfinished=sum(r.finished_at is None for r in results),
    )


def _replay_task(
    args: tuple[tuple[ZoneTrace, ...], JobSpec, str, int, int],
) -> list[RunResult]:
    traces, spec, strategy, starts, seed = args
    return replay_many(traces, spec, strategy, starts=starts, seed=seed)


def _optimum_task(args: tuple[tuple[ZoneTrace, ...], JobSpec, int, int]) -> list[float]:
    traces, spec, starts, seed = args
    return [float(c) for c in optimum_costs(traces, spec, start_ticks(traces, spec, starts, seed))]


def compare(
    trace_sets: Sequence[tuple[ZoneTrace, ...]],
    spec: JobSpec,
    strategies: Sequence[str],
    *,
    starts: int = 150,
    seed: int = 0,
    optimum: bool = True,
    workers: int = 1,
    executor: Executor | None = None,
) -> list[Summary]:
    """One `Summary` per strategy (in order), then the optimum's, over every trace set.
    The replays run in `executor` if given (a process pool shared by several comparisons),
    else in a pool of `workers` processes, else here."""
    for traces in trace_sets:
        start_ticks(traces, spec, 1, seed)  # a trace too short for the deadline fails here
    replays = [(tuple(t), spec, s, starts, seed) for s in strategies for t in trace_sets]
    optima = [(tuple(t), spec, starts, seed) for t in trace_sets] if optimum else []
    if executor is not None or workers > 1:
        with contextlib.ExitStack() as stack:
            pool = executor or stack.enter_context(ProcessPoolExecutor(workers))
            opt_futures = [pool.submit(_optimum_task, a) for a in optima]
            rep_futures = [pool.submit(_replay_task, a) for a in replays]
            replayed = [f.result() for f in rep_futures]
            optimal = [f.result() for f in opt_futures]
    else:
        replayed = [_replay_task(a) for a in replays]
        optimal = [_optimum_task(a) for a in optima]
    rows = []
    for i, strategy in enumerate(strategies):
        pooled = [
            r for part in replayed[i * len(trace_sets) : (i + 1) * len(trace_sets)] for r in part
        ]
        rows.append(summarize(strategy, pooled, spec))
    if optimum:
        costs = [c for part in optimal for c in part]
        mean = statistics.fmean(costs)
        rows.append(
            Summary(
                strategy=OPTIMUM,
                runs=len(costs),
                savings_pct=100.0 * (1.0 - mean / spec.all_on_demand_cost),
                deadlines_met=sum(c != float("inf") for c in costs),
                mean_spot_hours=None,
                mean_ondemand_hours=None,
                mean_recoveries=None,
                mean_cost=mean,
                costs=tuple(costs),
            )
        )
    return rows
