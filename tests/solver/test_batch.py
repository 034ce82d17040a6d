"""`plan_batch`: many requests admitted at once under shared quotas, budgets, pool capacities and
priorities.

The specification, as tables of tiny catalogs and batches:

- each request takes at most one of its feasible offers; a multi-node request takes all its
  nodes on one offer row (one zone);
- per group, the admitted requests' gpus / vcpus / memory / nodes plus the group's recorded usage
  stay within each quota, their $/h within each budget; an offer with a capacity (a pool) holds
  at most `capacity` nodes, whoever takes them;
- among the plans that keep every limit: the most requests at the highest priority, then at the
  next, ..., then the least total $/h (a preference counts as a discount);
- a request that shares no limit takes its cheapest offer;
- whoever waits is told which limits keep it out, or the planner's reason when nothing fits;
- `require_all=True` admits everyone or raises `NoFeasiblePlacement` naming the conflict;
- equal inputs give equal plans.

A property test checks the same over random small batches against a brute force over every
assignment of every request to one of its feasible offers or to none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

import skyplan
from skyplan.catalog import schema
from skyplan.dsl import load
from skyplan.errors import NoFeasiblePlacement
from skyplan.model import policy as m
from skyplan.model.batch import BatchPlan, BatchRequest
from skyplan.solver.batch import plan_batch
from skyplan.solver.planner import feasible_offers, place
from skyplan.solver.policy import COST, SPOT, applies, group_key
from tests.solver.factories import gpu_offer, make_catalog, make_offer

# -- rows ----------------------------------------------------------------------------------------

A100 = gpu_offer("A100", 1, instance_type="a100-x1", price=3.0)
A100_GCP = gpu_offer(
    "A100", 1, cloud="gcp", region="us-central1", instance_type="a2-highgpu-1g", price=3.5
)
A100_X2 = gpu_offer("A100", 2, instance_type="a100-x2", price=6.0)
V100_X2 = gpu_offer("V100", 2, instance_type="v100-x2", price=4.0)
T4 = gpu_offer("T4", 1, instance_type="t4-x1", price=0.5)
T4_X2 = gpu_offer("T4", 2, instance_type="t4-x2", price=1.0)
T4_X4 = gpu_offer("T4", 4, instance_type="t4-x4", price=1.5)
CPU = make_offer()  # m6i.2xlarge: 8 vCPUs, 32 GiB, $0.384/h
#: Two pools of one instance type, one per zone: the cheap one and the other.
POOL_A = gpu_offer("A100", 1, instance_type="a100-pool", zone="us-east-1a", price=1.0, capacity=2)
POOL_B = gpu_offer("A100", 1, instance_type="a100-pool", zone="us-east-1b", price=2.0, capacity=2)
POOL_A1 = {**POOL_A, schema.CAPACITY: 1}
POOL_B1 = {**POOL_B, schema.CAPACITY: 1}
#: A row only 16-vCPU requests fit, in a pool of two nodes.
WIDE_POOL = gpu_offer(
    "A100", 1, instance_type="a100-wide", zone="us-east-1a", vcpus=16, price=3.0, capacity=2
)
NARROW = gpu_offer("A100", 1, instance_type="a100-narrow", price=4.0)


# -- policies ------------------------------------------------------------------------------------


def gpu_quota(limit: float, level: m.Level = m.Level.HARD) -> m.Quota:
    return m.Quota(name="team GPUs", metric="gpus", limit=limit, per=("team",), level=level)


def budget(limit: float) -> m.Budget:
    return m.Budget(name="team budget", limit=limit, per=("team",))


def policy(*bounds: m.Quota | m.Budget, prefer: Sequence[m.Preference] = ()) -> m.Policy:
    return m.Policy(
        quotas=tuple(b for b in bounds if isinstance(b, m.Quota)),
        budgets=tuple(b for b in bounds if isinstance(b, m.Budget)),
        preferences=tuple(prefer),
    )


def from_text(text: str) -> m.Policy:
    """A policy compiled from DSL text."""
    loaded = load(["batch-test.policy"], read=lambda _: text)
    assert loaded.errors == [], [d.render() for d in loaded.errors]
    assert loaded.policy is not None
    return loaded.policy


QUOTA_4 = policy(gpu_quota(4))
QUOTA_2 = policy(gpu_quota(2))
NODES_2 = policy(m.Quota(name="team nodes", metric="nodes", limit=2, per=("team",)))
BUDGET_5 = policy(budget(5.0))
PREFER_GCP = policy(
    prefer=[
        m.Preference(
            name="gcp first",
            condition=m.Compare(
                op="==", left=m.FieldRef(name="cloud"), right=m.Literal_(value="gcp")
            ),
            bonus=1.0,
            unit="usd_per_hour",
        )
    ]
)
#: $2/h per team, except research, which has no budget.
RESEARCH_UNBOUND = from_text(
    'policy "batch" version 1\n'
    'budget "team spend" when not task.team == "research": hourly_cost <= $2/h per task.team\n'
)


# -- requests ------------------------------------------------------------------------------------


def make_request(
    request_id: str,
    accelerators: str | dict[str, int] | None = "A100:1",
    *,
    team: str | None = "ml",
    priority: int = 0,
    nodes: int = 1,
    **resources: Any,
) -> BatchRequest:
    if accelerators is not None:
        resources["accelerators"] = accelerators
    task = skyplan.Task.model_validate(
        {"name": request_id, "num_nodes": nodes, "resources": resources}
    )
    return BatchRequest(
        id=request_id, task=task, context=m.RequestContext(team=team), priority=priority
    )


def where(plan: BatchPlan) -> dict[str, str]:
    """Each admitted request's offer, as `instance_type` or `instance_type@zone`."""
    return {
        a.id: a.offer.instance_type + (f"@{a.offer.zone}" if a.offer.zone else "")
        for a in plan.admitted
    }


