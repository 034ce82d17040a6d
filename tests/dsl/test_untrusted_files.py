"""Policy files arrive in pull requests: the loader and the policy commands treat them as
untrusted input. Real files on disk (links, a FIFO, /proc), because that is where the attacks
are; each test names what the code before it did."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyplan.cli.main import cli
from skyplan.dsl import Vocabulary, codes, load
from skyplan.dsl.loader import MAX_BYTES, MAX_RULES

SECRET = "SKYPLAN_TEST_SECRET_VALUE"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def only_error(path: Path) -> tuple[str, str, int | None]:
    (error,) = load([path], Vocabulary()).errors
    return error.code, error.message, error.span.line


@pytest.mark.parametrize(
    "target, why",
    [
        ("/proc/self/environ", "not absolute"),  # its content was printed in the syntax error
        ("../outside.policy", "outside the policy root"),
        ("sub/../../outside.policy", "outside the policy root"),
        ("notes.txt", "only .policy files"),
    ],
)
def test_an_import_is_a_relative_policy_file_inside_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, why: str
) -> None:
    monkeypatch.setenv(SECRET, SECRET)
    write(tmp_path / "outside.policy", 'deny "x" spot\n')
    write(tmp_path / "root" / "notes.txt", "not a policy\n")
    main = write(tmp_path / "root" / "main.policy", f'deny "y" spot\nimport "{target}"\n')
    code, message, line = only_error(main)
    assert (code, line) == (codes.IMPORT_OUTSIDE_ROOT, 2)
    assert why in message
    assert SECRET not in message


def test_a_link_out_of_the_root_is_refused_but_one_inside_it_is_followed(tmp_path: Path) -> None:
    write(tmp_path / "secret.policy", 'deny "x" spot\n')
    write(tmp_path / "root" / "base.policy", 'deny "base" spot\n')
    os.symlink(tmp_path / "secret.policy", tmp_path / "root" / "out.policy")
    os.symlink(tmp_path / "root" / "base.policy", tmp_path / "root" / "in.policy")
    out = write(tmp_path / "root" / "a.policy", 'import "out.policy"\n')
    assert only_error(out)[0] == codes.IMPORT_OUTSIDE_ROOT  # was read and merged
    inside = write(tmp_path / "root" / "b.policy", 'import "in.policy"\n')
    loaded = load([inside], Vocabulary())
    assert loaded.errors == [] and loaded.policy is not None
    assert [r.name for r in loaded.policy.rules] == ["base"]


def test_a_fifo_is_refused_at_once_instead_of_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.policy")  # reading it hung for ever
    main = write(tmp_path / "main.policy", 'import "pipe.policy"\n')
    code, message, _ = only_error(main)
    assert code == codes.IMPORT_OUTSIDE_ROOT
    assert message.endswith("pipe.policy': not a regular file")


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = write(tmp_path / "big.policy", "#" * (MAX_BYTES + 1))
    code, message, _ = only_error(big)
    assert code == codes.TOO_COMPLEX and "larger than 1 MiB" in message


def test_bytes_that_are_not_utf8_are_a_located_error(tmp_path: Path) -> None:
    # Was "cannot read ...: 'utf-8' codec can't decode byte 0xff in position 26" with no line.
    bad = write(tmp_path / "bad.policy", b'policy "p" version 1\n# hi \xff there\n')
    (error,) = load([bad], Vocabulary()).errors
    assert (error.code, error.span.line, error.span.col) == (codes.SYNTAX, 2, 6)
    assert error.message == "not UTF-8 text: byte 0xff cannot be read"


def test_a_byte_order_mark_is_not_a_syntax_error(tmp_path: Path) -> None:
    bom = write(tmp_path / "bom.policy", '\ufeffpolicy "p" version 1\ndeny "x" spot\n')
    loaded = load([bom], Vocabulary())  # was SP100 "unexpected character '\ufeff'"
    assert loaded.errors == [] and loaded.policy is not None


def test_deep_nesting_is_a_located_error_not_a_crash(tmp_path: Path) -> None:
    # 400 parentheses were a RecursionError (exit 70 from the CLI).
    deep = write(tmp_path / "deep.policy", 'deny "x" ' + "(" * 400 + "spot" + ")" * 400 + "\n")
    result = CliRunner().invoke(cli, ["policy", "check", str(deep)])
    assert result.exit_code == 1, result.output
    assert "deep.policy:1:" in result.output and "SP118 too-complex" in result.output
    fine = write(tmp_path / "fine.policy", 'deny "x" ' + "(" * 60 + "spot" + ")" * 60 + "\n")
    assert load([fine], Vocabulary()).errors == []


def test_fmt_reads_as_the_loader_does_and_leaves_what_it_cannot_read_as_it_was(
    tmp_path: Path,
) -> None:
    # A non-UTF-8 file was exit 70; a FIFO hung fmt for ever.
    data = b'deny "x"   spot\n# \xff\n'
    bad = write(tmp_path / "bad.policy", data)
    os.mkfifo(tmp_path / "pipe.policy")
    result = CliRunner().invoke(cli, ["policy", "fmt", str(bad), str(tmp_path / "pipe.policy")])
    assert result.exit_code == 1
    assert "bad.policy:2:3: error SP100 syntax-error: not UTF-8 text" in result.output
    assert "pipe.policy': not a regular file" in result.output
    assert bad.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.policy", "pipe.policy"]


def test_policy_test_finds_tests_by_parsing_and_fails_on_a_file_that_does_not_parse(
    tmp_path: Path,
) -> None:
    # Files were chosen by the text `test `: `test"x"` was never run, and a broken file
    # without that text was skipped, so the run passed.
    write(
        tmp_path / "tight.policy",
        'deny "no spot" spot\ntest"spot is denied"{ given { use_spot: true } expect denied }\n',
    )
    result = CliRunner().invoke(cli, ["policy", "test", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "spot is denied" in result.output
    write(tmp_path / "zz-broken.policy", 'deny "x" spot spot\n')
    result = CliRunner().invoke(cli, ["policy", "test", str(tmp_path)])
    assert result.exit_code != 0
    assert "zz-broken.policy:1:" in result.output


def test_a_very_long_pattern_is_a_located_error_not_a_regex_failure(tmp_path: Path) -> None:
    # 90,000 characters after `~` checked clean, then `plan` failed inside Polars' regex
    # compiler with the whole expression printed.
    long = write(tmp_path / "long.policy", 'require "r" region ~ "' + "*a?" * 30_000 + '*b"\n')
    code, message, line = only_error(long)
    assert (code, line) == (codes.TOO_COMPLEX, 1)
    assert message.startswith("a pattern of 90,002 characters (at most 256)")
    fine = write(tmp_path / "fine.policy", 'require "r" region ~ "' + "*a" * 100 + '*"\n')
    assert load([fine], Vocabulary()).errors == []


def test_more_rules_than_the_limit_is_one_error_at_the_first_rule_past_it(tmp_path: Path) -> None:
    # There was no limit; the count is over the files a policy imports, too.
    write(tmp_path / "half.policy", "".join(f'deny "a{i}" spot\n' for i in range(MAX_RULES // 2)))
    rest = MAX_RULES - MAX_RULES // 2
    main = write(
        tmp_path / "main.policy",
        'import "half.policy"\n' + "".join(f'deny "b{i}" spot\n' for i in range(rest + 2)),
    )
    code, message, line = only_error(main)
    assert (code, line) == (codes.TOO_COMPLEX, rest + 2)
    assert message.startswith("more than 10,000 rules")


def test_a_request_pattern_built_to_backtrack_plans_at_once(tmp_path: Path) -> None:
    # `when task.name ~ "*a*a…*b"` on a long name never finished planning: the row-by-row
    # evaluator used a backtracking regex.
    pattern = "*a" * 30 + "*b"
    policy = write(
        tmp_path / "p.policy", f'require "gcp" when task.name ~ "{pattern}": cloud == "gcp"\n'
    )

    def cloud(name: str) -> str:
        task = write(tmp_path / "task.yaml", f"name: {name}\nresources:\n  accelerators: A100:8\n")
        result = CliRunner().invoke(cli, ["plan", str(task), "--policy", str(policy), "--json"])
        assert result.exit_code == 0, result.output
        return str(json.loads(result.output)["placements"][0]["cloud"])

    assert cloud("a" * 40) != "gcp"  # the rule does not apply: the cheapest offer
    assert cloud("a" * 40 + "b") == "gcp"
