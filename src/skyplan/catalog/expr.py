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
    return "^" + "".join(parts) + "$"


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
    return value.str.contains(glob_regex(pattern))


def glob_expr(column: str, pattern: str) -> pl.Expr:
    """Rows whose `column` matches `pattern` (exact comparison when there is no wildcard)."""
    if _GLOB.search(pattern):
        return glob_match(pl.col(column).fill_null(""), pattern)
    return pl.col(column) == pattern