# -- the reference: limits, pools and the objective, re-stated row by row -----------------------


@dataclass(frozen=True)
class Option:
    """One feasible offer of one request, with what it counts against each limit."""

    key: tuple[Any, ...]  # cloud, region, zone, instance type, spot
    cost: float
    score: float
    amounts: dict[str, float]  # gpus, vcpus, memory, nodes, cost — for all nodes
    pool: tuple[Any, ...] | None
    capacity: int | None
    nodes: int


@dataclass(frozen=True)
class Bound:
    """One quota or budget as one request's group sees it."""

    name: str
    group: str
    metric: str  # gpus | vcpus | memory | nodes | cost
    limit: float
    used: float


class Reference:
    """Feasibility and the objective of a batch, from the catalog rows the planner finds feasible
    for each request (`feasible_offers` without limits), in plain Python."""

    def __init__(
        self,
        requests: Sequence[BatchRequest],
        catalog: skyplan.Catalog,
        policy: m.Policy | None,
        usage: Mapping[str, float],
    ) -> None:
        self.requests = list(requests)
        self.options: list[list[Option]] = []
        self.bounds: list[list[Bound]] = []
        for req in self.requests:
            n = req.task.num_nodes
            ctx = req.context.model_copy(update={"num_nodes": n, "name": req.task.name})
            frame = feasible_offers(req.task, catalog, policy=policy, context=ctx, limits=False)
            self.options.append([self._option(row, n) for row in frame.iter_rows(named=True)])
            bounds = []
            if policy is not None:
                limits: tuple[m.Quota | m.Budget, ...] = (*policy.quotas, *policy.budgets)
                for b in limits:
                    if b.level == m.Level.ADVISORY or not applies(b.when, ctx):
                        continue
                    group = group_key(b.per, ctx)
                    metric = b.metric if isinstance(b, m.Quota) else "cost"
                    used = float(usage.get(f"{b.name}/{group}", 0.0))
                    bounds.append(Bound(b.name, group, metric, b.limit, used))
            self.bounds.append(bounds)

    @staticmethod
    def _option(row: dict[str, Any], n: int) -> Option:
        key = (
            row[schema.CLOUD],
            row[schema.REGION],
            row[schema.ZONE],
            row[schema.INSTANCE_TYPE],
            bool(row[SPOT]),
        )
        capacity = row[schema.CAPACITY]
        return Option(
            key=key,
            cost=row[COST],
            score=row["_score"],
            amounts={
                "gpus": (row[schema.ACCELERATOR_COUNT] or 0.0) * n,
                "vcpus": row[schema.VCPUS] * n,
                "memory": row[schema.MEMORY_GIB] * n,
                "nodes": float(n),
                "cost": row[COST],
            },
            pool=None if capacity is None else key[:4],
            capacity=capacity,
            nodes=n,
        )

    def fits(self, index: int, option: Option, taken: dict[Any, float]) -> bool:
        """Whether request `index` may take `option` on top of what is `taken`."""
        for b in self.bounds[index]:
            if b.used + taken.get((b.name, b.group), 0.0) + option.amounts[b.metric] > (
                b.limit + 1e-9
            ):
                return False
        return option.pool is None or taken.get(option.pool, 0.0) + option.nodes <= (
            option.capacity or 0
        )

    def take(self, index: int, option: Option, taken: dict[Any, float]) -> None:
        for b in self.bounds[index]:
            key = (b.name, b.group)
            taken[key] = taken.get(key, 0.0) + option.amounts[b.metric]
        if option.pool is not None:
            taken[option.pool] = taken.get(option.pool, 0.0) + option.nodes

    def levels(self) -> list[int]:
        return sorted({r.priority for r in self.requests}, reverse=True)

    def counts(self, admitted: Sequence[int]) -> tuple[int, ...]:
        """Admitted requests per priority level, the highest first."""
        per = Counter(self.requests[i].priority for i in admitted)
        return tuple(per[level] for level in self.levels())

    def best(self) -> tuple[tuple[int, ...], float]:
        """By brute force: the lexicographically largest admitted count per priority level, and
        the least total score (cost less preferences) among the plans reaching it."""
        best: tuple[tuple[int, ...], float] = ((-1,), 0.0)

        def walk(index: int, taken: dict[Any, float], chosen: list[int], score: float) -> None:
            nonlocal best
            if index == len(self.requests):
                counts = self.counts(chosen)
                if counts > best[0] or (counts == best[0] and score < best[1] - 1e-9):
                    best = (counts, score)
                return
            walk(index + 1, taken, chosen, score)
            for option in self.options[index]:
                if self.fits(index, option, taken):
                    after = dict(taken)
                    self.take(index, option, after)
                    walk(index + 1, after, [*chosen, index], score + option.score)

        walk(0, {}, [], 0.0)
        return best

    def check(self, plan: BatchPlan) -> tuple[list[int], float, dict[Any, float]]:
        """Assert that `plan` is one the batch allows; its admitted requests, their score and
        what they take from each limit and pool."""
        ids = [r.id for r in self.requests]
        seen = [a.id for a in plan.admitted] + [w.id for w in plan.waiting]
        assert sorted(seen) == sorted(ids), "every request is admitted or waits, once"
        index = {r.id: i for i, r in enumerate(self.requests)}
        taken: dict[Any, float] = {}
        admitted, score = [], 0.0
        for a in plan.admitted:
            i = index[a.id]
            req = self.requests[i]
            assert a.priority == req.priority
            assert a.offer.num_nodes == req.task.num_nodes, "all the nodes on one offer row"
            key = (a.offer.cloud, a.offer.region, a.offer.zone, a.offer.instance_type, a.offer.spot)
            matching = [o for o in self.options[i] if o.key == key]
            assert matching, f"{a.id} took {key}, not one of its feasible offers"
            option = matching[0]
            assert a.offer.hourly_cost == pytest.approx(option.cost)
            assert self.fits(i, option, taken), f"admitting {a.id} exceeds a limit or a pool"
            self.take(i, option, taken)
            admitted.append(i)
            score += option.score
        assert plan.hourly_cost == pytest.approx(sum(a.offer.hourly_cost for a in plan.admitted))
        for i, req in enumerate(self.requests):
            if i not in admitted:
                fitting = [o.key for o in self.options[i] if self.fits(i, o, taken)]
                assert not fitting, f"{req.id} waits though {fitting[0]} fits in the room left"
        return admitted, score, taken


