"""`skyplan.dsl.parse`: policy text → the typed AST, as a specification.

Every construct of the grammar is a row: its text and the AST it must parse to (spans are left
out of equality). Then where things are (spans), comments, and what a syntax error says: code
SP100, file:line:col, the line with a caret, what was expected in words, and a did-you-mean for a
misspelled keyword.
"""

from __future__ import annotations

import re

import pytest

from skyplan.dsl import ast, parse
from skyplan.dsl.parser import _parser
from skyplan.errors import PolicyError
from skyplan.source import Span

P = ast.Path


def path(dotted: str) -> ast.Path:
    return ast.Path(tuple(dotted.split(".")))


def rule(condition: ast.Expr, *, when: ast.Expr | None = None, level: str | None = None):
    return ast.Rule("deny", "r", when, condition, level)


def only(text: str) -> ast.Statement:
    tree = parse(text)
    assert len(tree.statements) == 1, tree.statements
    return tree.statements[0]


def condition_of(text: str) -> ast.Expr:
    stmt = only(f'deny "r" {text}')
    assert isinstance(stmt, ast.Rule)
    return stmt.condition


# -- statements ---------------------------------------------------------------------------------

STATEMENTS = [
    pytest.param('import "base.policy"', ast.Import("base.policy"), id="import"),
    pytest.param(
        "let gpu = count > 0", ast.Let("gpu", ast.Compare(">", P(("count",)), ast.Num(0))), id="let"
    ),
    pytest.param(
        'require "r" spot', ast.Rule("require", "r", None, P(("spot",)), None), id="require"
    ),
    pytest.param('deny "r" spot', ast.Rule("deny", "r", None, P(("spot",)), None), id="deny"),
    pytest.param(
        'deny "r" when task.team == "interns": spot level hard',
        ast.Rule(
            "deny",
            "r",
            ast.Compare("==", path("task.team"), ast.Str("interns")),
            P(("spot",)),
            "hard",
        ),
        id="deny-when-level",
    ),
    pytest.param(
        'deny "r" when task.team == "a": hourly_cost > $5/h',
        rule(
            ast.Compare(">", P(("hourly_cost",)), ast.Money(5)),
            when=ast.Compare("==", path("task.team"), ast.Str("a")),
        ),
        id="when-then-hourly-cost",
    ),
    pytest.param('deny "r" spot level soft', rule(P(("spot",)), level="soft"), id="level-soft"),
    pytest.param(
        'deny "r" spot level advisory', rule(P(("spot",)), level="advisory"), id="level-advisory"
    ),
    pytest.param(
        'prefer "on-prem" cloud == "kubernetes" bonus $2/h',
        ast.Prefer(
            "on-prem",
            None,
            ast.Compare("==", P(("cloud",)), ast.Str("kubernetes")),
            ast.Money(2),
        ),
        id="prefer-money",
    ),
    pytest.param(
        'prefer "cheap" when task.kind == job: spot bonus 5%',
        ast.Prefer(
            "cheap",
            ast.Compare("==", path("task.kind"), P(("job",))),
            P(("spot",)),
            ast.Percent(5),
        ),
        id="prefer-when-percent",
    ),
    pytest.param(
        'quota "team GPUs" sum(gpus) <= 64 per task.team',
        ast.Quota("team GPUs", None, "gpus", ast.Num(64), path("task.team"), None),
        id="quota",
    ),
    pytest.param(
        'quota "q" when task.labels.env == "dev": sum(vcpus) <= 8 per task.user level soft',
        ast.Quota(
            "q",
            ast.Compare("==", path("task.labels.env"), ast.Str("dev")),
            "vcpus",
            ast.Num(8),
            path("task.user"),
            "soft",
        ),
        id="quota-when-level",
    ),
    pytest.param(
        'quota "q" sum(nodes) <= 2 per task.team',
        ast.Quota("q", None, "nodes", ast.Num(2), path("task.team"), None),
        id="quota-nodes",
    ),
    pytest.param(
        'quota "q" sum(memory) <= 512 per task.labels.project',
        ast.Quota("q", None, "memory", ast.Num(512), path("task.labels.project"), None),
        id="quota-memory-per-label",
    ),
    pytest.param(
        'budget "spend" hourly_cost <= $40/h per task.team',
        ast.Budget("spend", None, ast.Money(40), path("task.team"), None),
        id="budget",
    ),
    pytest.param(
        'budget "b" when task.kind == service: hourly_cost <= $2.5/h per task.user level advisory',
        ast.Budget(
            "b",
            ast.Compare("==", path("task.kind"), P(("service",))),
            ast.Money(2.5),
            path("task.user"),
            "advisory",
        ),
        id="budget-when-level",
    ),
    pytest.param("objective minimize cost", ast.Objective(("cost",)), id="objective"),
    pytest.param(
        "objective minimize cost then time", ast.Objective(("cost", "time")), id="objective-then"
    ),
    pytest.param(
        "failover same-region-first", ast.Failover("same-region-first", ()), id="failover"
    ),
    pytest.param(
        "failover next-cheapest, blocklist zone on capacity, region on quota, cloud on auth",
        ast.Failover(
            "next-cheapest",
            (
                ast.Block("zone", "capacity"),
                ast.Block("region", "quota"),
                ast.Block("cloud", "auth"),
            ),
        ),
        id="failover-blocklist",
    ),
    pytest.param(
        'test "t" { given { team: "interns", accelerators: "H100:8" } '
        'expect denied by "no big GPUs" }',
        ast.Test(
            "t",
            (ast.Pair("team", ast.Str("interns")), ast.Pair("accelerators", ast.Str("H100:8"))),
            (ast.ExpectDenied("no big GPUs"),),
        ),
        id="test-denied-by",
    ),
    pytest.param(
        'test "t" {\n  given { labels.env: "prod", num_nodes: 2, use_spot: false, }\n'
        '  expect placed on region ~ "eu-*"\n  expect cost <= $3/h\n  expect denied\n'
        "  expect placed\n}",
        ast.Test(
            "t",
            (
                ast.Pair("labels.env", ast.Str("prod")),
                ast.Pair("num_nodes", ast.Num(2)),
                ast.Pair("use_spot", ast.Bool(False)),
            ),
            (
                ast.ExpectPlaced(ast.Match(P(("region",)), (ast.Str("eu-*"),), False)),
                ast.ExpectCost(ast.Money(3)),
                ast.ExpectDenied(None),
                ast.ExpectPlaced(None),
            ),
        ),
        id="test-every-expectation",
    ),
    pytest.param(
        'test "t" { given {} expect placed }',
        ast.Test("t", (), (ast.ExpectPlaced(None),)),
        id="test-empty-given",
    ),
]


