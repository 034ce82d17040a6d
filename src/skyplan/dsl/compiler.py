"""Checked AST → `model.Policy`, in named stages: resolve → check → lower.

- resolve: let bindings and rule names (duplicates, unused lets);
- check: every expression's type and units, names against the vocabulary (candidate fields,
  `task.*`, functions) and values against the catalog (accelerators, clouds, regions);
- lower: lets inlined, units normalized ($/h, GiB, fractions), `model.Policy` built.

Every problem is a located `Diagnostic` with a stable code; lowering runs only when no stage
reported an error. The compiler never evaluates anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from skyplan.dsl import ast, codes
from skyplan.dsl.parser import diagnostic
from skyplan.errors import Diagnostic, did_you_mean
from skyplan.model import policy as m
from skyplan.model import vocabulary as v
from skyplan.model.infra import ALIASES, KNOWN_CLOUDS
from skyplan.source import Span

_NUMERIC: frozenset[str] = frozenset({"number", "money", "gib"})
_GIVEN_KEYS = (
    "name",
    "kind",
    "user",
    "team",
    "num_nodes",
    "labels.<key>",
    "accelerators",
    "cpus",
    "memory",
    "infra",
    "use_spot",
    "instance_type",
    "catalog",
)


@dataclass
class Vocabulary:
    """What the checker validates values against; empty tuples skip that check."""

    accelerators: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    _lowered: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _regions: frozenset[str] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._lowered = {a.lower(): a for a in self.accelerators}
        self._regions = frozenset(self.regions)

    def canonical_accelerator(self, name: str) -> str | None:
        return self._lowered.get(name.lower())

    def knows_region(self, name: str) -> bool:
        return name in self._regions


@dataclass
class Unit:
    """One policy file on its way through the stages."""

    tree: ast.PolicyFile
    vocabulary: Vocabulary
    diagnostics: list[Diagnostic] = field(default_factory=list)
    lets: dict[str, ast.Let] = field(default_factory=dict)
    let_types: dict[str, str | None] = field(default_factory=dict)
    used_lets: set[str] = field(default_factory=set)
    #: lets defined so far while checking in order: a let is usable after its definition
    defined: set[str] = field(default_factory=set)
    #: rule names the file's imports define (for `expect denied by`)
    imported_rules: frozenset[str] = frozenset()
    policy: m.Policy | None = None

    def error(self, span: Span, code: str, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(diagnostic(span, code, message, hint=hint))

    def warn(self, span: Span, code: str, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(diagnostic(span, code, message, hint=hint, severity="warning"))

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


# -- resolve ----------------------------------------------------------------------------------


def resolve(unit: Unit) -> None:
    names: dict[str, Span] = {}
    for stmt in unit.tree.statements:
        if isinstance(stmt, ast.Let):
            if stmt.name in unit.lets:
                unit.error(stmt.span, codes.DUPLICATE_NAME, f"let {stmt.name!r} is already defined")
            elif v.field_type(stmt.name) is not None or stmt.name == "task":
                unit.error(
                    stmt.span,
                    codes.DUPLICATE_NAME,
                    f"let {stmt.name!r} hides the field of that name",
                )
            unit.lets[stmt.name] = stmt
        elif isinstance(stmt, ast.Rule | ast.Prefer | ast.Quota | ast.Budget):
            if stmt.name in names:
                first = names[stmt.name]
                unit.error(
                    stmt.span,
                    codes.DUPLICATE_NAME,
                    f"a rule named {stmt.name!r} already exists (line {first.line})",
                )
            names[stmt.name] = stmt.span


# -- check ------------------------------------------------------------------------------------


def _is_kind_word(expr: ast.Expr) -> bool:
    return isinstance(expr, ast.Path) and len(expr.parts) == 1 and expr.parts[0] in v.KIND_VALUES


def _is_task_kind(expr: ast.Expr) -> bool:
    return isinstance(expr, ast.Path) and expr.parts == ("task", "kind")


def _literal_type(expr: ast.Expr) -> str | None:
    return {
        ast.Str: "string",
        ast.Num: "number",
        ast.Money: "money",
        ast.Percent: "fraction",
        ast.Size: "gib",
        ast.Bool: "bool",
    }.get(type(expr))


class Checker:
    """Types expressions, reporting into a Unit. `request_only` marks a `when` clause."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit

    def path(self, p: ast.Path, request_only: bool) -> str | None:
        parts = p.parts
        if parts[0] == "task":
            if len(parts) == 3 and parts[1] == "labels":
                return "string"
            if len(parts) == 2 and parts[1] in v.REQUEST_TYPES:
                return v.REQUEST_TYPES[parts[1]]
            wanted = parts[1] if len(parts) > 1 else ""
            guess = did_you_mean(wanted, [*v.REQUEST_TYPES, "labels"])
            self.unit.error(
                p.span,
                codes.UNKNOWN_REQUEST_FIELD,
                f"unknown request field {str(p)!r}",
                f"did you mean 'task.{guess}'?"
                if guess
                else "request fields: "
                + ", ".join(f"task.{n}" for n in v.REQUEST_TYPES)
                + ", task.labels.<key>",
            )
            return None
        name = parts[0]
        if len(parts) == 1 and name in self.unit.lets and name not in self.unit.defined:
            let = self.unit.lets[name]
            self.unit.error(
                p.span,
                codes.UNKNOWN_NAME,
                f"let {name!r} is used before its definition (line {let.span.line})",
                "define a let above its first use; a let cannot refer to itself",
            )
            return None
        if len(parts) == 1 and name in self.unit.lets:
            self.unit.used_lets.add(name)
            if request_only and self.unit.let_types.get(f"{name}:candidate") == "yes":
                self.unit.error(
                    p.span,
                    codes.WHEN_SEES_CANDIDATE,
                    f"'when' sees only the request, but let {name!r} uses candidate fields",
                    "move the candidate condition after the ':'",
                )
            return self.unit.let_types.get(name)
        if len(parts) == 1 and (kind := v.field_type(name)) is not None:
            if request_only:
                self.unit.error(
                    p.span,
                    codes.WHEN_SEES_CANDIDATE,
                    f"'when' sees only the request (task.*), not the candidate field {name!r}",
                    "move the candidate condition after the ':'",
                )
            return kind
        if len(parts) > 1:
            self.unit.error(
                p.span,
                codes.UNKNOWN_FIELD,
                f"unknown field {str(p)!r}",
                "only task.* names have parts, e.g. task.labels.env",
            )
            return None
        guess = did_you_mean(name, [*self.unit.lets, *v.field_names()])
        self.unit.error(
            p.span,
            codes.UNKNOWN_NAME,
            f"unknown name {name!r}",
            f"did you mean {guess!r}?" if guess else "fields: " + ", ".join(v.field_names()),
        )
        return None

    def _value(self, field_expr: ast.Expr, value: str, span: Span) -> None:
        """Check a string compared with `accelerator` / `cloud` / `region`."""
        if not isinstance(field_expr, ast.Path) or len(field_expr.parts) != 1:
            return
        name, vocab = field_expr.parts[0], self.unit.vocabulary
        if name == "accelerator" and vocab.accelerators and not any(ch in value for ch in "*?"):
            if vocab.canonical_accelerator(value) is None:
                guess = did_you_mean(value, vocab.accelerators)
                self.unit.error(
                    span,
                    codes.UNKNOWN_ACCELERATOR,
                    f"unknown accelerator {value!r}",
                    f"did you mean {guess!r}?" if guess else "see: skyplan show-gpus",
                )
        elif name == "cloud" and not any(ch in value for ch in "*?["):
            low = ALIASES.get(value.lower(), value.lower())
            if low not in KNOWN_CLOUDS:
                guess = did_you_mean(value, KNOWN_CLOUDS)
                self.unit.error(
                    span,
                    codes.UNKNOWN_CLOUD,
                    f"unknown cloud {value!r}",
                    f"did you mean {guess!r}?" if guess else None,
                )
        elif (
            name == "region"
            and vocab.regions
            and not any(ch in value for ch in "*?[")
            and not vocab.knows_region(value)
        ):
            guess = did_you_mean(value, vocab.regions)
            self.unit.warn(
                span,
                codes.UNKNOWN_REGION,
                f"no offer in the catalog is in region {value!r}",
                f"did you mean {guess!r}?" if guess else None,
            )

    def expr(self, e: ast.Expr, request_only: bool = False) -> str | None:
        literal = _literal_type(e)
        if literal is not None:
            return literal
        if isinstance(e, ast.Path):
            return self.path(e, request_only)
        if isinstance(e, ast.Not):
            self.boolean(e.arg, request_only)
            return "bool"
        if isinstance(e, ast.And | ast.Or):
            for arg in e.args:
                self.boolean(arg, request_only)
            return "bool"
        if isinstance(e, ast.Compare):
            return self.compare(e, request_only)
        if isinstance(e, ast.In):
            item = self.expr(e.item, request_only)
            for option in e.options:
                want_number = item in _NUMERIC
                if want_number and not isinstance(option.value, float):
                    self.unit.error(
                        option.span,
                        codes.TYPE_MISMATCH,
                        f"expected a number in the set, got {option.value!r}",
                    )
                elif item in ("string", "kind") and isinstance(option.value, float):
                    self.unit.error(
                        option.span,
                        codes.TYPE_MISMATCH,
                        f"expected a name in the set, got {option.value:g}",
                    )
                elif isinstance(option.value, str):
                    self._value(e.item, option.value, option.span)
                    if _is_task_kind(e.item) and option.value not in v.KIND_VALUES:
                        self.unit.error(
                            option.span,
                            codes.INVALID_VALUE,
                            f"task.kind is one of {', '.join(v.KIND_VALUES)}, not {option.value!r}",
                        )
            if item == "bool":
                self.unit.error(
                    e.span,
                    codes.TYPE_MISMATCH,
                    "'in' needs a name or number, not a true/false value",
                )
            return "bool"
        if isinstance(e, ast.Match):
            item = self.expr(e.item, request_only)
            if item not in (None, "string", "kind"):
                self.unit.error(
                    e.span, codes.TYPE_MISMATCH, f"'~' matches text, but this is {item}"
                )
            for pattern in e.patterns:
                self._value(e.item, pattern.value, pattern.span)
                if len(pattern.value) > MAX_GLOB:
                    self.unit.error(
                        pattern.span,
                        codes.TOO_COMPLEX,
                        f"a pattern of {len(pattern.value):,} characters "
                        f"(at most {MAX_GLOB}): no catalog name is that long",
                        'match a list of shorter patterns: region ~ ["eu-*", "europe-*"]',
                    )
            return "bool"
        if isinstance(e, ast.Call):
            return self.call(e, request_only)
        raise AssertionError(f"unhandled expression {e!r}")  # pragma: no cover

    def boolean(self, e: ast.Expr, request_only: bool) -> None:
        kind = self.expr(e, request_only)
        if kind not in (None, "bool"):
            self.unit.error(
                _span_of(e), codes.TYPE_MISMATCH, f"expected a condition (true/false), got {kind}"
            )

    def compare(self, e: ast.Compare, request_only: bool) -> str:
        if (_is_task_kind(e.left) and _is_kind_word(e.right)) or (
            _is_task_kind(e.right) and _is_kind_word(e.left)
        ):
            self.expr(e.left if _is_task_kind(e.left) else e.right, request_only)
            return "bool"
        left, right = self.expr(e.left, request_only), self.expr(e.right, request_only)
        if left is None or right is None:
            return "bool"
        if "kind" in (left, right):
            other = e.right if left == "kind" else e.left
            if isinstance(other, ast.Str) and other.value not in v.KIND_VALUES:
                self.unit.error(
                    other.span,
                    codes.INVALID_VALUE,
                    f"task.kind is one of {', '.join(v.KIND_VALUES)}, not {other.value!r}",
                )
            left = right = "string"
        if e.op not in ("==", "!=") and (left not in _NUMERIC or right not in _NUMERIC):
            self.unit.error(
                e.span, codes.TYPE_MISMATCH, f"'{e.op}' compares numbers, not {left} and {right}"
            )
            return "bool"
        compatible = left == right or {left, right} == {"gib", "number"}
        if not compatible:
            hint = None
            if "money" in (left, right) and "number" in (left, right):
                hint = "write prices in $/h, e.g. $2/h"
            self.unit.error(
                e.span, codes.TYPE_MISMATCH, f"cannot compare {left} with {right}", hint
            )
        for a, b in ((e.left, e.right), (e.right, e.left)):
            if isinstance(b, ast.Str):
                self._value(a, b.value, b.span)
        return "bool"

    def call(self, e: ast.Call, request_only: bool) -> str | None:
        if e.name not in v.FUNCTIONS:
            guess = did_you_mean(e.name, list(v.FUNCTIONS))
            self.unit.error(
                e.span,
                codes.UNKNOWN_FUNCTION,
                f"unknown function {e.name!r}",
                f"did you mean {guess!r}?" if guess else "functions: " + ", ".join(v.FUNCTIONS),
            )
            for arg in e.args:
                self.expr(arg, request_only)
            return None
        fn = v.FUNCTIONS.get(e.name)
        if len(e.args) != len(fn.params):
            self.unit.error(
                e.span,
                codes.WRONG_ARGUMENTS,
                f"{e.name}() takes {len(fn.params)} argument(s), got {len(e.args)}",
            )
        for arg, want in zip(e.args, fn.params, strict=False):
            got = self.expr(arg, request_only)
            if got is not None and got != want and not (want == "string" and got == "kind"):
                self.unit.error(
                    _span_of(arg),
                    codes.WRONG_ARGUMENTS,
                    f"{e.name}() expects {want} here, got {got}",
                )
        return fn.returns


