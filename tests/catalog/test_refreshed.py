"""What `skyplan catalog refresh` writes is what plans use next: without `--catalog` (or
`$SKYPLAN_CATALOG`), the shipped catalog with each refreshed cloud's rows in place of its
shipped ones. Before, a refreshed file was ignored unless named with `--catalog`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import skyplan
from skyplan.catalog import catalog as catalog_module
from skyplan.catalog import native
from skyplan.catalog import schema as c
from tests.solver.factories import gpu_offer, make_frame

from ..conftest import REPO

AS_OF = "2025-06-01"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKYPLAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKYPLAN_CATALOG", raising=False)
    monkeypatch.setattr(catalog_module, "_CACHE", {})
    return tmp_path / "home"


def refreshed(home: Path, name: str, *rows: dict[str, object], when: int | None = None) -> Path:
    path = home / "catalogs" / name
    native.write(make_frame(*rows), path)
    if when is not None:
        os.utime(path, (when, when))
    return path


def aws_a100(price: float) -> dict[str, object]:
    return gpu_offer(
        "A100", 8, cloud="aws", region="us-east-1", instance_type="p4d.24xlarge",
        price=price, spot_price=price / 3, as_of=AS_OF, source="test refresh",
    )  # fmt: skip


def rows_of(cloud: str) -> pl.DataFrame:
    return skyplan.load_catalog().frame.filter(pl.col(c.CLOUD) == cloud)


def test_a_refreshed_cloud_replaces_its_shipped_rows_and_the_rest_stay(home: Path) -> None:
    shipped = native.load(catalog_module.default_catalog_path())
    refreshed(home, "aws.csv", aws_a100(20.0))
    aws = rows_of("aws")
    assert aws.height == 1 and aws.item(0, c.PRICE) == 20.0
    gcp = rows_of("gcp")
    assert gcp.height == shipped.filter(pl.col(c.CLOUD) == "gcp").height > 0
    assert "refreshed" in skyplan.load_catalog().origin


def test_the_newest_refresh_of_a_cloud_wins(home: Path) -> None:
    refreshed(home, "aws.csv", aws_a100(20.0), when=1_000)
    refreshed(home, "aws-libcloud.csv", aws_a100(25.0), when=2_000)
    assert rows_of("aws").item(0, c.PRICE) == 25.0
    os.utime(home / "catalogs" / "aws.csv", (3_000, 3_000))
    catalog_module._CACHE.clear()
    assert rows_of("aws").item(0, c.PRICE) == 20.0


def test_a_named_catalog_ignores_the_refreshed_files(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed(home, "aws.csv", aws_a100(20.0))
    named = refreshed(tmp_path, "mine.csv", aws_a100(30.0))
    assert skyplan.load_catalog(named).frame.height == 1
    monkeypatch.setenv("SKYPLAN_CATALOG", str(named))
    assert skyplan.load_catalog().frame.item(0, c.PRICE) == 30.0


def test_a_damaged_refreshed_file_is_an_error_naming_it(home: Path) -> None:
    path = refreshed(home, "aws.csv", aws_a100(20.0))
    path.write_text(path.read_text().replace("20.0", "-20.0"))
    with pytest.raises(skyplan.CatalogError, match=r"aws\.csv: row 1 \(line 2\): price"):
        _ = skyplan.load_catalog().frame


def test_plan_says_which_catalog_and_how_old_its_prices_are(home: Path, tmp_path: Path) -> None:
    refreshed(home, "aws.csv", aws_a100(1.0))
    task = tmp_path / "task.yaml"
    task.write_text("resources:\n  accelerators: A100:8\n  infra: aws\n")
    env = {**os.environ, "SKYPLAN_HOME": str(home), "SKYPLAN_CATALOG_MAX_AGE_DAYS": "100000"}
    done = subprocess.run(
        [sys.executable, "-m", "skyplan", "plan", str(task)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "p4d.24xlarge" in done.stdout and "$1.0000/h" in done.stdout
    assert f"prices: aws as of {AS_OF} (" in done.stdout and "refreshed" in done.stdout
    assert done.stderr == ""
    env["SKYPLAN_CATALOG_MAX_AGE_DAYS"] = "0"
    old = subprocess.run(
        [sys.executable, "-m", "skyplan", "plan", str(task)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert old.stderr == ""  # 0 turns the warning off
    env["SKYPLAN_CATALOG_MAX_AGE_DAYS"] = "1"
    stale = task.with_name("stale.csv")
    native.write(make_frame(aws_a100(1.0)), stale)
    warned = subprocess.run(
        [sys.executable, "-m", "skyplan", "plan", str(task), "--catalog", str(stale)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert warned.returncode == 0
    assert "warning: aws prices are" in warned.stderr
    assert "more than SKYPLAN_CATALOG_MAX_AGE_DAYS=1" in warned.stderr
