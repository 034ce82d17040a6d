"""The policy commands as reviewers use them: `check` of several files, `explain` of a denied
request. Each test names what the code before it did."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from skyplan.cli.main import cli


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_of_several_files_checks_them_together_as_plan_merges_them(tmp_path: Path) -> None:
    # Each file was checked alone: `check a b` passed while `plan --policy a --policy b`
    # refused b for raising a's hard quota.
    a = write(tmp_path / "a.policy", 'quota "team gpus" sum(gpus) <= 8 per task.team\n')
    b = write(tmp_path / "b.policy", 'quota "team gpus" sum(gpus) <= 64 per task.team\n')
    result = CliRunner().invoke(cli, ["policy", "check", str(a), str(b)])
    assert result.exit_code == 1
    assert "b.policy:1:1: error SP109 loosens-hard-rule" in result.output
    assert result.output.count("SP109") == 1
    # A directory's files are each a policy of their own: not merged.
    assert CliRunner().invoke(cli, ["policy", "check", str(tmp_path)]).exit_code == 0


def test_explain_of_a_denied_request_shows_every_rule_and_where_it_is_written(
    tmp_path: Path,
) -> None:
    # A denied request printed only the error: no rule table, and no rule's file anywhere.
    write(tmp_path / "base.policy", 'deny "no govcloud" region ~ "us-gov-*"\n')
    main = write(
        tmp_path / "main.policy",
        'import "base.policy"\n\ndeny "no spot" spot\nprefer "aws" cloud == "aws" bonus 5%\n',
    )
    task = write(tmp_path / "task.yaml", "resources:\n  accelerators: A100:8\n  use_spot: true\n")
    args = ["policy", "explain", str(main), "--task", str(task)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    # Piped, the table is plain columns: each rule's row starts with its name.
    rows = {
        name: line
        for line in result.output.splitlines()
        for name in ("no spot", "no govcloud", "aws")
        if line.startswith(name + " ")
    }
    assert "main.policy:3" in rows["no spot"] and "deny" in rows["no spot"]
    assert "base.policy:1" in rows["no govcloud"]
    assert "nothing was placed to judge" in rows["aws"]
    assert 'deny "no spot" (hard): removed' in result.output
    as_json = CliRunner().invoke(cli, [*args, "--json"])
    assert as_json.exit_code == 1
    verdicts = {v["name"]: v for v in json.loads(as_json.output)["verdicts"]}
    assert verdicts["no spot"]["origin"]["line"] == 3 and verdicts["no spot"]["removed"] > 0
