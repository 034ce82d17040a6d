"""The prepared catalog on disk: the next process reads one Arrow file instead of parsing the
CSVs again, and a change to any catalog file, a damaged cache file or a cache folder that
cannot be written never changes what is loaded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from skyplan.catalog import catalog as catalog_module
from skyplan.catalog import prepared
from skyplan.catalog.catalog import default_catalog_path, load_catalog


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SKYPLAN_CACHE_DIR", str(folder))
    monkeypatch.setattr(catalog_module, "_CACHE", {})  # as a new process would start
    return folder


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return Path(shutil.copytree(default_catalog_path(), tmp_path / "catalog"))


def fresh(root: Path) -> pl.DataFrame:
    catalog_module._CACHE.clear()
    return load_catalog(root).frame


def test_the_next_load_reads_the_prepared_frame_and_it_is_the_same(
    cache: Path, files: Path
) -> None:
    first = fresh(files)
    [written] = cache.glob("*.arrow")
    second = fresh(files)
    assert second.equals(first) and second.schema == first.schema
    assert list(cache.glob("*.arrow")) == [written]


def test_changing_a_catalog_file_is_seen_at_once(cache: Path, files: Path) -> None:
    before = fresh(files)
    csv = files / "curated.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:-1]))  # one offer fewer
    after = fresh(files)
    assert after.height < before.height
    assert len(list(cache.glob("*.arrow"))) == 2


def test_a_damaged_cache_file_is_rebuilt_not_trusted(cache: Path, files: Path) -> None:
    good = fresh(files)
    [written] = cache.glob("*.arrow")
    written.write_bytes(written.read_bytes()[:100])
    assert fresh(files).equals(good)
    assert fresh(files).equals(good)  # and written whole again


def test_a_cache_folder_that_cannot_be_written_only_costs_time(
    cache: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.write_text("a file where the folder should be")
    assert fresh(files).height > 0
    monkeypatch.setenv("SKYPLAN_CACHE_DIR", prepared.OFF)
    assert prepared.cache_dir() is None
    assert fresh(files).height > 0


def test_only_the_newest_files_are_kept(cache: Path, tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": [1]})
    for n in range(prepared.KEEP + 3):
        prepared.load(f"key{n}", lambda: frame)
        os.utime(cache / f"key{n}.arrow", (n, n))
    prepared.load("last", lambda: frame)
    kept = {p.stem for p in cache.glob("*.arrow")}
    assert len(kept) == prepared.KEEP and "last" in kept and "key0" not in kept
