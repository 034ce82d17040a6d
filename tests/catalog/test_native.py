"""skyplan's own catalog format: CSV or Parquet files with the schema's columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import skyplan
from skyplan.catalog import native, schema
from tests.solver.factories import gpu_offer, make_frame, make_offer

ROWS = (
    make_offer(),
    make_offer(region="eu-west-1", zone="euw1-az1", spot_price=0.12, capacity=4),
    gpu_offer(
        "A100",
        8,
        instance_type="p4d.24xlarge",
        vcpus=96,
        memory_gib=1152,
        price=32.77,
        accelerator_memory=40,
    ),
    gpu_offer(
        "T4",
        1,
        cloud="gcp",
        region="us-central1",
        instance_type="n1-highmem-4",
        price=None,
        spot_price=0.2,
        gpu_attached=True,
        arch="x86_64",
    ),
    make_offer(cloud="aws", instance_type="m7g.2xlarge", arch="arm64", price=0.3264),
)

#: The smallest native CSV: only the required columns.
MINIMAL = """\
cloud,region,instance_type,vcpus,memory_gib,price,source,as_of
aws,us-east-1,m6i.2xlarge,8,32,0.384,test,2026-01-01
"""


def write_row(path: Path, **overrides: Any) -> Path:
    """A one-row native CSV written by hand (an empty string is an empty field: a null)."""
    row = make_offer() | overrides
    cells = ["" if v is None else str(v) for v in row.values()]
    return write_text(path, ",".join(row) + "\n" + ",".join(cells) + "\n")


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> pl.DataFrame:
    return native.load(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    frame = make_frame(*ROWS)
    path = tmp_path / f"offers{suffix}"
    if suffix == ".csv":
        native.write(frame, path)
    else:
        frame.write_parquet(path)
    back = load(path)
    assert back.columns == list(schema.NAMES)
    assert dict(back.schema) == schema.SCHEMA
    key = [schema.CLOUD, schema.REGION, schema.INSTANCE_TYPE]
    assert back.sort(key).equals(frame.sort(key))


def test_write_is_sorted_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "offers.csv"
    native.write(make_frame(*reversed(ROWS)), path)
    assert [p.name for p in path.parent.iterdir()] == ["offers.csv"]
    back = load(path)
    clouds = back.get_column(schema.CLOUD).to_list()
    assert clouds == sorted(clouds)


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "offers.csv"
    native.write(make_frame(*ROWS), path)
    native.write(make_frame(ROWS[0]), path)
    assert load(path).height == 1


def test_optional_columns_are_filled_with_defaults(tmp_path: Path) -> None:
    (row,) = load(write_text(tmp_path / "min.csv", MINIMAL)).to_dicts()
    assert row == make_offer()


@pytest.mark.parametrize("column", sorted(schema.DEFAULTS), ids=str)
def test_each_optional_column_may_be_left_out(column: str) -> None:
    frame = make_frame(make_offer()).drop(column)
    conformed = schema.conform(frame, origin="test")
    assert conformed.get_column(column).to_list() == [schema.DEFAULTS[column]]


def test_an_unknown_column_is_named(tmp_path: Path) -> None:
    text = MINIMAL.replace("as_of\n", "as_of,colour\n").replace("2026-01-01\n", "2026-01-01,red\n")
    path = write_text(tmp_path / "extra.csv", text)
    with pytest.raises(skyplan.CatalogError) as raised:
        load(path)
    assert "colour" in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "column",
    ["cloud", "region", "instance_type", "vcpus", "memory_gib", "price", "source", "as_of"],
)
def test_a_missing_required_column_is_named(tmp_path: Path, column: str) -> None:
    frame = pl.read_csv(MINIMAL.encode(), infer_schema_length=0).drop(column)
    path = tmp_path / "missing.csv"
    frame.write_csv(path)
    with pytest.raises(skyplan.CatalogError) as raised:
        load(path)
    assert column in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("column", "value"),
    [("price", "cheap"), ("vcpus", "eight"), ("capacity", "lots"), ("gpu_attached", "maybe")],
    ids=["price", "vcpus", "capacity", "gpu_attached"],
)
def test_a_value_of_the_wrong_type_is_a_catalog_error(
    tmp_path: Path, column: str, value: str
) -> None:
    path = write_row(tmp_path / "bad.csv", **{column: value})
    with pytest.raises(skyplan.CatalogError) as raised:
        load(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "column", ["cloud", "region", "instance_type", "vcpus", "memory_gib", "source", "as_of"]
)
def test_a_null_in_a_non_nullable_column_is_a_catalog_error(tmp_path: Path, column: str) -> None:
    path = write_row(tmp_path / "null.csv", **{column: None})
    with pytest.raises(skyplan.CatalogError) as raised:
        load(path)
    assert column in str(raised.value)


def test_every_column_reads_back_from_text(tmp_path: Path) -> None:
    row = make_offer(zone="use1-az1", capacity=3, gpu_attached=True, spot_price=0.1)
    (back,) = load(write_row(tmp_path / "row.csv", **row)).to_dicts()
    assert back == row


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_fractional_capacity_is_a_catalog_error(tmp_path: Path, suffix: str) -> None:
    """Capacity counts whole nodes; 2.5 is bad data in either format, not 2."""
    path = tmp_path / f"pool{suffix}"
    if suffix == ".csv":
        write_row(path, capacity=2.5)
    else:
        make_frame(make_offer()).with_columns(pl.lit(2.5).alias(schema.CAPACITY)).write_parquet(
            path
        )
    with pytest.raises(skyplan.CatalogError) as raised:
        load(path)
    assert str(path) in str(raised.value)


def test_a_null_price_is_allowed(tmp_path: Path) -> None:
    path = write_text(tmp_path / "spot.csv", MINIMAL.replace(",0.384,", ",,"))
    assert load(path).get_column(schema.PRICE).to_list() == [None]


def test_a_directory_of_csvs_is_concatenated_in_name_order(tmp_path: Path) -> None:
    native.write(make_frame(ROWS[0]), tmp_path / "b.csv")
    native.write(make_frame(ROWS[1], ROWS[2]), tmp_path / "a.csv")
    make_frame(ROWS[3]).write_parquet(tmp_path / "c.parquet")
    write_text(tmp_path / "README.md", "not a catalog file\n")
    frame = load(tmp_path)
    assert frame.height == 4
    assert frame.get_column(schema.INSTANCE_TYPE).to_list()[-2:] == ["m6i.2xlarge", "n1-highmem-4"]


def test_one_bad_file_in_a_directory_is_named(tmp_path: Path) -> None:
    native.write(make_frame(ROWS[0]), tmp_path / "a.csv")
    bad = write_text(tmp_path / "b.csv", "cloud,region\naws,us-east-1\n")
    with pytest.raises(skyplan.CatalogError, match=r"b\.csv"):
        load(tmp_path)
    assert bad.exists()


def test_load_catalog_reads_native_files_and_directories(tmp_path: Path) -> None:
    native.write(make_frame(*ROWS), tmp_path / "dir" / "offers.csv")
    by_dir = skyplan.load_catalog(tmp_path / "dir")
    by_file = skyplan.load_catalog(tmp_path / "dir" / "offers.csv")
    assert len(by_dir) == len(by_file) == len(ROWS)
    assert by_dir.frame.equals(by_file.frame)


def test_parquet_loads_through_load_catalog(tmp_path: Path) -> None:
    path = tmp_path / "offers.parquet"
    make_frame(*ROWS).write_parquet(path)
    catalog = skyplan.load_catalog(path)
    assert len(catalog) == len(ROWS)
    assert catalog.accelerators == ("A100", "T4")


def test_a_corrupt_parquet_file_is_a_catalog_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "broken.parquet", "this is not parquet")
    with pytest.raises(skyplan.CatalogError, match=r"broken\.parquet"):
        load(path)


def test_is_native(tmp_path: Path) -> None:
    assert not native.is_native(tmp_path)
    write_text(tmp_path / "notes.txt", "hello")
    assert not native.is_native(tmp_path)
    path = write_text(tmp_path / "x.csv", MINIMAL)
    assert native.is_native(tmp_path)
    assert native.is_native(path)


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("price", "-1.5", "price -1.5: a price must be a finite number, 0 or more"),
        ("price", "nan", "price nan: a price must be a finite number"),
        ("spot_price", "-0.01", "spot_price -0.01: a price must be"),
        ("vcpus", "0", "vcpus 0.0: vCPUs must be more than 0"),
        ("memory_gib", "-4", "memory_gib -4.0: memory must be"),
        ("accelerator_count", "0", "accelerator_count 0.0: a count must be more than 0"),
        ("capacity", "-2", "capacity -2: a capacity must be 0 or more"),
        ("as_of", "03/06/2025", "as_of '03/06/2025': a date must be written YYYY-MM-DD"),
        ("as_of", "2999-01-01", "as_of '2999-01-01': a price cannot be read in the future"),
    ],
)
def test_a_value_out_of_range_is_an_error_naming_the_file_row_and_line(
    tmp_path: Path, column: str, value: str, says: str
) -> None:
    # Before, a negative price or a future date loaded as an offer like any other.
    good = ",".join("" if v is None else str(v) for v in make_offer().values())
    path = write_row(tmp_path / "bad.csv", **{column: value})
    header, bad = path.read_text().splitlines()
    path.write_text(f"{header}\n{good}\n{good}\n{bad}\n{bad}\n")
    with pytest.raises(skyplan.CatalogError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: row 3 (line 4): {says}")
    assert message.endswith("; 1 more row(s) like it")


def test_a_refresh_whose_prices_are_out_of_range_keeps_the_previous_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyplan.catalog import fetchers

    target = write_text(tmp_path / "aws.csv", MINIMAL)
    broken = make_frame(make_offer(price=-3.0))
    monkeypatch.setitem(fetchers.REFRESHERS, "aws", lambda **_: broken)
    with pytest.raises(skyplan.CatalogError, match=r"catalog refresh aws: row 1: price -3\.0"):
        skyplan.refresh_catalog("aws", target)
    assert target.read_text() == MINIMAL
