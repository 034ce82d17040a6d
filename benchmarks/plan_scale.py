"""Planning time against catalog size, up to 1M offers: is every request linear?

The catalog (the shipped default unless --catalog) is replicated into copies whose regions and
zones get a `-rK` suffix and whose prices differ by 0.01 % per copy, to each size in --sizes;
each request of benchmarks/plan_latency.py is planned warm (median of --repeat) at every size.

- **after**: `skyplan.plan` as it is: each filter's mask once, and ranking that sorts only
  each node shape's least-score rows by every key.
- **before**: the same planner with the reduction it had before, measured in the same run: every
  surviving candidate sorted by all 12 keys, then one row kept per shape.

"after per 100k offers" is flat when planning is linear in the catalog and falls when it is
sublinear (the planner's prepared frame, built on the first plan over a catalog, is indexed so
a request reads only the rows it can use); the first plan's time, index included, is the last
column (the first request, once per size).

    .venv/bin/python benchmarks/plan_scale.py [--catalog DIR] [--sizes 100000,300000,1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import polars as pl

import skyplan
from skyplan.catalog import schema as c
from skyplan.solver import planner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plan_latency import REQUESTS  # the same requests as the latency benchmark


def full_sort(ranked: pl.DataFrame) -> pl.DataFrame:
    """The reduction before: sort every candidate by every key, keep each shape's first row."""
    ranked = ranked.sort(planner.RANK_KEYS, nulls_last=True, maintain_order=True)
    return ranked.unique(subset=planner.SHAPE_KEYS, keep="first", maintain_order=True)


def replicated(frame: pl.DataFrame, size: int) -> skyplan.Catalog:
    copies = -(-size // frame.height)
    parts = []
    for k in range(copies):
        suffix = f"-r{k}"
        parts.append(
            frame.with_columns(
                pl.col(c.REGION) + suffix,
                (pl.col(c.ZONE) + suffix).alias(c.ZONE),
                pl.col(c.PRICE) * (1 + k * 1e-4),
                pl.col(c.SPOT_PRICE) * (1 + k * 1e-4),
            )
        )
    return skyplan.Catalog.from_frame(pl.concat(parts).head(size), f"replicated-{size}")


def _plan(task: skyplan.Dag, catalog: skyplan.Catalog) -> object:
    """The plan, or the error's text for a request the catalog cannot place (still timed:
    finding that out scans the catalog too)."""
    try:
        return skyplan.plan(task, catalog=catalog)
    except skyplan.NoFeasiblePlacement as exc:
        return str(exc)


def timed_ms(task: skyplan.Dag, catalog: skyplan.Catalog, repeat: int) -> tuple[float, object]:
    plan = _plan(task, catalog)  # warm: the planner's prepared frame is built once per catalog
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _plan(task, catalog)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = skyplan.load_catalog(args.catalog).frame
    sizes = [int(s) for s in args.sizes.split(",")]
    reduce = planner._best_per_shape
    print(f"Warm plan time, ms (median of {args.repeat}); base catalog {base.height:,} offers\n")
    print(
        "| request | offers | before (full sort) | after | after per 100k offers"
        " | first plan on the catalog (cold) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for size in sizes:
        catalog = replicated(base, size)
        start = time.perf_counter()
        _plan(skyplan.parse_task(next(iter(REQUESTS.values())), "bench"), catalog)
        shown_cold = f"{(time.perf_counter() - start) * 1000:.0f}"
        for label, text in REQUESTS.items():
            task = skyplan.parse_task(text, "bench")
            try:
                planner._best_per_shape = full_sort
                before, old = timed_ms(task, catalog, args.repeat)
            finally:
                planner._best_per_shape = reduce
            after, new = timed_ms(task, catalog, args.repeat)
            if old != new:
                sys.exit(f"{label} at {size:,}: the two rankings disagree")
            per = after / size * 100_000
            mark = "" if isinstance(new, skyplan.Plan) else " (infeasible)"
            print(
                f"| {label}{mark} | {size:,} | {before:.0f} | {after:.0f} | {per:.1f}"
                f" | {shown_cold} |",
                flush=True,
            )
            shown_cold = ""
    return 0


if __name__ == "__main__":
    sys.exit(main())