def _span_of(e: ast.Expr) -> Span:
    return e.span


def _children(e: ast.Expr) -> Sequence[ast.Expr]:
    if isinstance(e, ast.And | ast.Or):
        return e.args
    if isinstance(e, ast.Not):
        return (e.arg,)
    if isinstance(e, ast.Compare):
        return (e.left, e.right)
    if isinstance(e, ast.In | ast.Match):
        return (e.item,)
    if isinstance(e, ast.Call):
        return e.args
    return ()


def _mentions_candidate(e: ast.Expr, unit: Unit) -> bool:
    if isinstance(e, ast.Path):
        if e.parts[0] == "task" or _is_kind_word(e):
            return False
        if len(e.parts) == 1 and e.parts[0] in unit.lets:
            return unit.let_types.get(f"{e.parts[0]}:candidate") == "yes"
        return True
    return any(_mentions_candidate(c, unit) for c in _children(e))


#: The longest glob after `~`. Region, zone and instance names are a few dozen characters; a
#: pattern of thousands is an attack on the matcher, and Polars' regex refuses very long ones.
MAX_GLOB = 256

#: The most nodes one condition may have once its lets are inlined. `let a2 = a1 and a1`,
#: `let a3 = a2 and a2`, … doubles at each line: forty lines were a trillion nodes.
MAX_EXPANDED = 20_000