def check_usage(plan: BatchPlan, ref: Reference, taken: dict[Any, float]) -> None:
    """The plan reports, for each limit, the recorded usage plus what it admits."""
    bounds = {(b.name, b.group): b for bs in ref.bounds for b in bs}
    reported = {(u.name, u.group): u for u in plan.usage if u.kind in ("quota", "budget")}
    assert set(reported) == set(bounds)
    for key, b in bounds.items():
        assert reported[key].limit == b.limit
        assert reported[key].used == pytest.approx(b.used + taken.get(key, 0.0), abs=1e-6)


# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rows: tuple[dict[str, Any], ...]
    requests: tuple[BatchRequest, ...]
    policy: m.Policy | None = None
    usage: dict[str, float] = field(default_factory=dict)
    placed: dict[str, str] = field(default_factory=dict)  # id -> where (see `where`)
    spread: dict[str, int] = field(default_factory=dict)  # where -> admitted requests there
    waiting: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> reason fragments
    cost: float | None = None


def case(case_id: str, rows: tuple[dict[str, Any], ...], *requests: BatchRequest, **kw: Any) -> Any:
    return pytest.param(Case(rows, requests, **kw), id=case_id)


GPU_ROWS = (A100, A100_X2, V100_X2, T4, T4_X2, T4_X4, CPU)
TEAM_GPUS = "quota 'team GPUs' (team=ml)"
TEAM_BUDGET = "budget 'team budget' (team=ml)"

