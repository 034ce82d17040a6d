"""`plan()`: task + catalog → `Plan`. A pure function: no I/O, no printing, inputs untouched.

For each task the resource block expands into ordered groups of options (see
`skyplan.model.resources`). Each option is matched against the whole catalog frame by the
filters in `DEFAULT_FILTERS`, with every filter's rejection count kept. The first group with a
feasible offer wins; within it the cheapest offer (total $/h for all nodes) is chosen, ties
broken by cloud, region, zone and instance type so equal inputs give equal plans.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.errors import NoFeasiblePlacement, Rejection, did_you_mean
from skyplan.model import (
    Accelerator,
    Dag,
    FilterStep,
    Offer,
    Placement,
    Plan,
    Policy,
    RequestContext,
    ResourceOption,
    Task,
    Verdict,
)
from skyplan.model.policy import Origin, kind_of
from skyplan.solver import policy as policy_stage
from skyplan.solver.filters import (
    DEFAULT_FAMILY,
    DEFAULT_FILTERS,
    AcceleratorFilter,
    Filter,
    Request,
    default_family_expr,
)
from skyplan.solver.hints import would_fit

COST = policy_stage.COST
SPOT = policy_stage.SPOT
SCORE = "_score"
#: Ranking: cost, then stable keys so equal inputs give equal plans whatever the row order.
_ORDER = [
    COST,
    c.CLOUD,
    c.REGION,
    c.ZONE,
    c.INSTANCE_TYPE,
    c.ACCELERATOR,
    c.ACCELERATOR_COUNT,
    c.VCPUS,
    c.MEMORY_GIB,
    c.SOURCE,
]
_SHAPE = [c.CLOUD, c.INSTANCE_TYPE, c.ACCELERATOR, c.ACCELERATOR_COUNT]


_PREPARED: weakref.WeakKeyDictionary[Catalog, Prepared] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Prepared:
    """Derived data computed once per catalog (a cache: it never changes the catalog): the
    frame with the default-family column, the row numbers of each accelerator, and each
    accelerator's rows, gathered the first time a request asks for them (at 1M offers,
    gathering every partition up front was 0.7 s of a request's first plan)."""

    frame: pl.DataFrame
    rows: dict[str | None, pl.Series]
    parts: dict[str | None, pl.DataFrame] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog) -> Prepared:
        found = _PREPARED.get(catalog)
        if found is None:
            frame = catalog.frame.with_columns(default_family_expr().alias(DEFAULT_FAMILY))
            numbers = (
                frame.select(
                    pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.col(c.ACCELERATOR)
                )
                .group_by(c.ACCELERATOR, maintain_order=True)
                .agg(pl.col("_row"))
            )
            rows = dict(zip(numbers[c.ACCELERATOR].to_list(), numbers["_row"], strict=True))
            found = cls(frame, rows)
            _PREPARED[catalog] = found
        return found

    def partition(self, accelerator: str | None) -> pl.DataFrame:
        """The rows of `accelerator` (None: no accelerator), in catalog order."""
        part = self.parts.get(accelerator)
        if part is None:
            numbers = self.rows.get(accelerator)
            part = self.frame.clear() if numbers is None else self.frame[numbers]
            self.parts[accelerator] = part
        return part

    def rows_for(self, req: Request) -> pl.DataFrame | None:
        """The accelerator filter's rows, from the partition; None where a partition does not
        apply (an instance-type pin without accelerators may match any partition)."""
        acc = req.option.accelerator
        if acc is None:
            if req.option.instance_type:
                return None
            return self.partition(None)
        return self.partition(acc.name).filter(pl.col(c.ACCELERATOR_COUNT) == acc.count)


@dataclass(frozen=True)
class Evaluation:
    """One option matched against the catalog."""

    option: ResourceOption
    steps: tuple[FilterStep, ...]
    offers: pl.DataFrame
    rejection: Rejection | None


def _canonical(option: ResourceOption, catalog: Catalog) -> ResourceOption | Rejection:
    acc = option.accelerator
    if acc is None:
        return option
    name = catalog.canonical_accelerator(acc.name)
    if name is None:
        guess = did_you_mean(acc.name, catalog.accelerators)
        hint = f"did you mean {guess!r}?" if guess else "known: " + ", ".join(catalog.accelerators)
        return Rejection(
            f"accelerators {acc}", len(catalog), 0, f"{acc.name} is not in this catalog; {hint}"
        )
    return option.model_copy(update={"accelerator": Accelerator(name=name, count=acc.count)})