def _expanded(e: ast.Expr, sizes: dict[str, int]) -> int:
    """Nodes of `e` with every let inlined; `sizes` holds each earlier let's."""
    if isinstance(e, ast.Path) and len(e.parts) == 1 and e.parts[0] in sizes:
        return sizes[e.parts[0]]
    return 1 + sum(_expanded(c, sizes) for c in _children(e))


def _uses(e: ast.Expr, lets: set[str]) -> bool:
    if isinstance(e, ast.Path):
        return len(e.parts) == 1 and e.parts[0] in lets
    return any(_uses(c, lets) for c in _children(e))


def _too_big(unit: Unit, e: ast.Expr, sizes: dict[str, int], what: str) -> int:
    size = _expanded(e, sizes)
    if size > MAX_EXPANDED:
        unit.error(
            e.span,
            codes.TOO_COMPLEX,
            f"{what} expands to {size:,} nodes once its lets are inlined "
            f"(at most {MAX_EXPANDED:,})",
            "share a condition by writing it once in a rule, not by doubling lets",
        )
    return size


def check(unit: Unit) -> None:
    checker = Checker(unit)
    sizes: dict[str, int] = {}
    too_big: set[str] = set()
    for stmt in unit.tree.statements:
        if isinstance(stmt, ast.Let):
            # Reported once, at the first let too big: those built on it are too big as well.
            inherited = _uses(stmt.expr, too_big)
            size = 1 if inherited else _too_big(unit, stmt.expr, sizes, f"let {stmt.name!r}")
            if inherited or size > MAX_EXPANDED:
                too_big.add(stmt.name)
            sizes[stmt.name] = min(size, MAX_EXPANDED)
        elif isinstance(stmt, ast.Rule | ast.Prefer | ast.Quota | ast.Budget):
            parts = (stmt.when, getattr(stmt, "condition", None))
            for part in (p for p in parts if p is not None and not _uses(p, too_big)):
                _too_big(unit, part, sizes, f"rule {stmt.name!r}")
        if isinstance(stmt, ast.Let):
            unit.let_types[stmt.name] = checker.expr(stmt.expr)
            unit.let_types[f"{stmt.name}:candidate"] = (
                "yes" if _mentions_candidate(stmt.expr, unit) else "no"
            )
            unit.defined.add(stmt.name)
        if (
            isinstance(stmt, ast.Rule | ast.Prefer | ast.Quota | ast.Budget)
            and stmt.when is not None
        ):
            checker.boolean(stmt.when, request_only=True)
        if isinstance(stmt, ast.Rule | ast.Prefer):
            checker.boolean(stmt.condition, request_only=False)
        if isinstance(stmt, ast.Quota | ast.Budget):
            if stmt.per.parts[0] != "task":
                unit.error(
                    stmt.per.span,
                    codes.TYPE_MISMATCH,
                    f"'per' groups by a request field, e.g. task.team, not {str(stmt.per)!r}",
                )
            else:
                checker.expr(stmt.per, request_only=True)
        if isinstance(stmt, ast.Budget) and stmt.measure.parts != ("hourly_cost",):
            unit.error(
                stmt.measure.span,
                codes.INVALID_VALUE,
                f"a budget bounds hourly_cost, not {str(stmt.measure)!r}",
                'write: budget "name" hourly_cost <= $40/h per task.team',
            )
        if isinstance(stmt, ast.Quota) and stmt.limit.value < 0:
            unit.error(stmt.limit.span, codes.INVALID_VALUE, "a quota limit cannot be negative")
        if isinstance(stmt, ast.Test):
            check_test(unit, checker, stmt)
    for name, let in unit.lets.items():
        if name not in unit.used_lets:
            unit.warn(let.span, codes.UNUSED_LET, f"let {name!r} is never used")