CASES = [
    # -- nothing shared ----------------------------------------------------------------------------
    case(
        "no-limit-each-request-takes-its-cheapest-offer",
        (A100, A100_GCP, CPU),
        make_request("a"),
        make_request("b"),
        make_request("cpu", None, cpus="8"),
        placed={"a": "a100-x1", "b": "a100-x1", "cpu": "m6i.2xlarge"},
        cost=6.384,
    ),
    case(
        "an-advisory-quota-binds-nobody",
        GPU_ROWS,
        make_request("a", "A100:2"),
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=policy(gpu_quota(2, level=m.Level.ADVISORY)),
        placed={"a": "a100-x2", "v": "v100-x2", "t": "t4-x2"},
        cost=11.0,
    ),
    case(
        "a-preference-counts-as-a-discount",
        (A100, A100_GCP),
        make_request("a"),
        policy=PREFER_GCP,
        placed={"a": "a2-highgpu-1g"},
        cost=3.5,
    ),
    # -- quotas ------------------------------------------------------------------------------------
    case(
        "quota-binds-the-cheapest-subset-is-admitted",
        GPU_ROWS,
        make_request("a", "A100:2"),
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=QUOTA_4,
        placed={"v": "v100-x2", "t": "t4-x2"},
        waiting={"a": (TEAM_GPUS, "would be exceeded")},
        cost=5.0,
    ),
    case(
        "priority-beats-cost",
        GPU_ROWS,
        make_request("a", "A100:2", priority=1),
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=QUOTA_4,
        placed={"a": "a100-x2", "t": "t4-x2"},
        waiting={"v": (TEAM_GPUS,)},
        cost=7.0,
    ),
    case(
        "priority-beats-count",
        GPU_ROWS,
        make_request("big", "T4:4", priority=1),
        make_request("t1", "T4:2"),
        make_request("t2", "T4:2"),
        policy=QUOTA_4,
        placed={"big": "t4-x4"},
        waiting={"t1": (TEAM_GPUS,), "t2": (TEAM_GPUS,)},
        cost=1.5,
    ),
    case(
        "count-beats-cost-within-a-priority",
        GPU_ROWS,
        make_request("big", "T4:4"),
        make_request("v1", "V100:2"),
        make_request("v2", "V100:2"),
        policy=QUOTA_4,
        placed={"v1": "v100-x2", "v2": "v100-x2"},
        waiting={"big": (TEAM_GPUS,)},
        cost=8.0,
    ),
    case(
        "quotas-are-per-group",
        GPU_ROWS,
        make_request("ml-1", "T4:2", team="ml"),
        make_request("ml-2", "T4:2", team="ml"),
        make_request("ai-1", "T4:2", team="ai"),
        make_request("none-1", "T4:2", team=None),
        policy=QUOTA_2,
        spread={"t4-x2": 3},
        waiting={"ml-1|ml-2": (TEAM_GPUS,)},
        cost=3.0,
    ),
    case(
        "a-quota-counts-every-node",
        GPU_ROWS,
        make_request("pair", "A100:2", nodes=2),
        make_request("t", "T4:1"),
        policy=QUOTA_4,
        placed={"t": "t4-x1"},
        waiting={"pair": (TEAM_GPUS,)},
        cost=0.5,
    ),
    case(
        "a-nodes-quota-admits-two-singles-over-one-pair",
        GPU_ROWS,
        make_request("pair", "A100:1", nodes=2),
        make_request("s1"),
        make_request("s2"),
        policy=NODES_2,
        placed={"s1": "a100-x1", "s2": "a100-x1"},
        waiting={"pair": ("quota 'team nodes' (team=ml)",)},
        cost=6.0,
    ),
    case(
        "a-cpu-request-takes-no-gpu-quota",
        GPU_ROWS,
        make_request("t", "T4:2"),
        make_request("cpu", None, cpus="8"),
        policy=QUOTA_2,
        placed={"t": "t4-x2", "cpu": "m6i.2xlarge"},
        cost=1.384,
    ),
    # -- recorded usage ----------------------------------------------------------------------------
    case(
        "recorded-usage-counts-against-the-quota",
        GPU_ROWS,
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=QUOTA_4,
        usage={"team GPUs/team=ml": 2},
        placed={"t": "t4-x2"},
        waiting={"v": (TEAM_GPUS,)},
        cost=1.0,
    ),
    case(
        "another-groups-usage-does-not-count",
        GPU_ROWS,
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=QUOTA_4,
        usage={"team GPUs/team=ai": 4},
        placed={"v": "v100-x2", "t": "t4-x2"},
        cost=5.0,
    ),
    case(
        "usage-filling-the-quota-exactly-leaves-no-room",
        GPU_ROWS,
        make_request("t", "T4:1"),
        policy=QUOTA_4,
        usage={"team GPUs/team=ml": 4},
        waiting={"t": (TEAM_GPUS,)},
        cost=0.0,
    ),
    case(
        "a-group-already-over-its-quota-holds-back-nobody-else",
        (WIDE_POOL, NARROW),
        make_request("ml", team="ml"),
        make_request("a", team="ai"),
        make_request("b", team="ai", nodes=2, cpus="16"),
        policy=QUOTA_4,
        usage={"team GPUs/team=ml": 10},
        placed={"a": "a100-narrow", "b": "a100-wide@us-east-1a"},
        waiting={"ml": (TEAM_GPUS,)},
        cost=10.0,
    ),
    # -- budgets -----------------------------------------------------------------------------------
    case(
        "budget-binds-the-cheapest-pair-is-admitted",
        GPU_ROWS,
        make_request("a", "A100:1"),
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=BUDGET_5,
        placed={"a": "a100-x1", "t": "t4-x2"},
        waiting={"v": (TEAM_BUDGET,)},
        cost=4.0,
    ),
    case(
        "a-budget-spent-exactly-fits",
        GPU_ROWS,
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=BUDGET_5,
        placed={"v": "v100-x2", "t": "t4-x2"},
        cost=5.0,
    ),
    case(
        "recorded-spend-counts-against-the-budget",
        GPU_ROWS,
        make_request("v", "V100:2"),
        make_request("t", "T4:2"),
        policy=BUDGET_5,
        usage={"team budget/team=ml": 1.5},
        placed={"t": "t4-x2"},
        waiting={"v": (TEAM_BUDGET,)},
        cost=1.0,
    ),
    case(
        "a-budget-with-when-binds-only-where-it-applies",
        GPU_ROWS,
        make_request("ml-1", "T4:2", team="ml"),
        make_request("ml-2", "T4:2", team="ml"),
        make_request("ml-3", "T4:2", team="ml"),
        make_request("r-1", "V100:2", team="research"),
        make_request("r-2", "V100:2", team="research"),
        policy=RESEARCH_UNBOUND,
        placed={"r-1": "v100-x2", "r-2": "v100-x2"},
        spread={"t4-x2": 2, "v100-x2": 2},
        waiting={"ml-1|ml-2|ml-3": ("budget 'team spend' (team=ml)",)},
        cost=10.0,
    ),
    # -- pools -------------------------------------------------------------------------------------
    case(
        "pools-fill-the-cheap-zone-first-then-the-other",
        (POOL_A, POOL_B),
        *(make_request(f"r{i}", priority=1) for i in range(4)),
        make_request("late"),
        spread={"a100-pool@us-east-1a": 2, "a100-pool@us-east-1b": 2},
        waiting={"late": ("pool aws/us-east-1/us-east-1a/a100-pool is full",)},
        cost=6.0,
    ),
    case(
        "pools-are-shared-across-teams",
        (POOL_A,),
        make_request("ml", team="ml", priority=1),
        make_request("ai", team="ai", priority=1),
        make_request("ops", team="ops"),
        spread={"a100-pool@us-east-1a": 2},
        waiting={"ops": ("pool aws/us-east-1/us-east-1a/a100-pool is full",)},
        cost=2.0,
    ),
    case(
        "a-gang-lands-whole-in-the-pool-with-room-for-all-its-nodes",
        (POOL_A1, POOL_B),
        make_request("gang", nodes=2),
        placed={"gang": "a100-pool@us-east-1b"},
        cost=4.0,
    ),
    case(
        "the-gang-takes-the-cheap-pool-and-the-single-the-other",
        (POOL_A, POOL_B),
        make_request("a-single"),
        make_request("b-gang", nodes=2),
        placed={"b-gang": "a100-pool@us-east-1a", "a-single": "a100-pool@us-east-1b"},
        cost=4.0,
    ),
    case(
        "a-gang-waits-while-a-higher-priority-single-holds-a-node",
        (POOL_A,),
        make_request("single", priority=1),
        make_request("gang", nodes=2),
        placed={"single": "a100-pool@us-east-1a"},
        waiting={"gang": ("pool aws/us-east-1/us-east-1a/a100-pool is full",)},
        cost=1.0,
    ),
    case(
        "a-gang-never-splits-across-zones",
        (POOL_A1, POOL_B1),
        make_request("gang", nodes=2),
        make_request("single"),
        placed={"single": "a100-pool@us-east-1a"},
        waiting={"gang": ("capacity for 2 node(s)",)},
        cost=1.0,
    ),
    case(
        "pool-and-quota-together",
        (POOL_A, POOL_B, A100),
        *(make_request(f"ml-{i}", team="ml") for i in range(3)),
        *(make_request(f"ai-{i}", team="ai") for i in range(3)),
        policy=QUOTA_2,
        spread={"a100-pool@us-east-1a": 2, "a100-pool@us-east-1b": 2},
        waiting={
            "ml-0|ml-1|ml-2": ("quota 'team GPUs' (team=ml)",),
            "ai-0|ai-1|ai-2": ("quota 'team GPUs' (team=ai)",),
        },
        cost=6.0,
    ),
]