def evaluate(
    option: ResourceOption, num_nodes: int, catalog: Catalog, filters: Sequence[Filter]
) -> Evaluation:
    """Match one option against the catalog, keeping each filter's before/after counts."""
    canonical = _canonical(option, catalog)
    if isinstance(canonical, Rejection):
        return Evaluation(option, (), catalog.frame.clear(), canonical)
    req = Request(option=canonical, num_nodes=num_nodes, catalog=catalog)
    prepared = Prepared.of(catalog)
    price = c.SPOT_PRICE if canonical.use_spot else c.PRICE
    priced = [(pl.col(price) * num_nodes).alias(COST), pl.lit(canonical.use_spot).alias(SPOT)]
    full = prepared.frame.with_columns(priced)
    frame, steps, before = full, [], full.height
    partition = prepared.rows_for(req)
    if filters and isinstance(filters[0], AcceleratorFilter) and partition is not None:
        # The first filter, applied through the per-catalog partition: same rows, no scan.
        first = filters[0]
        frame = partition.with_columns(priced)
        steps.append(
            FilterStep(
                name=first.name,
                requirement=first.requirement(req),
                before=before,
                after=frame.height,
            )
        )
        before, filters = frame.height, filters[1:]
    offset = len(steps)
    active = [(f, e) for f in filters if (e := f.expr(req)) is not None]
    # Each filter's mask once (one pass, in parallel), then their running conjunction: k
    # filters cost k masks and k ands, not the k(k+1)/2 of re-evaluating every prefix.
    masks = frame.select(e.alias(str(i)) for i, (_, e) in enumerate(active)) if active else None
    kept: pl.Series | None = None
    remaining = frame  # what was left before the first filter that left nothing
    for (f, _), mask in zip(active, masks.iter_columns() if masks is not None else (), strict=True):
        previous, kept = kept, mask if kept is None else kept & mask
        after = int(kept.sum())
        if after == 0 and before > 0 and previous is not None:
            remaining = frame.filter(previous)
        steps.append(
            FilterStep(
                name=f.name,
                requirement=f.requirement(req),
                before=before,
                after=after,
                rule=getattr(f, "rule_name", None),
            )
        )
        before = after
    offers = frame.filter(kept) if kept is not None else frame
    rejection = None
    if offers.height == 0:
        index = next(i for i, s in enumerate(steps) if s.after == 0)
        step = steps[index]
        rejection = Rejection(
            step.requirement,
            step.removed,
            0,
            would_fit(step.name, req, full if index < offset else remaining),
            step.rule,
        )
    return Evaluation(canonical, tuple(steps), offers, rejection)


def _num(value: object) -> float:
    assert isinstance(value, int | float), value
    return float(value)


def offer_from_row(row: dict[str, object], spot: bool, num_nodes: int) -> Offer:
    """An `Offer` from one row of a candidate frame (with its `cost`)."""
    acc = row[c.ACCELERATOR]
    return Offer(
        cloud=str(row[c.CLOUD]),
        region=str(row[c.REGION]),
        zone=None if row[c.ZONE] is None else str(row[c.ZONE]),
        instance_type=str(row[c.INSTANCE_TYPE]),
        accelerators=None if acc is None else {str(acc): _num(row[c.ACCELERATOR_COUNT])},
        spot=spot,
        num_nodes=num_nodes,
        hourly_cost=_num(row[COST]),
        vcpus=_num(row[c.VCPUS]),
        memory_gib=_num(row[c.MEMORY_GIB]),
        source=None if row[c.SOURCE] is None else str(row[c.SOURCE]),
        arch=str(row[c.ARCH]),
        accelerator_memory=None
        if row[c.ACCELERATOR_MEMORY] is None
        else _num(row[c.ACCELERATOR_MEMORY]),
        capacity=None if row[c.CAPACITY] is None else int(_num(row[c.CAPACITY])),
    )


