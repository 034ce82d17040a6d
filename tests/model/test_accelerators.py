"""Accelerator requests: one name and count, an ordered list, or an any-of set / mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyplan.model.accelerators import Accelerator, AcceleratorChoice, parse_accelerators


def acc(name: str, count: float = 1) -> Accelerator:
    return Accelerator(name=name, count=count)


def any_of(*options: Accelerator) -> AcceleratorChoice:
    return AcceleratorChoice(options=options, mode="any")


def ordered(*options: Accelerator) -> AcceleratorChoice:
    return AcceleratorChoice(options=options, mode="ordered")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("A100", any_of(acc("A100")), id="name-means-one"),
        pytest.param("A100:8", any_of(acc("A100", 8)), id="name-and-count"),
        pytest.param(" A100 : 8 ", any_of(acc("A100", 8)), id="spaces-around"),
        pytest.param("V100:0.5", any_of(acc("V100", 0.5)), id="fraction-shares-a-device"),
        pytest.param("a100", any_of(acc("a100")), id="name-kept-as-written"),
        pytest.param("tpu-v4-8", any_of(acc("tpu-v4-8")), id="dashes-in-name"),
        pytest.param({"A100": 8}, any_of(acc("A100", 8)), id="mapping-name-to-count"),
        pytest.param({"A100": "8"}, any_of(acc("A100", 8)), id="mapping-count-as-string"),
        pytest.param({"A100": None}, any_of(acc("A100")), id="mapping-null-count-means-one"),
        pytest.param(
            {"A100:1": None, "T4:1": None},
            any_of(acc("A100"), acc("T4")),
            id="mapping-of-several-is-any",
        ),
        pytest.param(
            ["A100:1", "T4:1"], ordered(acc("A100"), acc("T4")), id="list-is-ordered"
        ),
        pytest.param(
            ("H100:8", "A100:8"), ordered(acc("H100", 8), acc("A100", 8)), id="tuple-is-ordered"
        ),
        pytest.param(
            {"T4:1", "A100:1"}, any_of(acc("A100"), acc("T4")), id="set-is-any-sorted-by-name"
        ),
        pytest.param(
            any_of(acc("L4")), any_of(acc("L4")), id="choice-passes-through"
        ),
    ],
)
def test_parse_accelerators(value: object, expected: AcceleratorChoice) -> None:
    assert parse_accelerators(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param("A100:0", "greater than 0", id="zero-count"),
        pytest.param("A100:-1", "greater than 0", id="negative-count"),
        pytest.param("A100:1.5", "fractional count", id="fraction-above-one"),
        pytest.param("A100:eight", "expected a count", id="count-is-a-word"),
        pytest.param("A100:", "expected a count", id="empty-count"),
        pytest.param("", "expected an accelerator", id="empty"),
        pytest.param(":8", "expected an accelerator", id="count-without-name"),
        pytest.param("A 100", "expected an accelerator", id="space-in-name"),
        pytest.param("{A100: 1}", "not a string", id="flow-mapping-as-string"),
        pytest.param("[A100, T4]", "not a string", id="flow-list-as-string"),
        pytest.param({"A100:1": 2}, "count twice", id="count-in-key-and-value"),
        pytest.param({"A100": True}, "expected a count", id="bool-count"),
        pytest.param({"A100": 0}, "greater than 0", id="zero-count-in-mapping"),
        pytest.param({}, "empty", id="empty-mapping"),
        pytest.param([], "empty", id="empty-list"),
        pytest.param([42], "NAME", id="number-in-list"),
        pytest.param({42: 1}, "accelerator name", id="number-as-key"),
        pytest.param(42, "expected accelerators", id="number"),
        pytest.param(None, "expected accelerators", id="none"),
    ],
)
def test_parse_accelerators_rejects(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_accelerators(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(acc("A100", 8), "A100:8", id="one-with-count"),
        pytest.param(acc("A100"), "A100:1", id="one-count-always-shown"),
        pytest.param(acc("V100", 0.5), "V100:0.5", id="fraction"),
        pytest.param(any_of(acc("A100"), acc("T4")), "{A100:1, T4:1}", id="any-in-braces"),
        pytest.param(ordered(acc("A100"), acc("T4")), "[A100:1, T4:1]", id="ordered-in-brackets"),
    ],
)
def test_str(value: Accelerator | AcceleratorChoice, text: str) -> None:
    assert str(value) == text


names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}\Z")


@given(name=names, count=st.integers(min_value=1, max_value=64))
def test_str_of_one_accelerator_parses_back(name: str, count: int) -> None:
    one = acc(name, count)
    assert parse_accelerators(str(one)) == any_of(one)


@given(items=st.lists(st.tuples(names, st.integers(1, 16)), min_size=1, max_size=5))
def test_a_list_keeps_its_order(items: list[tuple[str, int]]) -> None:
    choice = parse_accelerators([f"{name}:{count}" for name, count in items])
    assert choice.mode == "ordered"
    assert [(a.name, a.count) for a in choice.options] == items
