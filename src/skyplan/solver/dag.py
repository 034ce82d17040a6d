"""`plan_pipeline()`: place every task of a pipeline jointly, egress between stages included.

A pure function: `plan_pipeline(dag, catalog, ...) -> PipelinePlan`. No I/O, no printing, the
inputs untouched, equal inputs give equal plans.

SkyPilot reads a multi-document task file as a pipeline: a chain of tasks in file order, each
sending its `outputs` to the next. Its DAG optimizer picks one resource per task so that

    cost = Σ task $/h × runtime  +  Σ egress $ of the data each edge carries between placements

or, for the `time` objective, the critical-path time. This module solves the same problem exactly:

1. Candidates: each task's feasible offers (`feasible_offers`: the planner's filters and the
   policy), pruned to the `candidates_per_task` cheapest plus the cheapest offer of every
   (cloud, region) present, so egress trade-offs stay visible.
2. Dominance: the objective sees an offer only through its location and its price (runtimes do
   not depend on the placement yet), so within one (cloud, region) only the cheapest candidate
   can be part of an optimum; and a location that is not its cloud's cheapest for the task
   matters only where a neighbouring task can be in the same region (`_undominated`). The
   solvers work on these options. Because the cheapest offer of every location is always kept,
   the plan is optimal over *all* feasible offers, not only over the pruned ones.
3. Exact solve. Where it is exact, dynamic programming over (task, location), O(Σ L_i·L_j):
   for the cost objective whenever the edges that carry data form a forest (chains, fan-outs,
   fan-ins), for the time objective when the edges chain every task into one path. Any other
   DAG goes to CP-SAT: one Boolean per (task, location), exactly one per task, and per edge one
   Boolean per cloud both ends may share and per region both may share; egress and transfer
   time are linear in those. CP-SAT starts from a strong plan (the exact plan of a maximum
   spanning forest, improved by best responses), so it mostly has to prove the bound; fixed
   seed, two workers, interleaved (deterministic) search, a time limit; the status
   (OPTIMAL / FEASIBLE) and the proven gap are reported.

Numbers are compared as integers: costs in micro-dollars per term (a task's compute, an edge's
egress), times in milliseconds per term (a task's runtime, an edge's transfer). Policy
preferences re-rank compute as they do for a single task (`_score`, the cost less preferences);
the plan's totals are real dollars.

Time objective: a task starts once every input has arrived — `start(j) = max over edges i→j of
finish(i) + transfer(i→j)`, transfers of one task's inputs running in parallel — and runs for
its runtime. The makespan is the latest finish; ties are broken by cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.errors import InputError, NoFeasiblePlacement, did_you_mean
from skyplan.model import Dag, Offer, Policy, RequestContext, Task
from skyplan.solver.dag_search import (
    Candidate,
    Edge,
    Objective,
    Problem,
    Status,
    cp_sat,
    is_forest,
    is_single_path,
    topological,
    tree_dp,
)
from skyplan.solver.egress import EgressModel, LinkKind
from skyplan.solver.planner import (
    COST,
    SCORE,
    SPOT,
    context_of,
    feasible_offers,
    offer_from_row,
    place,
)

Method = Literal["auto", "dp", "cp-sat"]

DEFAULT_RUNTIME_HOURS = 1.0
DEFAULT_TIME_LIMIT_S = 10.0

# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineStep:
    """Where one task of the pipeline runs, for how long and at what cost."""

    index: int
    task: str | None
    offer: Offer
    runtime_hours: float
    cost: float  # compute $: the offer's $/h (all nodes) × runtime
    start_hours: float
    finish_hours: float


@dataclass(frozen=True)
class Transfer:
    """The data one edge carries from task `source` to task `target`."""

    source: int
    target: int
    gb: float
    kind: LinkKind
    usd_per_gb: float
    cost: float
    gbps: float
    hours: float


@dataclass(frozen=True)
class PipelinePlan:
    """Every task's placement, every edge's transfer, the totals and how they were found.

    `wall_seconds` is left out of equality, so equal inputs give equal plans."""

    objective: Objective
    steps: tuple[PipelineStep, ...]
    transfers: tuple[Transfer, ...]
    compute_cost: float
    egress_cost: float
    total_cost: float
    makespan_hours: float
    solver: Literal["dp", "cp-sat"]
    status: Status
    gap: float  # relative, of the cost the solver minimized last; 0 when proven optimal
    candidates: tuple[int, ...]  # per task: offers kept after pruning
    feasible: tuple[int, ...]  # per task: feasible offers before pruning
    wall_seconds: float = field(compare=False, default=0.0)

    @property
    def offers(self) -> tuple[Offer, ...]:
        return tuple(s.offer for s in self.steps)

    def to_json(self) -> dict[str, object]:
        """A stable JSON shape for `skyplan plan --json` on pipelines."""
        return {
            "objective": self.objective,
            "tasks": [
                {
                    "task": s.task,
                    "cloud": s.offer.cloud,
                    "region": s.offer.region,
                    "zone": s.offer.zone,
                    "instance_type": s.offer.instance_type,
                    "accelerators": s.offer.accelerators,
                    "spot": s.offer.spot,
                    "num_nodes": s.offer.num_nodes,
                    "hourly_cost": round(s.offer.hourly_cost, 6),
                    "runtime_hours": s.runtime_hours,
                    "cost": round(s.cost, 6),
                    "start_hours": round(s.start_hours, 6),
                    "finish_hours": round(s.finish_hours, 6),
                    "candidates": self.candidates[s.index],
                    "feasible": self.feasible[s.index],
                }
                for s in self.steps
            ],
            "edges": [
                {
                    "from": t.source,
                    "to": t.target,
                    "gb": t.gb,
                    "link": t.kind,
                    "usd_per_gb": t.usd_per_gb,
                    "cost": round(t.cost, 6),
                    "hours": round(t.hours, 6),
                }
                for t in self.transfers
            ],
            "compute_cost": round(self.compute_cost, 6),
            "egress_cost": round(self.egress_cost, 6),
            "total_cost": round(self.total_cost, 6),
            "makespan_hours": round(self.makespan_hours, 6),
            "solver": self.solver,
            "status": self.status,
            "gap": round(self.gap, 9),
        }


# -- inputs ---------------------------------------------------------------------------------------


def _label(task: Task, index: int) -> str:
    return task.name or f"#{index}"


def _graph(n: int, edges: Sequence[tuple[int, int]] | None) -> tuple[tuple[int, int], ...]:
    """The validated edges: the chain 0→1→…→n-1 by default."""
    if edges is None:
        return tuple((i, i + 1) for i in range(n - 1))
    out: list[tuple[int, int]] = []
    for edge in edges:
        i, j = edge
        if not (isinstance(i, int) and isinstance(j, int) and 0 <= i < n and 0 <= j < n):
            raise InputError(f"edge {edge!r}: tasks are numbered 0..{n - 1}")
        if i == j:
            raise InputError(f"edge {edge!r}: a task cannot feed itself")
        if (i, j) in out:
            raise InputError(f"edge {edge!r} is given twice")
        out.append((i, j))
    if len(topological(n, out)) < n:
        raise InputError("the edges form a cycle; a pipeline must be a DAG")
    return tuple(out)


def _runtimes(tasks: Sequence[Task], runtime_hours: Mapping[str, float] | None) -> list[float]:
    given = dict(runtime_hours or {})
    names = {t.name for t in tasks if t.name}
    for name, hours in given.items():
        if name not in names:
            guess = did_you_mean(name, names)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise InputError(f"runtime_hours names {name!r}, which is no task of the DAG{hint}")
        if not (isinstance(hours, int | float) and math.isfinite(hours) and hours >= 0):
            raise InputError(f"runtime of {name!r} must be a non-negative number of hours")
    return [float(given.get(t.name or "", DEFAULT_RUNTIME_HOURS)) for t in tasks]


def _output_gb(task: Task, index: int) -> float:
    sizes = list((task.outputs or {}).values())
    if any(not (math.isfinite(s) and s >= 0) for s in sizes):
        raise InputError(f"task {_label(task, index)!r}: outputs sizes must be non-negative GB")
    return float(sum(sizes))


def prune(frame: pl.DataFrame, candidates_per_task: int) -> pl.DataFrame:
    """The `candidates_per_task` first rows of a ranked `feasible_offers` frame plus the first
    (cheapest) row of each (cloud, region), deduplicated, in rank order."""
    ranked = frame.with_row_index("_rank")
    head = ranked.head(candidates_per_task)
    per_location = ranked.unique(subset=[c.CLOUD, c.REGION], keep="first", maintain_order=True)
    return (
        pl.concat([head, per_location])
        .unique(subset="_rank", keep="first", maintain_order=True)
        .sort("_rank")
        .drop("_rank")
    )


def _candidates(
    task: Task,
    index: int,
    catalog: Catalog,
    policy: Policy | None,
    context: RequestContext | None,
    limit: int,
) -> tuple[list[Candidate], int]:
    ctx = context_of(task, context)
    frame = feasible_offers(task, catalog, policy=policy, context=ctx)
    if frame.height == 0:
        label = _label(task, index)
        try:
            place(task, catalog, policy=policy, context=ctx)
        except NoFeasiblePlacement as err:
            raise NoFeasiblePlacement(label, err.summary, err.reasons, err.verdicts) from None
        raise NoFeasiblePlacement(label, "no offer in the catalog meets every requirement")
    out = []
    for row in prune(frame, limit).iter_rows(named=True):
        offer = offer_from_row(row, bool(row[SPOT]), task.num_nodes)
        score = row[SCORE] if row[SCORE] is not None else row[COST]
        out.append(Candidate(offer, (offer.cloud, offer.region), float(score)))
    return out, frame.height


# -- the entry point ------------------------------------------------------------------------------


def plan_pipeline(
    dag: Dag,
    catalog: Catalog,
    *,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    objective: Objective = "cost",
    runtime_hours: Mapping[str, float] | None = None,
    egress: EgressModel | None = None,
    edges: Sequence[tuple[int, int]] | None = None,
    candidates_per_task: int = 25,
    solver: Method = "auto",
    time_limit: float = DEFAULT_TIME_LIMIT_S,
) -> PipelinePlan:
    """Place every task of `dag` jointly. Pure; raises `NoFeasiblePlacement` naming the first
    task that nothing fits, `InputError` for bad edges, runtimes or options.

    `edges` are (producer, consumer) task indices, the chain 0→1→…→n-1 by default (SkyPilot's
    pipeline); an edge carries the producer's total `outputs` size in GB. A task runs for
    `runtime_hours[task.name]` hours (1 by default). `solver` forces "dp" (where it is exact:
    data edges forming a forest for cost, one chain through every task for time) or "cp-sat";
    "auto" takes the DP wherever it is exact. `time_limit` bounds CP-SAT in seconds (for the
    time objective, shared by its two stages: least makespan, then least cost); a plan found
    but not proven within it has status FEASIBLE and its gap."""
    started = time.perf_counter()
    if objective not in ("cost", "time"):
        raise InputError(f"objective must be 'cost' or 'time', not {objective!r}")
    if solver not in ("auto", "dp", "cp-sat"):
        raise InputError(f"solver must be 'auto', 'dp' or 'cp-sat', not {solver!r}")
    if candidates_per_task < 0:
        raise InputError("candidates_per_task must be 0 or more")
    tasks = dag.tasks
    n = len(tasks)
    if n == 0:
        raise InputError("the DAG has no tasks")
    model = egress if egress is not None else EgressModel()
    graph = _graph(n, edges)
    runtimes = _runtimes(tasks, runtime_hours)
    sizes = [_output_gb(t, i) for i, t in enumerate(tasks)]
    pools, feasible = [], []
    for i, task in enumerate(tasks):
        pool, count = _candidates(task, i, catalog, policy, context, candidates_per_task)
        pools.append(pool)
        feasible.append(count)
    plan_edges = tuple(Edge(i, j, sizes[i]) for i, j in graph)
    problem = Problem.build(objective, model, plan_edges, runtimes, pools)

    if objective == "cost":
        carrying = [e for e in plan_edges if e.gb > 0]
        dp_exact, tree = is_forest(n, carrying), carrying
    else:
        dp_exact, tree = is_single_path(n, plan_edges), list(plan_edges)
    if solver == "dp" and not dp_exact:
        raise InputError(
            "the DP solver needs the edges that carry data to form a forest (for the time "
            "objective: one chain through every task); use 'cp-sat'"
        )
    method: Literal["dp", "cp-sat"] = "dp" if solver != "cp-sat" and dp_exact else "cp-sat"
    status: Status = "OPTIMAL"
    gap = 0.0
    if method == "dp":
        choice = tree_dp(problem, tree, problem.key)
    else:
        choice, status, gap = cp_sat(problem, time_limit)

    offers = [pools[t][problem.options[t][choice[t]]].offer for t in range(n)]
    transfers = []
    for e in plan_edges:
        link = model.link(
            (offers[e.source].cloud, offers[e.source].region),
            (offers[e.target].cloud, offers[e.target].region),
        )
        hours = link.hours(e.gb)
        transfers.append(
            Transfer(
                e.source,
                e.target,
                e.gb,
                link.kind,
                link.usd_per_gb,
                e.gb * link.usd_per_gb,
                link.gbps,
                hours,
            )
        )
    finish = [0.0] * n
    steps: list[PipelineStep | None] = [None] * n
    preds = [[(tr.source, tr.hours) for tr in transfers if tr.target == t] for t in range(n)]
    for t in topological(n, graph):
        start = max((finish[i] + h for i, h in preds[t]), default=0.0)
        finish[t] = start + runtimes[t]
        steps[t] = PipelineStep(
            t,
            tasks[t].name,
            offers[t],
            runtimes[t],
            offers[t].hourly_cost * runtimes[t],
            start,
            finish[t],
        )
    compute_cost = sum(s.cost for s in steps if s is not None)
    egress_cost = sum(tr.cost for tr in transfers)
    return PipelinePlan(
        objective=objective,
        steps=tuple(s for s in steps if s is not None),
        transfers=tuple(transfers),
        compute_cost=compute_cost,
        egress_cost=egress_cost,
        total_cost=compute_cost + egress_cost,
        makespan_hours=max(finish),
        solver=method,
        status=status,
        gap=gap,
        candidates=tuple(len(p) for p in pools),
        feasible=tuple(feasible),
        wall_seconds=time.perf_counter() - started,
    )


def pipeline_candidates(
    dag: Dag,
    catalog: Catalog,
    *,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    candidates_per_task: int = 25,
) -> tuple[tuple[Offer, ...], ...]:
    """The pruned candidates `plan_pipeline` searches, per task in rank order (for baselines
    and explanations)."""
    return tuple(
        tuple(
            cand.offer
            for cand in _candidates(t, i, catalog, policy, context, candidates_per_task)[0]
        )
        for i, t in enumerate(dag.tasks)
    )