def _rank(
    evaluations: list[Evaluation], num_nodes: int, limit: int
) -> tuple[Offer, list[Offer], int, dict[str, object]]:
    """The winner, the runner-ups (the best of each shape: every cloud's best plus the cheapest
    others, up to `limit`) and the index of the winning evaluation."""
    frames = [
        e.offers.with_columns(pl.lit(i).alias("_option"), pl.lit(e.option.use_spot).alias("_spot"))
        for i, e in enumerate(evaluations)
        if e.offers.height
    ]
    ranked = pl.concat(frames, how="diagonal_relaxed")
    if SCORE not in ranked.columns:
        ranked = ranked.with_columns(pl.col(COST).alias(SCORE))
    rows = _best_per_shape(ranked).to_dicts()
    winner, rest = rows[0], rows[1:]
    # Every other cloud's best first (the comparison users look for), then the cheapest others.
    per_cloud: dict[str, int] = {}
    for index, row in enumerate(rest):
        if row[c.CLOUD] != winner[c.CLOUD]:
            per_cloud.setdefault(str(row[c.CLOUD]), index)
    picked = list(per_cloud.values())[:limit]
    for index in range(len(rest)):
        if len(picked) >= limit:
            break
        if index not in picked:
            picked.append(index)
    offers = [offer_from_row(rest[i], bool(rest[i]["_spot"]), num_nodes) for i in sorted(picked)]
    return (
        offer_from_row(winner, bool(winner["_spot"]), num_nodes),
        offers,
        int(str(winner["_option"])),
        winner,
    )


#: The ranking keys, and what makes two candidates the same shape.
RANK_KEYS = [SCORE, *_ORDER, "_option"]
SHAPE_KEYS = [*_SHAPE, "_spot"]


def _best_per_shape(ranked: pl.DataFrame) -> pl.DataFrame:
    """Each shape's best candidate, best first. Each shape's best row is among its rows of
    least score (one hash pass), so only those few are sorted by every key: the same rows, in
    the same order, as sorting them all."""
    least = pl.col(SCORE).eq_missing(pl.col(SCORE).min().over(SHAPE_KEYS))
    ranked = ranked.filter(least).sort(RANK_KEYS, nulls_last=True, maintain_order=True)
    return ranked.unique(subset=SHAPE_KEYS, keep="first", maintain_order=True)


def context_of(task: Task, context: RequestContext | None = None) -> RequestContext:
    """The request context of one task: the caller's `context` (who asks), with the task's own
    name, node count, labels (the caller's win on a clash) and kind (a service block makes it a
    service unless the caller said otherwise)."""
    own = RequestContext(
        name=task.name,
        kind="service" if task.is_service else "task",
        labels=dict(task.resources.labels or {}),
        num_nodes=task.num_nodes,
    )
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


def _with_policy(filters: Sequence[Filter], stage: policy_stage.PolicyStage | None) -> list[Filter]:
    """`filters` with the policy's rules after the capability filters and its limits last."""
    if stage is None:
        return list(filters)
    names = [f.name for f in filters]
    at = names.index("network-tier") + 1 if "network-tier" in names else len(filters)
    rules: list[Filter] = [*stage.rules]
    limits: list[Filter] = [*stage.limits]
    return [*filters[:at], *rules, *filters[at:], *limits]


def _advisory(name: str, kind: str, note: str, origin: Origin | None) -> Verdict:
    return Verdict(name=name, kind=kind, level="advisory", note=note, origin=origin)


