"""The omniscient optimum: the least a job could have cost on a trace, knowing its future.

The model is the replay's, with every decision free: at each tick boundary the job may run on
demand (always there), on spot in a zone whose trace has at least N nodes for the whole tick,
or nothing; every (re)start of a run pays a changeover C of paid time without progress; the
job is done once T seconds of work are in, which must be by the deadline D; cost is paid time
× price (spot at the trace's price per tick if it has one). No online strategy can beat it.

The dynamic program avoids a progress dimension. Run time minus progress is exactly the
*slack used*, u = idle time + C × (number of runs), so the job finishes at T + u and meets the
deadline iff u ≤ D − T. The state at a tick boundary is (mode, u) with the least cost paid so
far; u moves on the lattice of gcd(tick, C), so the program is exact (no rounding) for the
tick-aligned problem. Per tick: idling adds a tick to u; starting a run (from idle or another
mode) adds C; a run pays its price for the tick, and a state whose remaining work T − (t − u)
fits inside the tick finishes there and pays only up to T + u. Runs shorter than C are charged
C of slack although they make no progress: that is never optimal, so the minimum is the
model's. All submission ticks of one job are solved together, one numpy row each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from skyplan.errors import InputError
from skyplan.sim.replay import JobSpec
from skyplan.sim.trace import ZoneTrace

#: Lattices finer than this many cells for the slack are refused (use rounder durations).
MAX_CELLS = 200_000


def _unit(gap: float, change: float) -> float:
    """The largest step that both the tick and the changeover are multiples of (seconds)."""
    a = Fraction(gap).limit_denominator(1000)
    b = Fraction(change).limit_denominator(1000)
    if b == 0:
        return float(a)
    num = math.gcd(a.numerator * b.denominator, b.numerator * a.denominator)
    return float(Fraction(num, a.denominator * b.denominator))


def optimum_costs(
    traces: Sequence[ZoneTrace], spec: JobSpec, starts: Sequence[int]
) -> npt.NDArray[np.float64]:
    """The optimum cost for a job submitted at each tick in `starts` (inf: infeasible)."""
    gap = traces[0].gap_seconds
    total = spec.duration_hours * 3600.0
    deadline = spec.deadline_hours * 3600.0
    change = spec.changeover_hours * 3600.0
    slack = deadline - total
    unit = _unit(gap, change)
    cells = math.floor(slack / unit + 1e-9) + 1
    if cells > MAX_CELLS:
        raise InputError(
            f"the optimum needs {cells:,} slack cells (tick {gap:g}s, changeover {change:g}s); "
            "use a changeover that is a rounder number of seconds"
        )
    g_cells = round(gap / unit)
    c_cells = round(change / unit)
    ticks = math.ceil(deadline / gap - 1e-9)
    rows = np.asarray(starts, dtype=np.int64)
    n = len(rows)
    nodes = spec.num_nodes
    window = rows[:, None] + np.arange(ticks)[None, :]
    avail, spot_cost = [], []
    for trace in traces:
        inside = window < trace.ticks
        counts = trace.available[np.minimum(window, trace.ticks - 1)]
        avail.append((counts >= nodes) & inside)
        if trace.prices is None:
            per_hour = np.full(window.shape, spec.spot_price * nodes)
        else:
            per_hour = trace.prices[np.minimum(window, trace.ticks - 1)] * nodes
        spot_cost.append(per_hour)
    od_hour = spec.ondemand_price * nodes
    u = np.arange(cells) * unit

    inf = np.inf
    idle = np.full((n, cells), inf)
    idle[:, 0] = 0.0
    ondemand = np.full((n, cells), inf)
    spot = [np.full((n, cells), inf) for _ in traces]
    every = np.empty((n, cells))
    started = np.full((n, cells), inf)
    best = np.full(n, inf)
    od_tick = od_hour * gap / 3600.0
    for t in range(ticks):
        np.minimum(idle, ondemand, out=every)
        for s in spot:
            np.minimum(every, s, out=every)
        started[:, c_cells:] = every[:, : cells - c_cells] if c_cells < cells else inf
        # The states whose run finishes inside tick t: T + u <= (t + 1) * gap.
        lo = max(0, math.floor((t * gap - total) / unit + 1e-9) + 1)
        hi = min(cells, math.floor(((t + 1) * gap - total) / unit + 1e-9) + 1)
        paid = (total + u[lo:hi] - t * gap) / 3600.0
        np.minimum(ondemand, started, out=ondemand)
        if hi > lo:
            np.minimum(best, (ondemand[:, lo:hi] + paid * od_hour).min(axis=1), out=best)
            ondemand[:, lo:hi] = inf
        ondemand += od_tick
        for z, s in enumerate(spot):
            np.minimum(s, started, out=s)
            s[~avail[z][:, t]] = inf
            price = spot_cost[z][:, t][:, None]
            if hi > lo:
                np.minimum(best, (s[:, lo:hi] + paid * price).min(axis=1), out=best)
                s[:, lo:hi] = inf
            s += price * (gap / 3600.0)
        # Idling through tick t uses a tick of slack.
        idle[:, :g_cells] = inf
        idle[:, g_cells:] = every[:, : cells - g_cells] if g_cells < cells else inf
    return best


def optimum_cost(traces: Sequence[ZoneTrace], spec: JobSpec, start: int = 0) -> float:
    """The optimum for one submission tick (see `optimum_costs`)."""
    return float(optimum_costs(traces, spec, [start])[0])