def check_test(unit: Unit, checker: Checker, test: ast.Test) -> None:
    for pair in test.given:
        key = pair.key
        if not (key in _GIVEN_KEYS or (key.startswith("labels.") and key.count(".") == 1)):
            guess = did_you_mean(key, _GIVEN_KEYS)
            unit.error(
                pair.span,
                codes.UNKNOWN_TEST_KEY,
                f"unknown key {key!r} in 'given'",
                f"did you mean {guess!r}?" if guess else "keys: " + ", ".join(_GIVEN_KEYS),
            )
    names = unit.imported_rules | {
        s.name
        for s in unit.tree.statements
        if isinstance(s, ast.Rule | ast.Prefer | ast.Quota | ast.Budget)
    }
    for expect in test.expects:
        if (
            isinstance(expect, ast.ExpectDenied)
            and expect.rule is not None
            and expect.rule not in names
        ):
            guess = did_you_mean(expect.rule, names)
            unit.error(
                expect.span,
                codes.UNKNOWN_RULE,
                f"no rule named {expect.rule!r} in this file or its imports",
                f"did you mean {guess!r}?" if guess else None,
            )
        if isinstance(expect, ast.ExpectPlaced) and expect.where is not None:
            checker.boolean(expect.where, request_only=False)


# -- lower ------------------------------------------------------------------------------------


