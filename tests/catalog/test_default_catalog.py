"""The shipped default catalog (catalogs/default): schema, provenance, and reproducibility."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from skyplan.catalog import schema as c
from skyplan.catalog.fetchers import aws_families, libcloud_ec2

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "catalogs" / "default"
CSVS = sorted(DEFAULT.glob("*.csv"))


def read(path: Path) -> pl.DataFrame:
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    overrides = {name: c.SCHEMA[name] for name in header if name in c.SCHEMA}
    frame = pl.read_csv(path, schema_overrides=overrides, infer_schema_length=0)
    return c.conform(frame, origin=str(path))


def test_default_catalog_has_the_expected_files() -> None:
    assert {"aws.csv", "curated.csv"} <= {p.name for p in CSVS}


@pytest.mark.parametrize("path", CSVS, ids=lambda p: p.name)
def test_every_file_conforms_and_has_provenance(path: Path) -> None:
    frame = read(path)
    assert frame.height > 0
    for column in (c.SOURCE, c.AS_OF):
        values = frame.get_column(column)
        assert values.null_count() == 0
        assert (values.str.strip_chars().str.len_chars() > 0).all(), f"empty {column} in {path}"
    assert frame.get_column(c.AS_OF).str.contains(r"^\d{4}-\d{2}(-\d{2})?$").all()
    assert (frame.get_column(c.PRICE) > 0).all(), f"non-positive or missing price in {path}"
    spot = frame.get_column(c.SPOT_PRICE).drop_nulls()
    assert (spot > 0).all()
    assert (frame.get_column(c.VCPUS) > 0).all() and (frame.get_column(c.MEMORY_GIB) > 0).all()
    assert frame.get_column(c.ARCH).is_in(["x86_64", "arm64"]).all()
    has_accel = frame.get_column(c.ACCELERATOR).is_not_null()
    assert (has_accel == frame.get_column(c.ACCELERATOR_COUNT).is_not_null()).all()


def test_no_duplicate_offers_across_files() -> None:
    keys = [c.CLOUD, c.REGION, c.ZONE, c.INSTANCE_TYPE]
    frame = pl.concat([read(p) for p in CSVS])
    dupes = frame.group_by(keys).len().filter(pl.col("len") > 1)
    assert dupes.height == 0, dupes


def test_curated_rows_cite_a_url() -> None:
    frame = read(DEFAULT / "curated.csv")
    assert frame.get_column(c.SOURCE).str.contains("https://").all()
    assert sorted(frame.get_column(c.CLOUD).unique()) == ["azure", "gcp", "lambda"]


def test_aws_csv_is_reproducible_from_libcloud() -> None:
    import libcloud

    shipped = read(DEFAULT / "aws.csv")
    made_with = shipped.get_column(c.SOURCE)[0].split()[1]
    if made_with != libcloud.__version__:
        pytest.skip(f"aws.csv was built with libcloud {made_with}; {libcloud.__version__} is here")
    built = libcloud_ec2.build()
    assert shipped.equals(built), "catalogs/default/aws.csv is stale: run catalogs/build_default.py"


def test_aws_accelerator_families_all_have_counts() -> None:
    frame = read(DEFAULT / "aws.csv")
    accel = frame.filter(pl.col(c.ACCELERATOR).is_not_null())
    families = {aws_families.family_of(t) for t in accel.get_column(c.INSTANCE_TYPE)}
    assert {"p3", "p4d", "p4de", "p5", "g4dn", "g5", "g6", "g6e", "inf2", "trn1"} <= families
    assert (accel.get_column(c.ACCELERATOR_COUNT) > 0).all()
    p4de = frame.filter(pl.col(c.INSTANCE_TYPE) == "p4de.24xlarge").row(0, named=True)
    assert (p4de[c.ACCELERATOR], p4de[c.ACCELERATOR_COUNT]) == ("A100-80GB", 8.0)
