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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.errors import InputError, NoFeasiblePlacement, did_you_mean
from skyplan.model import Dag, Offer, Policy, RequestContext, Task
from skyplan.solver.planner import (
    COST,
    SCORE,
    SPOT,
    context_of,
    feasible_offers,
    offer_from_row,
    place,
)

Objective = Literal["cost", "time"]
Method = Literal["auto", "dp", "cp-sat"]
Status = Literal["OPTIMAL", "FEASIBLE"]
LinkKind = Literal["same-region", "inter-region", "inter-cloud"]
Location = tuple[str, str]  # (cloud, region)

SEED = 7
WORKERS = 2
DEFAULT_RUNTIME_HOURS = 1.0
DEFAULT_TIME_LIMIT_S = 10.0
_MICRO = 1_000_000  # dollars → micro-dollars
_MS_PER_HOUR = 3_600_000

# -- egress ---------------------------------------------------------------------------------------

#: Internet data transfer out, $/GB, first paid tier, by the *source* cloud. List prices as
#: quoted by the pages below (found through the project's search index; tiers fall with monthly
#: volume, and the first 100 GB a month are free on AWS and Azure, which a per-pipeline model
#: ignores):
#: - aws 0.09: EC2 to the internet, US East, "Next 9.999 TB per month $0.09 per GB" —
#:   https://blogs.vmware.com/cloudhealth/aws-data-transfer-pricing/ and
#:   https://finopsforge.com/reduce-aws-data-transfer-costs ("Internet egress (first 10TB/month)
#:   $0.09/GB"). AWS's own page (https://aws.amazon.com/ec2/pricing/on-demand/) renders its
#:   rates dynamically and could not be read.
#: - gcp 0.12: Premium Tier to North America, 1-1,024 GiB a month, "$0.12 / 1 gibibyte" — a
#:   transcription of https://cloud.google.com/vpc/network-pricing at
#:   https://raw.githubusercontent.com/api-evangelist/google-cloud-vpc/refs/heads/main/plans/google-cloud-vpc-plans-pricing.yml
#:   and https://egresscost.com/gcp/regions ("$0.12/GB Premium"). Google bills per GiB; the
#:   model reads it per GB (7% less).
#: - azure 0.087: after the free 100 GB, first 10 TB, "~$0.087/GB" —
#:   https://c3x.dev/blog/azure-egress-bandwidth-cost/ (third-party). Microsoft's own page
#:   (https://azure.microsoft.com/pricing/details/bandwidth/) could not be read.
#: Other clouds (Lambda, Kubernetes, SSH pools, ...) take `default_internet_usd_per_gb`, 0.09:
#: an assumption, not a published price.
INTERNET_USD_PER_GB: Mapping[str, float] = {"aws": 0.09, "gcp": 0.12, "azure": 0.087}

#: Data transfer between two regions of the same cloud, $/GB, by the source cloud:
#: - aws 0.02: "EC2 charges 2 cents per gigabyte for inter-region egress traffic" —
#:   https://github.com/NixOS/amis/issues/122; https://finopsforge.com/reduce-aws-data-transfer-costs
#:   gives "$0.02-$0.08/GB" by region pair.
#: - gcp 0.02: "Between regions (same continent) $0.01 - $0.02" —
#:   https://brainagents.ai/gcpfinops/blog/gcp-network-egress-cross-region-costs; also
#:   https://cloudwebschool.com/docs/gcp/cost-management/network-egress-costs/ ("~$0.01-0.08/GB
#:   depending on the region pair"). The upper end of the one-continent range; not verified on
#:   Google's own page.
#: - azure 0.02: "Cross-region transfers within North America or Europe cost $0.02/GB" —
#:   https://lucidity.cloud/feeds/blog/azure-storage-egress-cost (other continents more). Not
#:   verified on Microsoft's own page.
#: Other clouds take `default_inter_region_usd_per_gb`, 0.02 (an assumption). Zones of one
#: region are one location: AWS's $0.01/GB each way between zones is left out.
INTER_REGION_USD_PER_GB: Mapping[str, float] = {"aws": 0.02, "gcp": 0.02, "azure": 0.02}