class Lowerer:
    def __init__(self, unit: Unit) -> None:
        self.unit = unit

    def origin(self, span: Span) -> m.Origin:
        return m.Origin(file=span.file, line=span.line or 0, col=span.col or 0)

    def value(self, field_expr: ast.Expr, value: str) -> str:
        if isinstance(field_expr, ast.Path) and field_expr.parts == ("accelerator",):
            return self.unit.vocabulary.canonical_accelerator(value) or value
        if isinstance(field_expr, ast.Path) and field_expr.parts == ("cloud",):
            return ALIASES.get(value.lower(), value.lower())
        return value

    def expr(self, e: ast.Expr) -> m.Expr:
        if isinstance(e, ast.Str):
            return m.Literal_.model_construct(value=e.value)
        if isinstance(e, ast.Num | ast.Money):
            return m.Literal_.model_construct(value=e.value)
        if isinstance(e, ast.Percent):
            return m.Literal_.model_construct(value=e.value / 100)
        if isinstance(e, ast.Size):
            return m.Literal_.model_construct(value=e.gib)
        if isinstance(e, ast.Bool):
            return m.Literal_.model_construct(value=e.value)
        if isinstance(e, ast.Path):
            if e.parts[0] == "task":
                return m.RequestRef.model_construct(path=e.parts[1:])
            if e.parts[0] in self.unit.lets:
                return self.expr(self.unit.lets[e.parts[0]].expr)
            return m.FieldRef.model_construct(name=e.parts[0])
        if isinstance(e, ast.Not):
            return m.Not.model_construct(arg=self.expr(e.arg))
        if isinstance(e, ast.And | ast.Or):
            return m.BoolOp.model_construct(
                op="and" if isinstance(e, ast.And) else "or",
                args=tuple(self.expr(a) for a in e.args),
            )
        if isinstance(e, ast.Compare):
            left, right = e.left, e.right
            if _is_task_kind(left) and isinstance(right, ast.Path) and _is_kind_word(right):
                right = ast.Str(right.parts[0], right.span)
            if _is_task_kind(right) and isinstance(left, ast.Path) and _is_kind_word(left):
                left = ast.Str(left.parts[0], left.span)
            if isinstance(right, ast.Str):
                right = ast.Str(self.value(left, right.value), right.span)
            if isinstance(left, ast.Str):
                left = ast.Str(self.value(right, left.value), left.span)
            return m.Compare.model_construct(
                op=e.op,  # type: ignore[arg-type]  # the grammar allows only these six
                left=self.expr(left),
                right=self.expr(right),
            )
        if isinstance(e, ast.In):
            options = tuple(
                self.value(e.item, o.value) if isinstance(o.value, str) else o.value
                for o in e.options
            )
            return m.InSet.model_construct(item=self.expr(e.item), options=options, negate=e.negate)
        if isinstance(e, ast.Match):
            patterns = tuple(self.value(e.item, p.value) for p in e.patterns)
            return m.Match.model_construct(item=self.expr(e.item), patterns=patterns)
        if isinstance(e, ast.Call):
            return m.Call.model_construct(name=e.name, args=tuple(self.expr(a) for a in e.args))
        raise AssertionError(f"unhandled expression {e!r}")  # pragma: no cover

    def when(self, e: ast.Expr | None) -> m.Expr | None:
        return None if e is None else self.expr(e)


