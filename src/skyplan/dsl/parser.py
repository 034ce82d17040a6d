"""Policy text → `ast.PolicyFile`. The grammar is loaded once (LALR, positions kept); the
builder has one method per grammar alias and its `__default__` raises, so no raw Lark tree
leaks out. Syntax errors become located diagnostics with Lark's token names put into words.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from skyplan.dsl import ast, codes
from skyplan.errors import Diagnostic, PolicyError, did_you_mean
from skyplan.source import Source, Span

_N = TypeVar("_N")

#: Lark terminal names in words, for "expected ..." messages.
_WORDS = {
    "STRING": "a quoted string",
    "NAME": "a name",
    "BARE": "a name",
    "INT": "a whole number",
    "NUM": "a number",
    "RULE": "'require' or 'deny'",
    "METRIC": "sum(gpus), sum(vcpus), sum(nodes) or sum(memory)",
    "GOAL": "'cost' or 'time'",
    "STRATEGY": "'next-cheapest' or 'same-region-first'",
    "SCOPE": "'zone', 'region' or 'cloud'",
    "ERROR_KIND": "'capacity', 'quota', 'auth' or 'transient'",
    "LEVEL": "'advisory', 'soft' or 'hard'",
    "OP": "a comparison (==, !=, <, <=, >, >=)",
    "SIZE_UNIT": "a size unit (GiB, TiB)",
    "$END": "the end of the file",
}


#: Named terminals that are a choice of keywords, for did-you-mean hints.
_KEYWORDS = {
    "RULE": ("require", "deny"),
    "GOAL": ("cost", "time"),
    "STRATEGY": ("next-cheapest", "same-region-first"),
    "SCOPE": ("zone", "region", "cloud"),
    "ERROR_KIND": ("capacity", "quota", "auth", "transient"),
    "LEVEL": ("advisory", "soft", "hard"),
}


@cache
def _parser() -> Lark:
    text = resources.files("skyplan.dsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    # Positions come from the tokens (all kept) rather than Lark's propagate_positions, and
    # the tree is turned into the AST by `_Builder._walk` rather than a Lark Transformer:
    # together about twice as fast on large policies.
    return Lark(text, parser="lalr", keep_all_tokens=True)


def _span(name: str, meta: Any) -> Span:
    line = getattr(meta, "line", None)
    col = getattr(meta, "column", None)
    return Span(name, line, col)


class _BadLiteral(Exception):
    """A literal that parses but cannot be represented (a number too large)."""

    def __init__(self, span: Span, message: str, code: str = codes.INVALID_VALUE) -> None:
        super().__init__(message)
        self.span = span
        self.code = code


def _unquote(token: Token) -> str:
    try:
        value = json.loads(str(token))
    except json.JSONDecodeError:
        value = str(token)[1:-1]
    return str(value)


#: Terminals whose text the AST keeps; every other token (keywords, punctuation) only gives
#: its position.
_KEPT = frozenset(
    {
        "NAME",
        "BARE",
        "STRING",
        "INT",
        "NUM",
        "RULE",
        "METRIC",
        "GOAL",
        "STRATEGY",
        "SCOPE",
        "ERROR_KIND",
        "LEVEL",
        "OP",
        "SIZE_UNIT",
    }
)


class _Meta:
    """A node's position: where its first token starts and its last token ends."""

    __slots__ = ("column", "end_line", "line")

    def __init__(self, line: int | None, column: int | None, end_line: int | None) -> None:
        self.line = line
        self.column = column
        self.end_line = end_line


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ends: dict[int, int] = {}

    def build(self, tree: Tree[Token]) -> ast.PolicyFile:
        result, _, _ = self._walk(tree)
        assert isinstance(result, ast.PolicyFile)
        return result

    def _walk(self, node: Tree[Token] | Token) -> tuple[Any, tuple[int, int] | None, int | None]:
        """(built value, (line, column) of the first token, line of the last token)."""
        if isinstance(node, Token):
            return node, (node.line or 0, node.column or 0), node.end_line
        kept: list[Any] = []
        start: tuple[int, int] | None = None
        end: int | None = None
        for child in node.children:
            value, child_start, child_end = self._walk(child)
            if start is None:
                start = child_start
            if child_end is not None:
                end = child_end
            if not isinstance(value, Token) or value.type in _KEPT:
                kept.append(value)
        meta = _Meta(start[0] if start else None, start[1] if start else None, end)
        method = getattr(self, str(node.data), None)
        if method is None:
            return self.__default__(node.data, kept, meta), start, end
        return method(meta, kept), start, end

    def _ended(self, node: _N, meta: Any) -> _N:
        end = getattr(meta, "end_line", None) or getattr(meta, "line", None) or 0
        self.ends[id(node)] = int(end)
        return node

    def __default__(self, data: Any, children: Any, meta: Any) -> Any:
        if data == "operand" and len(children) == 1:  # a parenthesized expression
            return children[0]
        raise AssertionError(f"grammar rule {data!r} has no AST builder")

    def _at(self, meta: Any) -> Span:
        return _span(self.name, meta)

    def _tok(self, token: Token) -> Span:
        return Span(self.name, token.line, token.column)

    def _str(self, token: Token) -> str:
        """A string literal's value. A `\\u` escape may write any character but half of a
        surrogate pair, which is no text at all (it could not be printed or stored)."""
        value = _unquote(token)
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            raise _BadLiteral(self._tok(token), "a \\u escape writes half of a surrogate pair")
        return value

    def _float(self, token: Token) -> float:
        value = float(token)
        if not math.isfinite(value):
            raise _BadLiteral(self._tok(token), f"the number {str(token)!r} is too large")
        return value

    # -- file and statements ----------------------------------------------------------------

    def policy(self, meta: Any, children: list[Any]) -> ast.PolicyFile:
        header = children[0] if children and isinstance(children[0], ast.Header) else None
        statements = tuple(c for c in children if not isinstance(c, ast.Header))
        ends = tuple(self.ends.get(id(s), s.span.line or 0) for s in statements)
        return ast.PolicyFile(header=header, statements=statements, span=self._at(meta), ends=ends)

    def header(self, meta: Any, children: list[Token]) -> ast.Header:
        version = int(children[1]) if len(children) > 1 else None
        return ast.Header(self._str(children[0]), version, self._at(meta))

    def import_(self, meta: Any, children: list[Token]) -> ast.Import:
        return self._ended(ast.Import(self._str(children[0]), self._at(meta)), meta)

    def let(self, meta: Any, children: list[Any]) -> ast.Let:
        return self._ended(ast.Let(str(children[0]), children[1], self._at(meta)), meta)

    @staticmethod
    def _parts(children: list[Any]) -> tuple[Any, Any, list[Any]]:
        """(when, main, rest) from `STRING when? main rest...` after the name."""
        when = children[0][1] if children and isinstance(children[0], tuple) else None
        rest = children[1:] if when is not None else children
        return when, rest[0], rest[1:]

    def rule(self, meta: Any, children: list[Any]) -> ast.Rule:
        effect, name = str(children[0]), self._str(children[1])
        when, condition, rest = self._parts(children[2:])
        level = rest[0] if rest else None
        return self._ended(ast.Rule(effect, name, when, condition, level, self._at(meta)), meta)

    def prefer(self, meta: Any, children: list[Any]) -> ast.Prefer:
        when, condition, rest = self._parts(children[1:])
        return self._ended(
            ast.Prefer(self._str(children[0]), when, condition, rest[0], self._at(meta)), meta
        )

    def _at_most(self, op: Token, what: str) -> None:
        if str(op) != "<=":
            raise _BadLiteral(
                self._tok(op), f"{what} is written with '<=', not {str(op)!r}", codes.SYNTAX
            )

    def quota(self, meta: Any, children: list[Any]) -> ast.Quota:
        when, metric, rest = self._parts(children[1:])
        self._at_most(rest[0], "a quota")
        rest = rest[1:]
        metric_name = str(metric)[len("sum(") : -1]
        level = rest[2] if len(rest) > 2 else None
        return self._ended(
            ast.Quota(
                self._str(children[0]), when, metric_name, rest[0], rest[1], level, self._at(meta)
            ),
            meta,
        )

    def budget(self, meta: Any, children: list[Any]) -> ast.Budget:
        when, measure, rest = self._parts(children[1:])
        self._at_most(rest[0], "a budget")
        rest = rest[1:]
        level = rest[2] if len(rest) > 2 else None
        budget = ast.Budget(
            self._str(children[0]), when, rest[0], rest[1], level, self._at(meta), measure
        )
        return self._ended(budget, meta)

    def objective(self, meta: Any, children: list[Token]) -> ast.Objective:
        return self._ended(ast.Objective(tuple(str(c) for c in children), self._at(meta)), meta)

    def failover(self, meta: Any, children: list[Any]) -> ast.Failover:
        return self._ended(
            ast.Failover(str(children[0]), tuple(children[1:]), self._at(meta)), meta
        )

    def block(self, meta: Any, children: list[Token]) -> ast.Block:
        return ast.Block(str(children[0]), str(children[1]), self._at(meta))

    def when(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("when", children[0])

    def level(self, meta: Any, children: list[Token]) -> str:
        return str(children[0])

    def test(self, meta: Any, children: list[Any]) -> ast.Test:
        pairs, given_span = children[1]
        test = ast.Test(
            self._str(children[0]), pairs, tuple(children[2:]), self._at(meta), given_span
        )
        return self._ended(test, meta)

    def given(self, meta: Any, children: list[ast.Pair]) -> tuple[tuple[ast.Pair, ...], Span]:
        return tuple(children), self._at(meta)

    def pair(self, meta: Any, children: list[Any]) -> ast.Pair:
        return ast.Pair(str(children[0]), children[1], self._at(meta))

    def expect_placed(self, meta: Any, children: list[Any]) -> ast.ExpectPlaced:
        return ast.ExpectPlaced(children[0] if children else None, self._at(meta))

    def expect_denied(self, meta: Any, children: list[Token]) -> ast.ExpectDenied:
        return ast.ExpectDenied(self._str(children[0]) if children else None, self._at(meta))

    def expect_cost(self, meta: Any, children: list[Any]) -> ast.ExpectCost:
        self._at_most(children[0], "a cost expectation")
        return ast.ExpectCost(children[1], self._at(meta))

    # -- expressions --------------------------------------------------------------------------

    def or_(self, meta: Any, children: list[Any]) -> Any:
        return children[0] if len(children) == 1 else ast.Or(tuple(children), self._at(meta))

    def and_(self, meta: Any, children: list[Any]) -> Any:
        return children[0] if len(children) == 1 else ast.And(tuple(children), self._at(meta))

    def not_(self, meta: Any, children: list[Any]) -> ast.Not:
        return ast.Not(children[0], self._at(meta))

    def compare(self, meta: Any, children: list[Any]) -> ast.Compare:
        return ast.Compare(str(children[1]), children[0], children[2], self._at(meta))

    def in_(self, meta: Any, children: list[Any]) -> ast.In:
        return ast.In(children[0], children[1], False, self._at(meta))

    def not_in(self, meta: Any, children: list[Any]) -> ast.In:
        return ast.In(children[0], children[1], True, self._at(meta))

    def match(self, meta: Any, children: list[Any]) -> ast.Match:
        patterns, bracketed = children[1]
        return ast.Match(children[0], patterns, bracketed, self._at(meta))

    def pattern_one(self, meta: Any, children: list[Token]) -> tuple[tuple[ast.Str, ...], bool]:
        return (ast.Str(self._str(children[0]), self._tok(children[0])),), False

    def pattern_list(self, meta: Any, children: list[Token]) -> tuple[tuple[ast.Str, ...], bool]:
        return tuple(ast.Str(self._str(t), self._tok(t)) for t in children), True

    def path(self, meta: Any, children: list[Token]) -> ast.Path:
        return ast.Path(tuple(str(c) for c in children), self._at(meta))

    def call(self, meta: Any, children: list[Any]) -> ast.Call:
        return ast.Call(str(children[0]), tuple(children[1:]), self._at(meta))

    def set(self, meta: Any, children: list[ast.SetItem]) -> tuple[ast.SetItem, ...]:
        return tuple(children)

    def item_string(self, meta: Any, children: list[Token]) -> ast.SetItem:
        return ast.SetItem(self._str(children[0]), True, self._at(meta))

    def item_bare(self, meta: Any, children: list[Token]) -> ast.SetItem:
        return ast.SetItem(str(children[0]), False, self._at(meta))

    def item_number(self, meta: Any, children: list[Token]) -> ast.SetItem:
        return ast.SetItem(self._float(children[0]), False, self._at(meta))

    def item_negative(self, meta: Any, children: list[Token]) -> ast.SetItem:
        return ast.SetItem(-self._float(children[0]), False, self._at(meta))

    def string(self, meta: Any, children: list[Token]) -> ast.Str:
        return ast.Str(self._str(children[0]), self._at(meta))

    def number(self, meta: Any, children: list[Token]) -> ast.Num:
        return ast.Num(self._float(children[0]), self._at(meta))

    def negative(self, meta: Any, children: list[Token]) -> ast.Num:
        return ast.Num(-self._float(children[0]), self._at(meta))

    def money(self, meta: Any, children: list[Token]) -> ast.Money:
        return ast.Money(self._float(children[0]), self._at(meta))

    def percent(self, meta: Any, children: list[Token]) -> ast.Percent:
        return ast.Percent(self._float(children[0]), self._at(meta))

    def size(self, meta: Any, children: list[Token]) -> ast.Size:
        return ast.Size(self._float(children[0]), str(children[1]), self._at(meta))

    def true(self, meta: Any, children: list[Any]) -> ast.Bool:
        return ast.Bool(True, self._at(meta))

    def false(self, meta: Any, children: list[Any]) -> ast.Bool:
        return ast.Bool(False, self._at(meta))


def _expected(parser: Lark, names: set[str]) -> str:
    words: list[str] = []
    for name in sorted(names):
        if name in _WORDS:
            word = _WORDS[name]
        else:
            try:
                pattern = parser.get_terminal(name).pattern
                word = f"'{pattern.value}'"
            except KeyError:
                word = name.lower()
        if word not in words:
            words.append(word)
    if not words:
        return ""
    if len(words) > 8:
        words = [*words[:8], "…"]
    return "expected " + (
        words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    )


def _syntax_error(exc: UnexpectedInput, source: Source) -> Diagnostic:
    span = Span(source.name, getattr(exc, "line", None), getattr(exc, "column", None))
    parser = _parser()
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        message = "unexpected end of file" if token.type == "$END" else f"unexpected {str(token)!r}"
        expected = _expected(parser, set(exc.accepts or exc.expected))
    elif isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        message = f"unexpected character {source.text[at : at + 1]!r}"
        expected = _expected(parser, set(exc.allowed or ()))
    elif isinstance(exc, UnexpectedEOF):
        message = "unexpected end of file"
        expected = _expected(parser, set(exc.expected))
    else:  # pragma: no cover - Lark raises only the three above
        message, expected = str(exc), ""
    if expected:
        message += f"; {expected}"
    hint = None
    if isinstance(exc, UnexpectedToken) and exc.token.type in ("NAME", "BARE"):
        keywords: list[str] = []
        for n in exc.accepts or exc.expected:
            if n in _KEYWORDS:
                keywords.extend(_KEYWORDS[n])
            elif n not in _WORDS and n in {t.name for t in parser.terminals}:
                keywords.append(str(parser.get_terminal(n).pattern.value))
        guess = did_you_mean(
            str(exc.token), [k for k in keywords if k.replace("-", "_").isidentifier()]
        )
        hint = f"did you mean {guess!r}?" if guess else None
    return diagnostic(span, codes.SYNTAX, message, hint=hint)


def diagnostic(
    span: Span, code: str, message: str, *, hint: str | None = None, severity: str = "error"
) -> Diagnostic:
    """A policy diagnostic: located, with its stable code and slug."""
    return Diagnostic(span, message, hint=hint, code=code, severity=severity, slug=codes.slug(code))


def _comments(text: str, name: str) -> tuple[ast.Comment, ...]:
    """Every `#` comment outside strings, with whether it stands on its own line."""
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        in_string, escaped = False, False
        for col, ch in enumerate(line):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#":
                own = not line[:col].strip()
                found.append(ast.Comment(line[col:].rstrip(), own, Span(name, number, col + 1)))
                break
    return tuple(found)


#: How deeply a policy may nest: parentheses, `not`, `and`/`or` inside them. Far beyond what a
#: reviewer can read, and far below what the recursive builder and compiler can take.
MAX_NESTING = 200


def _too_deep(tree: Tree[Token], name: str) -> Diagnostic | None:
    """SP118 at the first token of the first node nested deeper than `MAX_NESTING`, found
    without recursion."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            first: Tree[Token] | Token = node
            while isinstance(first, Tree) and first.children:
                first = first.children[0]
            at = Span(name, getattr(first, "line", None), getattr(first, "column", None))
            why = f"nested too deeply (over {MAX_NESTING} levels of parentheses and operators)"
            return diagnostic(at, codes.TOO_COMPLEX, why)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


#: Candidates for `_invisible`: ASCII controls but tab, newline and carriage return, and every
#: character outside ASCII (most are fine; `unicodedata` decides).
_SUSPECT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|[^\x00-\x7f]")

#: Unicode categories a reviewer cannot see: controls (Cc), format characters (Cf: zero-width
#: space and joiners, bidirectional overrides that reorder what is shown, "Trojan Source"), and
#: the line and paragraph separators (Zl, Zp) an editor shows as a line break while the
#: parser reads on (U+2028 in a comment hid the rule after it).
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _invisible(text: str, name: str) -> list[Diagnostic]:
    """SP119 at each line's first character a reviewer cannot see, in strings and comments
    too: what a pull request shows must be what is enforced."""
    found: dict[int, Diagnostic] = {}
    for match in _SUSPECT.finditer(text):
        ch = match.group()
        if unicodedata.category(ch) not in _INVISIBLE:
            continue
        offset = match.start()
        line = text.count("\n", 0, offset) + 1
        if line in found:
            continue
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        what = unicodedata.name(ch, "a control character")
        found[line] = diagnostic(
            Span(name, line, col),
            codes.INVISIBLE,
            f"invisible character U+{ord(ch):04X} ({what.lower()})",
            hint="a reviewer cannot see it; delete it, or write it as a \\u escape in a string",
        )
    return list(found.values())


def parse(text: str, name: str = "<policy>") -> ast.PolicyFile:
    """Parse one policy file; raises `PolicyError` with a located syntax diagnostic."""
    if text.startswith("\ufeff"):
        # A byte-order mark (editors on Windows write one): read as a space, so columns stay.
        text = " " + text[1:]
    source = Source(name, text)
    invisible = _invisible(text, name)
    if invisible:
        raise PolicyError(invisible, {name: source})
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise PolicyError([_syntax_error(exc, source)], {name: source}) from None
    deep = _too_deep(tree, name)
    if deep is not None:
        raise PolicyError([deep], {name: source})
    try:
        policy = _Builder(name).build(tree)
    except _BadLiteral as bad:
        raise PolicyError([diagnostic(bad.span, bad.code, str(bad))], {name: source}) from None
    return ast.PolicyFile(
        header=policy.header,
        statements=policy.statements,
        comments=_comments(text, name),
        span=policy.span,
        ends=policy.ends,
    )
