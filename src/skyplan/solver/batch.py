"""Batch admission: many requests at once, under the policy's quotas and budgets (counting
what already runs), pool capacities, and priorities — CP-SAT where requests share a limit.

A pure function: `plan_batch(requests, catalog, policy=..., usage=...) -> BatchPlan`.

1. Candidates: each request's feasible offers (policy rules applied, limits left out), pruned
   to the cheapest offer of each resource shape that no cheaper offer dominates.
2. Decomposition: requests that share no limit or pool are independent; one that shares none
   takes its cheapest offer. The rest form components solved one by one.
3. Per component: a greedy pass (priority first, then cheapest that fits) gives the first
   feasible plan and CP-SAT's hint; CP-SAT then maximizes the number admitted, priority level
   by priority level, and finally minimizes cost, each stage time-limited, with a fixed seed
   and worker count. The best plan found and its proven gap are reported.
4. Every request left waiting gets the limits that keep it out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.errors import NoFeasiblePlacement, Rejection
from skyplan.model import Policy
from skyplan.model.batch import Admission, BatchPlan, BatchRequest, LimitUsage, Waiting
from skyplan.model.policy import Budget, Level, Quota
from skyplan.solver.planner import feasible_offers, offer_from_row, place
from skyplan.solver.policy import COST, SPOT, applies, group_key

SCORE = "_score"
#: Fixed-point scales: CP-SAT works on integers.
_UNIT = 1000  # metric units (GPUs, vCPUs, GiB) in thousandths
_MICRO = 1_000_000  # dollars in micro-dollars
SEED = 7
WORKERS = 2


@dataclass(frozen=True)
class Candidate:
    row: dict[str, Any]
    score: int  # micro-dollars per hour, preferences included
    cost: float
    spot: bool
    metrics: dict[str, int]  # gpus, vcpus, memory, nodes, cost — in fixed point
    pool: tuple[str, ...] | None
    capacity: int | None


@dataclass
class Limit:
    key: tuple[str, str, str]  # (kind, name, group)
    cap: int  # remaining, fixed point
    limit: float
    used: float
    metric: str
    unit: str


@dataclass
class Component:
    requests: list[int]
    keys: set[tuple[str, str, str]] = field(default_factory=set)


def _fixed(value: float, scale: int, up: bool) -> int:
    scaled = value * scale
    return math.ceil(scaled - 1e-9) if up else math.floor(scaled + 1e-9)


def _candidates(frame: pl.DataFrame, num_nodes: int, per_request: int) -> list[Candidate]:
    """Offers worth considering: by score, each kept unless a kept offer is no worse on score
    and on every metric a limit could count (it would dominate), pools always kept."""
    kept: list[Candidate] = []
    for row in frame.iter_rows(named=True):
        count = row[c.ACCELERATOR_COUNT] or 0.0
        metrics = {
            "gpus": _fixed(count * num_nodes, _UNIT, True),
            "vcpus": _fixed(row[c.VCPUS] * num_nodes, _UNIT, True),
            "memory": _fixed(row[c.MEMORY_GIB] * num_nodes, _UNIT, True),
            "nodes": num_nodes * _UNIT,
            "cost": _fixed(row[COST], _MICRO, True),
        }
        capacity = row[c.CAPACITY]
        pool = (
            (row[c.CLOUD], row[c.REGION], row[c.ZONE] or "", row[c.INSTANCE_TYPE])
            if capacity is not None
            else None
        )
        cand = Candidate(
            row,
            _fixed(row[SCORE], _MICRO, True),
            row[COST],
            bool(row[SPOT]),
            metrics,
            pool,
            None if capacity is None else int(capacity),
        )
        dominated = pool is None and any(
            k.pool is None
            and k.score <= cand.score
            and all(k.metrics[m] <= cand.metrics[m] for m in ("gpus", "vcpus", "memory", "cost"))
            for k in kept
        )
        if not dominated:
            kept.append(cand)
        if len(kept) >= per_request:
            break
    return kept


class _Batch:
    def __init__(
        self,
        requests: Sequence[BatchRequest],
        catalog: Catalog,
        policy: Policy | None,
        usage: Mapping[str, float],
        per_request: int,
    ) -> None:
        self.requests = list(requests)
        self.catalog = catalog
        self.policy = policy
        self.usage = usage
        self.cands: list[list[Candidate]] = []
        self.keys: list[list[tuple[tuple[str, str, str], str]]] = []  # (limit key, metric)
        self.limits: dict[tuple[str, str, str], Limit] = {}
        self.unplaceable: dict[int, str] = {}
        cache: dict[tuple[str, str], list[Candidate]] = {}
        for index, req in enumerate(self.requests):
            ctx = req.context.model_copy(
                update={"num_nodes": req.task.num_nodes, "name": req.task.name}
            )
            cache_key = (req.task.model_dump_json(), ctx.model_dump_json())
            if cache_key not in cache:
                frame = feasible_offers(req.task, catalog, policy=policy, context=ctx, limits=False)
                cache[cache_key] = _candidates(frame, req.task.num_nodes, per_request)
            self.cands.append(cache[cache_key])
            if not cache[cache_key]:
                self.unplaceable[index] = self._why_not(req)
            self.keys.append(self._limit_keys(req, ctx))

    def _why_not(self, req: BatchRequest) -> str:
        try:
            place(req.task, self.catalog, policy=self.policy, context=req.context, alternatives=0)
        except NoFeasiblePlacement as exc:
            return exc.summary + "".join(f"; {r.requirement}" for r in exc.reasons[:2])
        return "no feasible offer"

    def _limit_keys(self, req: BatchRequest, ctx: Any) -> list[tuple[tuple[str, str, str], str]]:
        out: list[tuple[tuple[str, str, str], str]] = []
        if self.policy is None:
            return out
        bounds: tuple[Quota | Budget, ...] = (*self.policy.quotas, *self.policy.budgets)
        for bound in bounds:
            if bound.level == Level.ADVISORY or not applies(bound.when, ctx):
                continue
            kind = "quota" if isinstance(bound, Quota) else "budget"
            group = group_key(bound.per, ctx)
            key = (kind, bound.name, group)
            metric: str = bound.metric if isinstance(bound, Quota) else "cost"
            if key not in self.limits:
                used = float(self.usage.get(f"{bound.name}/{group}", 0.0))
                scale = _MICRO if metric == "cost" else _UNIT
                self.limits[key] = Limit(
                    key,
                    _fixed(bound.limit - used, scale, False),
                    bound.limit,
                    used,
                    metric,
                    {"cost": "$/h", "memory": "GiB"}.get(metric, metric),
                )
            out.append((key, metric))
        return out

    # -- structure ---------------------------------------------------------------------------

    def components(self) -> tuple[list[Component], list[int]]:
        """Requests sharing a limit or a pool, grouped; and the requests sharing nothing."""
        parent = list(range(len(self.requests)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        owner: dict[object, int] = {}
        for index in range(len(self.requests)):
            if index in self.unplaceable:
                continue
            shared: list[object] = [key for key, _ in self.keys[index]]
            shared += [("pool", *cand.pool) for cand in self.cands[index] if cand.pool]
            for key in shared:
                if key in owner:
                    parent[find(index)] = find(owner[key])
                else:
                    owner[key] = index
        groups: dict[int, list[int]] = {}
        alone = []
        for index in range(len(self.requests)):
            if index in self.unplaceable:
                continue
            constrained = bool(self.keys[index]) or any(c.pool for c in self.cands[index])
            if constrained:
                groups.setdefault(find(index), []).append(index)
            else:
                alone.append(index)
        return [Component(sorted(g)) for g in groups.values()], alone

    def fits(self, index: int, cand: Candidate, used: dict[object, int]) -> bool:
        for key, metric in self.keys[index]:
            if used.get(key, 0) + cand.metrics[metric] > self.limits[key].cap:
                return False
        if cand.pool is not None:
            nodes = self.requests[index].task.num_nodes
            if used.get(("pool", *cand.pool), 0) + nodes > (cand.capacity or 0):
                return False
        return True

    def take(self, index: int, cand: Candidate, used: dict[object, int]) -> None:
        for key, metric in self.keys[index]:
            used[key] = used.get(key, 0) + cand.metrics[metric]
        if cand.pool is not None:
            pool_key = ("pool", *cand.pool)
            used[pool_key] = used.get(pool_key, 0) + self.requests[index].task.num_nodes

    def order(self, indices: Sequence[int]) -> list[int]:
        return sorted(indices, key=lambda i: (-self.requests[i].priority, self.requests[i].id))

    def greedy(self, indices: Sequence[int], used: dict[object, int]) -> dict[int, int]:
        chosen: dict[int, int] = {}
        for index in self.order(indices):
            for option, cand in enumerate(self.cands[index]):
                if self.fits(index, cand, used):
                    chosen[index] = option
                    self.take(index, cand, used)
                    break
        return chosen


@dataclass
class _Outcome:
    chosen: dict[int, int]
    optimal: bool
    value: float
    bound: float
    seconds_to_1pct: float


def _solve(
    batch: _Batch, comp: Component, hint: dict[int, int], time_limit: float, require_all: bool
) -> _Outcome:
    from ortools.sat.python import cp_model

    started = time.perf_counter()
    model = cp_model.CpModel()
    x: dict[tuple[int, int], Any] = {}
    for r in comp.requests:
        for o in range(len(batch.cands[r])):
            x[r, o] = model.new_bool_var(f"x{r}_{o}")
        chosen_vars = [x[r, o] for o in range(len(batch.cands[r]))]
        if require_all:
            model.add_exactly_one(chosen_vars)
        else:
            model.add_at_most_one(chosen_vars)
    assumptions: dict[int, tuple[str, ...]] = {}
    terms: dict[tuple[str, ...], list[tuple[int, Any]]] = {}
    caps: dict[tuple[str, ...], int] = {}
    for r in comp.requests:
        for limit_key, metric in batch.keys[r]:
            caps[limit_key] = batch.limits[limit_key].cap
            terms.setdefault(limit_key, []).extend(
                (cand.metrics[metric], x[r, o]) for o, cand in enumerate(batch.cands[r])
            )
        for o, cand in enumerate(batch.cands[r]):
            if cand.pool is not None:
                pool_key = ("pool", *cand.pool)
                caps[pool_key] = cand.capacity or 0
                terms.setdefault(pool_key, []).append((batch.requests[r].task.num_nodes, x[r, o]))
    for key, pairs in terms.items():
        constraint = model.add(sum(coef * var for coef, var in pairs) <= caps[key])
        if require_all:
            literal = model.new_bool_var(f"a{len(assumptions)}")
            constraint.only_enforce_if(literal)
            assumptions[literal.index] = key
    if require_all and assumptions:
        model.add_assumptions(list(assumptions))
    for (r, o), var in x.items():
        model.add_hint(var, 1 if hint.get(r) == o else 0)

    def solver(limit: float) -> Any:
        s = cp_model.CpSolver()
        s.parameters.random_seed = SEED
        s.parameters.num_workers = WORKERS
        s.parameters.max_time_in_seconds = max(0.05, limit)
        return s

    levels = sorted({batch.requests[r].priority for r in comp.requests}, reverse=True)
    stages = 1 if require_all else len(levels) + 1
    per_stage = time_limit / stages
    optimal = True
    if not require_all:
        for level in levels:
            at_level = [x[r, o] for (r, o) in x if batch.requests[r].priority == level]
            model.maximize(sum(at_level))
            s = solver(per_stage)
            status = s.solve(model)
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                break
            optimal &= status == cp_model.OPTIMAL
            model.add(sum(at_level) >= round(s.objective_value))
            model.clear_hints()  # type: ignore[no-untyped-call]
            for var in x.values():
                model.add_hint(var, int(s.value(var)))
    model.minimize(sum(batch.cands[r][o].score * var for (r, o), var in x.items()))
    trace: list[tuple[float, float]] = []

    class _Trace(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            trace.append((time.perf_counter() - started, self.objective_value))

    s = solver(per_stage)
    status = s.solve(model, _Trace())
    if require_all and status == cp_model.INFEASIBLE:
        conflict = [assumptions[i] for i in s.sufficient_assumptions_for_infeasibility()]
        names = sorted(
            {
                f"{k[0]} {k[1]!r} ({k[2]})" if k[0] != "pool" else f"pool {'/'.join(k[1:])}"
                for k in conflict
            }
        )
        raise NoFeasiblePlacement(
            "batch",
            "not every request can be admitted together",
            [Rejection(n, 0, 0, "these limits conflict") for n in names],
        )
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _Outcome(
            hint,
            False,
            float(sum(batch.cands[r][o].score for r, o in hint.items())),
            0.0,
            time.perf_counter() - started,
        )
    optimal &= status == cp_model.OPTIMAL
    chosen = {r: o for (r, o), var in x.items() if s.value(var)}
    value, bound = s.objective_value, s.best_objective_bound
    within = next(
        (t for t, v in trace if v - bound <= 0.01 * max(abs(bound), 1.0)),
        time.perf_counter() - started,
    )
    return _Outcome(chosen, optimal, value, bound, within)


def plan_batch(
    requests: Sequence[BatchRequest],
    catalog: Catalog,
    *,
    policy: Policy | None = None,
    usage: Mapping[str, float] | None = None,
    time_limit_s: float = 10.0,
    candidates_per_request: int = 8,
    require_all: bool = False,
) -> BatchPlan:
    """Admit as many requests as the policy's quotas, budgets and pool capacities allow,
    higher priorities first, at the least total cost. `usage` maps "<limit name>/<group>"
    (e.g. "team GPUs/team=ml") to what that group already runs. With `require_all`, every
    request must be admitted or `NoFeasiblePlacement` names the conflicting limits."""
    started = time.perf_counter()
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"request id {dup!r} appears twice in the batch")
    batch = _Batch(requests, catalog, policy, usage or {}, candidates_per_request)
    if require_all and batch.unplaceable:
        index, why = next(iter(batch.unplaceable.items()))
        raise NoFeasiblePlacement(requests[index].id, why)
    components, alone = batch.components()
    chosen: dict[int, int] = {index: 0 for index in alone}
    greedy_used: dict[object, int] = {}
    greedy = batch.greedy([r for comp in components for r in comp.requests], greedy_used)
    greedy_cost = sum(batch.cands[i][0].cost for i in alone) + sum(
        batch.cands[r][o].cost for r, o in greedy.items()
    )
    total = max(1, sum(len(comp.requests) for comp in components))
    optimal, value_sum, bound_sum = True, 0.0, 0.0
    for comp in components:
        hint = {r: o for r, o in greedy.items() if r in set(comp.requests)}
        budget = time_limit_s * len(comp.requests) / total
        outcome = _solve(batch, comp, hint, budget, require_all)
        chosen.update(outcome.chosen)
        optimal &= outcome.optimal
        value_sum += outcome.value
        bound_sum += outcome.bound
    used: dict[object, int] = {}
    for index, option in chosen.items():
        batch.take(index, batch.cands[index][option], used)
    admitted = tuple(
        Admission(
            id=batch.requests[i].id,
            priority=batch.requests[i].priority,
            offer=offer_from_row(
                batch.cands[i][o].row, batch.cands[i][o].spot, batch.requests[i].task.num_nodes
            ),
        )
        for i, o in sorted(chosen.items(), key=lambda item: batch.requests[item[0]].id)
    )
    waiting = tuple(
        _waiting(batch, i, used)
        for i in batch.order([i for i in range(len(requests)) if i not in chosen])
    )
    gap = (
        0.0
        if optimal or not components
        else max(0.0, (value_sum - bound_sum) / max(abs(value_sum), 1.0))
    )
    return BatchPlan(
        admitted=admitted,
        waiting=waiting,
        usage=_usage(batch, used),
        hourly_cost=sum(a.offer.hourly_cost for a in admitted),
        greedy_hourly_cost=greedy_cost,
        greedy_admitted=len(alone) + len(greedy),
        status=("OPTIMAL" if optimal else "FEASIBLE") if components else "OPTIMAL",
        gap=gap,
        wall_s=time.perf_counter() - started,
        components=len(components),
    )


def _waiting(batch: _Batch, index: int, used: dict[object, int]) -> Waiting:
    req = batch.requests[index]
    if index in batch.unplaceable:
        return Waiting(id=req.id, priority=req.priority, reason=batch.unplaceable[index])
    best = batch.cands[index][0]
    full = [
        key
        for key, metric in batch.keys[index]
        if used.get(key, 0) + best.metrics[metric] > batch.limits[key].cap
    ]
    names = tuple(f"{k[0]} {k[1]!r} ({k[2]})" for k in full)
    if best.pool is not None and used.get(("pool", *best.pool), 0) + req.task.num_nodes > (
        best.capacity or 0
    ):
        names += (f"pool {'/'.join(p for p in best.pool if p)} is full",)
    if names:
        reason = "waits: " + "; ".join(names) + " would be exceeded"
    else:
        reason = "waits: admitting it would leave out requests of higher priority, or more of them"
    return Waiting(id=req.id, priority=req.priority, reason=reason, limits=names)


def _usage(batch: _Batch, used: dict[object, int]) -> tuple[LimitUsage, ...]:
    rows = []
    for key, limit in sorted(batch.limits.items()):
        scale = _MICRO if limit.metric == "cost" else _UNIT
        rows.append(
            LimitUsage(
                name=key[1],
                group=key[2],
                kind=key[0],
                used=round(limit.used + used.get(key, 0) / scale, 6),
                limit=limit.limit,
                unit=limit.unit,
            )
        )
    return tuple(rows)