@dataclass(frozen=True)
class Link:
    """What moving data from one placement to another costs and how fast it goes."""

    kind: LinkKind
    usd_per_gb: float
    gbps: float

    def hours(self, gb: float) -> float:
        """Transfer time of `gb` gigabytes over this link."""
        return gb * 8 / self.gbps / 3600


@dataclass(frozen=True)
class EgressModel:
    """$/GB and Gbit/s between two (cloud, region) placements.

    Same region: free (zones of one region are treated alike). Same cloud, other region: the
    source cloud's inter-region price. Different clouds: the source cloud's internet egress
    price. Clouds missing from the tables (Lambda, Kubernetes, SSH pools, ...) use the defaults.

    The bandwidths are modelling assumptions, not published figures: what one node sustains to
    storage in its own region, across the cloud's backbone, and over the public internet.
    """

    internet_usd_per_gb: Mapping[str, float] = field(
        default_factory=lambda: dict(INTERNET_USD_PER_GB)
    )
    inter_region_usd_per_gb: Mapping[str, float] = field(
        default_factory=lambda: dict(INTER_REGION_USD_PER_GB)
    )
    default_internet_usd_per_gb: float = 0.09
    default_inter_region_usd_per_gb: float = 0.02
    same_region_gbps: float = 10.0
    inter_region_gbps: float = 5.0
    inter_cloud_gbps: float = 1.0

    def __post_init__(self) -> None:
        prices = [
            *self.internet_usd_per_gb.values(),
            *self.inter_region_usd_per_gb.values(),
            self.default_internet_usd_per_gb,
            self.default_inter_region_usd_per_gb,
        ]
        if any(not (math.isfinite(p) and p >= 0) for p in prices):
            raise ValueError("egress prices must be finite and non-negative")
        speeds = (self.same_region_gbps, self.inter_region_gbps, self.inter_cloud_gbps)
        if any(not (math.isfinite(s) and s > 0) for s in speeds):
            raise ValueError("bandwidths must be finite and positive")

    def internet(self, cloud: str) -> float:
        return self.internet_usd_per_gb.get(cloud, self.default_internet_usd_per_gb)

    def inter_region(self, cloud: str) -> float:
        return self.inter_region_usd_per_gb.get(cloud, self.default_inter_region_usd_per_gb)

    def link(self, source: Location, target: Location) -> Link:
        """The link from a placement at `source` to one at `target`, each (cloud, region)."""
        if source == target:
            return Link("same-region", 0.0, self.same_region_gbps)
        if source[0] == target[0]:
            return Link("inter-region", self.inter_region(source[0]), self.inter_region_gbps)
        return Link("inter-cloud", self.internet(source[0]), self.inter_cloud_gbps)


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


def _task_context(task: Task, context: RequestContext | None) -> RequestContext:
    """The request context of one task, as `plan()` builds it: the caller's, plus the task's
    own name, kind, labels and node count."""
    own = context_of(task)
    if context is None:
        return own
    return context.model_copy(
        update={
            "name": task.name,
            "kind": context.kind if context.kind != "task" else own.kind,
            "labels": {**own.labels, **context.labels},
            "num_nodes": task.num_nodes,
        }
    )


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
    if len(_topological(n, out)) < n:
        raise InputError("the edges form a cycle; a pipeline must be a DAG")
    return tuple(out)


