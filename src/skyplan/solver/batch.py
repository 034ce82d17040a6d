"""Batch admission: many requests at once, under the policy's quotas and budgets (counting
what already runs), pool capacities, and priorities — CP-SAT where requests share a limit.

A pure function: `plan_batch(requests, catalog, policy=..., usage=...) -> BatchPlan`.

1. Candidates: each request's feasible offers (policy rules applied, limits left out), pruned
   to the cheapest offer of each resource shape that no cheaper offer dominates.
2. Decomposition: requests that share no limit or pool are independent; one that shares none
   takes its cheapest offer. The rest form components solved one by one.
3. Per component: a greedy pass (priority first, then cheapest that fits) gives the first
   feasible plan and CP-SAT's hint. Requests equal in everything placement reads (resources,
   node count, the fields rules and limits look at, priority) are one class, and CP-SAT counts
   how many of each class take each candidate; it maximizes the number admitted, priority
   level by priority level, and finally minimizes cost, each stage time-limited, with a fixed
   seed and worker count, the whole inside the batch's wall-clock limit. The best plan found
   is reported with the largest relative gap of any stage (0 only when every stage is proven).
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
from skyplan.model import Offer, Policy
from skyplan.model import policy as m
from skyplan.model.batch import Admission, BatchPlan, BatchRequest, LimitUsage, Waiting
from skyplan.model.policy import Budget, Level, Quota
from skyplan.solver.planner import feasible_offers, offer_from_row, place
from skyplan.solver.policy import COST, SPOT, applies, group_key

SCORE = "_score"
#: Fixed-point scales: CP-SAT works on integers.
_UNIT = 1000  # metric units (GPUs, vCPUs, GiB) in thousandths
_MICRO = 1_000_000  # dollars in micro-dollars
SEED = 7
WORKERS = 1


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


def _refs(expr: m.Expr | None, out: set[str]) -> None:
    """The request fields (`team`, `labels`, ...) an expression reads."""
    if expr is None:
        return
    if isinstance(expr, m.RequestRef):
        out.add(".".join(expr.path))
    for child in ("left", "right", "item", "arg"):
        _refs(getattr(expr, child, None), out)
    for child in getattr(expr, "args", ()) or ():
        _refs(child, out)


def _reads(policy: Policy | None, *, limits: bool) -> tuple[str, ...]:
    """The request fields the policy's rules and preferences (or its limits) depend on."""
    out: set[str] = set()
    if policy is None:
        return ()
    if limits:
        bounds: tuple[Quota | Budget, ...] = (*policy.quotas, *policy.budgets)
        for bound in bounds:
            _refs(bound.when, out)
            out.add(".".join(bound.per))
    else:
        for rule in policy.rules:
            _refs(rule.when, out)
            _refs(rule.condition, out)
        for pref in policy.preferences:
            _refs(pref.when, out)
            _refs(pref.condition, out)
    return tuple(sorted(out))


