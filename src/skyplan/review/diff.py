"""The exact semantic diff of two policies over a finite catalog.

For every request context the policies' tests mention (team, user, kind, labels) and the empty
context, every catalog offer (on-demand, and spot where offered) is judged by both policies'
enforced rules (hard and soft; advisory rules never remove an offer). The diff lists the offers
a change newly allows or newly denies, and whether it *loosens a hard rule*: an offer the old
policy denied by a hard rule that the new one allows, or a hard quota or budget raised or
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from skyplan.catalog import Catalog
from skyplan.catalog import schema as c
from skyplan.model import Policy, RequestContext
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
    loosens_hard_rule: bool

    @property
    def empty(self) -> bool:
        return not self.limits and all(c.allowed == 0 and c.denied == 0 for c in self.changes)


def contexts_of(*policies: Policy) -> list[RequestContext]:
    """The empty context and each distinct context the policies' tests give."""
    seen: dict[str, RequestContext] = {}
    for ctx in [RequestContext()] + [_context(t.given) for p in policies for t in p.tests]:
        seen.setdefault(ctx.model_dump_json(exclude={"name", "num_nodes"}), ctx)
    return list(seen.values())


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


def allowed(policy: Policy, ctx: RequestContext, *, hard_only: bool = False) -> pl.Expr:
    mask = pl.lit(True)
    for rule in policy.rules:
        if rule.level == Level.ADVISORY or (hard_only and rule.level != Level.HARD):
            continue
        if not applies(rule.when, ctx):
            continue
        hit = condition(rule.condition, ctx)
        mask = mask & (hit if rule.effect == "require" else ~hit)
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


def _limits(old: Policy, new: Policy) -> tuple[list[str], bool]:
    lines, loosened = [], False
    old_limits = _bounds(old)
    new_limits = _bounds(new)
    for name, before in old_limits.items():
        after = new_limits.get(name)
        if after is None:
            lines.append(f"{name!r} removed (was {before.limit:g})")
            loosened |= before.level == Level.HARD
        elif after.limit != before.limit or after.level != before.level:
            lines.append(
                f"{name!r}: {before.limit:g} ({before.level}) → {after.limit:g} ({after.level})"
            )
            loosened |= before.level == Level.HARD and (
                after.limit > before.limit or after.level != Level.HARD
            )
    for name, after in new_limits.items():
        if name not in old_limits:
            lines.append(f"{name!r} added ({after.limit:g}, {after.level})")
    return lines, loosened


def diff_policies(old: Policy, new: Policy, catalog: Catalog) -> PolicyDiff:
    frame = candidates(catalog)
    changes = []
    any_loosened = False
    for ctx in contexts_of(old, new):
        flags = frame.with_columns(
            allowed(old, ctx).alias("_old"),
            allowed(new, ctx).alias("_new"),
            allowed(old, ctx, hard_only=True).alias("_old_hard"),
        )
        newly_allowed = flags.filter(pl.col("_new") & ~pl.col("_old")).sort(COST)
        newly_denied = flags.filter(pl.col("_old") & ~pl.col("_new")).sort(COST)
        loosened = flags.filter(pl.col("_new") & ~pl.col("_old_hard")).height
        any_loosened |= loosened > 0
        changes.append(
            OfferChange(
                ctx,
                newly_allowed.height,
                newly_denied.height,
                loosened,
                _describe(newly_allowed),
                _describe(newly_denied),
            )
        )
    limits, limits_loosened = _limits(old, new)
    return PolicyDiff(changes, limits, any_loosened or limits_loosened)