def _topological(n: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Kahn's order, lowest index first among the ready tasks (short when there is a cycle)."""
    indegree = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges:
        indegree[j] += 1
        succ[i].append(j)
    ready = sorted(t for t in range(n) if indegree[t] == 0)
    order: list[int] = []
    while ready:
        t = ready.pop(0)
        order.append(t)
        for j in succ[t]:
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(j)
                ready.sort()
    return order


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


@dataclass(frozen=True)
class _Candidate:
    offer: Offer
    location: Location
    score: float  # $/h that ranks it: the cost less policy preferences


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
) -> tuple[list[_Candidate], int]:
    ctx = _task_context(task, context)
    frame = feasible_offers(task, catalog, policy=policy, context=ctx)
    if frame.height == 0:
        label = _label(task, index)
        try:
            place(task, catalog, policy=policy, context=ctx)
        except NoFeasiblePlacement as err:
            raise NoFeasiblePlacement(label, err.summary, err.reasons) from None
        raise NoFeasiblePlacement(label, "no offer in the catalog meets every requirement")
    out = []
    for row in prune(frame, limit).iter_rows(named=True):
        offer = offer_from_row(row, bool(row[SPOT]), task.num_nodes)
        score = row[SCORE] if row[SCORE] is not None else row[COST]
        out.append(_Candidate(offer, (offer.cloud, offer.region), float(score)))
    return out, frame.height


# -- the problem, in integers ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Edge:
    source: int
    target: int
    gb: float


@dataclass
class _Problem:
    """Per task one option per location (its cheapest candidate there), in integers."""

    objective: Objective
    egress: EgressModel
    edges: tuple[_Edge, ...]
    runtime_ms: list[int]
    options: list[list[int]]  # task → option → candidate index
    locations: list[list[Location]]  # task → option → location
    compute: list[list[int]]  # task → option → micro-dollars (ranking $/h × runtime)
    order: list[int]  # the tasks in topological order
    _links: dict[tuple[float, Location, Location], tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        objective: Objective,
        egress: EgressModel,
        edges: tuple[_Edge, ...],
        runtimes: Sequence[float],
        pools: Sequence[Sequence[_Candidate]],
    ) -> _Problem:
        best: list[dict[Location, int]] = []
        for pool in pools:
            per_location: dict[Location, int] = {}
            for k, cand in enumerate(pool):
                held = per_location.get(cand.location)
                if held is None or cand.score < pool[held].score:
                    per_location[cand.location] = k
            best.append(per_location)
        if objective == "cost" or egress.same_region_gbps >= egress.inter_region_gbps:
            kept = _undominated(best, pools, edges)
            best = [
                {loc: k for loc, k in b.items() if loc in keep}
                for b, keep in zip(best, kept, strict=True)
            ]
        options = [list(b.values()) for b in best]
        locations = [list(b) for b in best]
        compute = [
            [round(pool[k].score * hours * _MICRO) for k in b.values()]
            for b, pool, hours in zip(best, pools, runtimes, strict=True)
        ]
        runtime_ms = [round(h * _MS_PER_HOUR) for h in runtimes]
        order = _topological(len(pools), [(e.source, e.target) for e in edges])
        return cls(objective, egress, edges, runtime_ms, options, locations, compute, order)

    def link(self, gb: float, source: Location, target: Location) -> tuple[int, int]:
        """(micro-dollars, milliseconds) of moving `gb` from `source` to `target`."""
        key = (gb, source, target)
        found = self._links.get(key)
        if found is None:
            link = self.egress.link(source, target)
            found = (_micro(gb, link.usd_per_gb), _ms(gb, link.gbps))
            self._links[key] = found
        return found

    def key(self, micro: int, ms: int) -> tuple[int, int]:
        """What the objective compares: cost, or time then cost."""
        return (micro, 0) if self.objective == "cost" else (ms, micro)

    def value(self, choice: Sequence[int]) -> tuple[int, int]:
        """The objective of one option per task: (cost, 0) or (makespan, cost)."""
        micro = sum(self.compute[t][o] for t, o in enumerate(choice))
        delays = []
        for e in self.edges:
            loc_i = self.locations[e.source][choice[e.source]]
            loc_j = self.locations[e.target][choice[e.target]]
            cost, ms = self.link(e.gb, loc_i, loc_j)
            micro += cost
            delays.append(ms)
        return self.key(micro, self.makespan(delays))

    def makespan(self, delays: Sequence[int]) -> int:
        """The latest finish, each edge taking its delay (ms), tasks as soon as inputs are in."""
        finish = [0] * len(self.runtime_ms)
        preds: list[list[tuple[int, int]]] = [[] for _ in self.runtime_ms]
        for e, ms in zip(self.edges, delays, strict=True):
            preds[e.target].append((e.source, ms))
        for t in self.order:
            start = max((finish[i] + ms for i, ms in preds[t]), default=0)
            finish[t] = start + self.runtime_ms[t]
        return max(finish, default=0)

    def fastest_delay(self, e: _Edge) -> int:
        """A lower bound on edge `e`'s transfer time, whatever its ends' placements."""
        here, there = set(self.locations[e.source]), set(self.locations[e.target])
        clouds = {loc[0] for loc in here}, {loc[0] for loc in there}
        speeds = [self.egress.inter_cloud_gbps]
        if clouds[0] & clouds[1]:
            speeds.append(self.egress.inter_region_gbps)
        if here & there:
            speeds.append(self.egress.same_region_gbps)
        return min(_ms(e.gb, gbps) for gbps in speeds)

    @staticmethod
    def cost_key(micro: int, ms: int) -> tuple[int, int]:
        return (micro, 0)


