"""Polars expressions over catalog columns shared by queries and the solver."""

from __future__ import annotations

import re

import polars as pl

_GLOB = re.compile(r"[*?]")


def glob_regex(pattern: str) -> str:
    """A shell-style glob (`*`, `?`) as an anchored regex in the syntax Polars (Rust) accepts."""
    parts = []
    for token in re.split(r"([*?])", pattern):
        if token == "*":
            parts.append(".*")
        elif token == "?":
            parts.append(".")
        elif token:
            parts.append(re.escape(token))
    return "(?s)^" + "".join(parts) + "$"  # (?s): a wildcard matches a newline too


def glob_matches(text: str, pattern: str) -> bool:
    """Whether all of `text` matches the glob `pattern`, in time proportional to their lengths'
    product at worst: a `*` that fails is resumed one character later, never re-tried in every
    combination as a backtracking regex does (`*a*a*a*b` against a long run of `a`)."""
    p = t = 0
    star, resume = -1, 0  # the last `*` seen, and where in `text` its match ends
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return pattern[p:].strip("*") == ""


def glob_match(value: pl.Expr, pattern: str) -> pl.Expr:
    """Whether the string `value` matches the glob `pattern`. The common shapes (`abc`,
    `abc*`, `*abc`, `*abc*`) avoid the regex engine, which is several times slower."""
    if not _GLOB.search(pattern):
        return value == pattern
    core = pattern.strip("*")
    if "?" not in pattern and "*" not in core and core:
        if pattern.startswith("*") and pattern.endswith("*"):
            return value.str.contains(core, literal=True)
        if pattern.endswith("*"):
            return value.str.starts_with(core)
        return value.str.ends_with(core)
    return value.str.contains(glob_regex(pattern))  # Rust's regex: linear, never backtracks


def glob_expr(column: str, pattern: str) -> pl.Expr:
    """Rows whose `column` matches `pattern` (exact comparison when there is no wildcard)."""
    if _GLOB.search(pattern):
        return glob_match(pl.col(column).fill_null(""), pattern)
    return pl.col(column) == pattern
