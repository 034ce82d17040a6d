"""What the CLI prints of user text (task and rule names, policy source) is shown as written:
never read as rich markup, and never a terminal escape sequence. Each test names what the
code before it did."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.table import Table
from rich.text import Text

from skyplan.cli import render
from skyplan.cli.main import cli
from skyplan.cli.render import plain_table, safe

ESC = "\x1b"


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def test_a_task_name_with_brackets_and_an_escape_is_printed_as_written(tmp_path: Path) -> None:
    # Was "task train x<ESC>[2J": rich read "[v2] [bold]" as markup and the ESC cleared the
    # terminal.
    task = tmp_path / "task.yaml"
    task.write_text('name: "train[v2] [bold]x\\x1b[2J"\nresources:\n  accelerators: A100:8\n')
    output = run("plan", str(task))
    assert "task train[v2] [bold]x\\x1b[2J: accelerators=A100:8" in output
    assert any(line.startswith("train[v2] [bold]x\\x1b[2J: ") for line in output.splitlines())
    assert ESC not in output


def test_a_rule_name_written_with_escapes_cannot_retitle_the_terminal(tmp_path: Path) -> None:
    # A rule name may hold any character through \u escapes; it was printed raw in the denial.
    policy = tmp_path / "p.policy"
    policy.write_text('deny "a\\u001b]0;pwned\\u0007 [red]b\\u202e" spot\n')
    task = tmp_path / "task.yaml"
    task.write_text("resources:\n  accelerators: A100:8\n  use_spot: true\n")
    output = run("plan", str(task), "--policy", str(policy))
    assert 'deny "a\\x1b]0;pwned\\x07 [red]b\\u202e" (hard)' in output
    assert ESC not in output and "\x07" not in output and "\u202e" not in output


def test_safe_keeps_text_and_layout_and_writes_out_what_a_terminal_acts_on() -> None:
    assert safe("naïve 👍 [x]\tcol\nnext\r\n") == "naïve 👍 [x]\tcol\nnext\\x0d\n"
    assert safe("\x1b[31m\x9b\x7f\u200b\u2028\u2066") == "\\x1b[31m\\x9b\\x7f\\u200b\\u2028\\u2066"


def test_piped_tables_are_plain_columns(tmp_path: Path) -> None:
    # Piped output was the terminal's box-drawn table without colour.
    task = tmp_path / "task.yaml"
    task.write_text("resources:\n  accelerators: A100:8\n")
    output = run("plan", str(task))
    assert not set("│┃━─┏┗") & set(output)
    header = next(line for line in output.splitlines() if "INSTANCE" in line)
    assert header.split() == [
        "INFRA",
        "INSTANCE",
        "vCPUs",
        "Mem(GiB)",
        "GPUS",
        "SPOT",
        "NODES",
        "$/h",
    ]


def test_a_piped_table_is_written_as_lines_in_columns_not_laid_out_by_rich(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Piped, rich laid out every table (10,000 rows of `queue -a` in 8.8 s) and cut rows at
    # 200 characters.
    table = Table("ID", "NAME", "COST", title="cluster a")
    table.columns[2].justify = "right"
    table.add_row("1", "x", "1.5")
    table.add_row("22", Text("n" * 300), "10.25")
    table.add_row("3", "\x1b]0;owned\x07", "0")
    escape = "\x1b]0;owned\x07"
    assert plain_table(table) == (
        "cluster a\n"
        f"ID  {'NAME':<300}   COST\n"
        f"1   {'x':<300}    1.5\n"
        f"22  {'n' * 300}  10.25\n"
        f"3   {escape:<300}      0\n"
    )
    render.console().print(table)
    printed = capsys.readouterr().out
    assert "\\x1b]0;owned\\x07" in printed and "\x1b" not in printed