def _undominated(
    best: Sequence[Mapping[Location, int]],
    pools: Sequence[Sequence[_Candidate]],
    edges: Sequence[_Edge],
) -> list[set[Location]]:
    """Per task, the locations an optimum may need: the cheapest of each cloud, and any other
    location only where a neighbour (through an edge that carries data) may also be.

    Moving a task from such a location l to the cheapest l* of its cloud never costs more: its
    $/h does not rise, and every edge keeps its class except that one may become same-region
    (free, and not slower when the same-region bandwidth is at least the inter-region one) —
    no neighbour can share l. Repeated until nothing changes, as neighbours lose locations."""
    n = len(best)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for e in edges:
        if e.gb > 0:
            neighbours[e.source].add(e.target)
            neighbours[e.target].add(e.source)
    cheapest: list[set[Location]] = []
    for per_location, pool in zip(best, pools, strict=True):
        first: dict[str, Location] = {}
        for loc, k in per_location.items():
            held = first.get(loc[0])
            if held is None or pool[k].score < pool[per_location[held]].score:
                first[loc[0]] = loc
        cheapest.append(set(first.values()))
    kept = [set(b) for b in best]
    changed = True
    while changed:
        changed = False
        for t in range(n):
            keep = {
                loc
                for loc in kept[t]
                if loc in cheapest[t] or any(loc in kept[u] for u in neighbours[t])
            }
            if keep != kept[t]:
                kept[t], changed = keep, True
    return kept


def _micro(gb: float, usd_per_gb: float) -> int:
    return round(gb * usd_per_gb * _MICRO)


def _ms(gb: float, gbps: float) -> int:
    return round(gb * 8 / gbps * 1000)


def _forest(n: int, edges: Sequence[_Edge]) -> bool:
    """Whether `edges`, undirected, form a forest (no cycle)."""
    root = list(range(n))

    def find(t: int) -> int:
        while root[t] != t:
            root[t] = root[root[t]]
            t = root[t]
        return t

    for e in edges:
        a, b = find(e.source), find(e.target)
        if a == b:
            return False
        root[a] = b
    return True


def _single_path(n: int, edges: Sequence[_Edge]) -> bool:
    """Whether `edges` chain every task into one directed path."""
    if len(edges) != n - 1:
        return False
    outs = {e.source for e in edges}
    ins = {e.target for e in edges}
    return len(outs) == len(ins) == n - 1 and _forest(n, edges)