def _key_of(ctx: m.RequestContext, fields: tuple[str, ...]) -> tuple[object, ...]:
    return tuple(ctx.lookup(tuple(f.split("."))) for f in fields)


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
        #: Per request, the keys its candidates and its limits were cached under: requests
        #: equal in both (and in priority) are interchangeable, one class in the model.
        self.kinds: list[tuple[object, ...]] = []
        # Requests that differ only in fields no rule reads share their candidates (and those
        # no limit reads share their limits): 10k requests need a few dozen evaluations.
        rule_fields, limit_fields = _reads(policy, limits=False), _reads(policy, limits=True)
        cache: dict[tuple[object, ...], list[Candidate]] = {}
        limit_cache: dict[tuple[object, ...], list[tuple[tuple[str, str, str], str]]] = {}
        tasks: dict[int, str] = {}
        for index, req in enumerate(self.requests):
            ctx = req.context.model_copy(
                update={"num_nodes": req.task.num_nodes, "name": req.task.name}
            )
            # Only what placement reads: the resources and the node count (a name, a command
            # or envs, as every job of a sweep has its own, change nothing unless a rule reads
            # them, and then they are among `rule_fields`).
            shape = tasks.setdefault(id(req.task), req.task.resources.model_dump_json())
            cache_key = (shape, req.task.num_nodes, ctx.kind, *_key_of(ctx, rule_fields))
            if cache_key not in cache:
                frame = feasible_offers(req.task, catalog, policy=policy, context=ctx, limits=False)
                cache[cache_key] = _candidates(frame, req.task.num_nodes, per_request)
            self.cands.append(cache[cache_key])
            if not cache[cache_key]:
                self.unplaceable[index] = self._why_not(req)
            limit_key = (ctx.kind, ctx.num_nodes, *_key_of(ctx, limit_fields))
            if limit_key not in limit_cache:
                limit_cache[limit_key] = self._limit_keys(req, ctx)
            self.keys.append(limit_cache[limit_key])
            self.kinds.append((cache_key, limit_key, req.priority))

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
                    max(0, _fixed(bound.limit - used, scale, False)),
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
    gap: float  # the largest relative gap of any stage: 0 when every stage was proven


def _pool_name(key: tuple[str, ...]) -> str:
    return "pool " + "/".join(part for part in key[1:] if part)


def _limit_name(key: tuple[str, ...]) -> str:
    return _pool_name(key) if key[0] == "pool" else f"{key[0]} {key[1]!r} ({key[2]})"


class _Model:
    """A component as CP-SAT sees it: requests equal in candidates, limits and priority are one
    class, and a variable counts how many of a class take each candidate (100,000 jobs from a
    few hundred kinds are a few thousand integer variables, not 800,000 booleans). Counts are
    handed back to requests in admission order (by id within a class), as the greedy does."""

    def __init__(self, batch: _Batch, comp: Component, require_all: bool) -> None:
        from ortools.sat.python import cp_model

        self.batch = batch
        self.model = cp_model.CpModel()
        groups: dict[tuple[object, ...], list[int]] = {}
        for r in batch.order(comp.requests):
            groups.setdefault(batch.kinds[r], []).append(r)
        self.classes = list(groups.values())
        self.y: dict[tuple[int, int], Any] = {}
        for k, members in enumerate(self.classes):
            options = range(len(batch.cands[members[0]]))
            for o in options:
                self.y[k, o] = self.model.new_int_var(0, len(members), f"y{k}_{o}")
            taken = sum(self.y[k, o] for o in options)
            self.model.add(taken == len(members) if require_all else taken <= len(members))
        terms: dict[tuple[str, ...], list[tuple[int, Any]]] = {}
        caps: dict[tuple[str, ...], int] = {}
        most: dict[tuple[str, ...], int] = {}  # what the key would count if all were admitted
        for k, members in enumerate(self.classes):
            rep = members[0]
            for limit_key, metric in batch.keys[rep]:
                caps[limit_key] = batch.limits[limit_key].cap
                pairs = [(cand.metrics[metric], self.y[k, o]) for o, cand in self.options(k)]
                terms.setdefault(limit_key, []).extend(pairs)
                peak = max(coef for coef, _ in pairs) * len(members)
                most[limit_key] = most.get(limit_key, 0) + peak
            nodes = batch.requests[rep].task.num_nodes
            for o, cand in self.options(k):
                if cand.pool is not None:
                    pool_key = ("pool", *cand.pool)
                    caps[pool_key] = cand.capacity or 0
                    terms.setdefault(pool_key, []).append((nodes, self.y[k, o]))
                    most[pool_key] = most.get(pool_key, 0) + nodes * len(members)
        self.switches: dict[tuple[str, ...], Any] = {}
        for key, pairs in terms.items():
            constraint = self.model.add(sum(coef * var for coef, var in pairs) <= caps[key])
            # Only a limit the requests could exceed can be part of a conflict.
            if require_all and most[key] > caps[key]:
                self.switches[key] = self.model.new_bool_var(f"on:{_limit_name(key)}")
                constraint.only_enforce_if(self.switches[key])

    def options(self, k: int) -> list[tuple[int, Candidate]]:
        return list(enumerate(self.batch.cands[self.classes[k][0]]))

    def priority(self, k: int) -> int:
        return self.batch.requests[self.classes[k][0]].priority

    def cost(self) -> Any:
        return sum(
            cand.score * self.y[k, o]
            for k in range(len(self.classes))
            for o, cand in self.options(k)
        )

    def hint(self, chosen: Mapping[int, int]) -> None:
        counts: dict[tuple[int, int], int] = {}
        for k, members in enumerate(self.classes):
            for r in members:
                if r in chosen:
                    counts[k, chosen[r]] = counts.get((k, chosen[r]), 0) + 1
        self.model.clear_hints()  # type: ignore[no-untyped-call]
        for key, var in self.y.items():
            self.model.add_hint(var, counts.get(key, 0))

    def chosen(self, solver: Any) -> dict[int, int]:
        """The solution as request → candidate: each class's first members take its counts,
        cheapest candidate first."""
        out: dict[int, int] = {}
        for k, members in enumerate(self.classes):
            queue = iter(members)
            for o, _ in self.options(k):
                for _ in range(solver.value(self.y[k, o])):
                    out[next(queue)] = o
        return out


