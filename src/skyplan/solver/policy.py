"""Policies in the planner: conditions compiled to Polars, rules as filters, preferences as
scores, quotas and budgets as limits on what one request may take.

`to_polars()` turns a condition into one expression over the whole candidate frame, with the
request's fields substituted as constants. `evaluate_row()` is the row-by-row reference with the
same semantics (a missing value makes a comparison false); `when` clauses use it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from skyplan.catalog import schema as c
from skyplan.catalog.expr import glob_match, glob_matches
from skyplan.errors import InputError, did_you_mean
from skyplan.model import policy as m
from skyplan.model import vocabulary as v
from skyplan.solver.filters import Request

COST = "cost"
SPOT = "_spot"


_FIELDS: dict[str, Callable[[int], pl.Expr]] = {
    "cloud": lambda n: pl.col(c.CLOUD),
    "region": lambda n: pl.col(c.REGION),
    "zone": lambda n: pl.col(c.ZONE),
    "instance_type": lambda n: pl.col(c.INSTANCE_TYPE),
    "accelerator": lambda n: pl.col(c.ACCELERATOR),
    "count": lambda n: pl.col(c.ACCELERATOR_COUNT).fill_null(0.0),
    "gpus": lambda n: pl.col(c.ACCELERATOR_COUNT).fill_null(0.0) * n,
    "gpu_memory": lambda n: pl.col(c.ACCELERATOR_MEMORY),
    "vcpus": lambda n: pl.col(c.VCPUS),
    "memory": lambda n: pl.col(c.MEMORY_GIB),
    "price": lambda n: pl.col(COST),
    "hourly_cost": lambda n: pl.col(COST),
    "spot": lambda n: pl.col(SPOT),
    "arch": lambda n: pl.col(c.ARCH),
    "capacity": lambda n: pl.col(c.CAPACITY),
}


def field_expr(name: str, num_nodes: int) -> pl.Expr:
    """The candidate field `name` over the frame the planner evaluates (it has `cost`, `_spot`)."""
    if name in _FIELDS:
        return _FIELDS[name](num_nodes)
    return v.CUSTOM_FIELDS.get(name).impl()  # type: ignore[no-any-return]


_BUILTINS: dict[str, Any] = {
    "starts_with": lambda s, prefix: s.str.starts_with(prefix),
    "ends_with": lambda s, suffix: s.str.ends_with(suffix),
    "lower": lambda s: s.str.to_lowercase(),
}


def to_polars(expr: m.Expr, ctx: m.RequestContext) -> pl.Expr:
    """`expr` as a Polars expression; null where a value is missing."""
    if isinstance(expr, m.Literal_):
        return pl.lit(expr.value)
    if isinstance(expr, m.FieldRef):
        return field_expr(expr.name, ctx.num_nodes)
    if isinstance(expr, m.RequestRef):
        kind = "string" if expr.path[0] == "labels" else v.REQUEST_TYPES.get(expr.path[0])
        dtype = pl.Float64() if kind == "number" else pl.String()
        value = ctx.lookup(expr.path)
        return pl.lit(
            float(value) if kind == "number" and value is not None else value, dtype=dtype
        )
    if isinstance(expr, m.Compare):
        left, right = to_polars(expr.left, ctx), to_polars(expr.right, ctx)
        return {
            "==": left.eq(right),
            "!=": left.ne(right),
            "<": left.lt(right),
            "<=": left.le(right),
            ">": left.gt(right),
            ">=": left.ge(right),
        }[expr.op]
    if isinstance(expr, m.InSet):
        item = to_polars(expr.item, ctx)
        numeric = [
            o for o in expr.options if isinstance(o, int | float) and not isinstance(o, bool)
        ]
        item = item.cast(pl.Float64) if numeric else item.cast(pl.String)
        found = item.is_in(list(expr.options))  # null for a missing value, as in the reference
        return ~found if expr.negate else found
    if isinstance(expr, m.Match):
        item = to_polars(expr.item, ctx).cast(pl.String)
        if not expr.patterns:
            return item.is_null() & False
        # null for a missing value (Kleene `or` of nulls), as in the reference
        return pl.any_horizontal([glob_match(item, p) for p in expr.patterns])
    if isinstance(expr, m.BoolOp):
        args = [to_polars(a, ctx).fill_null(False) for a in expr.args]
        return pl.all_horizontal(args) if expr.op == "and" else pl.any_horizontal(args)
    if isinstance(expr, m.Not):
        return ~to_polars(expr.arg, ctx).fill_null(False)
    if isinstance(expr, m.Call):
        args = [to_polars(a, ctx) for a in expr.args]
        if expr.name in _BUILTINS:
            return _BUILTINS[expr.name](*args)  # type: ignore[no-any-return]
        impl = v.FUNCTIONS.get(expr.name).impl
        assert impl is not None, f"function {expr.name!r} has no implementation"
        return impl(*args)  # type: ignore[no-any-return]
    raise AssertionError(f"unhandled expression {expr!r}")  # pragma: no cover


def condition(expr: m.Expr, ctx: m.RequestContext) -> pl.Expr:
    """`expr` as a filter mask: missing values count as false."""
    return to_polars(expr, ctx).fill_null(False)


# -- the row-by-row reference ------------------------------------------------------------------

_ROW_FIELDS = {
    "cloud": c.CLOUD,
    "region": c.REGION,
    "zone": c.ZONE,
    "instance_type": c.INSTANCE_TYPE,
    "accelerator": c.ACCELERATOR,
    "gpu_memory": c.ACCELERATOR_MEMORY,
    "vcpus": c.VCPUS,
    "memory": c.MEMORY_GIB,
    "price": COST,
    "hourly_cost": COST,
    "spot": SPOT,
    "arch": c.ARCH,
    "capacity": c.CAPACITY,
}


def _row_value(name: str, row: Mapping[str, Any] | None, ctx: m.RequestContext) -> Any:
    if row is None:
        raise ValueError(f"field {name!r} needs a candidate")
    if name not in _ROW_FIELDS and name not in ("count", "gpus"):
        # A registered field: its expression evaluated over this one row.
        columns = {k: [v] for k, v in row.items() if k in c.NAMES or k in (COST, SPOT)}
        try:
            return pl.DataFrame(columns).select(field_expr(name, ctx.num_nodes)).item()
        except pl.exceptions.PolarsError:
            return None
    if name == "count":
        return row.get(c.ACCELERATOR_COUNT) or 0.0
    if name == "gpus":
        return (row.get(c.ACCELERATOR_COUNT) or 0.0) * ctx.num_nodes
    return row.get(_ROW_FIELDS[name])


def evaluate_row(expr: m.Expr, row: Mapping[str, Any] | None, ctx: m.RequestContext) -> Any:
    """Evaluate `expr` for one candidate row (None for request-only expressions)."""
    if isinstance(expr, m.Literal_):
        return expr.value
    if isinstance(expr, m.FieldRef):
        return _row_value(expr.name, row, ctx)
    if isinstance(expr, m.RequestRef):
        return ctx.lookup(expr.path)
    if isinstance(expr, m.Compare):
        left, right = evaluate_row(expr.left, row, ctx), evaluate_row(expr.right, row, ctx)
        if left is None or right is None:
            return None
        ops = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return ops[expr.op](left, right)
    if isinstance(expr, m.InSet):
        item = evaluate_row(expr.item, row, ctx)
        if item is None:
            return None
        found = item in expr.options
        return not found if expr.negate else found
    if isinstance(expr, m.Match):
        item = evaluate_row(expr.item, row, ctx)
        if item is None:
            return None
        return any(glob_matches(str(item), p) for p in expr.patterns)
    if isinstance(expr, m.BoolOp):
        values = [bool(evaluate_row(a, row, ctx)) for a in expr.args]
        return all(values) if expr.op == "and" else any(values)
    if isinstance(expr, m.Not):
        return not bool(evaluate_row(expr.arg, row, ctx))
    if isinstance(expr, m.Call):
        args = [evaluate_row(a, row, ctx) for a in expr.args]
        if any(a is None for a in args):
            return None
        if expr.name == "starts_with":
            return str(args[0]).startswith(str(args[1]))
        if expr.name == "ends_with":
            return str(args[0]).endswith(str(args[1]))
        if expr.name == "lower":
            return str(args[0]).lower()
        frame = pl.DataFrame({f"a{i}": [a] for i, a in enumerate(args)})
        impl = v.FUNCTIONS.get(expr.name).impl
        assert impl is not None
        return frame.select(impl(*(pl.col(f"a{i}") for i in range(len(args))))).item()
    raise AssertionError(f"unhandled expression {expr!r}")  # pragma: no cover


def applies(when: m.Expr | None, ctx: m.RequestContext) -> bool:
    """Whether a rule's `when` holds for this request."""
    return when is None or bool(evaluate_row(when, None, ctx))


