"""The exact semantic diff of two policies over a finite catalog.

Request contexts: the empty one, each one the policies' tests give (team, user, kind, labels)
and one per value a rule's `when` tests a request field against. In each, every catalog offer
(on-demand, and spot where offered) is judged by both policies' enforced rules (hard and soft;
advisory rules never remove an offer). The diff lists the offers a change newly allows or
newly denies, and whether it *loosens a hard rule*: an offer the old policy denied by a hard
rule that the new one's hard rules allow (the rule was dropped, relaxed, or turned soft or
advisory: a soft rule yields to an override), or a hard quota or budget raised or dropped.
The loosened rules are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.model import Policy, RequestContext
from skyplan.model import policy as m
from skyplan.model.policy import Budget, Level, Quota
from skyplan.solver.policy import COST, SPOT, applies, condition

_SAMPLE = 5


@dataclass
class OfferChange:
    context: RequestContext
    allowed: int
    denied: int
    loosened: int
    samples_allowed: list[str] = field(default_factory=list)
    samples_denied: list[str] = field(default_factory=list)


@dataclass
class PolicyDiff:
    changes: list[OfferChange]
    limits: list[str]
    #: The hard rules, quotas and budgets the change loosens, by name.
    loosened_rules: list[str]

    @property
    def loosens_hard_rule(self) -> bool:
        return bool(self.loosened_rules)

    @property
    def empty(self) -> bool:
        return not self.limits and all(c.allowed == 0 and c.denied == 0 for c in self.changes)


def contexts_of(*policies: Policy) -> list[RequestContext]:
    """The empty context, each distinct context the policies' tests give, and one context per
    value a rule's `when` compares a request field with (`task.team == "interns"`)."""
    seen: dict[str, RequestContext] = {}
    given = [t.given for p in policies for t in p.tests]
    given += [((key, value),) for p in policies for key, value in _when_values(p)]
    for ctx in [RequestContext()] + [_context(g) for g in given]:
        seen.setdefault(ctx.model_dump_json(exclude={"name", "num_nodes"}), ctx)
    return list(seen.values())


def _when_values(policy: Policy) -> list[tuple[str, m.Scalar]]:
    """(given key, value) for each request field a `when` clause compares with a literal."""
    found: list[tuple[str, m.Scalar]] = []

    def visit(expr: m.Expr) -> None:
        if isinstance(expr, m.Compare):
            for ref, lit in ((expr.left, expr.right), (expr.right, expr.left)):
                if isinstance(ref, m.RequestRef) and isinstance(lit, m.Literal_):
                    found.append((".".join(ref.path), lit.value))
        elif isinstance(expr, m.InSet) and isinstance(expr.item, m.RequestRef):
            found.extend((".".join(expr.item.path), v) for v in expr.options)
        elif isinstance(expr, m.BoolOp):
            for arg in expr.args:
                visit(arg)
        elif isinstance(expr, m.Not):
            visit(expr.arg)

    bounded: tuple[m.Rule | m.Preference | Quota | Budget, ...] = (
        *policy.rules,
        *policy.preferences,
        *policy.quotas,
        *policy.budgets,
    )
    for item in bounded:
        if item.when is not None:
            visit(item.when)
    return found


def _context(given: tuple[tuple[str, object], ...]) -> RequestContext:
    values = dict(given)
    labels = {k.split(".", 1)[1]: str(v) for k, v in values.items() if k.startswith("labels.")}
    kind = str(values.get("kind") or "task")
    return RequestContext(
        kind=kind if kind in ("task", "service", "job") else "task",
        user=None if values.get("user") is None else str(values["user"]),
        team=None if values.get("team") is None else str(values["team"]),
        labels=labels,
    )


def candidates(catalog: Catalog) -> pl.DataFrame:
    """Every offer once on-demand and once on spot where spot is offered, one node each."""
    frame = catalog.frame
    on_demand = frame.filter(pl.col(c.PRICE).is_not_null()).with_columns(
        pl.col(c.PRICE).alias(COST), pl.lit(False).alias(SPOT)
    )
    spot = frame.filter(pl.col(c.SPOT_PRICE).is_not_null()).with_columns(
        pl.col(c.SPOT_PRICE).alias(COST), pl.lit(True).alias(SPOT)
    )
    return pl.concat([on_demand, spot])