def _spanning_forest(n: int, edges: Sequence[_Edge]) -> list[_Edge]:
    """A maximum spanning forest by data size (Kruskal): the edges that matter most."""
    ranked = sorted(edges, key=lambda e: (-e.gb, e.source, e.target))
    kept: list[_Edge] = []
    for e in ranked:
        if _forest(n, [*kept, e]):
            kept.append(e)
    return kept


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0] + b[0], a[1] + b[1])


def _tree_dp(
    problem: _Problem, tree: Sequence[_Edge], key: Callable[[int, int], tuple[int, int]]
) -> list[int]:
    """The option per task minimizing Σ task keys + Σ `tree` edge keys, by dynamic programming
    over (task, location) from the leaves up: exact where `tree` is a forest. O(Σ L_i·L_j)."""
    n = len(problem.options)
    adjacent: list[list[_Edge]] = [[] for _ in range(n)]
    for e in tree:
        adjacent[e.source].append(e)
        adjacent[e.target].append(e)
    value = [[key(m, problem.runtime_ms[t]) for m in problem.compute[t]] for t in range(n)]
    parent: list[_Edge | None] = [None] * n
    order: list[int] = []
    seen = [False] * n
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        stack = [root]
        while stack:
            t = stack.pop()
            order.append(t)
            for e in adjacent[t]:
                other = e.target if e.source == t else e.source
                if not seen[other]:
                    seen[other] = True
                    parent[other] = e
                    stack.append(other)
    best_child: dict[int, list[int]] = {}  # child → parent option → child option
    for t in reversed(order):
        link = parent[t]
        if link is None:
            continue
        up = link.source if link.target == t else link.target
        arg = []
        for p, loc_p in enumerate(problem.locations[up]):
            best, where = None, -1
            for o, loc in enumerate(problem.locations[t]):
                micro, ms = (
                    problem.link(link.gb, loc, loc_p)
                    if link.source == t
                    else problem.link(link.gb, loc_p, loc)
                )
                v = _add(value[t][o], key(micro, ms))
                if best is None or v < best:
                    best, where = v, o
            assert best is not None
            value[up][p] = _add(value[up][p], best)
            arg.append(where)
        best_child[t] = arg
    choice = [0] * n
    for t in order:
        link = parent[t]
        if link is None:
            choice[t] = min(range(len(value[t])), key=value[t].__getitem__)
        else:
            up = link.source if link.target == t else link.target
            choice[t] = best_child[t][choice[up]]
    return choice


def _improve(problem: _Problem, choice: list[int]) -> list[int]:
    """Best responses on cost until none helps: each task in turn takes its cheapest option
    given its neighbours' (a primal heuristic for CP-SAT's hint)."""
    n = len(choice)
    incident: list[list[_Edge]] = [[] for _ in range(n)]
    for e in problem.edges:
        if e.gb > 0:
            incident[e.source].append(e)
            incident[e.target].append(e)
    choice = list(choice)
    improved = True
    while improved:
        improved = False
        for t in range(n):

            def local(o: int, t: int = t) -> int:
                total = problem.compute[t][o]
                here = problem.locations[t][o]
                for e in incident[t]:
                    if e.source == t:
                        there = problem.locations[e.target][choice[e.target]]
                        total += problem.link(e.gb, here, there)[0]
                    else:
                        there = problem.locations[e.source][choice[e.source]]
                        total += problem.link(e.gb, there, here)[0]
                return total

            best = min(range(len(problem.options[t])), key=local)
            if local(best) < local(choice[t]):
                choice[t], improved = best, True
    return choice


def _descend(problem: _Problem, choice: list[int]) -> list[int]:
    """Best responses on the whole objective until none helps (any objective; O(L·(n+m)) per
    task and round)."""
    choice = list(choice)
    current = problem.value(choice)
    improved = True
    while improved:
        improved = False
        for t in range(len(choice)):
            for o in range(len(problem.options[t])):
                trial = [*choice[:t], o, *choice[t + 1 :]]
                v = problem.value(trial)
                if v < current:
                    choice, current, improved = trial, v, True
    return choice