def _verdicts(
    policy: Policy,
    stage: policy_stage.PolicyStage,
    steps: Sequence[FilterStep],
    winner_row: dict[str, object] | None,
    ctx: RequestContext,
) -> list[Verdict]:
    """Every rule's verdict; `winner_row` is the choice (None when nothing was placed, so
    advisory rules and preferences had nothing to judge)."""
    removed: dict[str, int] = {}
    for step in steps:
        removed[step.requirement] = removed.get(step.requirement, 0) + step.removed
    out = []
    for f in stage.rules:
        out.append(
            Verdict(
                name=f.rule.name,
                kind=f.rule.effect,
                level=f.rule.level.value,
                removed=removed.get(f.requirement(None), 0),
                origin=f.rule.origin,
            )
        )
    for q in stage.limits:
        out.append(
            Verdict(
                name=q.limit.name,
                kind=q.name,
                level=q.limit.level.value,
                removed=removed.get(q.requirement(None), 0),
                origin=q.limit.origin,
            )
        )
    unplaced = "nothing was placed to judge"
    for rule in stage.advisory:
        note = unplaced
        if winner_row is not None:
            ok = bool(policy_stage.evaluate_row(rule.condition, winner_row, ctx))
            satisfied = ok if rule.effect == "require" else not ok
            note = "the choice satisfies it" if satisfied else "advisory: the choice violates it"
        out.append(_advisory(rule.name, rule.effect, note, rule.origin))
    for limit in stage.advisory_limits:
        note = unplaced
        if winner_row is not None:
            frame = pl.DataFrame([winner_row])
            fits = bool(frame.select(limit.expr(None)).item())  # type: ignore[arg-type]
            note = "the choice fits it" if fits else "advisory: the choice exceeds it"
        out.append(_advisory(limit.rule_name, limit.name, note, limit.limit.origin))
    for bound, reason in stage.overridden:
        out.append(
            Verdict(
                name=bound.name,
                kind=kind_of(bound),
                level="soft",
                removed=0,
                note=f"overridden: {reason}",
                origin=bound.origin,
            )
        )
    active = {id(p) for p in stage.preferences}
    for pref in policy.preferences:
        if id(pref) in active:
            note = unplaced
            if winner_row is not None:
                hit = bool(policy_stage.evaluate_row(pref.condition, winner_row, ctx))
                note = "applies to the choice" if hit else "does not apply to the choice"
            out.append(Verdict(name=pref.name, kind="prefer", note=note, origin=pref.origin))
    inactive = set(stage.inactive)
    for item in policy.named():
        if item.name in inactive:
            level = getattr(item, "level", None)
            out.append(
                Verdict(
                    name=item.name,
                    kind=kind_of(item),
                    level=None if level is None else str(level.value),
                    applies=False,
                    note="its 'when' does not hold for this request",
                    origin=item.origin,
                )
            )
    return out


def place(
    task: Task,
    catalog: Catalog,
    *,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
    alternatives: int = 8,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    overrides: dict[str, str] | None = None,
    usage: dict[str, float] | None = None,
) -> Placement:
    """The cheapest feasible placement of one task; raises `NoFeasiblePlacement`.

    With a `policy`, its rules narrow the candidates, its preferences re-rank them and its
    quotas and budgets bound what this task may take (given the group's `usage`)."""
    ctx = (context or context_of(task)).model_copy(update={"num_nodes": task.num_nodes})
    stage = policy_stage.stage(policy, ctx, overrides, usage) if policy is not None else None
    active_filters = _with_policy(filters, stage)
    notes: list[str] = []
    failures: list[Evaluation] = []
    for group in task.resources.option_groups():
        evaluations = [evaluate(o, task.num_nodes, catalog, active_filters) for o in group]
        feasible = [e for e in evaluations if e.rejection is None and e.offers.height]
        if not feasible:
            failures.extend(evaluations)
            for e in evaluations:
                notes.append(f"skipped {e.option.describe()}: {_reason(e)}")
            continue
        if stage is not None and stage.preferences:
            scoring = policy_stage.score(stage.preferences, ctx).alias(SCORE)
            feasible = [
                Evaluation(e.option, e.steps, e.offers.with_columns(scoring), e.rejection)
                for e in feasible
            ]
        choice, others, index, winner_row = _rank(feasible, task.num_nodes, alternatives)
        winning = feasible[index]
        if task.is_service:
            notes.append("a service is planned per replica: the cost is for one replica")
        extra: dict[str, object] = {}
        if stage is not None and policy is not None:
            all_steps = [step for e in evaluations for step in e.steps]
            verdicts = _verdicts(policy, stage, all_steps, winner_row, ctx)
            preferred = tuple(
                v.name for v in verdicts if v.kind == "prefer" and v.note == "applies to the choice"
            )
            cheapest = _cheapest(feasible, task.num_nodes)
            decided: tuple[str, ...] = ()
            if cheapest is not None and cheapest[0] != choice:
                cheap_row = cheapest[1]
                decided = tuple(
                    p.name
                    for p in stage.preferences
                    if bool(policy_stage.evaluate_row(p.condition, winner_row, ctx))
                    != bool(policy_stage.evaluate_row(p.condition, cheap_row, ctx))
                )
            extra = {
                "verdicts": tuple(verdicts),
                "preferred": preferred,
                "decided_by": decided,
                "cheapest": cheapest[0] if cheapest is not None and decided else None,
            }
            notes.extend(
                f"advisory {v.kind} {v.name!r}: {v.note}"
                for v in verdicts
                if v.level == "advisory" and v.note and v.note.startswith("advisory:")
            )
        return Placement(
            task=task.name,
            choice=choice,
            alternatives=tuple(others),
            option=winning.option.describe(),
            steps=winning.steps,
            notes=tuple(notes),
            **extra,
        )
    reasons = [
        Rejection(
            f"[{e.option.describe()}] {r.requirement}", r.removed, r.remaining, r.would_fit, r.rule
        )
        if len(failures) > 1
        else r
        for e in failures
        if (r := e.rejection) is not None
    ]
    summary = (
        f"none of the {len(failures)} resource options fits the catalog"
        if len(failures) > 1
        else "no offer in the catalog meets every requirement"
    )
    judged = (
        _verdicts(policy, stage, [step for e in failures for step in e.steps], None, ctx)
        if stage is not None and policy is not None
        else []
    )
    raise NoFeasiblePlacement(task.name, summary, reasons, judged)


