"""Batch admission benchmark: 1k, 10k, 50k and 100k jobs over the SkyPilot-format synthetic catalog
(../shared/catalogs/skypilot-v8-synthetic, about 80k offers once loaded; --catalog to override).

Jobs are drawn with a fixed seed from ten task templates (GPU and CPU shapes, some multi-node,
some spot, some with a choice of accelerators or of spot/on-demand), spread over 20 teams and 3
priority levels. Each team has a GPU quota and an hourly budget, sized from what its own jobs
would take at their cheapest offers times a per-team factor (fixed seed) so that the limits bind
for a good share of the teams and are slack for the others.

One row per size:

- greedy: seconds to the first feasible plan — candidates for every job, the decomposition into
  independent components and the greedy pass (priority first, then the cheapest offer that
  fits), run and timed through `skyplan.solver.batch`'s internals exactly as `plan_batch` runs
  them (a `BatchPlan` carries the greedy's admitted count and $/h, not its time);
- final: `plan_batch`'s wall time (`BatchPlan.wall_s`): the same steps, then CP-SAT under
  `--time-limit` seconds in all;
- the final plan's status and proven gap; jobs admitted, solver vs greedy, in all and per
  priority; `behind`, a cross-check: the components (independent groups of jobs sharing limits)
  where the solver admits lexicographically fewer per priority than the greedy (it maximizes
  exactly that, component by component, so there must be none); the total $/h, solver vs
  greedy, and the share of the greedy's $/h the solver saves (negative when it spends more to
  admit more).

    .venv/bin/python benchmarks/batch.py [--catalog DIR] [--time-limit S] [--sizes 1000,5000]
                                         [--users N]

`--users N` gives each job one of N users, which no policy here looks at; the candidate cache is
keyed on the whole request context, so this shows what distinct contexts cost.

The aim (issue 15's): 100k jobs within 1% of the proven bound in under 10 s on 2 cores, the
gap covering every stage.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skyplan
from skyplan.catalog import Catalog
from skyplan.model.batch import BatchPlan, BatchRequest
from skyplan.model.policy import (
    Budget,
    Compare,
    Literal_,
    Policy,
    Quota,
    RequestContext,
    RequestRef,
)
from skyplan.solver import batch as batch_solver
from skyplan.solver.planner import feasible_offers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = ROOT.parent / "shared" / "catalogs" / "skypilot-v8-synthetic"
SEED = 2026
SIZES = (1_000, 10_000, 50_000, 100_000)
TEAMS = tuple(f"team-{i:02d}" for i in range(20))
#: Priority levels and how often each is drawn.
PRIORITIES = {0: 6, 1: 3, 2: 1}
LEVELS = sorted(PRIORITIES, reverse=True)

#: name -> (task spec, relative frequency).
TEMPLATES: dict[str, tuple[dict[str, Any], int]] = {
    "t4-inference": ({"resources": {"accelerators": "T4:1"}}, 14),
    "t4-spot-eval": ({"resources": {"accelerators": "T4:1", "use_spot": True}}, 12),
    "l4-or-a10g": ({"resources": {"accelerators": {"L4": 1, "A10G": 1}, "memory": "16+"}}, 12),
    "v100x4-spot": ({"resources": {"accelerators": "V100:4", "use_spot": True}}, 8),
    "l4x4-any-pricing": (
        {
            "resources": {
                "accelerators": "L4:4",
                "any_of": [{"use_spot": True}, {"use_spot": False}],
            }
        },
        8,
    ),
    "a100x8-train": ({"resources": {"accelerators": "A100:8"}}, 5),
    "h100x8-2node": ({"num_nodes": 2, "resources": {"accelerators": "H100:8"}}, 3),
    "cpu-etl": ({"resources": {"cpus": "4+", "memory": "16+"}}, 16),
    "cpu-2node-spot": ({"num_nodes": 2, "resources": {"cpus": "8+", "use_spot": True}}, 10),
    "cpu-default": ({"resources": {}}, 12),
}


def _tasks() -> dict[str, skyplan.Task]:
    return {
        name: skyplan.Task.model_validate({"name": name, **spec})
        for name, (spec, _) in TEMPLATES.items()
    }


def _cheapest(tasks: dict[str, skyplan.Task], catalog: Catalog) -> dict[str, tuple[float, float]]:
    """Each template's (GPUs, $/h) at its cheapest feasible offer: the yardstick for limits."""
    out = {}
    for name, task in tasks.items():
        frame = feasible_offers(task, catalog)
        if frame.height == 0:
            raise SystemExit(f"template {name!r} has no feasible offer in this catalog")
        row = frame.row(0, named=True)
        gpus = (row["accelerator_count"] or 0.0) * task.num_nodes
        out[name] = (gpus, float(row["cost"]))
    return out


