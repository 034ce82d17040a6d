"""Trace loading: names → places, and strict validation with messages naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyplan.errors import InputError
from skyplan.sim import load_trace, load_traces, shape_groups
from skyplan.sim.trace import place_of
from tests.sim.conftest import TINY


@pytest.mark.parametrize(
    ("path", "place"),
    [
        pytest.param(
            "aws-10-26-2022/us-west-2a_v100_1.json", ("aws", "us-west-2", "us-west-2a"), id="aws"
        ),
        pytest.param(
            "gcp-04-30-2023/us-central1-a_c3-88.json",
            ("gcp", "us-central1", "us-central1-a"),
            id="gcp",
        ),
        pytest.param("mine/zone_x.json", ("sim", "zone", "zone"), id="unknown-cloud"),
    ],
)
def test_the_place_comes_from_the_file_name(path: str, place: tuple[str, str, str]) -> None:
    assert place_of(Path(path)) == place


def test_a_directory_is_a_set_of_zones() -> None:
    traces = load_traces(TINY)
    assert [t.zone for t in traces] == ["us-east-1b", "us-west-2a"]
    assert {t.region for t in traces} == {"us-east-1", "us-west-2"}
    assert all(t.gap_seconds == 600 and t.ticks == 576 for t in traces)
    assert shape_groups(traces) == [traces]


def _write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "us-west-2a_v100_1.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            '{"metadata": {',
            "1:15: not JSON: Expecting property name enclosed in double quotes",
            id="syntax",
        ),
        pytest.param("[1, 2]", "(top level): must be an object, got list", id="not-object"),
        pytest.param({"data": [1]}, "metadata: missing", id="no-metadata"),
        pytest.param({"metadata": {}}, "data: missing", id="no-data"),
        pytest.param({"metadata": {}, "data": [1]}, "metadata.gap_seconds: missing", id="no-gap"),
        pytest.param(
            {"metadata": {"gap_seconds": 0}, "data": [1]},
            "metadata.gap_seconds: must be a positive number, got 0",
            id="zero-gap",
        ),
        pytest.param(
            {"metadata": {"gap_seconds": "60"}, "data": [1]},
            "metadata.gap_seconds: must be a positive number, got '60'",
            id="string-gap",
        ),
        pytest.param(
            {"metadata": {"gap_seconds": 60}, "data": []},
            "data: must be a non-empty list of node counts",
            id="empty-data",
        ),
        pytest.param(
            {"metadata": {"gap_seconds": 60}, "data": [1, -1]},
            "data[1]: must be a non-negative integer, got -1",
            id="negative-count",
        ),
        pytest.param(
            {"metadata": {"gap_seconds": 60}, "data": [1, 0.5]},
            "data[1]: must be a non-negative integer, got 0.5",
            id="fractional-count",
        ),
        pytest.param(
            {"metadata": {"gap_seconds": 60}, "data": [1, 0], "prices": [1.0]},
            "prices: has 1 entries but data has 2",
            id="prices-length",
        ),
        pytest.param(
            {"metadata": {"gap_seconds": 60}, "data": [1], "prices": ["x"]},
            "prices[0]: must be a non-negative number, got 'x'",
            id="bad-price",
        ),
    ],
)
def test_bad_traces_are_input_errors_naming_file_and_field(
    tmp_path: Path, content: object, message: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(InputError) as caught:
        load_trace(path)
    assert str(caught.value) == f"{path}: {message}"
    assert caught.value.exit_code == 2


def test_a_missing_path_and_an_empty_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such trace file or directory"):
        load_traces(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no trace files \(\*\.json\)"):
        load_traces(tmp_path)


def test_zones_with_different_ticks_cannot_be_replayed_together(tmp_path: Path) -> None:
    for name, gap in (("us-west-2a_x.json", 60), ("us-west-2b_x.json", 120)):
        (tmp_path / name).write_text(json.dumps({"metadata": {"gap_seconds": gap}, "data": [1]}))
    with pytest.raises(InputError, match=r"different metadata\.gap_seconds"):
        load_traces(tmp_path)