@pytest.mark.parametrize(("text", "expected"), STATEMENTS)
def test_each_statement_parses_to_its_ast(text: str, expected: ast.Statement) -> None:
    assert only(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", None, id="no-header"),
        pytest.param('policy "ml"', ast.Header("ml", None), id="header"),
        pytest.param('policy "ml" version 3', ast.Header("ml", 3), id="header-version"),
    ],
)
def test_header_is_optional_and_may_carry_a_version(text: str, expected: ast.Header) -> None:
    tree = parse(text)
    assert tree.header == expected
    assert tree.statements == ()


def test_a_whole_policy_keeps_its_statements_in_order() -> None:
    text = (
        'policy "ml-platform" version 1\n'
        'import "base.policy"\n'
        'let eu = region ~ ["eu-*", "europe-*"]\n'
        'require "eu" when task.labels.data == "eu": eu\n'
        "objective minimize cost then time\n"
    )
    tree = parse(text)
    assert tree.header == ast.Header("ml-platform", 1)
    assert [type(s) for s in tree.statements] == [ast.Import, ast.Let, ast.Rule, ast.Objective]


# -- expressions --------------------------------------------------------------------------------

EXPRESSIONS = [
    pytest.param("spot", P(("spot",)), id="field"),
    pytest.param("task.labels.env", path("task.labels.env"), id="dotted-path"),
    pytest.param('"x"', ast.Str("x"), id="string"),
    pytest.param(r'"a\"b\\c\n"', ast.Str('a"b\\c\n'), id="string-escapes"),
    pytest.param("8", ast.Num(8), id="integer"),
    pytest.param("-2.5", ast.Num(-2.5), id="negative-number"),
    pytest.param("$3.5/h", ast.Money(3.5), id="money"),
    pytest.param("true", ast.Bool(True), id="true"),
    pytest.param("false", ast.Bool(False), id="false"),
    pytest.param("count >= 2", ast.Compare(">=", P(("count",)), ast.Num(2)), id="compare"),
    *(
        pytest.param(f"gpus {op} 4", ast.Compare(op, P(("gpus",)), ast.Num(4)), id=f"op-{op}")
        for op in ("==", "!=", "<", "<=", ">", ">=")
    ),
    pytest.param(
        "price <= $2/h", ast.Compare("<=", P(("price",)), ast.Money(2)), id="compare-money"
    ),
    pytest.param(
        'accelerator in {H100, "A100-80GB", 8, -1.5}',
        ast.In(
            P(("accelerator",)),
            (
                ast.SetItem("H100", False),
                ast.SetItem("A100-80GB", True),
                ast.SetItem(8.0, False),
                ast.SetItem(-1.5, False),
            ),
            False,
        ),
        id="in-set-bare-quoted-numbers",
    ),
    pytest.param(
        "region not in {us-east-1,}",
        ast.In(P(("region",)), (ast.SetItem("us-east-1", False),), True),
        id="not-in-trailing-comma",
    ),
    pytest.param("cloud in {}", ast.In(P(("cloud",)), (), False), id="in-empty-set"),
    pytest.param(
        'region ~ "eu-*"',
        ast.Match(P(("region",)), (ast.Str("eu-*"),), False),
        id="match-one-pattern",
    ),
    pytest.param(
        'region ~ ["eu-*"]',
        ast.Match(P(("region",)), (ast.Str("eu-*"),), True),
        id="match-bracketed-one",
    ),
    pytest.param(
        'region ~ ["eu-*", "europe-*",]',
        ast.Match(P(("region",)), (ast.Str("eu-*"), ast.Str("europe-*")), True),
        id="match-list",
    ),
    pytest.param(
        'region ~ [\n  "eu-*"\n]',
        ast.Match(P(("region",)), (ast.Str("eu-*"),), True),
        id="match-bracketed-across-lines",
    ),
    pytest.param("not spot", ast.Not(P(("spot",))), id="not"),
    pytest.param("not not spot", ast.Not(ast.Not(P(("spot",)))), id="not-not"),
    pytest.param(
        'spot and arch == "arm64" and count > 1',
        ast.And(
            (
                P(("spot",)),
                ast.Compare("==", P(("arch",)), ast.Str("arm64")),
                ast.Compare(">", P(("count",)), ast.Num(1)),
            )
        ),
        id="and-is-flat",
    ),
    pytest.param("spot or spot or spot", ast.Or((P(("spot",)),) * 3), id="or-is-flat"),
    pytest.param(
        "spot or spot and not spot",
        ast.Or((P(("spot",)), ast.And((P(("spot",)), ast.Not(P(("spot",))))))),
        id="and-binds-tighter-than-or",
    ),
    pytest.param(
        "(spot or spot) and spot",
        ast.And((ast.Or((P(("spot",)), P(("spot",)))), P(("spot",)))),
        id="parentheses-group",
    ),
    pytest.param("((spot))", P(("spot",)), id="parentheses-vanish"),
    pytest.param(
        "not count > 2",
        ast.Not(ast.Compare(">", P(("count",)), ast.Num(2))),
        id="not-binds-looser-than-compare",
    ),
    pytest.param(
        'starts_with(instance_type, "p4")',
        ast.Call("starts_with", (P(("instance_type",)), ast.Str("p4"))),
        id="call",
    ),
    pytest.param("f()", ast.Call("f", ()), id="call-no-arguments"),
    pytest.param(
        'lower(region) == "eu"',
        ast.Compare("==", ast.Call("lower", (P(("region",)),)), ast.Str("eu")),
        id="call-in-compare",
    ),
]