def workload(
    size: int,
    tasks: dict[str, skyplan.Task],
    yardstick: dict[str, tuple[float, float]],
    users: int = 0,
) -> tuple[list[BatchRequest], Policy]:
    """`size` jobs and the policy bounding them, both from the fixed seed; with `users`, each
    job also names one of that many users (no policy here looks at it)."""
    rng = random.Random(SEED + size)
    user_rng = random.Random(SEED)  # its own stream: users change nothing else
    names = list(TEMPLATES)
    weights = [TEMPLATES[n][1] for n in names]
    levels = list(PRIORITIES)
    level_weights = list(PRIORITIES.values())
    team_weights = [rng.uniform(0.5, 1.5) for _ in TEAMS]
    requests = []
    demand: dict[str, list[float]] = {team: [0.0, 0.0] for team in TEAMS}
    for i in range(size):
        name = rng.choices(names, weights)[0]
        team = rng.choices(TEAMS, team_weights)[0]
        gpus, cost = yardstick[name]
        demand[team][0] += gpus
        demand[team][1] += cost
        requests.append(
            BatchRequest(
                id=f"job-{i:05d}",
                task=tasks[name],
                context=RequestContext(
                    team=team, user=f"user-{user_rng.randrange(users):03d}" if users else None
                ),
                priority=rng.choices(levels, level_weights)[0],
            )
        )
    # Each team gets a share of what its jobs would take: below 1 the limit binds.
    quotas, budgets = [], []
    for team in TEAMS:
        gpus, cost = demand[team]
        quotas.append(
            Quota(
                name=f"GPUs of {team}",
                metric="gpus",
                limit=float(round(gpus * rng.uniform(0.35, 1.3))),
                per=("team",),
                when=_team_is(team),
            )
        )
        budgets.append(
            Budget(
                name=f"budget of {team}",
                limit=round(cost * rng.uniform(0.45, 1.4), 2),
                per=("team",),
                when=_team_is(team),
            )
        )
    return requests, Policy(name="batch-bench", quotas=tuple(quotas), budgets=tuple(budgets))


def _team_is(team: str) -> Compare:
    """The condition `task.team == team`."""
    return Compare(op="==", left=RequestRef(path=("team",)), right=Literal_(value=team))


@dataclass(frozen=True)
class Greedy:
    seconds: float
    by_level: tuple[int, ...]  # admitted per priority level, the highest first
    hourly_cost: float
    #: Per component of requests that share a limit: its request ids and what the greedy
    #: admits of them per priority level.
    components: list[tuple[set[str], tuple[int, ...]]]


def per_level(priorities: list[int]) -> tuple[int, ...]:
    counts = Counter(priorities)
    return tuple(counts[p] for p in LEVELS)


def greedy_plan(requests: list[BatchRequest], catalog: Catalog, policy: Policy) -> Greedy:
    """The first feasible plan, reached as `plan_batch` reaches it (candidates, components,
    the greedy pass), timed; through `skyplan.solver.batch`'s internals, which `BatchPlan` does
    not expose."""
    started = time.perf_counter()
    batch = batch_solver._Batch(requests, catalog, policy, {}, 8)
    components, alone = batch.components()
    chosen = batch.greedy([r for comp in components for r in comp.requests], {})
    seconds = time.perf_counter() - started
    cost = sum(batch.cands[i][0].cost for i in alone)
    cost += sum(batch.cands[r][o].cost for r, o in chosen.items())
    return Greedy(
        seconds,
        per_level([requests[i].priority for i in [*alone, *chosen]]),
        cost,
        [
            (
                {requests[i].id for i in comp.requests},
                per_level([requests[i].priority for i in comp.requests if i in chosen]),
            )
            for comp in components
        ],
    )


