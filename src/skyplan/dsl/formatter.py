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


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


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
        head = f"budget {_string(s.name)}{_when(s.when)} hourly_cost"
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


def format_file(tree: ast.PolicyFile, text: str) -> str:
    """Canonical text of a parsed file; `text` is its source, for blank lines and comments."""
    source_lines = text.splitlines()

    def blank_above(line: int) -> bool:
        return line >= 2 and not source_lines[line - 2].strip()

    own = sorted((c for c in tree.comments if c.own_line), key=lambda c: c.span.line or 0)
    inline = {c.span.line or 0: c for c in tree.comments if not c.own_line}
    items: list[tuple[int, ast.Header | ast.Statement]] = []
    if tree.header is not None:
        items.append((tree.header.span.line or 0, tree.header))
    items.extend((s.span.line or 0, s) for s in tree.statements)

    out: list[str] = []
    pending = 0
    for index, (line, item) in enumerate(items):
        leading = []
        while pending < len(own) and (own[pending].span.line or 0) < line:
            leading.append(own[pending])
            pending += 1
        first_line = leading[0].span.line if leading else line
        if out and (blank_above(first_line or 0) or isinstance(items[index - 1][1], ast.Header)):
            out.append("")
        for comment in leading:
            if (
                out
                and out[-1] != ""
                and comment is not leading[0]
                and blank_above(comment.span.line or 0)
            ):
                out.append("")
            out.append(comment.text)
        if isinstance(item, ast.Header):
            version = "" if item.version is None else f" version {item.version}"
            lines = [f"policy {_string(item.name)}{version}"]
        else:
            lines = statement(item)
        end = items[index + 1][0] if index + 1 < len(items) else len(source_lines) + 1
        notes = [inline[n] for n in sorted(inline) if line <= n < end]
        if notes:
            lines[0] += "  " + "  ".join(n.text for n in notes)
        out.extend(lines)
    rest = own[pending:]
    if rest:
        if out and blank_above(rest[0].span.line or 0):
            out.append("")
        out.extend(c.text for c in rest)
    return "\n".join(out) + "\n" if out else ""


def format_text(text: str, name: str = "<policy>") -> str:
    """Canonical form of policy text; raises `PolicyError` when it does not parse."""
    return format_file(parse(text, name), text)
