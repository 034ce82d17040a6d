"""The catalog schema: every column an offer has, defined once.

Every loader (skyplan's own CSV/Parquet, SkyPilot v8 directories, the price fetchers) produces a
frame with exactly these columns in this order; `conform()` checks and casts one. Nothing else in
skyplan spells a column name as a string literal: it uses the constants below.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from skyplan.errors import CatalogError

CLOUD = "cloud"
REGION = "region"
ZONE = "zone"
INSTANCE_TYPE = "instance_type"
ACCELERATOR = "accelerator"
ACCELERATOR_COUNT = "accelerator_count"
ACCELERATOR_MEMORY = "accelerator_memory"
VCPUS = "vcpus"
MEMORY_GIB = "memory_gib"
PRICE = "price"
SPOT_PRICE = "spot_price"
ARCH = "arch"
CAPACITY = "capacity"
GPU_ATTACHED = "gpu_attached"
SOURCE = "source"
AS_OF = "as_of"

#: Column name → (dtype, nullable, meaning). The order is the canonical column order.
COLUMNS: dict[str, tuple[pl.DataType, bool, str]] = {
    CLOUD: (
        pl.String(),
        False,
        "provider, lower case: aws, gcp, azure, lambda, kubernetes, ssh, ...",
    ),
    REGION: (pl.String(), False, "region (or Kubernetes context, or SSH pool)"),
    ZONE: (pl.String(), True, "zone; null where the provider places within a region"),
    INSTANCE_TYPE: (pl.String(), False, "instance type (for GPUs attached to a host: the host)"),
    ACCELERATOR: (pl.String(), True, "accelerator model, canonical spelling; null = CPU only"),
    ACCELERATOR_COUNT: (pl.Float64(), True, "accelerators per node; null = CPU only"),
    ACCELERATOR_MEMORY: (pl.Float64(), True, "memory of one accelerator, GiB; null = unknown"),
    VCPUS: (pl.Float64(), False, "vCPUs per node"),
    MEMORY_GIB: (pl.Float64(), False, "memory per node, GiB"),
    PRICE: (
        pl.Float64(),
        True,
        "on-demand $/h per node (accelerators included); null = no on-demand",
    ),
    SPOT_PRICE: (pl.Float64(), True, "spot $/h per node; null = no spot offering"),
    ARCH: (pl.String(), False, "CPU architecture: x86_64 or arm64"),
    CAPACITY: (pl.Int64(), True, "nodes available; null = as many as the provider has"),
    GPU_ATTACHED: (pl.Boolean(), False, "accelerators attached to a general-purpose host (GCP n1)"),
    SOURCE: (pl.String(), False, "where the price came from (URL or data set)"),
    AS_OF: (pl.String(), False, "date the price was read, ISO 8601"),
}

NAMES: tuple[str, ...] = tuple(COLUMNS)
SCHEMA: dict[str, pl.DataType] = {name: spec[0] for name, spec in COLUMNS.items()}
#: Columns a native catalog file may omit; they are filled with these defaults.
DEFAULTS: dict[str, object] = {
    ZONE: None,
    ACCELERATOR: None,
    ACCELERATOR_COUNT: None,
    ACCELERATOR_MEMORY: None,
    SPOT_PRICE: None,
    ARCH: "x86_64",
    CAPACITY: None,
    GPU_ATTACHED: False,
}


def empty() -> pl.DataFrame:
    """A frame with the catalog schema and no rows."""
    return pl.DataFrame(schema=SCHEMA)


def conform(frame: pl.DataFrame, *, origin: str) -> pl.DataFrame:
    """Return `frame` with exactly the catalog columns, in order, cast to their dtypes.

    Missing optional columns are filled with their defaults; a missing required column, an extra
    column, an uncastable value or a null in a non-nullable column raises `CatalogError` naming
    `origin` (a file path or fetcher name) and the column.
    """
    extra = [c for c in frame.columns if c not in COLUMNS]
    if extra:
        raise CatalogError(
            f"{origin}: unknown column(s) {', '.join(extra)}; expected some of {', '.join(NAMES)}"
        )
    for name, value in DEFAULTS.items():
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(value, dtype=SCHEMA[name]).alias(name))
    missing = [c for c in NAMES if c not in frame.columns]
    if missing:
        raise CatalogError(f"{origin}: missing required column(s) {', '.join(missing)}")
    for name in NAMES:
        if SCHEMA[name].is_integer() and frame.schema[name].is_float():
            fractional = frame.filter(pl.col(name) != pl.col(name).floor()).height
            if fractional:
                raise CatalogError(
                    f"{origin}: column {name} needs whole numbers; {fractional} value(s) are not"
                )
    try:
        frame = frame.select(pl.col(name).cast(SCHEMA[name], strict=True) for name in NAMES)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CatalogError(f"{origin}: a value does not fit the catalog schema: {first}") from None
    for name, (_, nullable, _) in COLUMNS.items():
        if not nullable:
            nulls = frame.get_column(name).null_count()
            if nulls:
                raise CatalogError(f"{origin}: column {name} has {nulls} empty value(s)")
    _check_values(frame, origin)
    return frame


def _value_rules() -> list[tuple[str, pl.Expr, str]]:
    """(column, true where a value is wrong, what is wrong) — nulls are never wrong here."""
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    day = pl.col(AS_OF).str.to_date("%Y-%m-%d", strict=False)

    def bad_amount(name: str) -> pl.Expr:
        return (pl.col(name) < 0) | ~pl.col(name).is_finite()

    return [
        (PRICE, bad_amount(PRICE), "a price must be a finite number, 0 or more"),
        (SPOT_PRICE, bad_amount(SPOT_PRICE), "a price must be a finite number, 0 or more"),
        (VCPUS, (pl.col(VCPUS) <= 0) | ~pl.col(VCPUS).is_finite(), "vCPUs must be more than 0"),
        (MEMORY_GIB, bad_amount(MEMORY_GIB), "memory must be a finite number, 0 or more"),
        (ACCELERATOR_COUNT, pl.col(ACCELERATOR_COUNT) <= 0, "a count must be more than 0"),
        (CAPACITY, pl.col(CAPACITY) < 0, "a capacity must be 0 or more"),
        (AS_OF, day.is_null(), "a date must be written YYYY-MM-DD"),
        (AS_OF, day > tomorrow, "a price cannot be read in the future"),
    ]


def _check_values(frame: pl.DataFrame, origin: str) -> None:
    """The first row whose value is out of range, named by its number (and its line in a CSV
    file, under the header) and column: a negative price or a date in the future is an error,
    never an offer."""
    if frame.is_empty():
        return
    for name, wrong, what in _value_rules():
        found = (
            frame.select(pl.col(name), wrong.fill_null(False).alias("_wrong"))
            .with_row_index("_row", offset=1)
            .filter(pl.col("_wrong"))
        )
        if found.height:
            row, value = found.item(0, "_row"), found.item(0, name)
            line = f" (line {row + 1})" if origin.endswith(".csv") else ""
            more = f"; {found.height - 1:,} more row(s) like it" if found.height > 1 else ""
            raise CatalogError(f"{origin}: row {row}{line}: {name} {value!r}: {what}{more}")
