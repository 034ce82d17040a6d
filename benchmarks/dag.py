"""Pipeline (DAG) optimizer benchmark: `plan_pipeline` on chains and diamonds of 3-8 tasks.

Over the 75k-row SkyPilot-format synthetic catalog (../shared/catalogs/skypilot-v8-synthetic, or
--catalog; the prices are synthetic, so the dollars show the trade-off, not a real bill). Each
task asks for one of T4:1, A100:8, L4:1, V100:1, H100:8 or CPU-only, runs 0.5-4 h and writes
10-500 GB of outputs (seeded). Shapes:

- chain-n: 0→1→…→n-1 (SkyPilot's pipeline; solved by dynamic programming);
- diamond-n: 0 → {1..n-2} → n-1 (CP-SAT); diamond-3 is 0→1→2 plus the skip edge 0→2.

One table, one row per shape:

- plan ms: warm `plan_pipeline` wall time, median of --repeat runs, for the cost objective and
  for the time objective (makespan, ties by cost);
- cands: the pruned candidates per task (25 cheapest + the cheapest of every (cloud, region));
- optimal $: compute + egress of the cost-optimal plan; makespan h of the time-optimal plan;
- brute force: every combination of the pruned candidates evaluated in plain Python, where the
  product of the candidate counts is at most 2e6 (else "skipped (N combinations)"); its time and
  whether its minimum matches plan_pipeline's (to $0.0001: the solver rounds each term to a
  micro-dollar);
- dp = cp-sat: on chains, CP-SAT forced on the same problem reaches the DP's cost;
- greedy $: each task planned independently (`skyplan.plan`, egress ignored) and then charged
  the egress its placements cause — what a pipeline costs today; saved = 1 - optimal / greedy.

    .venv/bin/python benchmarks/dag.py [--catalog DIR] [--repeat N]

Context, not a baseline measured here: the project's issue reports SkyPilot's DAG optimizer (an
ILP through PuLP/CBC) taking 72 s for a 4-task diamond.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import skyplan
from skyplan.model import Offer
from skyplan.solver.dag import (
    EgressModel,
    Objective,
    PipelinePlan,
    pipeline_candidates,
    plan_pipeline,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = ROOT.parent / "shared" / "catalogs" / "skypilot-v8-synthetic"
BRUTE_FORCE_LIMIT = 2_000_000
SEED = 11
REQUESTS = ("T4:1", "A100:8", "L4:1", "V100:1", "H100:8", None)  # None: CPU-only
RUNTIMES = (0.5, 1.0, 2.0, 4.0)
T = TypeVar("T")


def pipeline(n: int, rng: random.Random) -> tuple[skyplan.Dag, dict[str, float]]:
    """n tasks cycling through REQUESTS, with seeded outputs sizes and runtimes."""
    docs, runtimes = ["name: bench\n"], {}
    for i in range(n):
        acc = REQUESTS[i % len(REQUESTS)]
        resources = f"  accelerators: {acc}\n" if acc else "  cpus: 8+\n"
        gb = rng.randint(10, 500)
        docs.append(f"name: t{i}\nresources:\n{resources}outputs:\n  s3://bench/t{i}: {gb}\n")
        runtimes[f"t{i}"] = rng.choice(RUNTIMES)
    return skyplan.parse_task("---\n".join(docs), "<bench>"), runtimes


def chain(n: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(n - 1)]


def diamond(n: int) -> list[tuple[int, int]]:
    if n == 3:
        return [(0, 1), (1, 2), (0, 2)]
    middle = range(1, n - 1)
    return [(0, m) for m in middle] + [(m, n - 1) for m in middle]


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    result = fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def total_cost(
    offers: Sequence[Offer],
    runtimes: Sequence[float],
    edges: Sequence[tuple[int, int]],
    sizes: Sequence[float],
    egress: EgressModel,
) -> float:
    """Compute + egress of one placement per task, written out from the definition."""
    compute = sum(o.hourly_cost * h for o, h in zip(offers, runtimes, strict=True))
    moved = sum(
        sizes[i]
        * egress.link(
            (offers[i].cloud, offers[i].region), (offers[j].cloud, offers[j].region)
        ).usd_per_gb
        for i, j in edges
    )
    return compute + moved


def brute_force(
    candidates: Sequence[Sequence[Offer]],
    runtimes: Sequence[float],
    edges: Sequence[tuple[int, int]],
    sizes: Sequence[float],
    egress: EgressModel,
) -> float:
    """The minimum cost over every combination of candidates (tasks in index order, which is
    topological for the shapes here): each partial sum extended one task at a time."""
    n = len(candidates)
    node = [[o.hourly_cost * h for o in row] for row, h in zip(candidates, runtimes, strict=True)]
    into: list[list[tuple[int, list[list[float]]]]] = [[] for _ in range(n)]
    for i, j in edges:
        matrix = [
            [
                sizes[i] * egress.link((a.cloud, a.region), (b.cloud, b.region)).usd_per_gb
                for b in candidates[j]
            ]
            for a in candidates[i]
        ]
        into[j].append((i, matrix))
    best = math.inf
    choice = [0] * n

    def extend(t: int, partial: float) -> None:
        nonlocal best
        if t == n - 1:
            row = [
                node[t][k] + sum(m[choice[i]][k] for i, m in into[t]) for k in range(len(node[t]))
            ]
            best = min(best, partial + min(row))
            return
        for k, cost in enumerate(node[t]):
            choice[t] = k
            extend(t + 1, partial + cost + sum(m[choice[i]][k] for i, m in into[t]))

    extend(0, 0.0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.catalog.exists():
        print(
            f"catalog {args.catalog} not found (a fresh clone has no ../shared); pass --catalog",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    catalog = skyplan.load_catalog(args.catalog)
    _ = catalog.frame
    print(
        f"catalog: {catalog.origin} — {len(catalog):,} offers (synthetic prices), "
        f"loaded in {(time.perf_counter() - start) * 1000:.0f} ms"
    )
    print(
        "context: the project's issue reports SkyPilot's DAG optimizer (PuLP/CBC ILP) taking "
        "72 s for a 4-task diamond; not measured here."
    )
    egress = EgressModel()
    rng = random.Random(SEED)
    header = (
        f"{'shape':11} {'solver':7} {'plan ms':>7} {'time-obj':>8} {'cands':>26} "
        f"{'optimal $':>10} {'makespan h':>10} {'brute force':>30} {'greedy $':>9} {'saved':>6} "
        f"{'dp = cp-sat':>11}"
    )
    print(header)
    print("-" * len(header))
    shapes = [("chain", chain), ("diamond", diamond)]
    for (kind, shape), n in itertools.product(shapes, range(3, 9)):
        dag, runtime_hours = pipeline(n, rng)
        edges = shape(n)
        runtimes = [runtime_hours[t.name or ""] for t in dag.tasks]
        sizes = [sum((t.outputs or {}).values()) for t in dag.tasks]

        def run(
            objective: Objective,
            dag: skyplan.Dag = dag,
            runtime_hours: dict[str, float] = runtime_hours,
            edges: list[tuple[int, int]] = edges,
        ) -> PipelinePlan:
            return plan_pipeline(
                dag,
                catalog,
                objective=objective,
                runtime_hours=runtime_hours,
                edges=edges,
                egress=egress,
            )

        cost_s, best = timed(lambda: run("cost"), args.repeat)
        time_s, fastest = timed(lambda: run("time"), args.repeat)
        candidates = pipeline_candidates(dag, catalog)
        combos = math.prod(len(c) for c in candidates)
        if combos <= BRUTE_FORCE_LIMIT:
            t0 = time.perf_counter()
            reference = brute_force(candidates, runtimes, edges, sizes, egress)
            bf_s = time.perf_counter() - t0
            same = abs(reference - best.total_cost) <= 1e-4
            brute = f"{bf_s * 1000:.0f} ms, {'match' if same else 'DIFFERS'}"
        else:
            brute = f"skipped ({combos:.1e} combinations)"
        agree = "-"
        if best.solver == "dp":  # cross-check the DP with CP-SAT on the same chain
            forced = plan_pipeline(
                dag, catalog, runtime_hours=runtime_hours, edges=edges, solver="cp-sat"
            )
            agree = "yes" if abs(forced.total_cost - best.total_cost) <= 1e-4 else "NO"
        independent = skyplan.plan(dag, catalog=catalog)
        greedy = total_cost(
            [p.choice for p in independent.placements], runtimes, edges, sizes, egress
        )
        counts = "/".join(str(c) for c in best.candidates)
        print(
            f"{kind}-{n:<{11 - len(kind) - 1}} {best.solver:7} {cost_s * 1000:7.1f} "
            f"{time_s * 1000:8.1f} {counts:>26} {best.total_cost:10.2f} "
            f"{fastest.makespan_hours:10.3f} {brute:>30} {greedy:9.2f} "
            f"{1 - best.total_cost / greedy:6.1%} {agree:>11}"
        )
        if best.status != "OPTIMAL" or fastest.status != "OPTIMAL":
            print(f"  note: status {best.status} (gap {best.gap:.2%}) / {fastest.status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
