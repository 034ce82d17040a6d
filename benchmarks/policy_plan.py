"""Planning one task under a large policy: time and peak memory against the rule count.

For 100, 300 and 1,000 generated rules (benchmarks/dsl.py's generator: require / deny / prefer
with `when` clauses, sets, globs, functions, lets), each row is measured in its own process, so
its peak resident memory is its own:

- **plan**: `skyplan.plan` of `A100:8` under the policy (median of --repeat warm runs). The
  planner evaluates each filter's mask once and keeps a running conjunction for the per-rule
  counts.
- **prefix (before)**: the baseline, measured in the same run: the per-rule counts computed as
  the planner did before, one `all_horizontal` over every prefix of the same filters on the same
  frame (k filters, k(k+1)/2 mask evaluations). Only that step is timed, so the planner's whole
  time before was larger still.

    .venv/bin/python benchmarks/policy_plan.py [--catalog DIR] [--repeat N]

The catalog is the shipped default unless --catalog is given. Aim (issue 15): 1,000 rules under
100 ms and 500 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

import skyplan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dsl import Generator  # the policy generator shared with the DSL benchmark

RULES = (100, 300, 1000)
TASK = "resources:\n  accelerators: A100:8\n"
AIM_MS, AIM_MB = 100.0, 500.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _policy(catalog: skyplan.Catalog, rules: int, folder: Path) -> Path:
    path = folder / f"generated-{rules}.policy"
    text = Generator(catalog.accelerators, catalog.regions(), seed=1).policy(rules, lets=20)
    path.write_text(text)
    return path


def _plan(catalog: skyplan.Catalog, policy: skyplan.Policy) -> str:
    dag = skyplan.parse_task(TASK, "bench")
    try:
        skyplan.plan(dag, catalog=catalog, policy=policy)
    except skyplan.NoFeasiblePlacement:
        return "denied"
    return "placed"


def _prefix(catalog: skyplan.Catalog, policy: skyplan.Policy) -> str:
    """The per-filter counts as the planner computed them before: every prefix re-evaluated."""
    from skyplan.model import Task
    from skyplan.solver import planner
    from skyplan.solver import policy as stage
    from skyplan.solver.filters import DEFAULT_FILTERS, Request

    task = Task.model_validate({"resources": {"accelerators": "A100:8"}})
    (option,) = next(iter(task.resources.option_groups()))
    ctx = planner.context_of(task)
    filters = planner._with_policy(DEFAULT_FILTERS, stage.stage(policy, ctx))
    req = Request(option=option, num_nodes=1, catalog=catalog)
    frame = catalog.frame.with_columns(
        pl.col("price").alias(stage.COST), pl.lit(False).alias(stage.SPOT)
    )
    exprs = [e for f in filters if (e := f.expr(req)) is not None]
    frame.select(pl.all_horizontal(exprs[: i + 1]).sum().alias(str(i)) for i in range(len(exprs)))
    return f"{len(exprs)} masks"


def child(mode: str, catalog_dir: str | None, policy_path: str, repeat: int) -> None:
    catalog = skyplan.load_catalog(catalog_dir) if catalog_dir else skyplan.load_catalog()
    _ = catalog.frame
    policy = skyplan.load_policy(policy_path)
    run = _plan if mode == "plan" else _prefix
    outcome = run(catalog, policy)  # warm: the prepared catalog and the parser are built
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(catalog, policy)
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples) * 1000
    print(json.dumps({"ms": median, "mb": _peak_mb(), "outcome": outcome}))


def measure(mode: str, catalog: str | None, policy: Path, repeat: int) -> dict[str, object]:
    args = [sys.executable, __file__, "--child", mode, str(policy), "--repeat", str(repeat)]
    if catalog:
        args += ["--catalog", catalog]
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", help="catalog folder (default: the shipped catalog)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "POLICY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.catalog, args.child[1], args.repeat)
        return 0
    catalog = skyplan.load_catalog(args.catalog) if args.catalog else skyplan.load_catalog()
    print(f"catalog: {catalog.origin} — {len(catalog):,} offers; task {TASK.strip()!r}")
    header = (
        f"{'rules':>6} {'plan':>10} {'peak':>8} {'outcome':>8} "
        f"{'prefix (before)':>16} {'peak':>8} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for rules in RULES:
            policy = _policy(catalog, rules, Path(tmp))
            now = measure("plan", args.catalog, policy, args.repeat)
            before = measure("prefix", args.catalog, policy, max(1, args.repeat // 2))
            now_ms, before_ms = float(now["ms"]), float(before["ms"])  # type: ignore[arg-type]
            print(
                f"{rules:>6,} {now_ms:7.0f} ms {now['mb']:5.0f} MB {now['outcome']!s:>8} "
                f"{before_ms:13.0f} ms {before['mb']:5.0f} MB {before_ms / now_ms:8.1f}x"
            )
    print(f"aim: {max(RULES):,} rules under {AIM_MS:.0f} ms and {AIM_MB:.0f} MB for the plan")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
