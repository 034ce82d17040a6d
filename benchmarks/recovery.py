"""Recovery strategies replayed over the Can't Be Late spot traces (../shared/traces).

For a 48 h job with a 0.2 h changeover, on-demand at $3.06/h and spot at $0.918/h, and the
deadline at 48 h / fraction for fractions 0.8 and 0.9, each strategy is replayed from 150
random submission ticks (seeded) on the 2-week (aws-10-26-2022) and the 2-month
(aws-02-15-2023) availability traces:

- single zone: every zone file on its own, the runs pooled (equal counts: the mean of the
  per-file means);
- multi zone: the zones of one node shape as choices (the 2-week directory holds four shapes
  over two zones, the 2-month one a single shape over nine zones), the runs pooled.

Savings are the mean cost against running the job on demand from start to finish.
`uniform-progress+probe` is an ablation (not shipped): uniform progress with the non-destructive
switch regional-progress uses, so the table shows what the switch alone brings and what the rest
of regional-progress adds. The omniscient optimum (`skyplan.sim.optimum`) knows the future: no
strategy can beat it.

    .venv/bin/python benchmarks/recovery.py [--starts 150] [--seed 0] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from skyplan.runtime.recovery import register, strategy_named
from skyplan.runtime.strategies import ProgressStrategy
from skyplan.sim import OPTIMUM, JobSpec, compare, load_traces, shape_groups

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "availability" / "1-node"
SETS = (("2-week", "aws-10-26-2022"), ("2-month", "aws-02-15-2023"))
#: An ablation, not shipped: the paper's uniform progress given regional-progress's
#: non-destructive switch (`probe`), to show how much of the gain the switch alone brings.
ABLATION = "uniform-progress+probe"
strategy_named(None)  # the built-ins first
register(ProgressStrategy(name=ABLATION, probe=True))
STRATEGIES = ("eager-next-region", "uniform-progress", ABLATION, "regional-progress")
FRACTIONS = (0.8, 0.9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    if not TRACES.exists():
        print(f"{TRACES} is absent (a fresh clone has no ../shared); skipping", file=sys.stderr)
        return 0

    began = time.perf_counter()
    table = Table(title="Recovery strategies: savings vs all on-demand, deadlines met")
    for column in ("trace", "zones", "fraction", "strategy", "savings", "deadlines met"):
        table.add_column(column, justify="left" if column in ("trace", "strategy") else "right")
    table.add_column("spot h", justify="right")
    table.add_column("on-demand h", justify="right")
    table.add_column("recoveries", justify="right")
    table.add_column("vs UP", justify="right")
    settings = []
    for label, directory in SETS:
        traces = load_traces(TRACES / directory)
        for mode, sets in (("single", [(t,) for t in traces]), ("multi", shape_groups(traces))):
            for fraction in FRACTIONS:
                spec = JobSpec(
                    duration_hours=48.0,
                    deadline_hours=48.0 / fraction,
                    changeover_hours=0.2,
                    spot_price=0.918,
                    ondemand_price=3.06,
                )
                settings.append((label, mode, fraction, sets, spec))
    # One process pool for every setting, fed by one thread per setting, keeps both cores busy.
    with ProcessPoolExecutor(args.workers) as pool, ThreadPoolExecutor(len(settings)) as feed:
        results = list(
            feed.map(
                lambda s: compare(
                    s[3], s[4], STRATEGIES, starts=args.starts, seed=args.seed, executor=pool
                ),
                settings,
            )
        )
    verdicts = []
    for (label, mode, fraction, sets, _spec), rows in zip(settings, results, strict=True):
        by_name = {r.strategy: r for r in rows}
        up = by_name["uniform-progress"].savings_pct
        for row in rows:
            ratio = "" if row.strategy == OPTIMUM else f"{row.savings_pct / up:.2f}x"
            table.add_row(
                label,
                f"{mode} ({len(sets)} set{'s' if len(sets) > 1 else ''})",
                f"{fraction:g}",
                row.strategy,
                f"{row.savings_pct:.1f}%",
                f"{row.deadlines_met}/{row.runs}",
                _h(row.mean_spot_hours),
                _h(row.mean_ondemand_hours),
                _h(row.mean_recoveries),
                ratio,
            )
        regional = by_name["regional-progress"]
        verdicts.append((up, regional.savings_pct, regional.deadlines_met == regional.runs))
        table.add_section()
    console = Console(width=140)
    console.print(table)
    goal = [v for v in verdicts if v[1] >= 1.1 * v[0] and v[2]]
    console.print(
        f"regional-progress saves >= 1.1x uniform-progress with every deadline met in "
        f"{len(goal)}/{len(verdicts)} settings"
    )
    console.print(
        "eager-next-region ignores deadlines: its late runs, and runs unfinished at the "
        "trace's end (charged only up to it), make its savings incomparable"
    )
    console.print(f"total wall time {time.perf_counter() - began:.1f}s ({args.workers} workers)")
    return 0


def _h(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