def behind(plan: BatchPlan, greedy: Greedy) -> int:
    """Components where the solver admits lexicographically fewer per priority than the greedy:
    each component is solved on its own, so there must be none."""
    priority = {a.id: a.priority for a in plan.admitted}
    return sum(
        1
        for ids, greedy_levels in greedy.components
        if per_level([priority[i] for i in ids if i in priority]) < greedy_levels
    )


def binding(plan: BatchPlan) -> int:
    """Teams with some job left waiting on one of their limits."""
    teams = set()
    for waiting in plan.waiting:
        for limit in waiting.limits:
            if "(team=" in limit:
                teams.add(limit.split("(team=", 1)[1].rstrip(")"))
    return len(teams)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per run")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="comma-separated job counts"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=0,
        help="give each job one of N users (the policy ignores them; 0: no user)",
    )
    args = parser.parse_args()
    if not args.catalog.exists():
        print(f"catalog {args.catalog} not found; pass --catalog DIR", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    started = time.perf_counter()
    catalog = skyplan.load_catalog(args.catalog)
    _ = catalog.frame
    print(
        f"catalog: {catalog.origin} — {len(catalog):,} offers, "
        f"loaded in {time.perf_counter() - started:.2f} s; time limit {args.time_limit:g} s; "
        f"{len(TEMPLATES)} templates, {len(TEAMS)} teams, priorities "
        f"{', '.join(map(str, PRIORITIES))}, seed {SEED}"
    )
    tasks = _tasks()
    yardstick = _cheapest(tasks, catalog)

    header = (
        f"{'jobs':>6} {'bind':>4} {'greedy':>7} {'final':>7} {'status':>8} {'gap':>6} "
        f"{'admitted':>13} {'p2/p1/p0 solver':>17} {'p2/p1/p0 greedy':>17} {'behind':>6} "
        f"{'$/h solver':>10} {'$/h greedy':>10} {'saved':>7}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        requests, policy = workload(size, tasks, yardstick, args.users)
        greedy = greedy_plan(requests, catalog, policy)
        plan = batch_solver.plan_batch(
            requests, catalog, policy=policy, time_limit_s=args.time_limit
        )
        by_level = per_level([a.priority for a in plan.admitted])
        if abs(greedy.hourly_cost - plan.greedy_hourly_cost) > 1e-6 * max(1.0, greedy.hourly_cost):
            print(f"warning: the timed greedy is not plan_batch's ({size} jobs)", file=sys.stderr)
        saved = (
            (plan.greedy_hourly_cost - plan.hourly_cost) / plan.greedy_hourly_cost
            if plan.greedy_hourly_cost
            else 0.0
        )
        print(
            f"{size:>6,} {binding(plan):>4} {greedy.seconds:>6.2f}s {plan.wall_s:>6.2f}s "
            f"{plan.status:>8} {plan.gap:>6.2%} "
            f"{f'{len(plan.admitted):,} / {plan.greedy_admitted:,}':>13} "
            f"{'/'.join(map(str, by_level)):>17} {'/'.join(map(str, greedy.by_level)):>17} "
            f"{f'{behind(plan, greedy)}/{plan.components}':>6} "
            f"{plan.hourly_cost:>10,.2f} {plan.greedy_hourly_cost:>10,.2f} {saved:>7.2%}"
        )
    print(
        "bind: teams with jobs waiting on one of their limits; greedy: seconds to the first "
        "feasible plan;\nfinal: plan_batch's wall time; admitted: solver / greedy; p2/p1/p0: "
        "admitted per priority, highest first;\nbehind: components (of all) where the solver "
        "admits lexicographically fewer per priority than the greedy (there must be none);\n"
        "saved: the greedy's $/h less the solver's, as a share of the greedy's (negative: it "
        "spends more to admit more)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
