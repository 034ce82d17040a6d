"""The simulator: replay managed jobs and their recovery strategies over spot traces.

Owns a virtual clock, trace loading, a trace-driven `Backend` (`SimCloud`), the replay loop
that drives a recovery strategy exactly as the managed-job controller does, and the
omniscient optimum a replay is measured against. It runs the real strategies
(`runtime.recovery`) and never plans: no solver, catalog or cloud SDK.
"""

from skyplan.runtime.recovery import STRATEGIES, strategy_named
from skyplan.sim.clock import VirtualClock
from skyplan.sim.cloud import SimCloud
from skyplan.sim.compare import OPTIMUM, Summary, compare, summarize
from skyplan.sim.durations import parse_hours
from skyplan.sim.optimum import optimum_cost, optimum_costs
from skyplan.sim.replay import (
    JobSpec,
    RunResult,
    TickHint,
    replay,
    replay_many,
    start_ticks,
)
from skyplan.sim.trace import ZoneTrace, load_trace, load_traces, shape_groups

__all__ = [
    "OPTIMUM",
    "STRATEGIES",
    "JobSpec",
    "RunResult",
    "SimCloud",
    "Summary",
    "TickHint",
    "VirtualClock",
    "ZoneTrace",
    "compare",
    "load_trace",
    "load_traces",
    "optimum_cost",
    "optimum_costs",
    "parse_hours",
    "replay",
    "replay_many",
    "shape_groups",
    "start_ticks",
    "strategy_named",
    "strategy_names",
    "summarize",
]


def strategy_names() -> list[str]:
    """Every registered recovery strategy's name, built-ins first."""
    strategy_named(None)  # registers the built-ins
    return list(STRATEGIES)