@pytest.mark.parametrize(("text", "expected"), EXPRESSIONS)
def test_each_expression_parses_to_its_ast(text: str, expected: ast.Expr) -> None:
    assert condition_of(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("memory >= 64GiB", ast.Size(64, "GiB"), id="gib"),
        pytest.param("memory >= 1.5TiB", ast.Size(1.5, "TiB"), id="tib"),
        pytest.param("gpu_memory >= 80GB", ast.Size(80, "GB"), id="gb"),
        pytest.param("memory >= 2TB", ast.Size(2, "TB"), id="tb"),
        pytest.param("count >= 50%", ast.Percent(50), id="percent"),
    ],
)
def test_size_and_percent_literals_parse_in_expressions(text: str, expected: ast.Expr) -> None:
    cond = condition_of(text)
    assert isinstance(cond, ast.Compare)
    assert cond.right == expected


def test_size_literal_in_a_test_given() -> None:
    stmt = only('test "t" { given { memory: 64GiB } expect placed }')
    assert isinstance(stmt, ast.Test)
    assert stmt.given == (ast.Pair("memory", ast.Size(64, "GiB")),)


def test_size_converts_to_gib() -> None:
    assert ast.Size(64, "GiB").gib == 64
    assert ast.Size(1.5, "TiB").gib == 1536
    assert ast.Size(2, "TB").gib == 2048