def _stage_gap(solver: Any, maximize: bool) -> float:
    value, bound = float(solver.objective_value), float(solver.best_objective_bound)
    slack = bound - value if maximize else value - bound
    return max(0.0, slack) / max(abs(value), 1.0)


def _solve(
    batch: _Batch, comp: Component, hint: dict[int, int], time_limit: float, require_all: bool
) -> _Outcome:
    from ortools.sat.python import cp_model

    built = _Model(batch, comp, require_all)
    model = built.model
    levels = (
        []
        if require_all
        else sorted({built.priority(k) for k in range(len(built.classes))}, reverse=True)
    )
    stages = len(levels) + 1  # still to run, this one included
    share = time_limit / stages
    deadline = time.perf_counter() + time_limit

    def solver() -> Any:
        s = cp_model.CpSolver()
        s.parameters.random_seed = SEED
        # One worker and a deterministic time limit: equal inputs give equal plans on any
        # machine fast enough; the wall-clock limit, what is left of the component's share,
        # holds on one that is not.
        s.parameters.num_workers = WORKERS
        s.parameters.max_deterministic_time = max(0.05, share)
        left = deadline - time.perf_counter()
        s.parameters.max_time_in_seconds = max(0.05, left / stages)
        return s

    if require_all:
        return _solve_all(built, solver)
    built.hint(hint)
    optimal, gap = True, 0.0
    current = dict(hint)
    for level in levels:
        members = [r for r in comp.requests if batch.requests[r].priority == level]
        at_level = [var for (k, _), var in built.y.items() if built.priority(k) == level]
        admitted = sum(1 for r in members if r in current)
        if admitted == len(members):
            model.add(sum(at_level) == admitted)  # everyone at this level fits: nothing to search
            stages -= 1
            continue
        model.maximize(sum(at_level))
        s = solver()
        status = s.solve(model)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            optimal &= status == cp_model.OPTIMAL
            gap = max(gap, _stage_gap(s, maximize=True))
            current = built.chosen(s)
            admitted = sum(1 for r in members if r in current)
        else:
            optimal, gap = False, 1.0  # out of time without a plan: keep what the hint admits
        model.add(sum(at_level) >= admitted)
        built.hint(current)
        stages -= 1
    stages = 1
    model.minimize(built.cost())
    s = solver()
    status = s.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _Outcome(current, False, 1.0)
    optimal &= status == cp_model.OPTIMAL
    return _Outcome(built.chosen(s), optimal, max(gap, _stage_gap(s, maximize=False)))


