"""The typed AST of policy files: frozen dataclasses whose `span` is left out of equality,
so two parses of the same policy compare equal wherever its text sits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skyplan.source import Span

NOWHERE = Span("<none>")


def _span() -> Span:
    return field(default=NOWHERE, compare=False, repr=False)


# -- expressions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Str:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Num:
    value: float
    span: Span = _span()


@dataclass(frozen=True)
class Money:
    """Dollars per hour."""

    value: float
    span: Span = _span()


@dataclass(frozen=True)
class Percent:
    value: float
    span: Span = _span()


@dataclass(frozen=True)
class Size:
    value: float
    unit: str
    span: Span = _span()

    @property
    def gib(self) -> float:
        return self.value * (1024.0 if self.unit in ("TiB", "TB") else 1.0)


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class Path:
    """A name: a let binding, a candidate field, or `task.<field>` / `task.labels.<key>`."""

    parts: tuple[str, ...]
    span: Span = _span()

    def __str__(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class SetItem:
    value: str | float
    quoted: bool
    span: Span = _span()


@dataclass(frozen=True)
class In:
    item: Expr
    options: tuple[SetItem, ...]
    negate: bool
    span: Span = _span()


@dataclass(frozen=True)
class Match:
    item: Expr
    patterns: tuple[Str, ...]
    bracketed: bool
    span: Span = _span()


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class And:
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Or:
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    arg: Expr
    span: Span = _span()


Expr = (
    Str | Num | Money | Percent | Size | Bool | Path | Call | In | Match | Compare | And | Or | Not
)
Literal = Str | Num | Money | Percent | Size | Bool

# -- statements -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    name: str
    version: int | None
    span: Span = _span()


@dataclass(frozen=True)
class Import:
    path: str
    span: Span = _span()


@dataclass(frozen=True)
class Let:
    name: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Rule:
    effect: str  # require | deny
    name: str
    when: Expr | None
    condition: Expr
    level: str | None
    span: Span = _span()


@dataclass(frozen=True)
class Prefer:
    name: str
    when: Expr | None
    condition: Expr
    bonus: Money | Percent
    span: Span = _span()


@dataclass(frozen=True)
class Quota:
    name: str
    when: Expr | None
    metric: str  # gpus | vcpus | nodes | memory
    limit: Num
    per: Path
    level: str | None
    span: Span = _span()


@dataclass(frozen=True)
class Budget:
    name: str
    when: Expr | None
    limit: Money
    per: Path
    level: str | None
    span: Span = _span()
    #: what is bounded; only `hourly_cost` is valid (checked by the compiler)
    measure: Path = Path(("hourly_cost",))


@dataclass(frozen=True)
class Objective:
    goals: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Block:
    scope: str
    error: str
    span: Span = _span()


@dataclass(frozen=True)
class Failover:
    strategy: str
    blocks: tuple[Block, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Pair:
    key: str
    value: Literal
    span: Span = _span()


@dataclass(frozen=True)
class ExpectPlaced:
    where: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class ExpectDenied:
    rule: str | None
    span: Span = _span()


@dataclass(frozen=True)
class ExpectCost:
    limit: Money
    span: Span = _span()


Expectation = ExpectPlaced | ExpectDenied | ExpectCost


@dataclass(frozen=True)
class Test:
    name: str
    given: tuple[Pair, ...]
    expects: tuple[Expectation, ...]
    span: Span = _span()
    given_span: Span = _span()


Statement = Import | Let | Rule | Prefer | Quota | Budget | Objective | Failover | Test
Named = Rule | Prefer | Quota | Budget


@dataclass(frozen=True)
class Comment:
    """A `#` comment: on its own line (`own_line`) or after code on `span.line`."""

    text: str
    own_line: bool
    span: Span = _span()


@dataclass(frozen=True)
class PolicyFile:
    header: Header | None
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    span: Span = _span()
    #: the last line of each statement, in order (for the formatter's comments)
    ends: tuple[int, ...] = field(default=(), compare=False)