def _hint(problem: _Problem) -> list[int]:
    """A good first plan for CP-SAT, which then mostly has to prove it: the exact plan for a
    maximum spanning forest of the edges, improved by best responses; for the time objective
    also every "all at one location where possible" plan, the three best improved."""
    n = len(problem.options)
    forest = _spanning_forest(n, problem.edges)
    cheap = _improve(problem, _tree_dp(problem, forest, problem.cost_key))
    if problem.objective == "cost":
        return cheap
    fallback: list[dict[str, int]] = []
    for t in range(n):
        per_cloud: dict[str, int] = {}
        for o, loc in enumerate(problem.locations[t]):
            held = per_cloud.get(loc[0])
            if held is None or problem.compute[t][o] < problem.compute[t][held]:
                per_cloud[loc[0]] = o
        fallback.append(per_cloud)
    starts = [cheap]
    for loc in sorted({loc for row in problem.locations for loc in row}):
        start = []
        for t in range(n):
            row = problem.locations[t]
            if loc in row:
                start.append(row.index(loc))
            elif loc[0] in fallback[t]:
                start.append(fallback[t][loc[0]])
            else:
                start.append(cheap[t])
        starts.append(start)
    ranked = sorted(starts, key=problem.value)[:3]
    return min((_descend(problem, s) for s in ranked), key=problem.value)


