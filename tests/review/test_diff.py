"""`policy diff`: what a change to a policy newly allows or denies, and when it loosens a hard
rule (exit 1), naming the rule — over a tiny catalog, so every count is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import skyplan
from skyplan.catalog import schema
from skyplan.cli.main import cli
from tests.solver.factories import gpu_offer, make_catalog

CATALOG = make_catalog(
    gpu_offer("A100", 8, **{schema.CLOUD: "aws", schema.REGION: "us-east-1", schema.PRICE: 30.0}),
    gpu_offer("T4", 1, **{schema.CLOUD: "aws", schema.REGION: "us-east-1", schema.PRICE: 0.5}),
    gpu_offer("T4", 1, **{schema.CLOUD: "gcp", schema.REGION: "us-central1", schema.PRICE: 0.4}),
)

INTERNS_HARD = 'deny "no big GPUs for interns" when task.team == "interns": gpus > 4\n'


def diff(tmp_path: Path, old: str, new: str) -> skyplan.PolicyDiff:
    (tmp_path / "old.policy").write_text(old)
    (tmp_path / "new.policy").write_text(new)
    return skyplan.diff_policy(
        [tmp_path / "old.policy"], [tmp_path / "new.policy"], catalog=CATALOG
    )


@pytest.mark.parametrize("level", ["soft", "advisory"])
def test_a_hard_rule_turned_soft_or_advisory_loosens_it_and_is_named(
    tmp_path: Path, level: str
) -> None:
    # The rule only applies to a team no test mentions: the context comes from its `when`.
    result = diff(tmp_path, INTERNS_HARD, INTERNS_HARD.replace("\n", f" level {level}\n"))
    assert result.loosens_hard_rule
    assert result.loosened_rules == ["no big GPUs for interns"]
    interns = [ch for ch in result.changes if ch.context.team == "interns"]
    assert [ch.loosened for ch in interns] == [1]  # the A100:8 offer


def test_a_soft_rule_turned_hard_tightens_and_loosens_nothing(tmp_path: Path) -> None:
    soft = INTERNS_HARD.replace("\n", " level soft\n")
    result = diff(tmp_path, soft, INTERNS_HARD)
    assert not result.loosens_hard_rule
    assert result.loosened_rules == []


def test_a_dropped_hard_rule_is_named_but_an_unrelated_one_is_not(tmp_path: Path) -> None:
    gcp = 'require "aws only" cloud == "aws"\n'
    result = diff(tmp_path, INTERNS_HARD + gcp, INTERNS_HARD)
    assert result.loosens_hard_rule
    assert result.loosened_rules == ["aws only"]


def test_a_raised_hard_quota_is_named(tmp_path: Path) -> None:
    quota = 'quota "team GPUs" sum(gpus) <= {n} per task.team\n'
    result = diff(tmp_path, quota.format(n=8), quota.format(n=16))
    assert result.loosened_rules == ["team GPUs"]


def test_the_cli_exits_1_and_names_the_loosened_rule(tmp_path: Path) -> None:
    (tmp_path / "old.policy").write_text(INTERNS_HARD)
    (tmp_path / "new.policy").write_text(INTERNS_HARD.replace("\n", " level soft\n"))
    result = CliRunner().invoke(
        cli, ["policy", "diff", str(tmp_path / "old.policy"), str(tmp_path / "new.policy")]
    )
    assert result.exit_code == 1, result.output
    assert "context team=interns" in result.output
    assert "loosens a hard rule: 'no big GPUs for interns'" in result.output
