"""Quantities in a request: `cpus`, `memory` and `disk_size`, in every spelling SkyPilot accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyplan.model.quantity import CpuSpec, MemorySpec, parse_cpus, parse_disk_size, parse_memory


def cpus(count: float, at_least: bool = False) -> CpuSpec:
    return CpuSpec(count=count, at_least=at_least)


def memory(gib: float, mode: str = "exact") -> MemorySpec:
    return MemorySpec(gib=gib, mode=mode)  # type: ignore[arg-type]


# -- cpus ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("4", cpus(4), id="string-is-exact"),
        pytest.param(4, cpus(4), id="int-is-exact"),
        pytest.param(2.5, cpus(2.5), id="float-is-exact"),
        pytest.param("4+", cpus(4, at_least=True), id="plus-is-at-least"),
        pytest.param("0.5+", cpus(0.5, at_least=True), id="fraction-at-least"),
        pytest.param(" 8 + ", cpus(8, at_least=True), id="spaces-around"),
        pytest.param(cpus(2, True), cpus(2, True), id="spec-passes-through"),
    ],
)
def test_parse_cpus(value: object, expected: CpuSpec) -> None:
    assert parse_cpus(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(0, "greater than 0", id="zero"),
        pytest.param("0+", "greater than 0", id="zero-at-least"),
        pytest.param("-1", "greater than 0", id="negative"),
        pytest.param("nan", "greater than 0", id="nan"),
        pytest.param("four", "vCPU count", id="word"),
        pytest.param("", "vCPU count", id="empty"),
        pytest.param("+", "vCPU count", id="plus-alone"),
        pytest.param(True, "expected a number", id="bool-is-not-a-number"),
        pytest.param(None, "expected a number", id="none"),
        pytest.param([4], "expected a number", id="list"),
    ],
)
def test_parse_cpus_rejects(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_cpus(value)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param(cpus(4), "4", id="exact"),
        pytest.param(cpus(4, True), "4+", id="at-least"),
        pytest.param(cpus(0.5, True), "0.5+", id="fraction"),
    ],
)
def test_cpu_spec_str(spec: CpuSpec, text: str) -> None:
    assert str(spec) == text


@pytest.mark.parametrize(
    ("spec", "vcpus", "expected"),
    [
        pytest.param(cpus(4), 4, True, id="exact-equal"),
        pytest.param(cpus(4), 8, False, id="exact-more-is-not-a-match"),
        pytest.param(cpus(4), 2, False, id="exact-less"),
        pytest.param(cpus(4, True), 4, True, id="at-least-equal"),
        pytest.param(cpus(4, True), 96, True, id="at-least-more"),
        pytest.param(cpus(4, True), 2, False, id="at-least-less"),
    ],
)
def test_cpu_spec_matches(spec: CpuSpec, vcpus: float, expected: bool) -> None:
    assert spec.matches(vcpus) is expected


@given(count=st.integers(min_value=1, max_value=100_000), at_least=st.booleans())
def test_cpu_spec_str_parses_back(count: int, at_least: bool) -> None:
    spec = cpus(count, at_least)
    assert parse_cpus(str(spec)) == spec


# -- memory -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(16, memory(16), id="int-is-exact-gib"),
        pytest.param(0.5, memory(0.5), id="float-is-exact-gib"),
        pytest.param("16", memory(16), id="string-is-exact-gib"),
        pytest.param("16+", memory(16, "at_least"), id="plus-is-at-least"),
        pytest.param("16GB", memory(16), id="gb-is-gib"),
        pytest.param("16GiB", memory(16), id="gib"),
        pytest.param("16 gb", memory(16), id="lower-case-unit-with-space"),
        pytest.param("1TB+", memory(1024, "at_least"), id="tb-at-least"),
        pytest.param("512MB", memory(0.5), id="mb"),
        pytest.param("4x", memory(4, "per_cpu"), id="ratio-per-cpu"),
        pytest.param("0.5X", memory(0.5, "per_cpu"), id="ratio-upper-case"),
        pytest.param(memory(8, "at_least"), memory(8, "at_least"), id="spec-passes-through"),
    ],
)
def test_parse_memory(value: object, expected: MemorySpec) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param("0", "greater than 0", id="zero"),
        pytest.param(0, "greater than 0", id="zero-int"),
        pytest.param(-1, "greater than 0", id="negative"),
        pytest.param("0x", "greater than 0", id="zero-ratio"),
        pytest.param("lots", "expected a size", id="word"),
        pytest.param("4y", "expected a size", id="unknown-unit"),
        pytest.param("16+GB", "expected a size", id="plus-before-unit"),
        pytest.param("x", "ratio", id="ratio-without-number"),
        pytest.param("16GBx", "ratio", id="ratio-with-unit"),
        pytest.param(True, "expected a number", id="bool"),
        pytest.param(None, "expected a number", id="none"),
    ],
)
def test_parse_memory_rejects(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_memory(value)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param(memory(16), "16", id="exact"),
        pytest.param(memory(16, "at_least"), "16+", id="at-least"),
        pytest.param(memory(4, "per_cpu"), "4x", id="per-cpu"),
    ],
)
def test_memory_spec_str(spec: MemorySpec, text: str) -> None:
    assert str(spec) == text


@pytest.mark.parametrize(
    ("spec", "memory_gib", "vcpus", "expected"),
    [
        pytest.param(memory(16), 16, 4, True, id="exact-equal"),
        pytest.param(memory(16), 32, 4, False, id="exact-more-is-not-a-match"),
        pytest.param(memory(16, "at_least"), 16, 4, True, id="at-least-equal"),
        pytest.param(memory(16, "at_least"), 32, 4, True, id="at-least-more"),
        pytest.param(memory(16, "at_least"), 8, 4, False, id="at-least-less"),
        pytest.param(memory(4, "per_cpu"), 32, 8, True, id="ratio-exactly-met"),
        pytest.param(memory(4, "per_cpu"), 64, 8, True, id="ratio-exceeded"),
        pytest.param(memory(4, "per_cpu"), 31, 8, False, id="ratio-missed"),
    ],
)
def test_memory_spec_matches(
    spec: MemorySpec, memory_gib: float, vcpus: float, expected: bool
) -> None:
    assert spec.matches(memory_gib, vcpus) is expected


@given(
    gib=st.integers(min_value=1, max_value=100_000),
    mode=st.sampled_from(["exact", "at_least", "per_cpu"]),
)
def test_memory_spec_str_parses_back(gib: int, mode: str) -> None:
    spec = memory(gib, mode)
    assert parse_memory(str(spec)) == spec


# -- disk_size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(256, 256, id="int-gib"),
        pytest.param(256.0, 256, id="whole-float"),
        pytest.param("256", 256, id="string"),
        pytest.param("1024GB", 1024, id="gb"),
        pytest.param("1TB", 1024, id="tb"),
        pytest.param("2048MB", 2, id="mb-whole-gib"),
    ],
)
def test_parse_disk_size(value: object, expected: int) -> None:
    assert parse_disk_size(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param("10+", "exact size", id="at-least-is-meaningless"),
        pytest.param("0.5", "whole number", id="fraction-of-gib"),
        pytest.param(0, "whole number", id="zero"),
        pytest.param("512MB", "whole number", id="below-one-gib"),
        pytest.param("big", "expected a size", id="word"),
        pytest.param(True, "expected a number", id="bool"),
    ],
)
def test_parse_disk_size_rejects(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_disk_size(value)
