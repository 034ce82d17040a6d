"""The canonical form of policy files: one statement per line, single spaces, minimal
parentheses, comments kept where they were. Idempotent: `format_text(format_text(t)) ==
format_text(t)`, and formatting never changes what a policy means (`parse(fmt(t)) == parse(t)`).
"""

from __future__ import annotations

import json

from skyplan.dsl import ast
from skyplan.dsl.parser import parse

_OR, _AND, _NOT, _CMP, _ATOM = 1, 2, 3, 4, 5
INDENT = "  "


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


#: Characters some tools treat as line breaks: kept escaped so a string stays on its line.
_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def _string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    for char, escaped in _BREAKS.items():
        text = text.replace(char, escaped)
    return text


def _precedence(e: ast.Expr) -> int:
    if isinstance(e, ast.Or):
        return _OR
    if isinstance(e, ast.And):
        return _AND
    if isinstance(e, ast.Not):
        return _NOT
    if isinstance(e, ast.Compare | ast.In | ast.Match):
        return _CMP
    return _ATOM


def _wrapped(e: ast.Expr, minimum: int) -> str:
    text = expr(e)
    return f"({text})" if _precedence(e) < minimum else text


def _item(item: ast.SetItem) -> str:
    if isinstance(item.value, float):
        return _number(item.value)
    return _string(item.value) if item.quoted else item.value


def expr(e: ast.Expr) -> str:
    """Canonical text of an expression."""
    if isinstance(e, ast.Str):
        return _string(e.value)
    if isinstance(e, ast.Num):
        return _number(e.value)
    if isinstance(e, ast.Money):
        return f"${_number(e.value)}/h"
    if isinstance(e, ast.Percent):
        return f"{_number(e.value)}%"
    if isinstance(e, ast.Size):
        return f"{_number(e.value)}{e.unit}"
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.Path):
        return str(e)
    if isinstance(e, ast.Call):
        return f"{e.name}({', '.join(expr(a) for a in e.args)})"
    if isinstance(e, ast.Or):
        return " or ".join(_wrapped(a, _AND) for a in e.args)
    if isinstance(e, ast.And):
        return " and ".join(_wrapped(a, _NOT) for a in e.args)
    if isinstance(e, ast.Not):
        return f"not {_wrapped(e.arg, _NOT)}"
    if isinstance(e, ast.Compare):
        return f"{_wrapped(e.left, _ATOM)} {e.op} {_wrapped(e.right, _ATOM)}"
    if isinstance(e, ast.In):
        items = ", ".join(_item(i) for i in e.options)
        return f"{_wrapped(e.item, _ATOM)} {'not in' if e.negate else 'in'} {{{items}}}"
    if isinstance(e, ast.Match):
        if len(e.patterns) == 1 and not e.bracketed:
            patterns = _string(e.patterns[0].value)
        else:
            patterns = "[" + ", ".join(_string(p.value) for p in e.patterns) + "]"
        return f"{_wrapped(e.item, _ATOM)} ~ {patterns}"
    raise AssertionError(f"unhandled expression {e!r}")  # pragma: no cover


def _when(when: ast.Expr | None) -> str:
    return "" if when is None else f" when {expr(when)}:"


def _level(level: str | None) -> str:
    return "" if level is None else f" level {level}"


def statement(s: ast.Statement) -> list[str]:
    """Canonical lines of a statement."""
    if isinstance(s, ast.Import):
        return [f"import {_string(s.path)}"]
    if isinstance(s, ast.Let):
        return [f"let {s.name} = {expr(s.expr)}"]
    if isinstance(s, ast.Rule):
        body = f"{s.effect} {_string(s.name)}{_when(s.when)} {expr(s.condition)}"
        return [body + _level(s.level)]
    if isinstance(s, ast.Prefer):
        head = f"prefer {_string(s.name)}{_when(s.when)} {expr(s.condition)}"
        return [f"{head} bonus {expr(s.bonus)}"]
    if isinstance(s, ast.Quota):
        head = f"quota {_string(s.name)}{_when(s.when)} sum({s.metric})"
        return [f"{head} <= {expr(s.limit)} per {s.per}{_level(s.level)}"]
    if isinstance(s, ast.Budget):
        head = f"budget {_string(s.name)}{_when(s.when)} {s.measure}"
        return [f"{head} <= {expr(s.limit)} per {s.per}{_level(s.level)}"]
    if isinstance(s, ast.Objective):
        return ["objective minimize " + " then ".join(s.goals)]
    if isinstance(s, ast.Failover):
        blocks = "".join(
            f", blocklist {b.scope} on {b.error}" if i == 0 else f", {b.scope} on {b.error}"
            for i, b in enumerate(s.blocks)
        )
        return [f"failover {s.strategy}{blocks}"]
    if isinstance(s, ast.Test):
        given = ", ".join(f"{p.key}: {expr(p.value)}" for p in s.given)
        lines = [
            f"test {_string(s.name)} {{",
            f"{INDENT}given {{ {given} }}" if given else f"{INDENT}given {{}}",
        ]
        for e in s.expects:
            if isinstance(e, ast.ExpectPlaced):
                lines.append(
                    f"{INDENT}expect placed" + ("" if e.where is None else f" on {expr(e.where)}")
                )
            elif isinstance(e, ast.ExpectDenied):
                lines.append(
                    f"{INDENT}expect denied" + ("" if e.rule is None else f" by {_string(e.rule)}")
                )
            else:
                lines.append(f"{INDENT}expect cost <= {expr(e.limit)}")
        return [*lines, "}"]
    raise AssertionError(f"unhandled statement {s!r}")  # pragma: no cover