def _cp_sat(problem: _Problem, time_limit: float) -> tuple[list[int], Status, float]:
    """The general DAG as a CP-SAT model over one Boolean per (task, location).

    Per edge i→j with data: one Boolean per cloud both ends can be on (both there) and per
    region both can be in (both there). With U_c = "i is on cloud c", the edge goes to another
    cloud when U_c minus "both on c" is 1, and to another region of c when "both on c" minus
    "both in a region of c" is 1; egress $ and transfer time are linear in those."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    n = len(problem.options)
    x: list[list[Any]] = [
        [model.new_bool_var(f"x{t}_{o}") for o in range(len(problem.options[t]))] for t in range(n)
    ]
    for row in x:
        model.add_exactly_one(row)
    on_cloud: list[dict[str, list[Any]]] = []
    at: list[dict[Location, Any]] = []
    for t in range(n):
        clouds: dict[str, list[Any]] = {}
        for o, loc in enumerate(problem.locations[t]):
            clouds.setdefault(loc[0], []).append(x[t][o])
        on_cloud.append(clouds)
        at.append({loc: x[t][o] for o, loc in enumerate(problem.locations[t])})

    def conjunction(a: Any, b: Any, name: str) -> Any:
        """A Boolean equal to a ∧ b (a, b: 0/1 linear expressions)."""
        var = model.new_bool_var(name)
        model.add(var <= a)
        model.add(var <= b)
        model.add(var >= a + b - 1)
        return var

    egress = problem.egress
    cost: Any = sum(m * x[t][o] for t in range(n) for o, m in enumerate(problem.compute[t]))
    delays: list[Any] = []
    longest = 0
    for k, e in enumerate(problem.edges):
        i, j = e.source, e.target
        same_ms = _ms(e.gb, egress.same_region_gbps)
        inter_ms = _ms(e.gb, egress.inter_region_gbps)
        cloud_ms = _ms(e.gb, egress.inter_cloud_gbps)
        longest += max(same_ms, inter_ms, cloud_ms)
        delay: Any = same_ms
        for cloud, members in sorted(on_cloud[i].items()):
            on_c = sum(members)
            if cloud in on_cloud[j]:
                both_c = conjunction(on_c, sum(on_cloud[j][cloud]), f"c{k}_{cloud}")
                both_r = [
                    conjunction(var, at[j][loc], f"r{k}_{loc[0]}_{loc[1]}")
                    for loc, var in sorted(at[i].items())
                    if loc[0] == cloud and loc in at[j]
                ]
                other_region: Any = both_c - sum(both_r)
            else:
                both_c, other_region = 0, 0
            other_cloud = on_c - both_c
            cost += _micro(e.gb, egress.internet(cloud)) * other_cloud
            cost += _micro(e.gb, egress.inter_region(cloud)) * other_region
            delay += (cloud_ms - same_ms) * other_cloud + (inter_ms - same_ms) * other_region
        delays.append(delay)

    hint = _hint(problem)
    for t in range(n):
        for o, var in enumerate(x[t]):
            model.add_hint(var, 1 if hint[t] == o else 0)

    def solve(objective: Any, limit: float) -> Any:
        model.minimize(objective)
        solver = cp_model.CpSolver()
        solver.parameters.random_seed = SEED
        solver.parameters.num_workers = WORKERS
        solver.parameters.interleave_search = True  # deterministic whatever the worker count
        # Probing and symmetry detection cost more than they save on these small models.
        solver.parameters.cp_model_probing_level = 0
        solver.parameters.symmetry_level = 0
        solver.parameters.max_time_in_seconds = max(0.05, limit)
        status = solver.solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        return solver, status == cp_model.OPTIMAL

    deadline = time.perf_counter() + time_limit
    optimal = True
    if problem.objective == "time":
        horizon = sum(problem.runtime_ms) + longest
        finish = [model.new_int_var(problem.runtime_ms[t], horizon, f"f{t}") for t in range(n)]
        for e, delay in zip(problem.edges, delays, strict=True):
            model.add(finish[e.target] >= finish[e.source] + delay + problem.runtime_ms[e.target])
        floor = problem.makespan([problem.fastest_delay(e) for e in problem.edges])
        makespan = model.new_int_var(floor, horizon, "makespan")
        for f in finish:
            model.add(makespan >= f)
        best = problem.value(hint)[0]
        if best > floor:  # the hint does not reach the bound: search for the least makespan
            found = solve(makespan, time_limit / 2)
            if found is None:  # not even the hint within the limit: report it, gap unknown
                return hint, "FEASIBLE", 1.0
            first, optimal = found
            best = round(first.value(makespan))
            model.clear_hints()  # type: ignore[no-untyped-call]
            for row in x:
                for var in row:
                    model.add_hint(var, int(first.value(var)))
        model.add(makespan <= best)
    found = solve(cost, deadline - time.perf_counter())
    if found is None:
        return hint, "FEASIBLE", 1.0
    solver, proven = found
    choice = [next(o for o, var in enumerate(row) if solver.value(var)) for row in x]
    gap = 0.0 if proven else _gap(solver.objective_value, solver.best_objective_bound)
    return choice, "OPTIMAL" if optimal and proven else "FEASIBLE", gap


def _gap(value: float, bound: float) -> float:
    return max(0.0, (value - bound) / max(abs(value), 1.0))


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
    plan_edges = tuple(_Edge(i, j, sizes[i]) for i, j in graph)
    problem = _Problem.build(objective, model, plan_edges, runtimes, pools)

    if objective == "cost":
        carrying = [e for e in plan_edges if e.gb > 0]
        dp_exact, tree = _forest(n, carrying), carrying
    else:
        dp_exact, tree = _single_path(n, plan_edges), list(plan_edges)
    if solver == "dp" and not dp_exact:
        raise InputError(
            "the DP solver needs the edges that carry data to form a forest (for the time "
            "objective: one chain through every task); use 'cp-sat'"
        )
    method: Literal["dp", "cp-sat"] = "dp" if solver != "cp-sat" and dp_exact else "cp-sat"
    status: Status = "OPTIMAL"
    gap = 0.0
    if method == "dp":
        choice = _tree_dp(problem, tree, problem.key)
    else:
        choice, status, gap = _cp_sat(problem, time_limit)

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
    for t in _topological(n, graph):
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