# -- rules, quotas and budgets as filters ---------------------------------------------------------


@dataclass(frozen=True)
class RuleFilter:
    """A `require` or `deny` rule as a planner filter."""

    rule: m.Rule
    ctx: m.RequestContext

    @property
    def name(self) -> str:
        return self.rule.effect

    @property
    def rule_name(self) -> str:
        return self.rule.name

    def expr(self, req: Request) -> pl.Expr | None:
        mask = condition(self.rule.condition, self.ctx)
        return mask if self.rule.effect == "require" else ~mask

    def requirement(self, req: Request | None) -> str:
        return f'{self.rule.effect} "{self.rule.name}" ({self.rule.level})'


_METRICS: dict[str, Callable[[int], pl.Expr]] = {
    "gpus": lambda n: pl.col(c.ACCELERATOR_COUNT).fill_null(0.0) * n,
    "vcpus": lambda n: pl.col(c.VCPUS) * n,
    "nodes": lambda n: pl.lit(float(n)),
    "memory": lambda n: pl.col(c.MEMORY_GIB) * n,
}


def group_key(per: tuple[str, ...], ctx: m.RequestContext) -> str:
    value = ctx.lookup(per)
    return f"{'.'.join(per)}={value if value is not None else '(none)'}"


@dataclass(frozen=True)
class QuotaFilter:
    """A quota or budget: what this request takes plus what its group already uses must fit."""

    limit: m.Quota | m.Budget
    ctx: m.RequestContext
    used: float = 0.0

    @property
    def name(self) -> str:
        return "quota" if isinstance(self.limit, m.Quota) else "budget"

    @property
    def rule_name(self) -> str:
        return self.limit.name

    def expr(self, req: Request) -> pl.Expr | None:
        if isinstance(self.limit, m.Quota):
            taken = _METRICS[self.limit.metric](self.ctx.num_nodes)
        else:
            taken = pl.col(COST)
        return (taken + self.used) <= self.limit.limit

    def requirement(self, req: Request | None) -> str:
        key = group_key(self.limit.per, self.ctx)
        unit = "$/h" if isinstance(self.limit, m.Budget) else self.limit.metric
        limit = f"{self.limit.limit:g} {unit} for {key}, {self.used:g} used"
        return f'{self.name} "{self.limit.name}" ({limit})'


