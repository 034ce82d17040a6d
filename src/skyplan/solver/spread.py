"""Service replica placement: N replicas of one service task, spread over failure domains with
a spot / on-demand mix (SkyServe's SpotHedge). A pure function:
`place_replicas(task, catalog, replicas=...) -> ReplicaPlan`.

1. Candidates: the task's feasible offers on demand and on spot (policy rules and per-task
   limits applied), each (offer, kind) a candidate holding up to `capacity // num_nodes`
   replicas, pruned per failure domain and kind to the cheapest offers that can hold every
   replica (any replica on a pruned offer moves to a kept one at no extra cost).
2. Checks: counts that make the request impossible (too few spot domains, no on-demand offer
   for the base, too few regions or clouds) fail early with a reason in words.
3. CP-SAT: an integer count per candidate, Booleans "used" per region, cloud and spot domain
   linked to the counts, micro-dollar costs; warm-started from a greedy pass, with a fixed seed
   and worker count and a time limit. Infeasible requests are explained by the smallest set of
   requirements that conflict (an assumption-based solve).
4. Ties: among the cheapest plans, the one with the most replicas on the first candidate in
   (cost, cloud, region, zone, instance type, on-demand before spot) order, then on the second,
   and so on: the lexicographically least sorted list of replicas, found one replica at a time.
   So equal inputs give equal plans whatever the catalog's row order.

Semantics of the mix: a task with `use_spot` unset may take either kind (at least
`base_on_demand` on demand); `use_spot: true` pins it to spot except exactly `base_on_demand`
on-demand replicas; `use_spot: false` pins every replica on demand. Spot replicas are spread:
at most `max_spot_per_domain` per zone (or region). On-demand replicas are not spread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.errors import NoFeasiblePlacement
from skyplan.model import Offer, Policy, RequestContext, Task
from skyplan.solver.planner import feasible_offers, offer_from_row, place
from skyplan.solver.policy import COST, SPOT

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

SpotDomain = Literal["zone", "region"]
SEED = 7
WORKERS = 2
_MICRO = 1_000_000  # dollars in micro-dollars: CP-SAT works on integers
_MIN_STEP_S = 0.05  # the least time a solve is given, even when the budget is spent


class ReplicaPlan(BaseModel):
    """Where each replica of a service runs, what the mix costs, and how good the answer is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str | None
    #: One offer per replica: on-demand first, then spot, each cheapest first.
    replicas: tuple[Offer, ...]
    on_demand: int
    spot: int
    #: Distinct "cloud/region" and clouds of all replicas; the spot replicas' failure domains
    #: ("cloud/region/zone", or "cloud/region" when the domain is the region).
    regions: tuple[str, ...]
    clouds: tuple[str, ...]
    domains: tuple[str, ...]
    spot_domain: SpotDomain
    hourly_cost: float
    #: OPTIMAL: proven cheapest, ties broken as documented (unless the time limit ran out
    #: while breaking them); FEASIBLE: the time limit ran out first, and `gap` is the proven
    #: relative distance to the cheapest possible.
    status: Literal["OPTIMAL", "FEASIBLE"]
    gap: float
    wall_s: float
    candidates: int

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.task,
            "replicas": [
                {
                    "cloud": o.cloud,
                    "region": o.region,
                    "zone": o.zone,
                    "instance_type": o.instance_type,
                    "spot": o.spot,
                    "num_nodes": o.num_nodes,
                    "hourly_cost": round(o.hourly_cost, 6),
                }
                for o in self.replicas
            ],
            "on_demand": self.on_demand,
            "spot": self.spot,
            "regions": list(self.regions),
            "clouds": list(self.clouds),
            "domains": list(self.domains),
            "hourly_cost": round(self.hourly_cost, 6),
            "status": self.status,
            "gap": self.gap,
        }


@dataclass(frozen=True)
class _Spec:
    """The request, resolved: how many replicas, and the bounds on the on-demand count."""

    replicas: int
    od_min: int
    od_max: int
    min_regions: int
    min_clouds: int
    domain: SpotDomain
    per_domain: int
    pin: bool | None  # the task's use_spot

    @property
    def spot_min(self) -> int:
        return self.replicas - self.od_max

    @property
    def spot_max(self) -> int:
        return self.replicas - self.od_min

    @property
    def od_why(self) -> tuple[str, str]:
        """Why replicas must run on demand, and what would relax it."""
        if self.pin is False:
            return "use_spot: false", "unset use_spot"
        return "base_on_demand", "lower base_on_demand"


