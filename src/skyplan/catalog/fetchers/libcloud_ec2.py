"""Offline AWS EC2 on-demand offers from the price data apache-libcloud ships.

Sources, both inside the installed `libcloud` package:

- `libcloud/data/pricing.json`, key `compute` → `ec2_linux`: instance type → {region: $/hour}
  for Linux on-demand. About 18% of the entries are 0.0, which libcloud uses for "no price
  scraped"; those are skipped, as are keys without a size (`"p4d"`: not an instance type).
- `libcloud.compute.constants.ec2_instance_types.INSTANCE_TYPES`: vCPUs, memory, GPU count and
  processor per instance type. Types without an entry there are skipped (no specs).

libcloud scraped these numbers from AWS; they are reproduced as they are, not re-checked, and
are as old as the `updated` stamp in pricing.json.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import polars as pl

from skyplan.catalog import schema as c
from skyplan.catalog.fetchers import aws_families

CLOUD = "aws"


def _pricing() -> tuple[dict[str, Any], str]:
    """libcloud's pricing.json and libcloud's version (imported lazily: libcloud is slow)."""
    import libcloud

    text = resources.files("libcloud").joinpath("data/pricing.json").read_text(encoding="utf-8")
    return json.loads(text), str(libcloud.__version__)


def _instance_types() -> dict[str, Any]:
    from libcloud.compute.constants.ec2_instance_types import INSTANCE_TYPES

    return dict(INSTANCE_TYPES)


def pricing_date(pricing: dict[str, Any]) -> str | None:
    """The `updated` stamp of pricing.json (epoch seconds) as an ISO date, if present."""
    stamp = pricing.get("updated")
    if not isinstance(stamp, int | float):
        return None
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC).date().isoformat()


def build(
    as_of: str | None = None,
    *,
    regions: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """EC2 Linux on-demand offers, one row per (region, instance type), from libcloud's data.

    `as_of` overrides the date (default: pricing.json's `updated` date, else 2025-03).
    `regions` keeps only those regions.
    """
    pricing, version = _pricing()
    specs = _instance_types()
    date = pricing_date(pricing)
    when = as_of or date or "2025-03"
    source = f"apache-libcloud {version} libcloud/data/pricing.json ({date or '2025-03'})"
    wanted = set(regions) if regions is not None else None

    linux: dict[str, dict[str, float]] = pricing["compute"]["ec2_linux"]
    rows: list[dict[str, object]] = []
    skipped_zero = skipped_specs = 0
    for instance_type, by_region in linux.items():
        if "." not in instance_type:
            continue  # a family key ("p4d"), not an instance type
        spec = specs.get(instance_type)
        if spec is None:
            skipped_specs += 1
            continue
        extra = spec["extra"]
        accel = aws_families.accelerator_for(instance_type, extra.get("gpu"))
        arch = aws_families.arch_for(instance_type, extra.get("physicalProcessor"))
        vcpus = float(extra["vcpu"])
        memory = aws_families.parse_memory_gib(extra["memory"])
        for region, price in by_region.items():
            if wanted is not None and region not in wanted:
                continue
            if not price or price <= 0:
                skipped_zero += 1
                continue
            rows.append(
                {
                    c.CLOUD: CLOUD,
                    c.REGION: region,
                    c.ZONE: None,
                    c.INSTANCE_TYPE: instance_type,
                    c.ACCELERATOR: accel[0] if accel else None,
                    c.ACCELERATOR_COUNT: accel[1] if accel else None,
                    c.ACCELERATOR_MEMORY: accel[2] if accel else None,
                    c.VCPUS: vcpus,
                    c.MEMORY_GIB: memory,
                    c.PRICE: float(price),
                    c.SPOT_PRICE: None,
                    c.ARCH: arch,
                    c.CAPACITY: None,
                    c.GPU_ATTACHED: False,
                    c.SOURCE: source,
                    c.AS_OF: when,
                }
            )
    if progress is not None:
        progress(
            f"aws-libcloud: {len(rows)} offers; skipped {skipped_zero} missing (0.0) prices "
            f"and {skipped_specs} instance types without specs"
        )
    frame = pl.DataFrame(rows, schema=c.SCHEMA) if rows else c.empty()
    return sort(c.conform(frame, origin="aws-libcloud"))


def sort(frame: pl.DataFrame) -> pl.DataFrame:
    """The order catalogs/default/aws.csv is written in."""
    return frame.sort([c.CLOUD, c.REGION, c.INSTANCE_TYPE], nulls_last=True, maintain_order=True)