# -- spans ----------------------------------------------------------------------------------------

SPANNED = (
    'policy "p" version 2\n'  # 1
    "\n"  # 2
    'import "base.policy"\n'  # 3
    "  let big = accelerator in {H100, A100}\n"  # 4
    'deny "interns" when task.team == "interns": big\n'  # 5
    'test "t" {\n'  # 6
    '  given { team: "interns" }\n'  # 7
    '  expect denied by "interns"\n'  # 8
    "}\n"  # 9
)


def test_statements_know_their_line_and_column() -> None:
    tree = parse(SPANNED, "p.policy")
    assert tree.header is not None
    assert tree.header.span == Span("p.policy", 1, 1)
    assert [s.span for s in tree.statements] == [
        Span("p.policy", 3, 1),
        Span("p.policy", 4, 3),
        Span("p.policy", 5, 1),
        Span("p.policy", 6, 1),
    ]


def test_expressions_know_their_line_and_column() -> None:
    tree = parse(SPANNED, "p.policy")
    let, deny, test = tree.statements[1:]
    assert isinstance(let, ast.Let)
    assert isinstance(let.expr, ast.In)
    assert let.expr.span == Span("p.policy", 4, 13)
    assert let.expr.item.span == Span("p.policy", 4, 13)
    assert [o.span for o in let.expr.options] == [Span("p.policy", 4, 29), Span("p.policy", 4, 35)]
    assert isinstance(deny, ast.Rule)
    assert isinstance(deny.when, ast.Compare)
    assert deny.when.span == Span("p.policy", 5, 21)
    assert deny.when.right.span == Span("p.policy", 5, 34)
    assert deny.condition.span == Span("p.policy", 5, 45)
    assert isinstance(test, ast.Test)
    assert test.given[0].span == Span("p.policy", 7, 11)
    assert test.expects[0].span == Span("p.policy", 8, 3)


def test_match_patterns_know_their_columns() -> None:
    cond = condition_of('region ~ ["eu-*", "us-*"]')
    assert isinstance(cond, ast.Match)
    assert [(p.span.line, p.span.col) for p in cond.patterns] == [(1, 20), (1, 28)]


def test_spans_name_the_file_they_came_from() -> None:
    tree = parse('deny "r" spot', "teams/ml.policy")
    assert tree.statements[0].span.file == "teams/ml.policy"
    assert str(tree.statements[0].span) == "teams/ml.policy:1:1"