@dataclass(frozen=True)
class _Candidate:
    row: dict[str, Any]
    spot: bool
    cost: int  # micro-dollars per hour for one replica (all nodes)
    region: str  # "cloud/region"
    cloud: str
    domain: str | None  # spot failure domain; None on demand
    pool: tuple[str, str, str, str] | None  # shared by both kinds of one finite-capacity row
    room: int | None  # replicas the pool holds; None: unlimited
    key: tuple[Any, ...]  # the tie-break order


def _resolve(
    task: Task,
    replicas: int | None,
    base_on_demand: int | None,
    min_regions: int,
    min_clouds: int,
    spot_domain: str,
    max_spot_per_domain: int,
    time_limit_s: float,
) -> _Spec:
    policy = task.service.replica_policy if task.service is not None else None
    if replicas is None:
        replicas = 1
        if task.service is not None:
            extra = (policy.num_overprovision or 0) if policy is not None else 0
            # A scale-to-zero service still needs a place for its first replica.
            replicas = max(1, task.service.replica_bounds()[0] + extra)
    checks = [
        (replicas >= 1, f"replicas must be at least 1, got {replicas}"),
        (min_regions >= 1, f"min_regions must be at least 1, got {min_regions}"),
        (min_clouds >= 1, f"min_clouds must be at least 1, got {min_clouds}"),
        (
            max_spot_per_domain >= 1,
            f"max_spot_per_domain must be at least 1, got {max_spot_per_domain}",
        ),
        (
            spot_domain in ("zone", "region"),
            f"spot_domain must be 'zone' or 'region', got {spot_domain!r}",
        ),
        (time_limit_s > 0, f"time_limit_s must be positive, got {time_limit_s}"),
    ]
    if base_on_demand is not None:
        checks.append(
            (
                0 <= base_on_demand <= replicas,
                f"base_on_demand must be between 0 and replicas ({replicas}), got {base_on_demand}",
            )
        )
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    if base_on_demand is None:
        fallback = policy.base_ondemand_fallback_replicas if policy is not None else None
        base_on_demand = min(replicas, fallback or 0)
    pin = task.resources.use_spot
    od_min, od_max = {
        None: (base_on_demand, replicas),
        True: (base_on_demand, base_on_demand),
        False: (replicas, replicas),
    }[pin]
    domain: SpotDomain = "zone" if spot_domain == "zone" else "region"
    return _Spec(
        replicas,
        od_min,
        od_max,
        min_regions,
        min_clouds,
        domain,
        max_spot_per_domain,
        pin,
    )


# -- candidates ----------------------------------------------------------------------------------


def _candidate(row: dict[str, Any], spec: _Spec, num_nodes: int) -> _Candidate:
    spot = bool(row[SPOT])
    cloud, region, zone = str(row[c.CLOUD]), str(row[c.REGION]), row[c.ZONE]
    capacity = row[c.CAPACITY]
    pool = None if capacity is None else (cloud, region, zone or "", str(row[c.INSTANCE_TYPE]))
    domain = None
    if spot:
        domain = f"{cloud}/{region}" if spec.domain == "region" or zone is None else None
        domain = domain or f"{cloud}/{region}/{zone}"
    cost = round(float(row[COST]) * _MICRO)
    key = (
        cost,
        cloud,
        region,
        zone is None,
        zone or "",
        str(row[c.INSTANCE_TYPE]),
        spot,
        row[c.ACCELERATOR] or "",
        row[c.ACCELERATOR_COUNT] or 0.0,
        row[c.VCPUS],
        row[c.MEMORY_GIB],
        row[c.SOURCE] or "",
        capacity is None,
        capacity or 0,
        str(row[c.ARCH]),
        row[c.ACCELERATOR_MEMORY] or 0.0,
    )
    return _Candidate(
        row,
        spot,
        cost,
        f"{cloud}/{region}",
        cloud,
        domain,
        pool,
        None if capacity is None else int(capacity) // num_nodes,
        key,
    )


def _frames(
    task: Task, catalog: Catalog, spec: _Spec, policy: Policy | None, ctx: RequestContext | None
) -> list[pl.DataFrame]:
    """The task's feasible offers of each kind it may take. `use_spot` is set on the top
    level only, so `any_of`/`ordered` entries keep their own pins and their alternatives."""
    kinds = [k for k, n in ((False, spec.od_max), (True, spec.spot_max)) if n > 0]
    frames = []
    for spot in kinds:
        variant = task.model_copy(
            update={"resources": task.resources.model_copy(update={"use_spot": spot})}
        )
        frame = feasible_offers(variant, catalog, policy=policy, context=ctx)
        frames.append(frame.filter(pl.col(SPOT).is_in(kinds)))
    return frames


