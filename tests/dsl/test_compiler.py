"""The policy compiler and loader: checked diagnostics (one row per code) and lowering to
`model.Policy`.

Files are served from memory through `load(..., read=...)`; every test runs in an empty
directory, so no name accidentally resolves to a real file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skyplan.dsl import Loaded, Vocabulary, ast, codes, load
from skyplan.dsl.compiler import Lowerer, Unit
from skyplan.errors import PolicyError
from skyplan.model import policy as m

VOCAB = Vocabulary(
    accelerators=("A100", "A100-80GB", "H100", "H200", "L4", "T4"),
    regions=("us-east-1", "eu-west-1", "us-central1"),
)


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def reader(files: dict[str, str]):
    def read(path: Path) -> str:
        try:
            return files[path.as_posix()]
        except KeyError:
            raise FileNotFoundError(path) from None

    return read


def load_files(
    files: dict[str, str], roots: tuple[str, ...] = ("main.policy",), vocabulary=VOCAB
) -> Loaded:
    return load(list(roots), vocabulary, read=reader(files))


def load_text(text: str, vocabulary: Vocabulary = VOCAB) -> Loaded:
    return load_files({"main.policy": text}, vocabulary=vocabulary)


def compiled(text: str, vocabulary: Vocabulary = VOCAB) -> m.Policy:
    loaded = load_text(text, vocabulary)
    assert loaded.errors == [], [d.render() for d in loaded.errors]
    assert loaded.policy is not None
    return loaded.policy


def condition(text: str, vocabulary: Vocabulary = VOCAB) -> m.Expr:
    (rule,) = compiled(f'deny "r" {text}', vocabulary).rules
    return rule.condition


def lit(value: m.Scalar) -> m.Literal_:
    return m.Literal_(value=value)


def fld(name: str) -> m.FieldRef:
    return m.FieldRef(name=name)


def req(*path: str) -> m.RequestRef:
    return m.RequestRef(path=path)


# -- diagnostics: one row per code --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    files: dict[str, str]
    code: str
    at: tuple[str, int, int | None]  # file, line, col (None: any column)
    message: str  # a part of the message
    hint: str | None = None  # the exact hint; None: not checked
    severity: str = "error"
    extra: dict[str, str] = field(default_factory=dict)


BASE = (
    'deny "no spot" spot\n'
    'quota "team GPUs" sum(gpus) <= 8 per task.team\n'
    'budget "team spend" hourly_cost <= $10/h per task.team\n'
    'deny "no arm" arch == "arm64" level soft\n'
)


def main(text: str, **others: str) -> dict[str, str]:
    return {"main.policy": text, **{f"{k}.policy": v for k, v in others.items()}}


def importing(text: str) -> dict[str, str]:
    return main(f'import "base.policy"\n{text}', base=BASE)


DIAGNOSTICS = [
    pytest.param(
        Case(main('deny "x" (spot'), "SP100", ("main.policy", 1, None), "unexpected end of file"),
        id="SP100-syntax-error-through-the-loader",
    ),
    pytest.param(
        Case(
            main('deny "x" accelerator == "H10"'),
            "SP101",
            ("main.policy", 1, 25),
            "unknown accelerator 'H10'",
            "did you mean 'H100'?",
        ),
        id="SP101-unknown-accelerator",
    ),
    pytest.param(
        Case(
            main('deny "x" accelerator in {A100, H20}'),
            "SP101",
            ("main.policy", 1, 32),
            "unknown accelerator 'H20'",
            "did you mean 'H200'?",
        ),
        id="SP101-unknown-accelerator-in-a-set",
    ),
    pytest.param(
        Case(
            main('deny "x" foo.bar == "a"'),
            "SP102",
            ("main.policy", 1, 10),
            "unknown field 'foo.bar'",
            "only task.* names have parts, e.g. task.labels.env",
        ),
        id="SP102-unknown-field",
    ),
    pytest.param(
        Case(
            main('deny "x" regoin == "eu-west-1"'),
            "SP103",
            ("main.policy", 1, 10),
            "unknown name 'regoin'",
            "did you mean 'region'?",
        ),
        id="SP103-unknown-name-near-a-field",
    ),
    pytest.param(
        Case(
            main('let europe = region ~ "eu-*"\ndeny "x" eruope\ndeny "y" europe'),
            "SP103",
            ("main.policy", 2, 10),
            "unknown name 'eruope'",
            "did you mean 'europe'?",
        ),
        id="SP103-unknown-name-near-a-let",
    ),
    pytest.param(
        Case(
            main('deny "x" price <= 2'),
            "SP104",
            ("main.policy", 1, 10),
            "cannot compare money with number",
            "write prices in $/h, e.g. $2/h",
        ),
        id="SP104-price-without-unit",
    ),
    pytest.param(
        Case(
            main('deny "x" region < 3'),
            "SP104",
            ("main.policy", 1, 10),
            "'<' compares numbers, not string and number",
        ),
        id="SP104-ordering-a-string",
    ),
    pytest.param(
        Case(
            main('deny "x" spot and count'),
            "SP104",
            ("main.policy", 1, 19),
            "expected a condition (true/false), got number",
        ),
        id="SP104-number-as-condition",
    ),
    pytest.param(
        Case(
            main('deny "x" count in {1, two}'),
            "SP104",
            ("main.policy", 1, 23),
            "expected a number in the set, got 'two'",
        ),
        id="SP104-name-in-a-number-set",
    ),
    pytest.param(
        Case(
            main('deny "x" count ~ "8*"'),
            "SP104",
            ("main.policy", 1, 10),
            "'~' matches text, but this is number",
        ),
        id="SP104-match-on-a-number",
    ),
    pytest.param(
        Case(
            main('deny "x" cloud == "awz"'),
            "SP105",
            ("main.policy", 1, 19),
            "unknown cloud 'awz'",
            "did you mean 'aws'?",
        ),
        id="SP105-unknown-cloud",
    ),
    pytest.param(
        Case(
            main('deny "x" spot\nrequire "x" count > 1'),
            "SP106",
            ("main.policy", 2, 1),
            "a rule named 'x' already exists (line 1)",
        ),
        id="SP106-duplicate-rule-name",
    ),
    pytest.param(
        Case(
            main('deny "x" spot\nprefer "x" spot bonus $1/h'),
            "SP106",
            ("main.policy", 2, 1),
            "a rule named 'x' already exists",
        ),
        id="SP106-duplicate-name-across-kinds",
    ),
    pytest.param(
        Case(
            main('let a = spot\nlet a = count > 1\ndeny "x" a'),
            "SP106",
            ("main.policy", 2, 1),
            "let 'a' is already defined",
        ),
        id="SP106-duplicate-let",
    ),
    pytest.param(
        Case(
            main('let region = spot\ndeny "x" region'),
            "SP106",
            ("main.policy", 1, 1),
            "let 'region' hides the field of that name",
        ),
        id="SP106-let-hides-a-field",
    ),
    pytest.param(
        Case(
            main('deny "x" spot\nimport "missing.policy"'),
            "SP107",
            ("main.policy", 2, 1),
            "cannot read 'missing.policy': file not found",
        ),
        id="SP107-missing-import",
    ),
    pytest.param(
        Case(
            main('import "a.policy"', a='import "main.policy"\ndeny "x" spot'),
            "SP108",
            ("a.policy", 1, 1),
            "import cycle: main.policy → a.policy → main.policy",
        ),
        id="SP108-import-cycle",
    ),
    pytest.param(
        Case(
            main('import "main.policy"'),
            "SP108",
            ("main.policy", 1, 1),
            "import cycle: main.policy → main.policy",
        ),
        id="SP108-file-imports-itself",
    ),
    pytest.param(
        Case(
            importing('deny "no spot" spot and region == "us-east-1"'),
            "SP109",
            ("main.policy", 2, 1),
            "rule 'no spot': an imported hard rule cannot be redefined",
        ),
        id="SP109-redefines-an-imported-hard-deny",
    ),
    pytest.param(
        Case(
            importing('quota "team GPUs" sum(gpus) <= 16 per task.team'),
            "SP109",
            ("main.policy", 2, 1),
            "rule 'team GPUs': it raises the limit from 8 to 16",
        ),
        id="SP109-raises-an-imported-hard-quota",
    ),
    pytest.param(
        Case(
            importing('budget "team spend" hourly_cost <= $20/h per task.team'),
            "SP109",
            ("main.policy", 2, 1),
            "rule 'team spend': it raises the limit from 10 to 20",
        ),
        id="SP109-raises-an-imported-hard-budget",
    ),
    pytest.param(
        Case(
            importing('quota "team GPUs" sum(gpus) <= 8 per task.team level soft'),
            "SP109",
            ("main.policy", 2, 1),
            "rule 'team GPUs': it lowers the imported hard rule to soft",
        ),
        id="SP109-lowers-an-imported-hard-quota-to-soft",
    ),
    pytest.param(
        Case(
            importing('deny "no spot" spot level advisory'),
            "SP109",
            ("main.policy", 2, 1),
            "rule 'no spot': it lowers the imported hard rule to advisory",
        ),
        id="SP109-lowers-an-imported-hard-deny-to-advisory",
    ),
    pytest.param(
        Case(
            importing('prefer "team GPUs" spot bonus $1/h'),
            "SP109",
            ("main.policy", 2, 1),
            "rule 'team GPUs': it changes the kind of an imported hard rule",
        ),
        id="SP109-replaces-a-hard-quota-by-a-preference",
    ),
    pytest.param(
        Case(
            main('deny "x" lowr(region) == "eu"'),
            "SP110",
            ("main.policy", 1, 10),
            "unknown function 'lowr'",
            "did you mean 'lower'?",
        ),
        id="SP110-unknown-function",
    ),
    pytest.param(
        Case(
            main('deny "x" lower(region, cloud) == "eu"'),
            "SP111",
            ("main.policy", 1, 10),
            "lower() takes 1 argument(s), got 2",
        ),
        id="SP111-argument-count",
    ),
    pytest.param(
        Case(
            main('deny "x" starts_with(count, "p")'),
            "SP111",
            ("main.policy", 1, 22),
            "starts_with() expects string here, got number",
        ),
        id="SP111-argument-type",
    ),
    pytest.param(
        Case(
            main('deny "x" when spot: region == "us-east-1"'),
            "SP112",
            ("main.policy", 1, 15),
            "'when' sees only the request (task.*), not the candidate field 'spot'",
            "move the candidate condition after the ':'",
        ),
        id="SP112-candidate-field-in-when",
    ),
    pytest.param(
        Case(
            main('let cheap = price < $1/h\ndeny "x" when cheap: spot'),
            "SP112",
            ("main.policy", 2, 15),
            "'when' sees only the request, but let 'cheap' uses candidate fields",
            "move the candidate condition after the ':'",
        ),
        id="SP112-candidate-field-in-when-through-a-let",
    ),
    pytest.param(
        Case(
            main('deny "x" when task.tem == "ml": spot'),
            "SP113",
            ("main.policy", 1, 15),
            "unknown request field 'task.tem'",
            "did you mean 'task.team'?",
        ),
        id="SP113-unknown-request-field",
    ),
    pytest.param(
        Case(
            main('deny "x" spot\ntest "t" { given { tema: "ml" } expect placed }'),
            "SP114",
            ("main.policy", 2, 20),
            "unknown key 'tema' in 'given'",
            "did you mean 'team'?",
        ),
        id="SP114-unknown-given-key",
    ),
    pytest.param(
        Case(
            main('deny "no spot" spot\ntest "t" { given {} expect denied by "no spto" }'),
            "SP115",
            ("main.policy", 2, 21),
            "no rule named 'no spto' in this file",
            "did you mean 'no spot'?",
        ),
        id="SP115-expect-denied-by-an-unknown-rule",
    ),
    pytest.param(
        Case(
            main('deny "x" when task.kind == "servise": spot'),
            "SP116",
            ("main.policy", 1, 28),
            "task.kind is one of task, service, job, not 'servise'",
        ),
        id="SP116-invalid-task-kind",
    ),
    pytest.param(
        Case(
            main('quota "q" sum(gpus) <= -1 per task.team'),
            "SP116",
            ("main.policy", 1, 24),
            "a quota limit cannot be negative",
        ),
        id="SP116-negative-quota",
    ),
    pytest.param(
        Case(
            main('deny "x" spot\nimport "../shared.policy"'),
            "SP117",
            ("main.policy", 2, 1),
            "cannot import '../shared.policy': it leads outside the policy root",
        ),
        id="SP117-import-outside-the-root",
    ),
    pytest.param(
        Case(
            main('deny "x" ' + "(" * 90 + "spot" + ")" * 90),
            "SP118",
            ("main.policy", 1, None),
            "nested too deeply (over 200 levels of parentheses and operators)",
        ),
        id="SP118-nested-too-deeply",
    ),
    pytest.param(
        Case(
            # An editor shows U+2028 as a line break; the parser read the rule as comment.
            main('# note\u2028deny "hidden" spot'),
            "SP119",
            ("main.policy", 1, 7),
            "invisible character U+2028 (line separator)",
            "a reviewer cannot see it; delete it, or write it as a \\u escape in a string",
        ),
        id="SP119-line-separator-in-a-comment",
    ),
    pytest.param(
        Case(
            main('deny "x" region == "eu-wset-1"'),
            "SP201",
            ("main.policy", 1, 20),
            "no offer in the catalog is in region 'eu-wset-1'",
            "did you mean 'eu-west-1'?",
            severity="warning",
        ),
        id="SP201-unknown-region-warns",
    ),
    pytest.param(
        Case(
            main('let unused = spot\ndeny "x" spot'),
            "SP202",
            ("main.policy", 1, 1),
            "let 'unused' is never used",
            severity="warning",
        ),
        id="SP202-unused-let-warns",
    ),
]


@pytest.mark.parametrize("case", DIAGNOSTICS)
def test_each_problem_has_its_code_location_message_and_hint(case: Case) -> None:
    loaded = load_files(case.files)
    (found,) = loaded.diagnostics
    file, line, col = case.at
    assert found.code == case.code
    assert found.slug == codes.CODES[case.code]
    assert found.severity == case.severity
    assert (found.span.file, found.span.line) == (file, line)
    if col is not None:
        assert found.span.col == col
    assert case.message in found.message
    if case.hint is not None:
        assert found.hint == case.hint
    if case.severity == "error":
        assert loaded.policy is None
    else:
        assert loaded.policy is not None


def test_the_table_covers_every_code() -> None:
    covered = {p.values[0].code for p in DIAGNOSTICS}
    assert covered == set(codes.CODES)


def test_a_rendered_diagnostic_names_code_slug_and_points_at_the_line() -> None:
    loaded = load_text('deny "x" accelerator == "H10"')
    assert str(PolicyError(loaded.diagnostics, loaded.sources)) == (
        "main.policy:1:25: error SP101 unknown-accelerator: unknown accelerator 'H10'\n"
        '1 | deny "x" accelerator == "H10"\n'
        "                            ^\n"
        "hint: did you mean 'H100'?"
    )


def test_the_vocabulary_only_checks_what_it_knows() -> None:
    bare = Vocabulary()
    assert load_text('deny "x" accelerator == "H10"', bare).diagnostics == []
    assert load_text('deny "x" region == "mars-1"', bare).diagnostics == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('deny "x" accelerator ~ "H1*"', id="accelerator-glob"),
        pytest.param('deny "x" region ~ "mars-*"', id="region-glob"),
        pytest.param('deny "x" cloud ~ "aw*"', id="cloud-glob"),
        pytest.param('deny "x" cloud == "k8s"', id="cloud-alias"),
        pytest.param('deny "x" cloud == "AWS"', id="cloud-upper-case"),
        pytest.param('deny "x" accelerator == "h100"', id="accelerator-lower-case"),
        pytest.param('deny "x" when task.kind == service: spot', id="kind-word"),
        pytest.param('deny "x" when task.kind != "job": spot', id="kind-string"),
        pytest.param('deny "x" memory >= 64 and gpu_memory > memory', id="gib-and-number"),
        pytest.param('deny "x" when task.labels.env == "prod": spot', id="label"),
    ],
)
def test_well_formed_policies_have_no_diagnostics(text: str) -> None:
    assert load_text(text).diagnostics == []


def test_a_bad_per_clause_is_reported_once_as_a_per_problem() -> None:
    found = load_text('quota "q" sum(gpus) <= 8 per region').diagnostics
    assert [d.code for d in found] == ["SP104"]
    assert "'per'" in found[0].message


def test_an_invalid_task_kind_in_a_set_is_reported() -> None:
    found = load_text('deny "x" when task.kind in {service, servise}: spot').diagnostics
    assert [d.code for d in found] == ["SP116"]
    assert "servise" in found[0].message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('let a = a\ndeny "x" a', id="let-refers-to-itself"),
        pytest.param('let a = b\nlet b = a\ndeny "x" a', id="lets-refer-to-each-other"),
    ],
)
def test_a_let_cycle_is_a_diagnostic_not_a_crash(text: str) -> None:
    loaded = load_text(text)
    assert loaded.policy is None
    assert loaded.errors
    assert all(d.code in codes.CODES for d in loaded.errors)


def test_an_import_cycle_of_real_files_names_them_as_given(tmp_path: Path) -> None:
    (tmp_path / "main.policy").write_text('import "a.policy"\n')
    (tmp_path / "a.policy").write_text('import "main.policy"\n')
    (found,) = load(["main.policy"]).diagnostics
    assert found.code == "SP108"
    assert found.message == "import cycle: main.policy → a.policy → main.policy"


def test_an_import_cycle_through_a_parent_directory_is_found_with_an_injected_reader() -> None:
    files = {"main.policy": 'import "lib/a.policy"', "lib/a.policy": 'import "../main.policy"'}

    def read(path: Path) -> str:
        key = os.path.normpath(path)
        if key not in files:
            raise FileNotFoundError(key)
        return files[key]

    loaded = load(["main.policy"], read=read)
    assert [d.code for d in loaded.errors] == ["SP108"]


def test_a_missing_root_file_is_a_diagnostic() -> None:
    (found,) = load(["nowhere.policy"]).diagnostics
    assert found.code == "SP107"
    assert found.span.file == "nowhere.policy"


# -- what an importer may and may not do ---------------------------------------------------------


def test_an_importer_may_tighten_a_hard_quota_and_redefine_a_soft_rule() -> None:
    loaded = load_files(
        importing(
            'quota "team GPUs" sum(gpus) <= 4 per task.team\n'
            'deny "no arm" arch == "arm64" or arch == "aarch64"\n'
        )
    )
    assert loaded.errors == []
    assert loaded.policy is not None
    named = {r.name: r for r in loaded.policy.named()}
    quota = named["team GPUs"]
    assert isinstance(quota, m.Quota)
    assert quota.limit == 4
    assert quota.origin == m.Origin(file="main.policy", line=2, col=1)
    arm = named["no arm"]
    assert isinstance(arm, m.Rule)
    assert arm.level == m.Level.HARD
    assert isinstance(arm.condition, m.BoolOp)
    assert named["no spot"].origin == m.Origin(file="base.policy", line=1, col=1)


def test_an_importer_may_restate_a_hard_quota_unchanged() -> None:
    loaded = load_files(importing('quota "team GPUs" sum(gpus) <= 8 per task.team'))
    assert loaded.errors == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            'budget "team spend" when task.team == "nobody": hourly_cost <= $10/h per task.team',
            id="adds-a-when-to-a-hard-budget",
        ),
        pytest.param(
            'quota "team GPUs" sum(nodes) <= 8 per task.team', id="changes-a-hard-quota-metric"
        ),
        pytest.param(
            'budget "team spend" hourly_cost <= $10/h per task.user',
            id="changes-a-hard-budget-grouping",
        ),
    ],
)
def test_an_importer_cannot_loosen_a_hard_limit_in_other_ways(text: str) -> None:
    loaded = load_files(importing(text))
    assert [d.code for d in loaded.errors] == ["SP109"]


def test_later_root_files_merge_after_earlier_ones() -> None:
    files = {
        "base.policy": BASE,
        "team.policy": 'quota "team GPUs" sum(gpus) <= 2 per task.team\nobjective minimize time',
    }
    loaded = load_files(files, roots=("base.policy", "team.policy"))
    assert loaded.policy is not None
    assert loaded.policy.quotas[0].limit == 2
    assert loaded.policy.objective == m.Objective(order=("time",))
    loosening = load_files(
        {**files, "team.policy": 'deny "no spot" count > 100'}, roots=("base.policy", "team.policy")
    )
    assert [d.code for d in loosening.errors] == ["SP109"]


def test_tests_stay_with_the_file_that_wrote_them() -> None:
    files = main(
        'import "base.policy"\ntest "mine" { given {} expect placed }',
        base='deny "x" spot\ntest "theirs" { given {} expect placed }',
    )
    loaded = load_files(files)
    assert loaded.policy is not None
    assert [t.name for t in loaded.policy.tests] == ["mine"]


def test_imports_are_relative_to_the_importing_file() -> None:
    files = {
        "main.policy": 'import "lib/teams.policy"',
        "lib/teams.policy": 'import "base.policy"\ndeny "t" spot',
        "lib/base.policy": 'deny "b" spot',
    }
    loaded = load_files(files)
    assert loaded.errors == []
    assert loaded.policy is not None
    assert [r.name for r in loaded.policy.rules] == ["b", "t"]
    assert set(loaded.sources) == {"main.policy", "lib/teams.policy", "lib/base.policy"}


def test_an_error_in_an_imported_file_names_that_file() -> None:
    files = {"main.policy": 'import "lib/a.policy"', "lib/a.policy": 'deny "x" regoin == "a"'}
    (found,) = load_files(files).errors
    assert found.span.file == "lib/a.policy"
    assert found.code == "SP103"


def test_a_file_imported_twice_loads_once() -> None:
    files = main(
        'import "a.policy"\nimport "b.policy"',
        a='import "base.policy"',
        b='import "base.policy"',
        base='deny "x" spot',
    )
    loaded = load_files(files)
    assert loaded.errors == []
    assert loaded.policy is not None
    assert [r.name for r in loaded.policy.rules] == ["x"]


def test_load_reads_real_files(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.policy").write_text('deny "b" spot\n')
    (tmp_path / "main.policy").write_text('policy "p" version 3\nimport "lib/base.policy"\n')
    loaded = load([tmp_path / "main.policy"])
    assert loaded.errors == []
    assert loaded.policy is not None
    assert (loaded.policy.name, loaded.policy.version) == ("p", 3)
    assert [r.name for r in loaded.policy.rules] == ["b"]


# -- at most ten diagnostics per file, sorted by position ----------------------------------------


def test_at_most_ten_diagnostics_per_file_sorted_by_position() -> None:
    lines = [f'deny "r{i}" nope{i}' for i in range(12)]
    lines.insert(3, 'deny "r0" spot')  # a resolve-stage error, found before the checks
    files = main("\n".join(lines), other='deny "o" nope')
    files["main.policy"] = 'import "other.policy"\n' + files["main.policy"]
    loaded = load_files(files)
    assert len(loaded.errors) == 14
    error = PolicyError(loaded.diagnostics, loaded.sources)
    kept = [(d.span.file, d.span.line) for d in error.diagnostics]
    assert kept == [("main.policy", n) for n in range(2, 12)] + [("other.policy", 1)]
    assert error.dropped == 3
    assert str(error).endswith("\n... and 3 more problem(s)")
    assert error.diagnostics[3].code == "SP106"


def test_diagnostics_on_one_line_sort_by_column() -> None:
    loaded = load_text('deny "x" zzz1 or zzz2 or accelerator == "H10"')
    error = PolicyError(loaded.diagnostics, loaded.sources)
    assert [d.span.col for d in error.diagnostics] == [10, 18, 41]


# -- lowering ------------------------------------------------------------------------------------


def test_lets_are_inlined() -> None:
    policy = compiled(
        'let big = accelerator in {H100, H200}\nlet eu = region ~ "eu-*"\n'
        "let big_in_eu = big and eu\n"
        'deny "x" when task.team == "interns": big_in_eu'
    )
    (rule,) = policy.rules
    assert rule.condition == m.BoolOp(
        op="and",
        args=(
            m.InSet(item=fld("accelerator"), options=("H100", "H200")),
            m.Match(item=fld("region"), patterns=("eu-*",)),
        ),
    )
    assert rule.when == m.Compare(op="==", left=req("team"), right=lit("interns"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "price <= $2.5/h",
            m.Compare(op="<=", left=fld("price"), right=lit(2.5)),
            id="money-is-usd-per-hour",
        ),
        pytest.param(
            "memory >= 64", m.Compare(op=">=", left=fld("memory"), right=lit(64.0)), id="number"
        ),
        pytest.param(
            "spot == true", m.Compare(op="==", left=fld("spot"), right=lit(True)), id="bool"
        ),
        pytest.param(
            'accelerator == "a100"',
            m.Compare(op="==", left=fld("accelerator"), right=lit("A100")),
            id="accelerator-canonical",
        ),
        pytest.param(
            '"h100" == accelerator',
            m.Compare(op="==", left=lit("H100"), right=fld("accelerator")),
            id="accelerator-canonical-on-the-left",
        ),
        pytest.param(
            'accelerator in {a100, "h200"}',
            m.InSet(item=fld("accelerator"), options=("A100", "H200")),
            id="accelerator-set-canonical",
        ),
        pytest.param(
            'cloud == "k8s"',
            m.Compare(op="==", left=fld("cloud"), right=lit("kubernetes")),
            id="cloud-alias",
        ),
        pytest.param(
            "cloud not in {K8S, AWS}",
            m.InSet(item=fld("cloud"), options=("kubernetes", "aws"), negate=True),
            id="cloud-set-alias-and-case",
        ),
        pytest.param(
            'cloud ~ ["k8s", "gcp"]',
            m.Match(item=fld("cloud"), patterns=("kubernetes", "gcp")),
            id="cloud-pattern-alias",
        ),
        pytest.param(
            "count in {1, 2.5}", m.InSet(item=fld("count"), options=(1.0, 2.5)), id="number-set"
        ),
        pytest.param(
            'region ~ ["eu-*", "europe-*"]',
            m.Match(item=fld("region"), patterns=("eu-*", "europe-*")),
            id="patterns",
        ),
        pytest.param(
            "not (spot or count > 1)",
            m.Not(
                arg=m.BoolOp(
                    op="or",
                    args=(fld("spot"), m.Compare(op=">", left=fld("count"), right=lit(1.0))),
                )
            ),
            id="not-or",
        ),
        pytest.param(
            'starts_with(instance_type, "p4")',
            m.Call(name="starts_with", args=(fld("instance_type"), lit("p4"))),
            id="call",
        ),
        pytest.param(
            'task.labels.env == "prod"',
            m.Compare(op="==", left=req("labels", "env"), right=lit("prod")),
            id="label",
        ),
        pytest.param(
            "task.kind == service",
            m.Compare(op="==", left=req("kind"), right=lit("service")),
            id="kind-word-is-a-string",
        ),
        pytest.param(
            "job != task.kind",
            m.Compare(op="!=", left=lit("job"), right=req("kind")),
            id="kind-word-on-the-left",
        ),
        pytest.param(
            "task.num_nodes > 1",
            m.Compare(op=">", left=req("num_nodes"), right=lit(1.0)),
            id="request-number",
        ),
    ],
)
def test_conditions_lower_to_the_model(text: str, expected: m.Expr) -> None:
    assert condition(text) == expected


@pytest.mark.parametrize(
    ("node", "value"),
    [
        pytest.param(ast.Percent(5), 0.05, id="percent-is-a-fraction"),
        pytest.param(ast.Percent(150), 1.5, id="percent-over-100"),
        pytest.param(ast.Money(2.5), 2.5, id="money"),
        pytest.param(ast.Size(64, "GiB"), 64.0, id="gib"),
        pytest.param(ast.Size(80, "GB"), 80.0, id="gb-as-gib"),
        pytest.param(ast.Size(1.5, "TiB"), 1536.0, id="tib"),
        pytest.param(ast.Size(2, "TB"), 2048.0, id="tb"),
        pytest.param(ast.Num(3), 3.0, id="number"),
        pytest.param(ast.Bool(False), False, id="bool"),
    ],
)
def test_literals_lower_to_normal_units(node: ast.Expr, value: float) -> None:
    unit = Unit(ast.PolicyFile(None, ()), VOCAB)
    assert Lowerer(unit).expr(node) == lit(value)


def test_size_literals_lower_to_gib_from_text() -> None:
    assert condition("memory >= 1TiB") == m.Compare(op=">=", left=fld("memory"), right=lit(1024.0))


def test_accelerators_are_left_alone_without_a_vocabulary() -> None:
    assert condition('accelerator == "a100"', Vocabulary()) == m.Compare(
        op="==", left=fld("accelerator"), right=lit("a100")
    )


def test_a_whole_policy_lowers_with_its_origins_and_defaults() -> None:
    text = (
        'policy "ml-platform" version 2\n'
        'deny "no spot" spot\n'
        'require "eu" when task.labels.data == "eu": region ~ "eu-*" level soft\n'
        'prefer "on-prem" cloud == "kubernetes" bonus $2/h\n'
        'prefer "not us-east-1" region != "us-east-1" bonus 5%\n'
        'quota "team GPUs" sum(gpus) <= 64 per task.team\n'
        'budget "team spend" hourly_cost <= $40/h per task.labels.project level advisory\n'
        "objective minimize cost then time\n"
        "failover same-region-first, blocklist zone on capacity, cloud on auth\n"
        'test "t" {\n'
        '  given { team: "ml", labels.env: "prod", num_nodes: 2, use_spot: true }\n'
        '  expect denied by "no spot"\n'
        '  expect placed on region ~ "eu-*"\n'
        "  expect cost <= $3/h\n"
        "}\n"
    )
    policy = compiled(text)
    assert (policy.name, policy.version) == ("ml-platform", 2)
    deny, eu = policy.rules
    assert deny == m.Rule(
        name="no spot",
        effect="deny",
        condition=fld("spot"),
        level=m.Level.HARD,
        origin=m.Origin(file="main.policy", line=2, col=1),
    )
    assert eu.level == m.Level.SOFT
    assert eu.origin == m.Origin(file="main.policy", line=3, col=1)
    money, percent = policy.preferences
    assert (money.bonus, money.unit) == (2.0, "usd_per_hour")
    assert (percent.bonus, percent.unit) == (0.05, "fraction")
    assert policy.quotas == (
        m.Quota(
            name="team GPUs",
            metric="gpus",
            limit=64,
            per=("team",),
            origin=m.Origin(file="main.policy", line=6, col=1),
        ),
    )
    (budget,) = policy.budgets
    assert (budget.limit, budget.per, budget.level) == (40.0, ("labels", "project"), "advisory")
    assert policy.objective == m.Objective(order=("cost", "time"))
    assert policy.failover == m.Failover(
        strategy="same-region-first", blocklist=(("capacity", "zone"), ("auth", "cloud"))
    )
    (test,) = policy.tests
    assert test.given == (
        ("team", "ml"),
        ("labels.env", "prod"),
        ("num_nodes", 2.0),
        ("use_spot", True),
    )
    assert test.expect == (
        m.Expectation(outcome="denied", rule="no spot"),
        m.Expectation(outcome="placed", where=m.Match(item=fld("region"), patterns=("eu-*",))),
        m.Expectation(outcome="cost", max_cost=3.0),
    )
    assert test.origin == m.Origin(file="main.policy", line=10, col=1)


def test_a_policy_without_header_objective_or_failover_gets_the_defaults() -> None:
    policy = compiled('deny "x" spot')
    assert (policy.name, policy.version) == ("default", 1)
    assert policy.objective == m.Objective()
    assert policy.failover == m.Failover()


def test_failover_without_a_blocklist_keeps_the_default_blocklist() -> None:
    assert compiled("failover same-region-first").failover == m.Failover(
        strategy="same-region-first"
    )


def test_lowering_is_skipped_when_a_stage_failed() -> None:
    loaded = load_text('deny "x" nope')
    (unit,) = loaded.units.values()
    assert unit.failed
    assert unit.policy is None


def test_warnings_do_not_stop_lowering() -> None:
    loaded = load_text('let unused = spot\ndeny "x" region == "mars-1"')
    assert sorted(d.code for d in loaded.diagnostics) == ["SP201", "SP202"]
    assert loaded.policy is not None
    assert loaded.errors == []


def test_lets_that_double_at_each_line_are_too_complex_and_reported_once() -> None:
    # Inlining `let aN = a(N-1) and a(N-1)` 40 times never finished (2**40 nodes).
    lines = ['let a0 = cloud == "aws"']
    lines += [f"let a{i} = a{i - 1} and a{i - 1}" for i in range(1, 40)]
    loaded = load_text("\n".join([*lines, 'require "r" a39']))
    (error,) = loaded.errors
    assert (error.code, error.span.line) == ("SP118", 14)
    assert error.message.startswith("let 'a13' expands to 32,767 nodes")
    assert loaded.policy is None


def test_a_let_used_many_times_below_the_limit_compiles() -> None:
    lines = ['let gpu = accelerator in {"A100", "H100"}']
    lines += [f"let a{i} = gpu and gpus > {i}" for i in range(200)]
    rules = [f'deny "r{i}" a{i}' for i in range(200)]
    assert len(compiled("\n".join([*lines, *rules])).rules) == 200