def test_ast_equality_ignores_where_the_text_sits() -> None:
    here = parse('let a = spot\ndeny "r" when task.team == "x": a or count > 2 level soft')
    there = parse(
        "\n\n   let a   =\n spot\n\n\n"
        'deny "r"\n  when task.team == "x" :\n    a or count > 2\n  level soft\n',
        "other.policy",
    )
    assert here == there
    assert here.statements[0].span != there.statements[0].span


def test_ast_equality_ignores_comments() -> None:
    assert parse('deny "r" spot') == parse('# why\ndeny "r" spot  # because\n')


def test_ast_equality_still_sees_differences() -> None:
    assert parse('deny "r" spot') != parse('require "r" spot')
    assert parse('deny "r" region ~ "a"') != parse('deny "r" region ~ ["a"]')
    assert parse('deny "r" count in {8}') != parse('deny "r" count in {"8"}')


# -- comments ---------------------------------------------------------------------------------


def test_comments_are_collected_own_line_or_inline() -> None:
    text = (
        "# file comment\n"
        'policy "p"  # after the header\n'
        "\n"
        "   # indented, still its own line\n"
        'deny "r" spot # trailing\n'
    )
    comments = parse(text, "c.policy").comments
    assert [(c.text, c.own_line, c.span.line, c.span.col) for c in comments] == [
        ("# file comment", True, 1, 1),
        ("# after the header", False, 2, 13),
        ("# indented, still its own line", True, 4, 4),
        ("# trailing", False, 5, 15),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('deny "a # b" spot', [], id="hash-in-string"),
        pytest.param('deny "a # b" spot  # real', ["# real"], id="hash-in-string-then-comment"),
        pytest.param(r'deny "a \" # b" spot', [], id="escaped-quote-keeps-string-open"),
        pytest.param(r'deny "a \\" spot # c', ["# c"], id="escaped-backslash-closes-string"),
        pytest.param('deny "r" region ~ ["#1", "#2"] # c', ["# c"], id="hashes-in-patterns"),
        pytest.param('deny "r" spot ## double', ["## double"], id="double-hash"),
        pytest.param('deny "r" spot #', ["#"], id="empty-comment"),
    ],
)
def test_a_hash_inside_a_string_is_not_a_comment(text: str, expected: list[str]) -> None:
    assert [c.text for c in parse(text).comments] == expected


def test_comment_text_drops_trailing_whitespace() -> None:
    (comment,) = parse('deny "r" spot   # note   \t\n').comments
    assert comment.text == "# note"


# -- syntax errors -----------------------------------------------------------------------------

#: Lark's own names for terminals: none may reach a user.
_RAW = {t.name for t in _parser().terminals} | {"$END"}
_RAW_NAME = re.compile(r"__ANON|\$END|\b(?:" + "|".join(re.escape(n) for n in _RAW) + r")\b")

SYNTAX_ERRORS = [
    pytest.param('deny "x" (spot', 1, "expected ')'", id="unclosed-parenthesis"),
    pytest.param("deny x spot", 1, "expected a quoted string", id="unquoted-rule-name"),
    pytest.param("let = 3", 1, "expected a name", id="let-without-name"),
    pytest.param(
        'deny "x" spot level hrad', 1, "expected 'advisory', 'soft' or 'hard'", id="bad-level"
    ),
    pytest.param(
        'quota "q" sum(gpus) <= 8 pr task.team', 1, "expected 'per'", id="quota-without-per"
    ),
    pytest.param('deny "x" region in {a, b', 1, "expected ',' or '}'", id="unclosed-set"),
    pytest.param('deny "x" when task.team == "a" spot', 1, "':'", id="when-without-colon"),
    pytest.param(
        'test "t" { given { team: "a" } }', 1, "expected 'expect'", id="test-without-expect"
    ),
    pytest.param(
        'policy "p"\n\ndeny "x" region == "a" @', 3, "unexpected character '@'", id="stray-char"
    ),
    pytest.param('prefer "p" spot bonus 3', 1, "'%'", id="bonus-without-unit"),
    pytest.param('deny "x" region ==', 1, "unexpected end of file", id="end-of-file"),
    pytest.param("objective minimize money", 1, "expected 'cost' or 'time'", id="unknown-goal"),
    pytest.param(
        "failover fastest", 1, "expected 'next-cheapest' or 'same-region-first'", id="strategy"
    ),
    pytest.param(
        'quota "q" sum(cpus) <= 8 per task.team',
        1,
        "expected sum(gpus), sum(vcpus), sum(nodes) or sum(memory)",
        id="unknown-metric",
    ),
]