def _candidates(frames: Sequence[pl.DataFrame], spec: _Spec, num_nodes: int) -> list[_Candidate]:
    """Every candidate worth a variable, in tie-break order. Within one group (a spot domain,
    or an on-demand region) the cheapest candidates are kept until they can hold every
    replica: a replica on a later one could move to a kept one with room, at no more cost,
    in the same region, cloud and domain."""
    unique: dict[tuple[Any, ...], _Candidate] = {}
    for frame in frames:
        for row in frame.iter_rows(named=True):
            cand = _candidate(row, spec, num_nodes)
            if cand.room != 0:
                unique.setdefault(cand.key, cand)
    ordered = sorted(unique.values(), key=lambda cand: cand.key)
    held: dict[tuple[bool, str], tuple[bool, dict[tuple[str, ...], int]]] = {}
    kept = []
    for cand in ordered:
        group = (cand.spot, cand.domain or cand.region)
        unlimited, pools = held.get(group, (False, {}))
        if unlimited or sum(pools.values()) >= spec.replicas:
            continue
        kept.append(cand)
        if cand.pool is None or cand.room is None:
            held[group] = (True, pools)
        else:
            pools[cand.pool] = min(pools.get(cand.pool, cand.room), cand.room)
            held[group] = (False, pools)
    return kept


# -- early checks --------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _room(cands: Sequence[_Candidate], cap: int) -> int:
    """How many replicas `cands` hold together, at most `cap`."""
    pools: dict[tuple[str, ...], int] = {}
    for cand in cands:
        if cand.pool is None or cand.room is None:
            return cap
        pools[cand.pool] = min(pools.get(cand.pool, cand.room), cand.room)
    return min(cap, sum(pools.values()))


def _check(spec: _Spec, cands: Sequence[_Candidate]) -> str | None:
    """Why the request cannot be met, from counts alone; None when the counts allow it."""
    r, dom = spec.replicas, spec.domain
    od = [cand for cand in cands if not cand.spot]
    spot = [cand for cand in cands if cand.spot]
    domains = sorted({cand.domain for cand in spot if cand.domain is not None})
    slots = sum(min(spec.per_domain, _room([s for s in spot if s.domain == d], r)) for d in domains)
    od_room = _room(od, r)
    why, relax = spec.od_why
    if spec.od_min > 0 and not od:
        return (
            f"{_plural(spec.od_min, 'replica')} must run on demand ({why}) but no "
            f"on-demand offer fits the task; {relax}"
        )
    if spec.od_min > od_room:
        return (
            f"{_plural(spec.od_min, 'replica')} must run on demand ({why}) but the on-demand "
            f"offers hold only {od_room} (pool capacity); {relax}"
        )
    if spec.spot_min > 0 and not spot:
        return (
            f"{_plural(spec.spot_min, 'replica')} must run on spot (use_spot: true) but no spot "
            "offer fits the task; raise base_on_demand or unset use_spot"
        )
    if spec.spot_min > slots:
        hint = "raise max_spot_per_domain, allow more regions or raise base_on_demand"
        if spec.per_domain == 1 and slots == len(domains):
            return (
                f"only {_plural(len(domains), 'spot ' + dom)} but {spec.spot_min} spot "
                f"replicas need distinct {dom}s; {hint}"
            )
        return (
            f"the {_plural(len(domains), 'spot ' + dom)} hold at most {slots} spot replicas "
            f"({spec.per_domain} per {dom}, pool capacity) but {spec.spot_min} must run on "
            f"spot; {hint}"
        )
    fit = min(od_room, spec.od_max) + min(slots, spec.spot_max)
    if fit < r:
        return (
            f"at most {fit} of the {r} replicas fit: {min(od_room, spec.od_max)} on demand "
            f"(pool capacity) and {min(slots, spec.spot_max)} on spot "
            f"({_plural(len(domains), dom)}, at most {spec.per_domain} per {dom}); "
            "allow more regions or clouds, or raise max_spot_per_domain"
        )
    for need, word, have in (
        (spec.min_regions, "region", sorted({cand.region for cand in cands})),
        (spec.min_clouds, "cloud", sorted({cand.cloud for cand in cands})),
    ):
        if need > r:
            return f"min_{word}s={need} needs at least {need} replicas, but {r} are placed"
        if need > len(have):
            return (
                f"min_{word}s={need} but the offers that fit span only "
                f"{_plural(len(have), word)} ({', '.join(have)})"
            )
    return None