def _solve_all(built: _Model, solver: Any) -> _Outcome:
    """Every request admitted, at the least cost; or the smallest set of limits that conflict
    (assumptions, shrunk one by one: feasibility-only solves)."""
    from ortools.sat.python import cp_model

    model, switches = built.model, built.switches

    def feasible(keys: list[tuple[str, ...]]) -> tuple[int, Any]:
        model.clear_assumptions()
        model.add_assumptions([switches[k] for k in keys])
        s = solver()
        return s.solve(model), s

    status, s = feasible(list(switches))
    if status == cp_model.INFEASIBLE:
        core = [
            k
            for k in switches
            if switches[k].index in set(s.sufficient_assumptions_for_infeasibility())
        ]
        for key in list(core):
            rest = [k for k in core if k != key]
            if feasible(rest)[0] == cp_model.INFEASIBLE:
                core = rest
        raise NoFeasiblePlacement(
            "batch",
            "not every request can be admitted together",
            [Rejection(_limit_name(k), 0, 0, "these limits conflict") for k in sorted(core)],
        )
    model.clear_assumptions()
    for var in switches.values():
        model.add(var == 1)
    model.minimize(built.cost())
    s = solver()
    status = s.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise NoFeasiblePlacement("batch", "the solver found no plan admitting everyone in time")
    optimal = status == cp_model.OPTIMAL
    return _Outcome(built.chosen(s), optimal, _stage_gap(s, maximize=False))


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
    # The wall-clock limit covers everything: the components share what preparation left,
    # each in proportion to its requests, and a component that finishes early passes its
    # time on to the rest.
    deadline = started + time_limit_s
    left_requests = sum(len(comp.requests) for comp in components)
    optimal, gap = True, 0.0
    for comp in components:
        members = set(comp.requests)
        hint = {r: o for r, o in greedy.items() if r in members}
        left = max(0.0, deadline - time.perf_counter())
        budget = max(0.05, left * len(comp.requests) / max(1, left_requests))
        left_requests -= len(comp.requests)
        outcome = _solve(batch, comp, hint, budget, require_all)
        chosen.update(outcome.chosen)
        optimal &= outcome.optimal
        gap = max(gap, outcome.gap)
    used: dict[object, int] = {}
    for index, option in chosen.items():
        batch.take(index, batch.cands[index][option], used)
    offers: dict[tuple[int, int], Offer] = {}  # one (frozen) offer per candidate and size

    def offer(i: int, o: int) -> Offer:
        cand, nodes = batch.cands[i][o], batch.requests[i].task.num_nodes
        key = (id(cand), nodes)
        if key not in offers:
            offers[key] = offer_from_row(cand.row, cand.spot, nodes)
        return offers[key]

    admitted = tuple(
        Admission(id=batch.requests[i].id, priority=batch.requests[i].priority, offer=offer(i, o))
        for i, o in sorted(chosen.items(), key=lambda item: batch.requests[item[0]].id)
    )
    waiting = tuple(
        _waiting(batch, i, used)
        for i in batch.order([i for i in range(len(requests)) if i not in chosen])
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
    names = tuple(_limit_name(k) for k in full)
    parts = [f"{name} would be exceeded" for name in names]
    if best.pool is not None and used.get(("pool", *best.pool), 0) + req.task.num_nodes > (
        best.capacity or 0
    ):
        pool = _pool_name(("pool", *best.pool))
        names += (pool,)
        parts.append(f"{pool} is full")
    if parts:
        reason = "waits: " + "; ".join(parts)
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
    pools: dict[tuple[str, ...], int] = {}
    for cands in batch.cands:
        for cand in cands:
            if cand.pool is not None:
                pools[("pool", *cand.pool)] = cand.capacity or 0
    for pool_key, capacity in sorted(pools.items()):
        rows.append(
            LimitUsage(
                name="/".join(p for p in pool_key[1:] if p),
                group="",
                kind="pool",
                used=float(used.get(pool_key, 0)),
                limit=float(capacity),
                unit="nodes",
            )
        )
    return tuple(rows)