def lower(unit: Unit) -> None:
    low = Lowerer(unit)
    header = unit.tree.header
    rules: list[m.Rule] = []
    preferences: list[m.Preference] = []
    quotas: list[m.Quota] = []
    budgets: list[m.Budget] = []
    tests: list[m.PolicyTest] = []
    objective, failover = m.Objective(), m.Failover()
    for s in unit.tree.statements:
        if isinstance(s, ast.Rule):
            rules.append(
                m.Rule(
                    name=s.name,
                    effect=s.effect,
                    condition=low.expr(s.condition),
                    when=low.when(s.when),
                    level=m.Level(s.level or "hard"),
                    origin=low.origin(s.span),
                )
            )
        elif isinstance(s, ast.Prefer):
            unit_name = "usd_per_hour" if isinstance(s.bonus, ast.Money) else "fraction"
            bonus = s.bonus.value if isinstance(s.bonus, ast.Money) else s.bonus.value / 100
            preferences.append(
                m.Preference(
                    name=s.name,
                    condition=low.expr(s.condition),
                    bonus=bonus,
                    unit=unit_name,
                    when=low.when(s.when),
                    origin=low.origin(s.span),
                )
            )
        elif isinstance(s, ast.Quota):
            quotas.append(
                m.Quota(
                    name=s.name,
                    metric=s.metric,
                    limit=s.limit.value,
                    per=s.per.parts[1:],
                    when=low.when(s.when),
                    level=m.Level(s.level or "hard"),
                    origin=low.origin(s.span),
                )
            )
        elif isinstance(s, ast.Budget):
            budgets.append(
                m.Budget(
                    name=s.name,
                    limit=s.limit.value,
                    per=s.per.parts[1:],
                    when=low.when(s.when),
                    level=m.Level(s.level or "hard"),
                    origin=low.origin(s.span),
                )
            )
        elif isinstance(s, ast.Objective):
            objective = m.Objective(order=s.goals)
        elif isinstance(s, ast.Failover):
            failover = m.Failover(
                strategy=s.strategy,
                blocklist=tuple((b.error, b.scope) for b in s.blocks) or m.Failover().blocklist,
            )
        elif isinstance(s, ast.Test):
            tests.append(_lower_test(low, s))
    unit.policy = m.Policy(
        name=header.name if header else unit.tree.span.file,
        version=header.version or 1 if header else 1,
        rules=tuple(rules),
        preferences=tuple(preferences),
        quotas=tuple(quotas),
        budgets=tuple(budgets),
        objective=objective,
        failover=failover,
        tests=tuple(tests),
    )