# -- one request's policy stage ------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyStage:
    """What a policy does for one request: the filters it adds, the preferences that score,
    and the rules that only report (advisory, overridden soft, or not applying)."""

    rules: tuple[RuleFilter, ...]
    limits: tuple[QuotaFilter, ...]
    preferences: tuple[m.Preference, ...]
    advisory: tuple[m.Rule, ...]
    advisory_limits: tuple[QuotaFilter, ...]
    overridden: tuple[tuple[m.Rule | m.Quota | m.Budget, str], ...]
    inactive: tuple[str, ...]


def stage(
    policy: m.Policy,
    ctx: m.RequestContext,
    overrides: Mapping[str, str] | None = None,
    usage: Mapping[str, float] | None = None,
) -> PolicyStage:
    """Split `policy` for the request `ctx`. `overrides` maps soft rule names to the recorded
    reason; `usage` maps "<quota or budget name>/<group key>" to what the group already uses."""
    overrides = overrides or {}
    usage = usage or {}
    check_overrides(policy, overrides)
    rules: list[RuleFilter] = []
    advisory: list[m.Rule] = []
    overridden: list[tuple[m.Rule | m.Quota | m.Budget, str]] = []
    inactive: list[str] = []
    for rule in policy.rules:
        if not applies(rule.when, ctx):
            inactive.append(rule.name)
        elif rule.level == m.Level.ADVISORY:
            advisory.append(rule)
        elif rule.level == m.Level.SOFT and rule.name in overrides:
            overridden.append((rule, overrides[rule.name]))
        else:
            rules.append(RuleFilter(rule, ctx))
    limits: list[QuotaFilter] = []
    advisory_limits: list[QuotaFilter] = []
    bounds: tuple[m.Quota | m.Budget, ...] = (*policy.quotas, *policy.budgets)
    for limit in bounds:
        if not applies(limit.when, ctx):
            inactive.append(limit.name)
        elif limit.level == m.Level.SOFT and limit.name in overrides:
            overridden.append((limit, overrides[limit.name]))
        else:
            used = usage.get(f"{limit.name}/{group_key(limit.per, ctx)}", 0.0)
            bound = QuotaFilter(limit, ctx, used)
            (advisory_limits if limit.level == m.Level.ADVISORY else limits).append(bound)
    preferences: list[m.Preference] = []
    for pref in policy.preferences:
        if applies(pref.when, ctx):
            preferences.append(pref)
        else:
            inactive.append(pref.name)
    return PolicyStage(
        tuple(rules),
        tuple(limits),
        tuple(preferences),
        tuple(advisory),
        tuple(advisory_limits),
        tuple(overridden),
        tuple(inactive),
    )


def check_overrides(policy: m.Policy, overrides: Mapping[str, str]) -> None:
    """Only soft rules can be overridden, and only with a reason."""
    levels = {r.name: getattr(r, "level", None) for r in policy.named()}
    for name, reason in overrides.items():
        if name not in levels:
            guess = did_you_mean(name, list(levels))
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise InputError(f"--override {name!r}: the policy has no rule of that name{hint}")
        if levels[name] != m.Level.SOFT:
            level = levels[name] or "a preference"
            raise InputError(f"--override {name!r}: only soft rules can be overridden, not {level}")
        if not reason.strip():
            raise InputError(f"--override {name!r}: give the reason, as RULE=REASON")


def score(preferences: tuple[m.Preference, ...], ctx: m.RequestContext) -> pl.Expr:
    """The ranking score: the cost less every applicable preference's bonus."""
    total = pl.col(COST)
    for pref in preferences:
        hit = condition(pref.condition, ctx).cast(pl.Float64)
        bonus = pl.lit(pref.bonus) if pref.unit == "usd_per_hour" else pl.col(COST) * pref.bonus
        total = total - hit * bonus
    return total
