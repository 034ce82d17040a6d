"""Backends are optional extras: `pip install skyplan` plans, checks policies and runs the local
backend with no cloud SDK installed, and a backend whose SDK is missing says which extra to
install instead of failing with an ImportError.

The CLI runs in a child Python in which the SDKs cannot be imported (`sys.modules[name] = None`
makes `import name` fail as it does when the package is absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from skyplan.backends import BACKENDS
from skyplan.backends.installed import NEEDS, BackendNotInstalled, NotInstalled

from ..conftest import REPO

SDKS = ("paramiko", "libcloud", "kubernetes", "cryptography", "urllib3", "websocket", "psycopg")

_CHILD = """
import sys
for name in {sdks!r}:
    sys.modules[name] = None
from skyplan.cli.main import main
sys.argv = ["skyplan", *{args!r}]
main()
"""


def skyplan_without_sdks(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYPLAN_HOME": str(home), "NO_COLOR": "1"}
    code = _CHILD.format(sdks=SDKS, args=list(args))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def test_check_names_the_extra_each_missing_backend_needs(tmp_path: Path) -> None:
    done = skyplan_without_sdks(tmp_path, "check", "--json")
    assert done.returncode == 0, done.stderr
    checks = {c["backend"]: c for c in json.loads(done.stdout)}
    assert checks["local"]["ok"] is True
    for name in ("ssh", "aws", "gcp", "azure", "kubernetes"):
        assert checks[name]["ok"] is False
        assert f"pip install 'skyplan[{name}]'" in checks[name]["reason"]
    assert "apache-libcloud" in checks["aws"]["reason"]
    assert "paramiko" in checks["ssh"]["reason"]


def test_plan_and_policy_work_without_any_backend_sdk(tmp_path: Path) -> None:
    done = skyplan_without_sdks(tmp_path, "plan", "examples/train.yaml", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["placements"][0]["instance_type"]
    policies = sorted(str(p.relative_to(REPO)) for p in (REPO / "policies").glob("*.policy"))
    done = skyplan_without_sdks(tmp_path, "policy", "check", *policies)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_launch_on_a_backend_not_installed_is_refused_with_the_install_hint(
    tmp_path: Path,
) -> None:
    done = skyplan_without_sdks(
        tmp_path, "launch", "--dryrun", "-c", "c1", "--infra", "aws", "echo", "hi"
    )
    assert done.returncode == 1
    assert "pip install 'skyplan[aws]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_local_backend_runs_a_job_without_any_backend_sdk(tmp_path: Path) -> None:
    done = skyplan_without_sdks(tmp_path, "launch", "-c", "solo", "--infra", "local", "echo", "hi")
    try:
        assert done.returncode == 0, done.stderr
        assert "hi" in done.stdout
    finally:
        skyplan_without_sdks(tmp_path, "down", "-y", "solo")


def test_refreshing_from_libcloud_without_libcloud_is_an_input_error(tmp_path: Path) -> None:
    done = skyplan_without_sdks(
        tmp_path, "catalog", "refresh", "aws-libcloud", "-o", str(tmp_path / "c.csv")
    )
    assert done.returncode == 2
    assert "pip install 'skyplan[aws]'" in done.stderr
    assert not (tmp_path / "c.csv").exists()


def test_a_stand_in_refuses_every_operation_with_the_same_sentence() -> None:
    stand_in = NotInstalled("aws", ("apache-libcloud",))
    assert not stand_in.check().ok
    assert list(stand_in.offers()) == []
    with pytest.raises(BackendNotInstalled, match=r"skyplan\[aws\]"):
        stand_in.terminate("c1")
    with pytest.raises(BackendNotInstalled, match="apache-libcloud"):
        stand_in.owned()


def test_each_backends_extra_installs_what_it_imports_and_the_core_installs_none_of_it() -> None:
    pyproject = REPO / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not a source checkout")
    project = tomllib.loads(pyproject.read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in requirements}

    extras = project["optional-dependencies"]
    core = names(project["dependencies"])
    for backend, modules in NEEDS.items():
        assert backend in BACKENDS
        assert set(modules.values()) <= names(extras[backend]), backend
        assert not set(modules.values()) & core, backend
    assert f"skyplan[{','.join(['ssh', 'aws', 'gcp', 'azure', 'kubernetes'])}" in str(extras["all"])