@pytest.mark.parametrize(("text", "line", "expected"), SYNTAX_ERRORS)
def test_syntax_errors_are_located_and_say_what_was_expected(
    text: str, line: int, expected: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse(text, "bad.policy")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "SP100"
    assert diagnostic.slug == "syntax-error"
    assert diagnostic.severity == "error"
    assert diagnostic.span.file == "bad.policy"
    assert diagnostic.span.line == line
    assert diagnostic.span.col is not None
    assert expected in diagnostic.message
    assert not _RAW_NAME.search(diagnostic.message), diagnostic.message


@pytest.mark.parametrize(("text", "line", "expected"), SYNTAX_ERRORS)
def test_syntax_errors_render_file_line_col_and_a_caret(
    text: str, line: int, expected: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse(text, "bad.policy")
    (diagnostic,) = caught.value.diagnostics
    col = diagnostic.span.col
    assert diagnostic.span.line == line
    assert col is not None
    rendered = str(caught.value).splitlines()
    assert rendered[0].startswith(f"bad.policy:{line}:{col}: error SP100 syntax-error: ")
    source_line = text.splitlines()[line - 1]
    assert rendered[1] == f"{line} | {source_line}"
    assert rendered[2] == " " * (len(f"{line} | ") + col - 1) + "^"


def test_an_unexpected_token_is_quoted_and_pointed_at() -> None:
    with pytest.raises(PolicyError) as caught:
        parse("deny x spot", "bad.policy")
    assert str(caught.value) == (
        "bad.policy:1:6: error SP100 syntax-error: unexpected 'x'; expected a quoted string\n"
        "1 | deny x spot\n"
        "         ^"
    )


def test_a_syntax_error_on_a_later_line_points_there() -> None:
    text = 'deny "a" spot\nlet ok = spot\nrequire "b" count >> 2\n'
    with pytest.raises(PolicyError) as caught:
        parse(text, "bad.policy")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.span.line, diagnostic.span.col) == (3, 20)
    assert '3 | require "b" count >> 2' in str(caught.value)


@pytest.mark.parametrize(
    ("text", "guess"),
    [
        pytest.param('deny "x" spot levle hard', "level", id="levle"),
        pytest.param('deny "x" spot lvel soft', "level", id="lvel"),
        pytest.param('quota "q" sum(gpus) <= 8 pr task.team', "per", id="pr"),
        pytest.param("objective minimze cost", "minimize", id="minimze"),
        pytest.param('policy "a" verison 2', "version", id="verison"),
        pytest.param('prefer "p" spot bonsu $1/h', "bonus", id="bonsu"),
        pytest.param('requir "x" spot', "require", id="requir"),
        pytest.param('deny "x" spot level hrad', "hard", id="hrad"),
    ],
)
def test_a_misspelled_keyword_gets_a_did_you_mean(text: str, guess: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse(text, "bad.policy")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.hint == f"did you mean {guess!r}?"
    assert f"hint: did you mean {guess!r}?" in str(caught.value)


def test_no_did_you_mean_when_nothing_is_close() -> None:
    with pytest.raises(PolicyError) as caught:
        parse('deny "x" spot zzzzzz hard')
    assert caught.value.diagnostics[0].hint is None


def test_a_syntax_error_carries_the_source_for_its_snippet() -> None:
    with pytest.raises(PolicyError) as caught:
        parse("deny x", "f.policy")
    assert caught.value.sources["f.policy"].text == "deny x"
