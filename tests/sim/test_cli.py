"""`skyplan sim jobs`: a table or JSON, a PNG on request, exit 2 on bad input (no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from skyplan.cli.main import cli
from tests.sim.conftest import TINY

FAST = ["--duration", "8h", "--deadline", "10h", "--starts", "4"]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["sim", "jobs", *map(str, args)], catch_exceptions=False)


def test_the_table_compares_every_strategy_with_the_optimum() -> None:
    result = run("--trace", TINY, *FAST)
    assert result.exit_code == 0, result.output
    for name in ("eager-next-region", "uniform-progress", "regional-progress", "omniscient"):
        assert name in result.output
    assert "all on demand: $" in result.output


def test_json_shape() -> None:
    result = run("--trace", TINY, *FAST, "--strategy", "uniform-progress", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"job", "trace_sets", "starts", "seed", "rows", "plot"}
    assert data["trace_sets"] == [["us-east-1b_v100_1", "us-west-2a_v100_1"]]
    assert [r["strategy"] for r in data["rows"]] == ["uniform-progress", "omniscient-optimum"]
    up = data["rows"][0]
    assert up["runs"] == 4 and up["deadlines_met"] == 4
    assert set(up) == {
        "strategy",
        "runs",
        "savings_pct",
        "deadlines_met",
        "mean_spot_hours",
        "mean_ondemand_hours",
        "mean_recoveries",
        "mean_cost",
        "unfinished",
    }
    assert data["job"]["all_on_demand_cost"] == pytest.approx(8.2 * 3.06)


def test_single_zone_replays_each_file(tmp_path: Path) -> None:
    result = run("--trace", TINY, *FAST, "--single-zone", "--strategy", "failover", "--json")
    assert json.loads(result.output)["rows"][0]["runs"] == 8


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "costs.png"
    result = run("--trace", TINY, *FAST, "--strategy", "all", "--plot", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--strategy", "unifrom"], "did you mean 'uniform-progress'?", id="strategy"),
        pytest.param(["--duration", "-3h"], "--duration must be a duration", id="negative"),
        pytest.param(["--duration", "soon"], "--duration must be a duration", id="not-a-duration"),
        pytest.param(["--deadline", "7h"], "--deadline", id="deadline-before-duration"),
        pytest.param(["--starts", "1.5"], "--starts", id="non-integer-starts"),
        pytest.param(["--deadline", "200h"], "shorter than the deadline", id="trace-too-short"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(args: list[str], message: str) -> None:
    result = run("--trace", TINY, *FAST, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_bad_trace_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "us-west-2a_x.json"
    bad.write_text('{"metadata": {"gap_seconds": 600}, "data": [1, -2]}')
    result = run("--trace", bad, *FAST)
    assert result.exit_code == 2
    assert f"{bad}: data[1]: must be a non-negative integer, got -2" in result.output
