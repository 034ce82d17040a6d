"""The formatter and the rendered errors, against golden files.

- `golden/<name>.policy` formatted must equal `golden/<name>.policy.formatted`;
- `golden/bad/<name>.policy` loaded must render exactly `golden/bad/<name>.policy.error`
  (files under `golden/bad/lib/` are only imported).

Regenerate the expected files with `SKYPLAN_UPDATE_GOLDEN=1 pytest tests/dsl/test_formatter.py`,
then read the diff: a golden file is a specification, not a snapshot to accept blindly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skyplan.dsl import Vocabulary, format_text, load, parse
from skyplan.dsl.formatter import expr as format_expr
from skyplan.errors import PolicyError

GOLDEN = Path(__file__).parent / "golden"
BAD = GOLDEN / "bad"
UPDATE_GOLDEN = os.environ.get("SKYPLAN_UPDATE_GOLDEN") == "1"
VOCAB = Vocabulary(
    accelerators=("A100", "A100-80GB", "H100", "H200", "L4", "T4"),
    regions=("us-east-1", "eu-west-1", "us-central1"),
)

FORMAT_CASES = sorted(GOLDEN.glob("*.policy"))
ERROR_CASES = sorted(BAD.glob("*.policy"))


def _compare_or_update(expected_path: Path, actual: str) -> None:
    if UPDATE_GOLDEN:
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), f"run with SKYPLAN_UPDATE_GOLDEN=1 to create {expected_path}"
    assert actual == expected_path.read_text(encoding="utf-8")


def test_there_are_golden_files() -> None:
    assert len(FORMAT_CASES) >= 5
    assert len(ERROR_CASES) >= 8


@pytest.mark.parametrize("path", FORMAT_CASES, ids=lambda p: p.stem)
def test_formatting_matches_the_golden_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    formatted = format_text(text, path.name)
    _compare_or_update(path.with_name(path.name + ".formatted"), formatted)
    assert format_text(formatted) == formatted, "formatting is not idempotent"
    assert parse(formatted) == parse(text), "formatting changed the meaning"
    assert len(parse(formatted).comments) == len(parse(text).comments), "a comment was lost"


def _read_bad(path: Path) -> str:
    """Files relative to golden/bad, whatever the working directory."""
    return (BAD / path).read_text(encoding="utf-8")


@pytest.mark.parametrize("path", ERROR_CASES, ids=lambda p: p.stem)
def test_errors_render_as_in_the_golden_file(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # names stay relative: nothing resolves to a real file
    loaded = load([path.name], VOCAB, read=_read_bad)
    assert loaded.errors, f"{path.name} should not load"
    assert loaded.policy is None
    rendered = str(PolicyError(loaded.diagnostics, loaded.sources)) + "\n"
    _compare_or_update(path.with_name(path.name + ".error"), rendered)


# -- the canonical form, case by case -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "", id="empty-file"),
        pytest.param("\n\n  \n", "", id="only-blank-lines"),
        pytest.param("# just a comment", "# just a comment\n", id="only-a-comment"),
        pytest.param('deny  "x"   spot', 'deny "x" spot\n', id="single-spaces"),
        pytest.param(
            'deny "x" spot\n\n\n\ndeny "y" spot',
            'deny "x" spot\n\ndeny "y" spot\n',
            id="blank-lines-collapse",
        ),
        pytest.param(
            'policy "p"\ndeny "x" spot',
            'policy "p"\n\ndeny "x" spot\n',
            id="blank-line-after-header",
        ),
        pytest.param(
            'deny "x"\n  spot\n  level soft',
            'deny "x" spot level soft\n',
            id="one-statement-one-line",
        ),
        pytest.param(
            'deny "x" when task.team=="a":spot',
            'deny "x" when task.team == "a": spot\n',
            id="when-colon",
        ),
        pytest.param("let a = count>=1.50", "let a = count >= 1.5\n", id="numbers-shortest"),
        pytest.param('prefer "p" spot bonus $2.0/h', 'prefer "p" spot bonus $2/h\n', id="money"),
        pytest.param(
            "deny \"x\" region == 'a'".replace("'", '"'), 'deny "x" region == "a"\n', id="strings"
        ),
        pytest.param(
            'deny "tab\\tnewline\\n" spot', 'deny "tab\\tnewline\\n" spot\n', id="string-escapes"
        ),
        pytest.param(
            'deny "é" region == "zürich"', 'deny "é" region == "zürich"\n', id="unicode-kept"
        ),
        pytest.param(
            "failover next-cheapest ,blocklist zone on capacity",
            "failover next-cheapest, blocklist zone on capacity\n",
            id="failover",
        ),
        pytest.param(
            "objective minimize cost then time",
            "objective minimize cost then time\n",
            id="objective",
        ),
    ],
)
def test_canonical_form(text: str, expected: str) -> None:
    assert format_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("(spot and spot) or spot", "spot and spot or spot", id="and-inside-or"),
        pytest.param("(spot or spot) and spot", "(spot or spot) and spot", id="or-inside-and"),
        pytest.param("not (spot or spot)", "not (spot or spot)", id="or-inside-not"),
        pytest.param("not (spot and spot)", "not (spot and spot)", id="and-inside-not"),
        pytest.param("not (count > 1)", "not count > 1", id="compare-inside-not"),
        pytest.param("(not spot) and spot", "not spot and spot", id="not-inside-and"),
        pytest.param("(not spot) == spot", "(not spot) == spot", id="not-as-operand"),
        pytest.param("(count > 1) == spot", "(count > 1) == spot", id="compare-as-operand"),
        pytest.param("(region in {a}) == spot", "(region in {a}) == spot", id="in-as-operand"),
        pytest.param('(region ~ "a") == spot', '(region ~ "a") == spot', id="match-as-operand"),
        pytest.param("((((spot))))", "spot", id="deep-parentheses"),
        pytest.param("lower((cloud))", "lower(cloud)", id="call-argument"),
        pytest.param("f(spot or spot, (spot))", "f(spot or spot, spot)", id="call-arguments"),
    ],
)
def test_parentheses_are_minimal(text: str, expected: str) -> None:
    (stmt,) = parse(f'deny "x" {text}').statements
    assert format_expr(stmt.condition) == expected  # type: ignore[union-attr]
    assert format_text(f'deny "x" {text}') == f'deny "x" {expected}\n'


def test_format_text_raises_policy_error_on_bad_input() -> None:
    with pytest.raises(PolicyError) as caught:
        format_text("deny x", "bad.policy")
    assert caught.value.diagnostics[0].code == "SP100"


# -- comments inside statements that span lines ---------------------------------------------------


def test_comments_inside_a_test_block_stay_inside_it() -> None:
    text = (
        'deny "a" spot\n'
        'test "t" {\n'
        "  # why this case matters\n"
        '  given { team: "a" }  # the team\n'
        '  expect denied by "a"\n'
        "}\n"
        'test "u" { given {} expect placed }\n'
    )
    assert format_text(text) == (
        'deny "a" spot\n'
        'test "t" {\n'
        "  # why this case matters\n"
        '  given { team: "a" }  # the team\n'
        '  expect denied by "a"\n'
        "}\n"
        'test "u" {\n'
        "  given {}\n"
        "  expect placed\n"
        "}\n"
    )


def test_a_blank_line_between_a_comment_and_the_next_statement_is_kept() -> None:
    text = '# About this file.\n\npolicy "p"\n\n# About x.\n\ndeny "x" spot\n'
    assert format_text(text) == text


def test_a_comment_inside_a_multi_line_rule_is_not_moved_past_it() -> None:
    text = 'deny "x" spot or\n  # the second reason\n  region == "a"\nlet y = spot\n'
    formatted = format_text(text)
    lines = formatted.splitlines()
    assert lines.index("# the second reason") < lines.index('deny "x" spot or region == "a"')
    assert format_text(formatted) == formatted


# -- what formatting must never do ---------------------------------------------------------------


@pytest.mark.parametrize(
    "separator",
    [
        pytest.param("\u2028", id="line-separator"),
        pytest.param("\u2029", id="paragraph-separator"),
        pytest.param("\x85", id="next-line"),
        pytest.param("\x0c", id="form-feed"),
    ],
)
def test_a_line_break_character_other_than_newline_is_refused_where_it_stands(
    separator: str,
) -> None:
    # An editor shows these as a line break (or nothing) while the parser reads on: what a
    # reviewer sees would not be what is enforced, so neither parse nor fmt accepts them.
    text = f'deny "a{separator}b" spot  # keep me\n'
    for read in (parse, format_text):
        with pytest.raises(PolicyError) as raised:
            read(text)
        (error,) = raised.value.diagnostics
        assert (error.code, error.span.line, error.span.col) == ("SP119", 1, 8)


def test_an_escaped_line_separator_formats_idempotently() -> None:
    text = 'deny "a\\u2028b" spot  # keep me\n'
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    assert "# keep me" in format_text(formatted)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('deny "x" count < 1e400', id="number"),
        pytest.param('deny "x" count in {1e400}', id="set-item"),
        pytest.param('prefer "p" spot bonus 1e400%', id="percent"),
        pytest.param('deny "x" price < $1e400/h', id="money"),
    ],
)
def test_an_overflowing_number_is_rejected_or_round_trips(text: str) -> None:
    try:
        formatted = format_text(text)
    except PolicyError:
        return  # rejecting it with a diagnostic is fine
    assert parse(formatted) == parse(text)
    assert format_text(formatted) == formatted


def test_comments_on_every_line_of_a_multi_line_given_or_expect_are_kept() -> None:
    # The comments after `true,`, after `"A100:8"` and on the `or` line were dropped.
    text = (
        'deny "no spot" spot\n\ntest "t" {\n  given {\n    use_spot: true,  # the request\n'
        '    accelerators: "A100:8"  # eight\n  }\n  expect placed on cloud == "aws"\n'
        '    or cloud == "gcp"  # either\n    or cloud == "azure"\n}\n'
    )
    formatted = format_text(text)
    for comment in ("# the request", "# eight", "# either"):
        assert comment in formatted
    assert format_text(formatted) == formatted
    assert parse(formatted).statements == parse(text).statements