@pytest.mark.parametrize("c", CASES)
def test_batch(c: Case) -> None:
    catalog = make_catalog(*c.rows)
    plan = plan_batch(c.requests, catalog, policy=c.policy, usage=c.usage)
    ref = Reference(c.requests, catalog, c.policy, c.usage)
    admitted, score, taken = ref.check(plan)
    check_usage(plan, ref, taken)
    placed = where(plan)
    for request_id, expected in c.placed.items():
        assert placed.get(request_id) == expected, request_id
    if c.spread:
        assert dict(Counter(placed.values())) == c.spread
    waiting = {w.id: w for w in plan.waiting}
    # "a|b" names requests of which exactly one waits, whichever: the choice is a tie.
    assert len(waiting) == len(c.waiting), sorted(waiting)
    for alternatives, fragments in c.waiting.items():
        (request_id,) = [i for i in alternatives.split("|") if i in waiting]
        for fragment in fragments:
            assert fragment in waiting[request_id].reason, waiting[request_id].reason
    if c.cost is not None:
        assert plan.hourly_cost == pytest.approx(c.cost)
    assert (plan.status, plan.gap) == ("OPTIMAL", 0.0)
    best_counts, best_score = ref.best()
    assert ref.counts(admitted) == best_counts
    assert score == pytest.approx(best_score)


