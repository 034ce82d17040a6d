"""A compiled placement policy: rules as data, knowing nothing of the syntax they came from.

`skyplan.dsl` compiles policy files into a `Policy`; an embedder may build one in Python.
Conditions are a small expression tree (`Expr`) over candidate fields (`FieldRef`) and request
fields (`RequestRef`); the solver compiles it to Polars and evaluates it over the whole
candidate frame at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | float | bool | None


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Literal_(_Node):
    """A constant. Money is $/h, memory GiB, percentages are fractions (5% = 0.05)."""

    kind: Literal["literal"] = "literal"
    value: Scalar


class FieldRef(_Node):
    """A field of the candidate offer (`cloud`, `region`, `accelerator`, `gpus`, `price`, ...)."""

    kind: Literal["field"] = "field"
    name: str


class RequestRef(_Node):
    """A field of the request: `("team",)`, `("labels", "env")`, `("kind",)`, ..."""

    kind: Literal["request"] = "request"
    path: tuple[str, ...]


class Compare(_Node):
    kind: Literal["compare"] = "compare"
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr


class InSet(_Node):
    kind: Literal["in"] = "in"
    item: Expr
    options: tuple[Scalar, ...]
    negate: bool = False


class Match(_Node):
    """Glob match (`*`, `?`) of a string against any of the patterns."""

    kind: Literal["match"] = "match"
    item: Expr
    patterns: tuple[str, ...]


class BoolOp(_Node):
    kind: Literal["bool"] = "bool"
    op: Literal["and", "or"]
    args: tuple[Expr, ...]


class Not(_Node):
    kind: Literal["not"] = "not"
    arg: Expr


class Call(_Node):
    """A function registered by name (see `skyplan.dsl.functions`)."""

    kind: Literal["call"] = "call"
    name: str
    args: tuple[Expr, ...]


Expr = Annotated[
    Literal_ | FieldRef | RequestRef | Compare | InSet | Match | BoolOp | Not | Call,
    Field(discriminator="kind"),
]
for _model in (Compare, InSet, Match, BoolOp, Not, Call):
    _model.model_rebuild()


class Level(StrEnum):
    """How a rule is enforced: advisory warns, soft can be overridden with a reason, hard not."""

    ADVISORY = "advisory"
    SOFT = "soft"
    HARD = "hard"


class Origin(_Node):
    """Where a rule was written, for explanations."""

    file: str
    line: int
    col: int


class Rule(_Node):
    """`require` (candidates must match) or `deny` (candidates matching are removed)."""

    name: str
    effect: Literal["require", "deny"]
    condition: Expr
    when: Expr | None = None
    level: Level = Level.HARD
    origin: Origin | None = None


class Preference(_Node):
    """Candidates matching `condition` rank as if `bonus` cheaper ($/h, or a fraction of cost)."""

    name: str
    condition: Expr
    bonus: float
    unit: Literal["usd_per_hour", "fraction"]
    when: Expr | None = None
    origin: Origin | None = None


class Quota(_Node):
    """`sum(metric) <= limit per <request key>` over everything admitted for the same key."""

    name: str
    metric: Literal["gpus", "vcpus", "nodes", "memory"]
    limit: float
    per: tuple[str, ...]
    when: Expr | None = None
    level: Level = Level.HARD
    origin: Origin | None = None


class Budget(_Node):
    """`hourly_cost <= limit per <request key>`: total $/h of what the key runs."""

    name: str
    limit: float
    per: tuple[str, ...]
    when: Expr | None = None
    level: Level = Level.HARD
    origin: Origin | None = None


class Objective(_Node):
    order: tuple[Literal["cost", "time"], ...] = ("cost",)


class Failover(_Node):
    strategy: Literal["next-cheapest", "same-region-first"] = "next-cheapest"
    #: error kind (capacity, quota, auth, transient) → scope blocked (zone, region, cloud)
    blocklist: tuple[tuple[str, str], ...] = (("capacity", "zone"), ("quota", "region"))


class Expectation(_Node):
    """What a policy test expects: placed (optionally where), denied (by a rule), a cost bound."""

    outcome: Literal["placed", "denied", "cost"]
    where: Expr | None = None
    rule: str | None = None
    max_cost: float | None = None


class PolicyTest(_Node):
    name: str
    given: tuple[tuple[str, Scalar], ...]
    expect: tuple[Expectation, ...]
    origin: Origin | None = None


class Policy(_Node):
    """The effective policy: every rule of a file and of what it imports."""

    name: str = "default"
    version: int = 1
    rules: tuple[Rule, ...] = ()
    preferences: tuple[Preference, ...] = ()
    quotas: tuple[Quota, ...] = ()
    budgets: tuple[Budget, ...] = ()
    objective: Objective = Objective()
    failover: Failover = Failover()
    tests: tuple[PolicyTest, ...] = ()

    def rule_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.named())

    def named(self) -> tuple[Rule | Preference | Quota | Budget, ...]:
        """Every named rule, in the order: rules, preferences, quotas, budgets."""
        return (*self.rules, *self.preferences, *self.quotas, *self.budgets)


def kind_of(item: Rule | Preference | Quota | Budget) -> str:
    """`require`, `deny`, `prefer`, `quota` or `budget`."""
    if isinstance(item, Rule):
        return item.effect
    return {Preference: "prefer", Quota: "quota", Budget: "budget"}[type(item)]


class RequestContext(_Node):
    """Who asks and for what: what policy conditions see as `task.*`."""

    name: str | None = None
    kind: Literal["task", "service", "job"] = "task"
    user: str | None = None
    team: str | None = None
    labels: dict[str, str] = {}
    num_nodes: int = 1

    def lookup(self, path: tuple[str, ...]) -> Scalar:
        """The value at `path` (`("labels", "env")`), or None when absent."""
        head, *rest = path
        if head == "labels":
            return self.labels.get(rest[0]) if rest else None
        if rest:
            return None
        value = getattr(self, head, None)
        return value if isinstance(value, str | int | float | bool) or value is None else None
