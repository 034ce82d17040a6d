"""Loader for skyplan's own catalog format: CSV or Parquet files whose columns are the schema's
(optional columns may be left out), or a directory of them (concatenated, sorted by name).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from skyplan.catalog import schema as c
from skyplan.errors import CatalogError

SUFFIXES = (".csv", ".parquet")


def files_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())


def csv_header(path: Path) -> list[str]:
    """The column names on the first line of a CSV file."""
    with path.open(encoding="utf-8") as handle:
        return handle.readline().strip().split(",")


def is_native(path: Path) -> bool:
    return (path.is_file() and path.suffix in SUFFIXES) or (path.is_dir() and bool(files_in(path)))


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        header = csv_header(path)
        overrides = {name: c.SCHEMA[name] for name in header if name in c.SCHEMA}
        return pl.read_csv(path, schema_overrides=overrides, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogError(f"{path}: cannot read catalog file: {first}") from None


def load(path: Path) -> pl.DataFrame:
    frames = [c.conform(_read(p), origin=str(p)) for p in files_in(path)]
    if not frames:
        raise CatalogError(f"{path}: no catalog files (*.csv, *.parquet) found")
    return pl.concat(frames)


def write(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` (conformed) as a native CSV file, sorted for stable diffs."""
    frame = c.conform(frame, origin=str(path)).sort(
        [c.CLOUD, c.REGION, c.ZONE, c.INSTANCE_TYPE, c.ACCELERATOR, c.ACCELERATOR_COUNT],
        nulls_last=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_csv(tmp)
    tmp.replace(path)