def _enforced(policy: Policy, ctx: RequestContext, hard_only: bool) -> list[m.Rule]:
    return [
        rule
        for rule in policy.rules
        if rule.level != Level.ADVISORY
        and not (hard_only and rule.level != Level.HARD)
        and applies(rule.when, ctx)
    ]


def _passes(rule: m.Rule, ctx: RequestContext) -> pl.Expr:
    hit = condition(rule.condition, ctx)
    return hit if rule.effect == "require" else ~hit


def allowed(policy: Policy, ctx: RequestContext, *, hard_only: bool = False) -> pl.Expr:
    mask = pl.lit(True)
    for rule in _enforced(policy, ctx, hard_only):
        mask = mask & _passes(rule, ctx)
    return mask


def _describe(rows: pl.DataFrame) -> list[str]:
    return [
        f"{r[c.CLOUD]}/{r[c.REGION]}{'/' + r[c.ZONE] if r[c.ZONE] else ''} {r[c.INSTANCE_TYPE]}"
        f"{' spot' if r[SPOT] else ''}"
        for r in rows.head(_SAMPLE).iter_rows(named=True)
    ]


def _bounds(policy: Policy) -> dict[str, Quota | Budget]:
    bounds: tuple[Quota | Budget, ...] = (*policy.quotas, *policy.budgets)
    return {b.name: b for b in bounds}


def _limits(old: Policy, new: Policy) -> tuple[list[str], list[str]]:
    """Lines describing changed quotas and budgets, and the hard ones loosened."""
    lines, loosened = [], []
    old_limits = _bounds(old)
    new_limits = _bounds(new)
    for name, before in old_limits.items():
        after = new_limits.get(name)
        if after is None:
            lines.append(f"{name!r} removed (was {before.limit:g})")
            if before.level == Level.HARD:
                loosened.append(name)
        elif after.limit != before.limit or after.level != before.level:
            lines.append(
                f"{name!r}: {before.limit:g} ({before.level}) → {after.limit:g} ({after.level})"
            )
            if before.level == Level.HARD and (
                after.limit > before.limit or after.level != Level.HARD
            ):
                loosened.append(name)
    for name, after in new_limits.items():
        if name not in old_limits:
            lines.append(f"{name!r} added ({after.limit:g}, {after.level})")
    return lines, loosened


def diff_policies(old: Policy, new: Policy, catalog: Catalog) -> PolicyDiff:
    frame = candidates(catalog)
    changes = []
    loosened_rules: dict[str, None] = {}
    for ctx in contexts_of(old, new):
        # Each of the old policy's hard rules once, as a column: their conjunction is what
        # the old hard rules allow, and a row one of them fails names the rule loosened.
        hard = {f"_rule_{i}": r for i, r in enumerate(_enforced(old, ctx, hard_only=True))}
        flags = frame.with_columns(
            allowed(old, ctx).alias("_old"),
            allowed(new, ctx).alias("_new"),
            allowed(new, ctx, hard_only=True).alias("_new_hard"),
            *(_passes(rule, ctx).alias(column) for column, rule in hard.items()),
        )
        old_allows = pl.all_horizontal(list(hard)) if hard else pl.lit(True)
        newly_allowed = flags.filter(pl.col("_new") & ~pl.col("_old")).sort(COST)
        newly_denied = flags.filter(pl.col("_old") & ~pl.col("_new")).sort(COST)
        escaped = flags.filter(pl.col("_new_hard") & ~old_allows)
        for column, rule in hard.items():
            if not escaped.get_column(column).all():
                loosened_rules.setdefault(rule.name)
        changes.append(
            OfferChange(
                ctx,
                newly_allowed.height,
                newly_denied.height,
                escaped.height,
                _describe(newly_allowed),
                _describe(newly_denied),
            )
        )
    limits, limits_loosened = _limits(old, new)
    return PolicyDiff(changes, limits, [*loosened_rules, *limits_loosened])