# -- reasons -------------------------------------------------------------------------------------


def test_a_request_no_offer_fits_waits_with_the_planners_reason() -> None:
    catalog = make_catalog(*GPU_ROWS)
    requests = [make_request("h100", "H100:1"), make_request("t", "T4:1")]
    plan = plan_batch(requests, catalog, policy=QUOTA_4)
    with pytest.raises(NoFeasiblePlacement) as planner:
        place(requests[0].task, catalog, policy=QUOTA_4, context=requests[0].context)
    (waiting,) = plan.waiting
    assert waiting.id == "h100"
    assert waiting.reason.startswith(planner.value.summary)
    assert planner.value.reasons[0].requirement in waiting.reason
    assert waiting.limits == ()
    assert [a.id for a in plan.admitted] == ["t"]


def test_a_waiting_request_lists_every_limit_it_would_exceed() -> None:
    both = policy(gpu_quota(2), budget(1.0))
    requests = [make_request("t", "T4:2", priority=1), make_request("v", "V100:2")]
    plan = plan_batch(requests, make_catalog(*GPU_ROWS), policy=both)
    (waiting,) = plan.waiting
    assert waiting.id == "v"
    assert set(waiting.limits) == {TEAM_GPUS, TEAM_BUDGET}
    assert all(limit in waiting.reason for limit in waiting.limits)


def test_the_plan_reports_how_full_each_pool_is() -> None:
    requests = [make_request("gang", nodes=2), make_request("single")]
    plan = plan_batch(requests, make_catalog(POOL_A, POOL_B))
    pools = sorted((u.used, u.limit) for u in plan.usage if u.kind == "pool")
    assert pools == [(1.0, 2.0), (2.0, 2.0)], plan.usage


def test_duplicate_ids_are_refused() -> None:
    requests = [make_request("a"), make_request("b"), make_request("a", "T4:1")]
    with pytest.raises(ValueError, match="'a' appears twice"):
        plan_batch(requests, make_catalog(*GPU_ROWS))


def test_an_empty_batch_is_an_empty_plan() -> None:
    plan = plan_batch([], make_catalog(*GPU_ROWS), policy=QUOTA_4)
    assert (plan.admitted, plan.waiting, plan.hourly_cost, plan.status) == ((), (), 0.0, "OPTIMAL")


# -- require_all ---------------------------------------------------------------------------------


def test_require_all_admits_everyone_when_everyone_fits() -> None:
    requests = [make_request("v", "V100:2"), make_request("t", "T4:2")]
    plan = plan_batch(requests, make_catalog(*GPU_ROWS), policy=QUOTA_4, require_all=True)
    assert where(plan) == {"v": "v100-x2", "t": "t4-x2"}
    assert plan.waiting == ()


CONFLICTS = [
    pytest.param(
        (gpu_quota(4), budget(100.0)),
        {},
        (GPU_ROWS, [make_request(f"t{i}", "T4:2") for i in range(3)]),
        TEAM_GPUS,
        "team budget",
        id="three-2-gpu-requests-in-a-4-gpu-quota",
    ),
    pytest.param(
        (gpu_quota(100), budget(2.0)),
        {},
        (GPU_ROWS, [make_request(f"t{i}", "T4:2") for i in range(3)]),
        TEAM_BUDGET,
        "team GPUs",
        id="three-1-dollar-requests-in-a-2-dollar-budget",
    ),
    pytest.param(
        (gpu_quota(4), budget(100.0)),
        {"team GPUs/team=ml": 3},
        (GPU_ROWS, [make_request("t", "T4:2")]),
        TEAM_GPUS,
        "team budget",
        id="recorded-usage-leaves-too-little-room",
    ),
    pytest.param(
        (gpu_quota(100), budget(100.0)),
        {},
        ((POOL_A,), [make_request(f"r{i}") for i in range(3)]),
        "pool aws/us-east-1/us-east-1a/a100-pool",
        "team",
        id="three-nodes-for-a-pool-of-two",
    ),
]


@pytest.mark.parametrize(("bounds", "usage", "batch", "blamed", "spared"), CONFLICTS)
def test_require_all_names_the_conflicting_limit(
    bounds: tuple[m.Quota | m.Budget, ...],
    usage: dict[str, float],
    batch: tuple[tuple[dict[str, Any], ...], list[BatchRequest]],
    blamed: str,
    spared: str,
) -> None:
    rows, requests = batch
    with pytest.raises(NoFeasiblePlacement) as raised:
        plan_batch(
            requests, make_catalog(*rows), policy=policy(*bounds), usage=usage, require_all=True
        )
    named = [r.requirement for r in raised.value.reasons]
    assert any(blamed in n for n in named), named
    assert not any(spared in n for n in named), f"a limit with room to spare is blamed: {named}"