# -- greedy hint ---------------------------------------------------------------------------------


def _pool_rooms(cands: Sequence[_Candidate]) -> dict[tuple[str, ...], int]:
    rooms: dict[tuple[str, ...], int] = {}
    for cand in cands:
        if cand.pool is not None and cand.room is not None:
            rooms[cand.pool] = min(rooms.get(cand.pool, cand.room), cand.room)
    return rooms


def _greedy(spec: _Spec, cands: Sequence[_Candidate]) -> list[int] | None:
    """Cheapest first within the on-demand bounds, the spread and the pools, saving the last
    replicas for new regions and clouds while too few are used. Every plan it completes meets
    every constraint; None where it gets stuck (CP-SAT then starts without a hint)."""
    rooms = _pool_rooms(cands)
    counts = [0] * len(cands)
    used: dict[object, int] = {}
    regions: set[str] = set()
    clouds: set[str] = set()
    for placed in range(spec.replicas):
        left = spec.replicas - placed
        od = used.get("on-demand", 0)
        new_region = left <= spec.min_regions - len(regions)
        new_cloud = left <= spec.min_clouds - len(clouds)
        for i, cand in enumerate(cands):
            if cand.spot:
                if left <= spec.od_min - od or used.get(cand.domain, 0) >= spec.per_domain:
                    continue
            elif od >= spec.od_max:
                continue
            if cand.pool is not None and used.get(cand.pool, 0) >= rooms[cand.pool]:
                continue
            if (new_region and cand.region in regions) or (new_cloud and cand.cloud in clouds):
                continue
            counts[i] += 1
            for key in (cand.domain if cand.spot else "on-demand", cand.pool):
                if key is not None:
                    used[key] = used.get(key, 0) + 1
            regions.add(cand.region)
            clouds.add(cand.cloud)
            break
        else:
            return None
    return counts


# -- the model -----------------------------------------------------------------------------------


@dataclass
class _Model:
    model: cp_model.CpModel
    x: list[cp_model.IntVar]
    cost: cp_model.LinearExprT
    #: assumption literal index → the requirement it enforces, in words (explaining models)
    requirements: dict[int, str]


def _build(spec: _Spec, cands: Sequence[_Candidate], explain: bool = False) -> _Model:
    """Counts per candidate, exactly `replicas` in all, and every requirement. With `explain`
    each requirement is enforced by an assumption literal, for the conflict explanation."""
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    r = spec.replicas
    requirements: dict[int, str] = {}
    literals: list[cp_model.IntVar] = []

    def requirement(text: str) -> list[cp_model.IntVar]:
        if not explain:
            return []
        literal = m.new_bool_var(f"a{len(requirements)}")
        requirements[literal.index] = text
        literals.append(literal)
        return [literal]

    rooms = _pool_rooms(cands)
    x = []
    for i, cand in enumerate(cands):
        ub = r
        if not explain:
            ub = min(ub, rooms.get(cand.pool, r) if cand.pool else r)
            ub = min(ub, spec.per_domain, spec.spot_max) if cand.spot else min(ub, spec.od_max)
        x.append(m.new_int_var(0, ub, f"x{i}"))
    m.add(cp_model.LinearExpr.sum(x) == r)

    on_demand = cp_model.LinearExpr.sum([x[i] for i, cand in enumerate(cands) if not cand.spot])
    if spec.od_min == spec.od_max == r:
        kind = requirement("every replica on demand (use_spot: false)")
    elif spec.od_min == spec.od_max:
        kind = requirement(f"exactly {spec.od_min} on demand, the rest on spot (use_spot: true)")
    else:
        kind = requirement(f"at least {spec.od_min} on-demand replica(s) (base_on_demand)")
    if spec.od_min > 0:
        m.add(on_demand >= spec.od_min).only_enforce_if(*kind)
    if spec.od_max < r:
        m.add(on_demand <= spec.od_max).only_enforce_if(*kind)

    def grouped(attr: str, spot_only: bool = False) -> dict[str, list[cp_model.IntVar]]:
        groups: dict[str, list[cp_model.IntVar]] = {}
        for var, cand in zip(x, cands, strict=True):
            name = getattr(cand, attr)
            if name is not None and (cand.spot or not spot_only):
                groups.setdefault(name, []).append(var)
        return groups

    def used(groups: dict[str, list[cp_model.IntVar]]) -> list[cp_model.IntVar]:
        """A Boolean per group, true exactly when the group holds a replica."""
        flags = []
        for name, members in groups.items():
            flag = m.new_bool_var(f"used {name}")
            total = cp_model.LinearExpr.sum(members)
            m.add(total >= flag)
            m.add(total <= r * flag)
            flags.append(flag)
        return flags

    domains = grouped("domain", spot_only=True)
    spread = requirement(f"at most {spec.per_domain} spot replica(s) per {spec.domain}")
    for flag, members in zip(used(domains), domains.values(), strict=True):
        m.add(cp_model.LinearExpr.sum(members) <= spec.per_domain * flag).only_enforce_if(*spread)
    pools: dict[tuple[str, ...], list[cp_model.IntVar]] = {}
    for var, cand in zip(x, cands, strict=True):
        if cand.pool is not None:
            pools.setdefault(cand.pool, []).append(var)
    capacity = requirement("pool capacity") if pools else []
    for pool, members in pools.items():
        m.add(cp_model.LinearExpr.sum(members) <= rooms[pool]).only_enforce_if(*capacity)
    for need, attr, word in (
        (spec.min_regions, "region", "regions"),
        (spec.min_clouds, "cloud", "clouds"),
    ):
        flags = used(grouped(attr))
        if need > 1:
            enforce = requirement(f"replicas in at least {need} {word} (min_{word})")
            m.add(cp_model.LinearExpr.sum(flags) >= need).only_enforce_if(*enforce)
    cost = cp_model.LinearExpr.weighted_sum(x, [cand.cost for cand in cands])
    if explain:
        m.add_assumptions(literals)
    return _Model(m, x, cost, requirements)


