"""Every third-party package skyplan imports is declared in pyproject.toml, so a user's
`pip install skyplan` has what the code needs. (cryptography, numpy, urllib3 and
websocket-client were imported but undeclared, there only because other packages pulled them.)"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_top_levels() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "skyplan").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"skyplan", "__future__"}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    names += [d for extra in project["optional-dependencies"].values() for d in extra]
    return {
        n.split(">")[0].split("=")[0].split("[")[0].strip().lower().replace("_", "-") for n in names
    }


def test_every_imported_package_is_declared() -> None:
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("not a source checkout")
    distributions = packages_distributions()
    missing = {
        module: distributions.get(module, [module])
        for module in imported_top_levels()
        if not {d.lower() for d in distributions.get(module, [module])} & declared()
    }
    assert missing == {}