def test_require_all_names_a_request_no_offer_fits() -> None:
    requests = [make_request("t", "T4:1"), make_request("h100", "H100:1")]
    with pytest.raises(NoFeasiblePlacement) as raised:
        plan_batch(requests, make_catalog(*GPU_ROWS), policy=QUOTA_4, require_all=True)
    assert raised.value.task == "h100"


# -- determinism and time limits -----------------------------------------------------------------


def mixed_batch() -> tuple[list[BatchRequest], skyplan.Catalog, m.Policy]:
    """Forty requests of three teams and three priorities over pools, a GPU quota and a budget:
    many of them alike, so many plans tie."""
    shapes = [("A100:1", 1), ("A100:1", 2), ("T4:2", 1), ("V100:2", 1), ("T4:1", 1), ("A100:2", 1)]
    teams = ("ml", "ai", "ops")
    requests = [
        make_request(
            f"r{i:02d}", shapes[i % 6][0], nodes=shapes[i % 6][1], team=teams[i % 3], priority=i % 3
        )
        for i in range(40)
    ]
    catalog = make_catalog(*GPU_ROWS, POOL_A, POOL_B, A100_GCP)
    return requests, catalog, policy(gpu_quota(9), budget(14.0))


def test_equal_inputs_give_equal_plans() -> None:
    """Many ties (equal requests, equal costs): each run must break them the same way."""
    requests, catalog, pol = mixed_batch()
    first = plan_batch(requests, catalog, policy=pol)
    assert first.status == "OPTIMAL"
    for _ in range(10):
        again = plan_batch(list(requests), catalog, policy=pol)
        assert again.model_dump(exclude={"wall_s"}) == first.model_dump(exclude={"wall_s"})


