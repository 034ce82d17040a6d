"""A corpus of hostile policy files, one per class of attack or mistake, through every policy
command: each ends in a located error or a result (exit 0, 1 or 2), never an internal error
(exit 70) or a traceback. Classes that found a crash name what it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from skyplan.cli.main import cli

GIVEN = 'deny "x" spot\ntest "t" {{ given {{ {} }} expect placed }}\n'

CORPUS: dict[str, str | bytes] = {
    "empty": "",
    "only-comments": "# only\n# comments\n",
    "nul": 'deny "x\x00" spot\n',
    "not-utf8": b'deny "x" \xff\xfe spot\n',
    "huge-float": 'deny "x" vcpus > 1e400\n',
    "huge-int": 'deny "x" vcpus > ' + "9" * 5000 + "\n",
    "negative-money": 'deny "x" price > $-5/h\n',
    "infinite-money": 'deny "x" price > $1e999/h\n',
    "huge-bonus": 'prefer "x" spot bonus 1e999%\n',
    "negative-bonus": 'prefer "x" spot bonus -50%\n',
    "self-import": 'import "self-import.policy"\ndeny "x" spot\n',
    "directory-import": 'import "folder.policy"\n',
    "given-bad-cpus": GIVEN.format('cpus: "abc"'),
    "given-zero-gpus": GIVEN.format('accelerators: "A100:0"'),
    "given-colons": GIVEN.format('accelerators: ":::"'),
    "given-bad-infra": GIVEN.format('infra: "//"'),
    "given-negative-nodes": GIVEN.format("num_nodes: -3"),
    # was InvalidOperationError from Polars: "integer too large" (exit 70)
    "given-huge-nodes": GIVEN.format("num_nodes: 1e300"),
    "given-bad-bool": GIVEN.format('use_spot: "maybe"'),
    "given-twice": GIVEN.format("use_spot: true, use_spot: false"),
    "negative-cost": 'deny "x" spot\ntest "t" { given { cpus: "2+" } expect cost <= $-1/h }\n',
    "huge-quota": 'quota "q" sum(gpus) <= 1e400 per task.team\n',
    "deep-label": 'quota "q" sum(gpus) <= 4 per task.labels.a.b.c\n',
    "long-name": 'deny "' + "x" * 100_000 + '" spot\n',
    "big-set": 'deny "x" region in {' + ", ".join(f'"r{i}"' for i in range(20_000)) + "}\n",
    # was UnicodeEncodeError printing the rule name (exit 70)
    "lone-surrogate": 'deny "\\u0000\\ud800" spot\n',
    "bad-escape": 'deny "\\uZZZZ" spot\n',
    "escape-pair": 'deny "\\ud83d\\ude00" spot\n',
    "nested-calls": 'deny "x" lower(lower(lower(lower(cloud)))) == "aws"\n',
    "call-on-number": 'deny "x" lower(1) == "aws"\n',
    "bool-order": 'deny "x" spot < true\n',
    "huge-size": 'deny "x" memory > 1e300TB\n',
    "header-twice": 'policy "a" version 1\npolicy "b" version 2\n',
    "huge-version": 'policy "a" version 99999999999999999999999\n',
    "cr-only": 'deny "x" spot\rdeny "y" spot\r',
    "empty-set": 'deny "x" region in {}\n',
    "empty-globs": 'deny "x" region ~ []\n',
    "stars": 'deny "x" region ~ "***********"\n',
    "not-chain": 'deny "x" ' + "not " * 150 + "spot\n",
    "and-chain": 'deny "x" ' + " and ".join(["spot"] * 5000) + "\n",
    "let-cycle": 'let a = b\nlet b = a\ndeny "x" a\n',
    "kind-order": 'deny "x" when task.kind > service: spot\n',
    "zero-width": 'deny "a\u200bb" spot\n',
    "bidi-override": 'deny "x" spot  # \u202e comment\n',
}

COMMANDS = {
    "check": lambda f, t: ["policy", "check", f],
    "fmt": lambda f, t: ["policy", "fmt", "--check", f],
    "test": lambda f, t: ["policy", "test", f],
    "explain": lambda f, t: ["policy", "explain", f, "--task", t],
    "plan": lambda f, t: ["plan", t, "--policy", f],
    "diff": lambda f, t: ["policy", "diff", f, f],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name, text in CORPUS.items():
        path = root / f"{name}.policy"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
    (root / "folder.policy").mkdir()
    (root / "task.yaml").write_text("resources:\n  accelerators: A100:8\n")
    return root


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", CORPUS)
def test_a_hostile_file_gets_an_answer_never_an_internal_error(
    corpus: Path, name: str, command: str
) -> None:
    args = COMMANDS[command](str(corpus / f"{name}.policy"), str(corpus / "task.yaml"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1, 2), result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
