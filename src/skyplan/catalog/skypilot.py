"""Loader for SkyPilot v8 catalog directories (`<cloud>/vms.csv`, `common/accelerators.csv`).

SkyPilot's layout differs per cloud; this module turns each into catalog rows:
- a row is "this instance type in this region (and zone)"; Price is on-demand, SpotPrice empty
  means no spot;
- AWS `GpuInfo` is a Python-literal dict; the GPU memory is read from its `SizeInMiB`;
- GCP lists GPUs as separate rows with an empty InstanceType. Families with GPUs built in (a2,
  a3, g2) cost their host row plus the matching GPU row; other GPUs attach to N1 hosts, so every
  N1 host within GCP's limits for that (GPU, count) becomes an offer with `gpu_attached`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from skyplan.catalog import hardware, native
from skyplan.catalog import schema as c
from skyplan.errors import CatalogError

MARKERS = ("common/accelerators.csv", "aws/vms.csv", "gcp/vms.csv", "azure/vms.csv")
_RENAME = {
    "InstanceType": c.INSTANCE_TYPE,
    "AcceleratorName": c.ACCELERATOR,
    "AcceleratorCount": c.ACCELERATOR_COUNT,
    "vCPUs": c.VCPUS,
    "MemoryGiB": c.MEMORY_GIB,
    "Price": c.PRICE,
    "SpotPrice": c.SPOT_PRICE,
    "Region": c.REGION,
    "AvailabilityZone": c.ZONE,
    "Arch": c.ARCH,
}
_DTYPES = {
    "InstanceType": pl.String,
    "AcceleratorName": pl.String,
    "AcceleratorCount": pl.Float64,
    "vCPUs": pl.Float64,
    "MemoryGiB": pl.Float64,
    "GpuInfo": pl.String,
    "Price": pl.Float64,
    "SpotPrice": pl.Float64,
    "Region": pl.String,
    "AvailabilityZone": pl.String,
    "Arch": pl.String,
    "Generation": pl.String,
}


def is_skypilot_dir(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in MARKERS)


def _read(path: Path) -> pl.DataFrame:
    try:
        header = native.csv_header(path)
        overrides = {name: _DTYPES[name] for name in header if name in _DTYPES}
        return pl.read_csv(path, schema_overrides=overrides, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogError(f"{path}: cannot read SkyPilot catalog file: {first}") from None


def _provenance(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    as_of = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).date().isoformat()
    return frame.with_columns(
        pl.lit(f"skypilot-v8:{path}").alias(c.SOURCE), pl.lit(as_of).alias(c.AS_OF)
    )


def _common(raw: pl.DataFrame, cloud: str) -> pl.DataFrame:
    """Rename SkyPilot columns, add the cloud, fill what the layout lacks."""
    frame = raw.rename({k: v for k, v in _RENAME.items() if k in raw.columns})
    if c.ZONE not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c.ZONE))
    if c.ARCH not in frame.columns:
        frame = frame.with_columns(pl.lit("x86_64").alias(c.ARCH))
    mib = (
        pl.col("GpuInfo").str.extract(r"SizeInMiB'?\"?\s*:\s*(\d+)", 1).cast(pl.Float64) / 1024
        if "GpuInfo" in frame.columns
        else pl.lit(None, dtype=pl.Float64)
    )
    known = pl.col(c.ACCELERATOR).replace_strict(
        hardware.GPU_MEMORY_GIB, default=None, return_dtype=pl.Float64
    )
    return frame.with_columns(
        pl.lit(cloud).alias(c.CLOUD),
        pl.col(c.ARCH).fill_null("x86_64").replace({"aarch64": "arm64"}),
        pl.coalesce(mib, known).alias(c.ACCELERATOR_MEMORY),
        pl.lit(False).alias(c.GPU_ATTACHED),
        pl.lit(None, dtype=pl.Int64).alias(c.CAPACITY),
    )


def _finish(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    frame = _provenance(frame, path).filter(
        pl.col(c.PRICE).is_not_null() | pl.col(c.SPOT_PRICE).is_not_null()
    )
    return c.conform(frame.select(c.NAMES), origin=str(path))


def _gcp(raw: pl.DataFrame) -> pl.DataFrame:
    frame = _common(raw, "gcp")
    hosts = frame.filter(pl.col(c.INSTANCE_TYPE).is_not_null() & (pl.col(c.INSTANCE_TYPE) != ""))
    gpus = frame.filter(pl.col(c.INSTANCE_TYPE).is_null() | (pl.col(c.INSTANCE_TYPE) == "")).select(
        c.ACCELERATOR,
        c.ACCELERATOR_COUNT,
        c.ACCELERATOR_MEMORY,
        c.REGION,
        c.ZONE,
        pl.col(c.PRICE).alias("gpu_price"),
        pl.col(c.SPOT_PRICE).alias("gpu_spot"),
    )
    built = {t: hardware.gcp_built_in_gpus(t) for t in hosts.get_column(c.INSTANCE_TYPE).unique()}
    built_in = pl.DataFrame(
        {
            c.INSTANCE_TYPE: [t for t, g in built.items() if g],
            "acc": [g[0] for g in built.values() if g],
            "cnt": [float(g[1]) for g in built.values() if g],
        },
        schema={c.INSTANCE_TYPE: pl.String, "acc": pl.String, "cnt": pl.Float64},
    )
    plain = hosts.join(built_in, on=c.INSTANCE_TYPE, how="anti").filter(
        pl.col(c.ACCELERATOR).is_null()
    )
    with_built_in = (
        hosts.drop(c.ACCELERATOR, c.ACCELERATOR_COUNT, c.ACCELERATOR_MEMORY)
        .join(built_in, on=c.INSTANCE_TYPE)
        .join(
            gpus,
            left_on=["acc", "cnt", c.REGION, c.ZONE],
            right_on=[c.ACCELERATOR, c.ACCELERATOR_COUNT, c.REGION, c.ZONE],
        )
        .rename({"acc": c.ACCELERATOR, "cnt": c.ACCELERATOR_COUNT})
    )
    limits = pl.DataFrame(
        {
            "acc": [k[0] for k in hardware.GCP_N1_LIMITS],
            "cnt": [float(k[1]) for k in hardware.GCP_N1_LIMITS],
            "max_vcpus": [v[0] for v in hardware.GCP_N1_LIMITS.values()],
            "max_mem": [v[1] for v in hardware.GCP_N1_LIMITS.values()],
        }
    )
    attachable = gpus.join(
        limits, left_on=[c.ACCELERATOR, c.ACCELERATOR_COUNT], right_on=["acc", "cnt"]
    )
    n1 = hosts.filter(pl.col(c.INSTANCE_TYPE).str.starts_with("n1-")).drop(
        c.ACCELERATOR, c.ACCELERATOR_COUNT, c.ACCELERATOR_MEMORY
    )
    attached = (
        n1.join(attachable, on=[c.REGION, c.ZONE])
        .filter(
            (pl.col(c.VCPUS) <= pl.col("max_vcpus")) & (pl.col(c.MEMORY_GIB) <= pl.col("max_mem"))
        )
        .with_columns(pl.lit(True).alias(c.GPU_ATTACHED))
    )
    priced = [
        df.with_columns(
            (pl.col(c.PRICE) + pl.col("gpu_price")).alias(c.PRICE),
            (pl.col(c.SPOT_PRICE) + pl.col("gpu_spot")).alias(c.SPOT_PRICE),
        ).select(plain.columns)
        for df in (with_built_in, attached)
    ]
    return pl.concat([plain, *priced], how="vertical_relaxed")


def load(root: Path) -> pl.DataFrame:
    """Every `<cloud>/vms.csv` under `root` as catalog rows."""
    frames = []
    for vms in sorted(root.glob("*/vms.csv")):
        cloud = vms.parent.name.lower()
        raw = _read(vms)
        missing = {"InstanceType", "vCPUs", "MemoryGiB", "Price", "Region"} - set(raw.columns)
        if missing:
            raise CatalogError(
                f"{vms}: not a SkyPilot v8 vms.csv; missing column(s) {', '.join(sorted(missing))}"
            )
        try:
            frame = _gcp(raw) if cloud == "gcp" else _common(raw, cloud)
            frames.append(_finish(frame, vms))
        except pl.exceptions.PolarsError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CatalogError(f"{vms}: cannot interpret SkyPilot catalog rows: {first}") from None
    if not frames:
        raise CatalogError(f"{root}: no <cloud>/vms.csv files found")
    return pl.concat(frames)
