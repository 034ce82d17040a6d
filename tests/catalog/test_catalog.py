"""`Catalog` (its vocabulary and lazy loading) and `load_catalog` / `default_catalog_path`."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

import skyplan
from skyplan.catalog import native, schema
from tests.solver.factories import gpu_offer, make_catalog, make_frame, make_offer

ROWS = (
    make_offer(),
    make_offer(region="eu-west-1"),
    gpu_offer("T4", 1),
    gpu_offer("A100", 8, region="us-west-2"),
    gpu_offer("A100-80GB", 8, cloud="gcp", region="us-central1"),
    gpu_offer("L4", 1, cloud="gcp", region="asia-east1"),
    gpu_offer("H100", 8, cloud="azure", region="eastus"),
)


@pytest.fixture(scope="module")
def catalog() -> skyplan.Catalog:
    return make_catalog(*ROWS)


# -- vocabulary ----------------------------------------------------------------------------------


def test_accelerators_are_sorted_and_distinct(catalog: skyplan.Catalog) -> None:
    assert catalog.accelerators == ("A100", "A100-80GB", "H100", "L4", "T4")


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("A100", "A100"),
        ("a100", "A100"),
        ("a100-80gb", "A100-80GB"),
        ("t4", "T4"),
        ("l4", "L4"),
        ("h100", "H100"),
        ("A10", None),
        ("V100", None),
        ("", None),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else "",
)
def test_canonical_accelerator_is_case_insensitive(
    catalog: skyplan.Catalog, written: str, canonical: str | None
) -> None:
    assert catalog.canonical_accelerator(written) == canonical


def test_clouds_are_sorted_and_distinct(catalog: skyplan.Catalog) -> None:
    assert catalog.clouds == ("aws", "azure", "gcp")


@pytest.mark.parametrize(
    ("cloud", "regions"),
    [
        (None, ("asia-east1", "eastus", "eu-west-1", "us-central1", "us-east-1", "us-west-2")),
        ("aws", ("eu-west-1", "us-east-1", "us-west-2")),
        ("gcp", ("asia-east1", "us-central1")),
        ("oci", ()),
    ],
    ids=["all", "aws", "gcp", "absent-cloud"],
)
def test_regions(catalog: skyplan.Catalog, cloud: str | None, regions: tuple[str, ...]) -> None:
    assert catalog.regions(cloud) == regions


def test_len_counts_offers(catalog: skyplan.Catalog) -> None:
    assert len(catalog) == len(ROWS)


def test_an_empty_catalog_has_an_empty_vocabulary() -> None:
    empty = skyplan.Catalog.from_frame(schema.empty())
    assert len(empty) == 0
    assert empty.accelerators == ()
    assert empty.clouds == ()
    assert empty.regions() == ()
    assert empty.canonical_accelerator("A100") is None


def test_a_cpu_only_catalog_has_no_accelerators() -> None:
    assert make_catalog(make_offer()).accelerators == ()


# -- construction --------------------------------------------------------------------------------


def test_the_loader_runs_once_and_only_when_needed() -> None:
    calls: list[int] = []

    def loader() -> pl.DataFrame:
        calls.append(1)
        return make_frame(*ROWS)

    catalog = skyplan.Catalog(loader, "counted")
    assert calls == []
    assert repr(catalog) == "Catalog('counted')"
    assert catalog.origin == "counted"
    assert len(catalog) == len(ROWS)
    _ = catalog.frame, catalog.accelerators, catalog.clouds
    assert calls == [1]


def test_from_frame_conforms_the_frame() -> None:
    frame = pl.DataFrame(
        {
            "cloud": ["aws"],
            "region": ["us-east-1"],
            "instance_type": ["m6i.2xlarge"],
            "vcpus": [8],
            "memory_gib": [32],
            "price": [0.384],
            "source": ["test"],
            "as_of": ["2026-01-01"],
        }
    )
    catalog = skyplan.Catalog.from_frame(frame)
    assert catalog.frame.columns == list(schema.NAMES)
    assert dict(catalog.frame.schema) == schema.SCHEMA
    assert catalog.frame.to_dicts() == [make_offer()]


def test_from_frame_rejects_a_frame_off_the_schema() -> None:
    frame = make_frame(make_offer()).with_columns(pl.lit(1).alias("colour"))
    with pytest.raises(skyplan.CatalogError, match="mine: unknown column"):
        skyplan.Catalog.from_frame(frame, origin="mine")


# -- load_catalog --------------------------------------------------------------------------------


def test_a_missing_path_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(skyplan.CatalogError, match="not found"):
        skyplan.load_catalog(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({}, id="empty-directory"),
        pytest.param({"README.md": "hello\n", "prices.json": "{}"}, id="no-catalog-files"),
        pytest.param({"aws/README.md": "hello\n"}, id="cloud-directory-without-vms-csv"),
    ],
)
def test_a_directory_with_nothing_useful_is_a_catalog_error(
    tmp_path: Path, files: dict[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(skyplan.CatalogError, match="not a catalog"):
        skyplan.load_catalog(tmp_path)


def test_a_skypilot_directory_without_vms_files_is_a_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "accelerators.csv").write_text("AcceleratorName,Clouds\n")
    with pytest.raises(skyplan.CatalogError, match=r"vms\.csv"):
        _ = skyplan.load_catalog(tmp_path).frame


def test_a_file_of_another_kind_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{}")
    with pytest.raises(skyplan.CatalogError):
        skyplan.load_catalog(path)


def test_load_catalog_accepts_str_and_path(tmp_path: Path) -> None:
    native.write(make_frame(*ROWS), tmp_path / "offers.csv")
    assert skyplan.load_catalog(str(tmp_path)) is skyplan.load_catalog(tmp_path)


def test_load_catalog_caches_until_a_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "offers.csv"
    native.write(make_frame(*ROWS), path)
    first = skyplan.load_catalog(tmp_path)
    assert skyplan.load_catalog(tmp_path) is first
    native.write(make_frame(*ROWS[:2]), path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second = skyplan.load_catalog(tmp_path)
    assert second is not first
    assert len(second) == 2


# -- default_catalog_path ------------------------------------------------------------------------


def test_default_catalog_path_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYPLAN_CATALOG", str(tmp_path / "mine"))
    assert skyplan.default_catalog_path() == tmp_path / "mine"


def test_default_catalog_path_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYPLAN_CATALOG", raising=False)
    path = skyplan.default_catalog_path()
    assert path.name == "default"
    assert path.parent.name in ("catalogs", "_catalogs")


def test_an_empty_environment_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYPLAN_CATALOG", raising=False)
    shipped = skyplan.default_catalog_path()
    monkeypatch.setenv("SKYPLAN_CATALOG", "")
    assert skyplan.default_catalog_path() == shipped


def test_load_catalog_without_a_path_reads_the_environment_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native.write(make_frame(*ROWS), tmp_path / "offers.csv")
    monkeypatch.setenv("SKYPLAN_CATALOG", str(tmp_path / "offers.csv"))
    catalog = skyplan.load_catalog()
    assert len(catalog) == len(ROWS)
    assert catalog.origin == str(tmp_path / "offers.csv")


def test_a_missing_environment_catalog_is_a_catalog_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYPLAN_CATALOG", str(tmp_path / "gone"))
    with pytest.raises(skyplan.CatalogError, match="gone"):
        skyplan.load_catalog()