def _solver(seconds: float) -> cp_model.CpSolver:
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.random_seed = SEED
    solver.parameters.num_workers = WORKERS
    solver.parameters.max_time_in_seconds = max(_MIN_STEP_S, seconds)
    return solver


def _conflict(spec: _Spec, cands: Sequence[_Candidate], seconds: float) -> str:
    """The requirements that cannot hold together, from a feasibility solve on assumptions."""
    from ortools.sat.python import cp_model

    built = _build(spec, cands, explain=True)
    solver = _solver(seconds)
    if solver.solve(built.model) == cp_model.INFEASIBLE:
        core = solver.sufficient_assumptions_for_infeasibility()
        names = [built.requirements[i] for i in core if i in built.requirements]
        if names:
            together = "; ".join(sorted(names))
            return (
                f"{_plural(spec.replicas, 'replica')} cannot be placed under these requirements "
                f"together: {together}"
            )
    return f"{_plural(spec.replicas, 'replica')} cannot be placed under these requirements"


def _tie_break(
    spec: _Spec, cands: Sequence[_Candidate], start: list[int], best: int, deadline: float
) -> list[int]:
    """Among plans costing at most `best` micro-dollars, the one whose replicas, sorted in
    candidate order, come first: fix the replicas one at a time, each on the first candidate
    any cheapest plan still allows. `start` is such a plan; a solve is needed only where its
    next replica is not already on the least candidate possible."""
    from ortools.sat.python import cp_model

    fixed = [0] * len(cands)
    plan, last = list(start), 0
    for _ in range(spec.replicas):
        first = next(i for i in range(last, len(cands)) if plan[i] > fixed[i])
        if first != last:
            left = deadline - time.perf_counter()
            if left <= 0:
                return plan
            built = _build(spec, cands)
            m, x = built.model, built.x
            m.add(built.cost <= best)
            for var, low in zip(x, fixed, strict=True):
                if low:
                    m.add(var >= low)
            picks = {i: m.new_bool_var(f"next {i}") for i in range(last, first + 1)}
            for i, pick in picks.items():
                m.add(x[i] >= fixed[i] + 1).only_enforce_if(pick)
            m.add_exactly_one(picks.values())
            m.minimize(cp_model.LinearExpr.weighted_sum(list(picks.values()), list(picks)))
            for var, value in zip(x, plan, strict=True):
                m.add_hint(var, value)
            for i, pick in picks.items():
                m.add_hint(pick, i == first)
            solver = _solver(left)
            if solver.solve(m) != cp_model.OPTIMAL:
                return plan
            plan = [int(solver.value(var)) for var in x]
            first = next(i for i, pick in picks.items() if solver.boolean_value(pick))
        fixed[first] += 1
        last = first
    return fixed