class _Layout:
    """Places comments and blank lines around canonical statement text."""

    def __init__(self, tree: ast.PolicyFile, text: str) -> None:
        self.lines = text.split("\n")
        self.own = sorted((c for c in tree.comments if c.own_line), key=lambda c: c.span.line or 0)
        self.inline = {c.span.line or 0: c.text for c in tree.comments if not c.own_line}
        self.next_own = 0
        self.out: list[str] = []

    def blank_above(self, line: int) -> bool:
        return line >= 2 and not self.lines[line - 2].strip()

    def take_own(self, before: int) -> list[ast.Comment]:
        """Own-line comments above line `before` not placed yet."""
        taken = []
        while self.next_own < len(self.own) and (self.own[self.next_own].span.line or 0) < before:
            taken.append(self.own[self.next_own])
            self.next_own += 1
        return taken

    def trailing(self, first: int, last: int) -> str:
        lines = [n for n in sorted(self.inline) if first <= n <= last]
        return "".join(f"  {self.inline.pop(n)}" for n in lines)

    def emit(self, line: int, text: str, force_blank: bool = False) -> None:
        """Emit `text` for source line `line`, keeping one blank line where the source had one."""
        if self.out and self.out[-1] != "" and (force_blank or self.blank_above(line)):
            self.out.append("")
        self.out.append(text)

    def leading(self, start: int, force_blank: bool) -> None:
        for index, comment in enumerate(self.take_own(start)):
            self.emit(comment.span.line or 0, comment.text, force_blank and index == 0)
            force_blank = False
        self.pending_blank = force_blank

    def test(self, t: ast.Test, start: int, end: int) -> None:
        """A test block: comments inside it stay inside, next to the line they were near."""
        head = statement(t)
        parts = [(t.given_span.line or start, head[1])]
        parts += [
            (e.span.line or start, line) for e, line in zip(t.expects, head[2:-1], strict=True)
        ]
        self.out.append(head[0] + self.trailing(start, start))
        # A part may span lines (a `given` or `expect` written over several): the comments
        # after code on any of them follow its one canonical line.
        lasts = [line - 1 for line, _ in parts[1:]] + [end - 1]
        for (line, text), last in zip(parts, lasts, strict=True):
            for comment in self.take_own(line):
                self.out.append(INDENT + comment.text)
            self.out.append(text + self.trailing(line, max(line, last)))
        for comment in self.take_own(end):
            self.out.append(INDENT + comment.text)
        self.out.append("}" + self.trailing(end, end))


def format_file(tree: ast.PolicyFile, text: str) -> str:
    """Canonical text of a parsed file; `text` is its source, for blank lines and comments."""
    layout = _Layout(tree, text)
    after_header = False
    if tree.header is not None:
        line = tree.header.span.line or 1
        layout.leading(line, False)
        version = "" if tree.header.version is None else f" version {tree.header.version}"
        last = (tree.statements[0].span.line or 1) - 1 if tree.statements else len(layout.lines)
        header = f"policy {_string(tree.header.name)}{version}"
        layout.emit(line, header + layout.trailing(line, last))
        after_header = True
    ends = tree.ends or tuple(s.span.line or 0 for s in tree.statements)
    for stmt, end in zip(tree.statements, ends, strict=True):
        start = stmt.span.line or 0
        layout.leading(start, after_header)
        force = layout.pending_blank
        after_header = False
        if isinstance(stmt, ast.Test):
            if layout.out and layout.out[-1] != "" and (force or layout.blank_above(start)):
                layout.out.append("")
            layout.test(stmt, start, end)
            continue
        inner = layout.take_own(end + 1)  # comments between a statement's lines go above it
        for comment in inner:
            layout.out.insert(len(layout.out), comment.text)
        lines = statement(stmt)
        lines[0] += layout.trailing(start, end)
        layout.emit(
            start if not inner else inner[0].span.line or start, lines[0], force and not inner
        )
        layout.out.extend(lines[1:])
    rest = layout.take_own(len(layout.lines) + 1)
    for comment in rest:
        layout.emit(comment.span.line or 0, comment.text)
    for line in sorted(layout.inline):  # never lose a comment, even one no statement claimed
        layout.emit(line, layout.inline.pop(line))
    while layout.out and layout.out[-1] == "":
        layout.out.pop()
    return "\n".join(layout.out) + "\n" if layout.out else ""


def format_text(text: str, name: str = "<policy>") -> str:
    """Canonical form of policy text; raises `PolicyError` when it does not parse."""
    return format_file(parse(text, name), text)