def _cheapest(
    evaluations: list[Evaluation], num_nodes: int
) -> tuple[Offer, dict[str, object]] | None:
    frames = [
        e.offers.with_columns(pl.lit(e.option.use_spot).alias("_spot_option"))
        for e in evaluations
        if e.offers.height
    ]
    if not frames:
        return None
    row = (
        pl.concat(frames, how="diagonal_relaxed")
        .sort(_ORDER, nulls_last=True, maintain_order=True)
        .row(0, named=True)
    )
    return offer_from_row(row, bool(row["_spot_option"]), num_nodes), row


def feasible_offers(
    task: Task,
    catalog: Catalog,
    *,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    overrides: dict[str, str] | None = None,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
    limits: bool = True,
) -> pl.DataFrame:
    """Every offer `task` may take, as `place` would choose among them: the rows of its first
    feasible option group, each with `cost` ($/h for all nodes), `_spot`, and `_score` (the
    cost less policy preferences). Empty when nothing fits. With `limits=False` the policy's
    quotas and budgets are left out, for callers that enforce them jointly (batch admission).
    """
    ctx = (context or context_of(task)).model_copy(update={"num_nodes": task.num_nodes})
    stage = policy_stage.stage(policy, ctx, overrides) if policy is not None else None
    if stage is not None and not limits:
        stage = dataclasses.replace(stage, limits=())
    active = _with_policy(filters, stage)
    for group in task.resources.option_groups():
        frames = [
            e.offers
            for o in group
            if (e := evaluate(o, task.num_nodes, catalog, active)).rejection is None
            and e.offers.height
        ]
        if frames:
            offers = pl.concat(frames, how="diagonal_relaxed")
            scoring = (
                policy_stage.score(stage.preferences, ctx)
                if stage is not None and stage.preferences
                else pl.col(COST)
            )
            return offers.with_columns(scoring.alias(SCORE)).sort(
                [SCORE, *_ORDER], nulls_last=True, maintain_order=True
            )
    return catalog.frame.clear().with_columns(
        pl.lit(None, dtype=pl.Float64).alias(COST),
        pl.lit(None, dtype=pl.Boolean).alias(SPOT),
        pl.lit(None, dtype=pl.Float64).alias(SCORE),
    )


def _reason(e: Evaluation) -> str:
    r = e.rejection
    if r is None:
        return "no offer"
    return f"{r.requirement} removed the last offers" + (f" ({r.would_fit})" if r.would_fit else "")


def plan(
    work: Task | Dag,
    *,
    catalog: Catalog,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
    alternatives: int = 8,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    overrides: dict[str, str] | None = None,
    usage: dict[str, float] | None = None,
) -> Plan:
    """Place every task of `work` (a task or a DAG). Pure; raises `NoFeasiblePlacement`.

    `context` gives who asks (team, user, labels); each task adds its own name, kind, labels
    and node count to it."""
    tasks = (work,) if isinstance(work, Task) else work.tasks
    placements = []
    for t in tasks:
        ctx = context_of(t, context)
        placements.append(
            place(
                t,
                catalog,
                filters=filters,
                alternatives=alternatives,
                policy=policy,
                context=ctx,
                overrides=overrides,
                usage=usage,
            )
        )
    return Plan(placements=tuple(placements))
