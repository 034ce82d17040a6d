"""Glob matching: the catalog's Polars form and the row-by-row form agree, and neither can be
made to take exponential time by a pattern (policies come from pull requests)."""

from __future__ import annotations

from fnmatch import fnmatchcase

import polars as pl
from hypothesis import example, given
from hypothesis import strategies as st

from skyplan.catalog.expr import glob_match, glob_matches

texts = st.text(alphabet="ab*?.\n", max_size=8)
patterns = st.text(alphabet="ab*?.", max_size=8)  # fnmatch's `[` classes are not globs here


@given(texts, patterns)
@example("a\nb", "a*b")
def test_glob_matches_means_what_fnmatch_means(text: str, pattern: str) -> None:
    assert glob_matches(text, pattern) is fnmatchcase(text, pattern)


@given(st.lists(texts, min_size=1, max_size=5), patterns)
@example(["a\nb", "a\n"], "a?b")
@example(["a\nb"], "a*b")
def test_the_polars_form_agrees_with_the_row_by_row_form(values: list[str], pattern: str) -> None:
    got = pl.DataFrame({"v": values}).select(glob_match(pl.col("v"), pattern)).to_series()
    assert got.to_list() == [glob_matches(v, pattern) for v in values]


def test_a_pattern_built_to_backtrack_is_answered_at_once() -> None:
    # `*a*a…*b` against a run of `a`: a backtracking regex tries every split (it never
    # finished for 30 stars and 40 letters); this is at most len(text) * len(pattern) steps.
    assert not glob_matches("a" * 400, "*a" * 200 + "*b")
    assert glob_matches("a" * 400 + "b", "*a" * 200 + "*b")


def test_a_trailing_newline_is_part_of_the_text() -> None:
    # Python's `$` also matched before a final newline; Polars' does not. Both forms agree now.
    assert not glob_matches("eu-west-1\n", "eu-*1")
    assert glob_matches("eu-west-1", "eu-*1")