def _lower_test(low: Lowerer, t: ast.Test) -> m.PolicyTest:
    given = []
    for pair in t.given:
        value = low.expr(pair.value)
        assert isinstance(value, m.Literal_)
        given.append((pair.key, value.value))
    expects = []
    for e in t.expects:
        if isinstance(e, ast.ExpectPlaced):
            expects.append(m.Expectation(outcome="placed", where=low.when(e.where)))
        elif isinstance(e, ast.ExpectDenied):
            expects.append(m.Expectation(outcome="denied", rule=e.rule))
        else:
            expects.append(m.Expectation(outcome="cost", max_cost=e.limit.value))
    return m.PolicyTest(
        name=t.name, given=tuple(given), expect=tuple(expects), origin=low.origin(t.span)
    )


#: The compiler's stages, in order. Each reads and extends the Unit; lowering is skipped when an
#: earlier stage reported an error.
STAGES: list[tuple[str, Callable[[Unit], None]]] = [
    ("resolve", resolve),  # let bindings and rule names
    ("check", check),  # types, units, names and values against the vocabulary
    ("lower", lower),  # lets inlined, units normalized, model.Policy built
]


def compile_file(
    tree: ast.PolicyFile,
    vocabulary: Vocabulary | None = None,
    imported_rules: frozenset[str] = frozenset(),
) -> Unit:
    unit = Unit(tree, vocabulary or Vocabulary(), imported_rules=imported_rules)
    for name, stage in STAGES:
        if name == "lower" and unit.failed:
            break
        stage(unit)
    return unit
