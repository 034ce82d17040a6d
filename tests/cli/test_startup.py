"""A CLI process imports only what its command uses (issue 15: `api` + `solver` were 413 ms of
a 0.7 s `plan`, and every command loaded the store, the runtime and the simulator because the
`sim` command group imported them at start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from skyplan.cli.main import LAZY, cli

from ..conftest import REPO

_CHILD = """
import json, sys
from skyplan.cli.main import cli
try:
    cli({args!r}, prog_name="skyplan")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def modules_loaded_by(home: Path, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(args=list(args))],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SKYPLAN_HOME": str(home)},
        timeout=120,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def loaded(modules: set[str], *packages: str) -> set[str]:
    return {p for p in packages if p in modules}


def test_plan_loads_neither_the_store_nor_the_runtime_nor_the_simulator(tmp_path: Path) -> None:
    modules = modules_loaded_by(tmp_path, "plan", "examples/train.yaml", "--json")
    assert "skyplan.solver" in modules  # it did plan
    assert not loaded(
        modules,
        "sqlalchemy",
        "skyplan.state",
        "skyplan.runtime",
        "skyplan.execution",
        "skyplan.sim",
        "skyplan.backends",
        "numpy.random",
        "ortools",
    )


def test_status_loads_neither_the_solver_nor_the_policy_language(tmp_path: Path) -> None:
    modules = modules_loaded_by(tmp_path, "status")
    assert "skyplan.state" in modules  # it did read the store
    assert not loaded(modules, "skyplan.solver", "skyplan.dsl", "lark", "ortools", "skyplan.sim")


def test_every_lazy_command_is_found_under_its_own_name() -> None:
    ctx = click.Context(cli)
    for name in LAZY:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert set(LAZY) <= set(cli.list_commands(ctx))