# -- the entry point -----------------------------------------------------------------------------


def place_replicas(
    task: Task,
    catalog: Catalog,
    *,
    replicas: int | None = None,
    min_regions: int = 1,
    min_clouds: int = 1,
    base_on_demand: int | None = None,
    spot_domain: SpotDomain = "zone",
    max_spot_per_domain: int = 1,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    time_limit_s: float = 5.0,
) -> ReplicaPlan:
    """The cheapest placement of `replicas` replicas of `task` (default: the service's
    `min_replicas` plus `num_overprovision`, or 1): at least `base_on_demand` on demand
    (default: the replica policy's `base_ondemand_fallback_replicas`), spot replicas at most
    `max_spot_per_domain` per `spot_domain`, all of them over at least `min_regions` regions
    and `min_clouds` clouds, within each pool's capacity. Pure; raises `NoFeasiblePlacement`
    with the reason, and `ValueError` for arguments out of range."""
    from ortools.sat.python import cp_model

    started = time.perf_counter()
    deadline = started + time_limit_s
    spec = _resolve(
        task,
        replicas,
        base_on_demand,
        min_regions,
        min_clouds,
        spot_domain,
        max_spot_per_domain,
        time_limit_s,
    )
    frames = _frames(task, catalog, spec, policy, context)
    cands = _candidates(frames, spec, task.num_nodes)
    if not cands:
        place(task, catalog, policy=policy, context=context, alternatives=0)
        raise NoFeasiblePlacement(task.name, "no offer of the kinds the task allows fits it")
    reason = _check(spec, cands)
    if reason is not None:
        raise NoFeasiblePlacement(task.name, reason)

    hint = _greedy(spec, cands)
    built = _build(spec, cands)
    built.model.minimize(built.cost)
    if hint is not None:
        for var, count in zip(built.x, hint, strict=True):
            built.model.add_hint(var, count)
    solver = _solver(deadline - time.perf_counter())
    status = solver.solve(built.model)
    if status == cp_model.INFEASIBLE:
        left = deadline - time.perf_counter()
        raise NoFeasiblePlacement(task.name, _conflict(spec, cands, left))
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        counts = [int(solver.value(var)) for var in built.x]
        value, bound = solver.objective_value, solver.best_objective_bound
    elif hint is not None:
        counts, bound = hint, solver.best_objective_bound
        value = float(sum(n * cand.cost for n, cand in zip(hint, cands, strict=True)))
    else:
        raise NoFeasiblePlacement(
            task.name,
            f"no placement found within time_limit_s={time_limit_s:g}; raise it",
        )
    # Integer costs: a bound within one micro-dollar of the value proves it, time limit or not.
    optimal = status == cp_model.OPTIMAL or (status == cp_model.FEASIBLE and value - bound < 1)
    if optimal:
        counts = _tie_break(spec, cands, counts, round(value), deadline)
    gap = 0.0 if optimal else max(0.0, (value - bound) / max(abs(value), 1.0))
    return _plan(task, spec, cands, counts, optimal, gap, time.perf_counter() - started)


def _plan(
    task: Task,
    spec: _Spec,
    cands: Sequence[_Candidate],
    counts: Sequence[int],
    optimal: bool,
    gap: float,
    wall_s: float,
) -> ReplicaPlan:
    order = sorted(range(len(cands)), key=lambda i: (cands[i].spot, i))
    chosen = [cands[i] for i in order for _ in range(counts[i])]
    offers = tuple(offer_from_row(cand.row, cand.spot, task.num_nodes) for cand in chosen)
    return ReplicaPlan(
        task=task.name,
        replicas=offers,
        on_demand=sum(1 for o in offers if not o.spot),
        spot=sum(1 for o in offers if o.spot),
        regions=tuple(sorted({cand.region for cand in chosen})),
        clouds=tuple(sorted({cand.cloud for cand in chosen})),
        domains=tuple(sorted({cand.domain for cand in chosen if cand.domain is not None})),
        spot_domain=spec.domain,
        hourly_cost=sum(o.hourly_cost for o in offers),
        status="OPTIMAL" if optimal else "FEASIBLE",
        gap=gap,
        wall_s=wall_s,
        candidates=len(cands),
    )