@pytest.mark.parametrize(
    "stage",
    [
        # Levels the greedy admits whole are not searched: here the top level is one of
        # them, so the solves are the lower level's and the cost stage's.
        pytest.param(1, id="a-priority-stage"),
        pytest.param(2, id="the-cost-stage"),
    ],
)
def test_a_stage_that_runs_out_of_time_leaves_nobody_out_who_fits(
    stage: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CP-SAT may find nothing within a stage's share of the time limit (seen at 10k requests):
    the plan then still keeps every limit, leaves no request out that fits in the room left, and
    does not claim to be optimal. Simulated by answering UNKNOWN at one stage."""
    real = cp_model.CpSolver.solve
    calls = []

    def solve(self: cp_model.CpSolver, model: cp_model.CpModel, *args: Any) -> Any:
        calls.append(model)
        if len(calls) == stage:
            return cp_model.UNKNOWN
        return real(self, model, *args)

    monkeypatch.setattr(cp_model.CpSolver, "solve", solve)
    requests = [
        make_request("big", "T4:2", priority=1),
        make_request("t1", "T4:1"),
        make_request("t2", "T4:1"),
        make_request("t3", "T4:1"),
    ]
    catalog = make_catalog(*GPU_ROWS)
    plan = plan_batch(requests, catalog, policy=QUOTA_4)
    assert len(calls) >= stage
    admitted, _, _ = Reference(requests, catalog, QUOTA_4, {}).check(plan)
    assert len(admitted) == 3
    assert plan.status == "FEASIBLE"
    # The gap covers every stage: a stage without a proof is not hidden behind a later 0 %.
    assert plan.gap > 0


def test_identical_requests_are_counted_as_one_kind_and_the_earliest_are_admitted() -> None:
    """Requests equal in what placement reads (resources, nodes, team, priority) are one class
    in the model, whatever their names: under a 4-GPU quota, the two-GPU job of higher priority
    and the first two of 60 one-GPU jobs (by id) are admitted, the rest wait on the quota."""
    requests = [make_request(f"job-{i:02d}", "T4:1") for i in range(60)]
    requests.append(make_request("urgent", "T4:2", priority=1))
    plan = plan_batch(requests, make_catalog(*GPU_ROWS), policy=QUOTA_4)
    assert sorted(where(plan)) == ["job-00", "job-01", "urgent"]
    assert (plan.status, plan.gap) == ("OPTIMAL", 0.0)
    assert all(TEAM_GPUS in w.reason for w in plan.waiting) and len(plan.waiting) == 58


# -- properties against a brute force ------------------------------------------------------------

SHAPES = {"A100:1": ("A100", 1.0), "A100:2": ("A100", 2.0), "T4:1": ("T4", 1.0)}
#: What a request may ask for: one shape, or any of two (one group, the cheapest wins).
ASKS: tuple[tuple[str, ...], ...] = (
    ("A100:1",),
    ("A100:2",),
    ("T4:1",),
    ("A100:1", "T4:1"),
    ("A100:2", "T4:1"),
)

Instance = tuple[tuple[dict[str, Any], ...], list[BatchRequest], m.Policy | None, dict[str, float]]


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    """A small catalog (one to three rows per shape, each its own instance type, so its own pool
    when it has a capacity), up to six requests of one or two teams with at most four feasible
    offers each, a quota on one metric and/or a budget per team, and recorded usage within the
    limits."""
    rows, per_shape = [], {}
    for shape, (acc, count) in SHAPES.items():
        per_shape[shape] = draw(st.integers(1, 3))
        for i in range(per_shape[shape]):
            price = draw(st.integers(10, 900)) / 100
            rows.append(
                gpu_offer(
                    acc,
                    count,
                    instance_type=f"{acc.lower()}-x{count:g}-{i}",
                    zone=draw(st.sampled_from(("z1", "z2", None))),
                    vcpus=draw(st.sampled_from((4, 8, 16))),
                    price=price,
                    spot_price=draw(st.sampled_from((None, round(price / 3, 2), price / 4))),
                    capacity=draw(st.one_of(st.none(), st.integers(1, 3))),
                )
            )
    asks = [a for a in ASKS if sum(per_shape[s] for s in a) <= 4]
    teams = draw(st.sampled_from((("ml",), ("ml", "ai"))))
    requests = []
    for i in range(draw(st.integers(1, 6))):
        ask = draw(st.sampled_from(asks))
        accelerators: str | dict[str, int] = (
            ask[0] if len(ask) == 1 else {SHAPES[s][0]: int(SHAPES[s][1]) for s in ask}
        )
        requests.append(
            make_request(
                f"r{i}",
                accelerators,
                team=draw(st.sampled_from(teams)),
                priority=draw(st.integers(0, 2)),
                nodes=draw(st.sampled_from((1, 1, 2))),
                use_spot=draw(st.booleans()),
            )
        )
    bounds: list[m.Quota | m.Budget] = []
    usage: dict[str, float] = {}
    metric = draw(st.sampled_from(("gpus", "nodes", "vcpus", None)))
    if metric is not None:
        limit = float(draw(st.integers(0, {"gpus": 8, "nodes": 6, "vcpus": 64}[metric])))
        bounds.append(m.Quota(name="team quota", metric=metric, limit=limit, per=("team",)))
        for team in teams:
            used = draw(st.one_of(st.just(0), st.integers(0, int(limit))))
            usage[f"team quota/team={team}"] = float(used)
    if draw(st.booleans()):
        limit = draw(st.integers(0, 3000)) / 100
        bounds.append(budget(limit))
        for team in teams:
            used = draw(st.one_of(st.just(0), st.integers(0, int(limit * 100))))
            usage[f"team budget/team={team}"] = used / 100
    with_policy = bool(bounds) or draw(st.booleans())  # an empty policy, sometimes
    pol = policy(*bounds) if with_policy else None
    return tuple(rows), requests, pol, usage


@settings(max_examples=100, deadline=None)
@given(instance=instances())
def test_the_plan_is_the_brute_force_optimum(instance: Instance) -> None:
    rows, requests, pol, usage = instance
    catalog = make_catalog(*rows)
    plan = plan_batch(requests, catalog, policy=pol, usage=usage, candidates_per_request=64)
    ref = Reference(requests, catalog, pol, usage)
    assert all(len(options) <= 4 for options in ref.options)
    admitted, score, taken = ref.check(plan)  # every limit and pool kept, nobody left out who fits
    check_usage(plan, ref, taken)
    best_counts, best_score = ref.best()
    assert ref.counts(admitted) == best_counts, "the most admitted, priority by priority"
    assert score == pytest.approx(best_score, abs=1e-6), "then the least $/h"
    assert (plan.status, plan.gap) == ("OPTIMAL", 0.0)
    unplaceable = sum(1 for options in ref.options if not options)
    event(f"requests waiting: {bool(plan.waiting)}, some with no offer: {unplaceable > 0}")
    better = len(admitted) > plan.greedy_admitted or score < plan.greedy_hourly_cost - 1e-6
    event(f"the solver beats the greedy: {better}")


@pytest.mark.shared
def test_a_batch_over_the_synthetic_catalog(synthetic_catalog: skyplan.Catalog) -> None:
    """GPU and CPU requests of two teams over the 75k-row catalog (too many for the brute
    force): every limit kept, nobody left out who fits, the quota filled."""
    requests = [
        make_request(f"t4-{i}", "T4:1", team=("ml", "ai")[i % 2], priority=i % 3) for i in range(30)
    ] + [make_request(f"cpu-{i}", None, team="ml", cpus="4+") for i in range(10)]
    pol = policy(gpu_quota(8), budget(20.0))
    plan = plan_batch(requests, synthetic_catalog, policy=pol)
    ref = Reference(requests, synthetic_catalog, pol, {})
    admitted, _, taken = ref.check(plan)
    check_usage(plan, ref, taken)
    assert len(admitted) == 8 + 8 + 10
    assert plan.status == "OPTIMAL"
