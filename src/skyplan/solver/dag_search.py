"""The pipeline placement problem in integers, and its exact solvers.

`Problem` keeps per task one option per location (its cheapest candidate there), compute in
micro-dollars and times in milliseconds. `tree_dp` solves it exactly by dynamic programming when
the edges that matter form a forest (or, for time, one chain); `cp_sat` solves any DAG with
OR-Tools CP-SAT (imported on first use), starting from a strong heuristic plan. See
`skyplan.solver.dag` for the model; this module only searches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from skyplan.model import Offer
from skyplan.solver.egress import EgressModel, Location

Objective = Literal["cost", "time"]
Status = Literal["OPTIMAL", "FEASIBLE"]

SEED = 7
WORKERS = 2
MICRO = 1_000_000  # dollars → micro-dollars
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class Candidate:
    offer: Offer
    location: Location
    score: float  # $/h that ranks it: the cost less policy preferences


def topological(n: int, edges: Sequence[tuple[int, int]]) -> list[int]:
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


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    gb: float


@dataclass
class Problem:
    """Per task one option per location (its cheapest candidate there), in integers."""

    objective: Objective
    egress: EgressModel
    edges: tuple[Edge, ...]
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
        edges: tuple[Edge, ...],
        runtimes: Sequence[float],
        pools: Sequence[Sequence[Candidate]],
    ) -> Problem:
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
            [round(pool[k].score * hours * MICRO) for k in b.values()]
            for b, pool, hours in zip(best, pools, runtimes, strict=True)
        ]
        runtime_ms = [round(h * MS_PER_HOUR) for h in runtimes]
        order = topological(len(pools), [(e.source, e.target) for e in edges])
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

    def fastest_delay(self, e: Edge) -> int:
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
    pools: Sequence[Sequence[Candidate]],
    edges: Sequence[Edge],
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
    return round(gb * usd_per_gb * MICRO)


def _ms(gb: float, gbps: float) -> int:
    return round(gb * 8 / gbps * 1000)


def is_forest(n: int, edges: Sequence[Edge]) -> bool:
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


def is_single_path(n: int, edges: Sequence[Edge]) -> bool:
    """Whether `edges` chain every task into one directed path."""
    if len(edges) != n - 1:
        return False
    outs = {e.source for e in edges}
    ins = {e.target for e in edges}
    return len(outs) == len(ins) == n - 1 and is_forest(n, edges)


def _spanning_forest(n: int, edges: Sequence[Edge]) -> list[Edge]:
    """A maximum spanning forest by data size (Kruskal): the edges that matter most."""
    ranked = sorted(edges, key=lambda e: (-e.gb, e.source, e.target))
    kept: list[Edge] = []
    for e in ranked:
        if is_forest(n, [*kept, e]):
            kept.append(e)
    return kept


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0] + b[0], a[1] + b[1])


def tree_dp(
    problem: Problem, tree: Sequence[Edge], key: Callable[[int, int], tuple[int, int]]
) -> list[int]:
    """The option per task minimizing Σ task keys + Σ `tree` edge keys, by dynamic programming
    over (task, location) from the leaves up: exact where `tree` is a forest. O(Σ L_i·L_j)."""
    n = len(problem.options)
    adjacent: list[list[Edge]] = [[] for _ in range(n)]
    for e in tree:
        adjacent[e.source].append(e)
        adjacent[e.target].append(e)
    value = [[key(m, problem.runtime_ms[t]) for m in problem.compute[t]] for t in range(n)]
    parent: list[Edge | None] = [None] * n
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


def _improve(problem: Problem, choice: list[int]) -> list[int]:
    """Best responses on cost until none helps: each task in turn takes its cheapest option
    given its neighbours' (a primal heuristic for CP-SAT's hint)."""
    n = len(choice)
    incident: list[list[Edge]] = [[] for _ in range(n)]
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


def _descend(problem: Problem, choice: list[int]) -> list[int]:
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


def _hint(problem: Problem) -> list[int]:
    """A good first plan for CP-SAT, which then mostly has to prove it: the exact plan for a
    maximum spanning forest of the edges, improved by best responses; for the time objective
    also every "all at one location where possible" plan, the three best improved."""
    n = len(problem.options)
    forest = _spanning_forest(n, problem.edges)
    cheap = _improve(problem, tree_dp(problem, forest, problem.cost_key))
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


def cp_sat(problem: Problem, time_limit: float) -> tuple[list[int], Status, float]:
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
