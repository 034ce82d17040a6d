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


def glob_expr(column: str, pattern: str) -> pl.Expr:
    """Rows whose `column` matches `pattern` (exact comparison when there is no wildcard)."""
    if _GLOB.search(pattern):
        return pl.col(column).fill_null("").str.contains(glob_regex(pattern))
    return pl.col(column) == pattern
