"""Small factories for planner tests: catalog rows, catalogs and tasks."""

from __future__ import annotations

from typing import Any

import polars as pl

import skyplan
from skyplan.catalog import schema

#: A plain on-demand AWS general-purpose node; every test overrides what it is about.
DEFAULT_OFFER: dict[str, Any] = {
    schema.CLOUD: "aws",
    schema.REGION: "us-east-1",
    schema.ZONE: None,
    schema.INSTANCE_TYPE: "m6i.2xlarge",
    schema.ACCELERATOR: None,
    schema.ACCELERATOR_COUNT: None,
    schema.ACCELERATOR_MEMORY: None,
    schema.VCPUS: 8.0,
    schema.MEMORY_GIB: 32.0,
    schema.PRICE: 0.384,
    schema.SPOT_PRICE: None,
    schema.ARCH: "x86_64",
    schema.CAPACITY: None,
    schema.GPU_ATTACHED: False,
    schema.SOURCE: "test",
    schema.AS_OF: "2026-01-01",
}


def make_offer(**overrides: Any) -> dict[str, Any]:
    """A catalog row with sane defaults; keyword arguments replace columns."""
    unknown = set(overrides) - set(DEFAULT_OFFER)
    if unknown:
        raise TypeError(f"unknown catalog column(s): {', '.join(sorted(unknown))}")
    row = {**DEFAULT_OFFER, **overrides}
    for name in (
        schema.VCPUS,
        schema.MEMORY_GIB,
        schema.PRICE,
        schema.SPOT_PRICE,
        schema.ACCELERATOR_COUNT,
        schema.ACCELERATOR_MEMORY,
    ):
        if row[name] is not None:
            row[name] = float(row[name])
    return row


def gpu_offer(accelerator: str, count: float = 1, **overrides: Any) -> dict[str, Any]:
    """A GPU node row: `accelerator` x `count` per node."""
    defaults: dict[str, Any] = {
        schema.INSTANCE_TYPE: f"{accelerator.lower()}-x{count:g}",
        schema.ACCELERATOR: accelerator,
        schema.ACCELERATOR_COUNT: count,
    }
    return make_offer(**{**defaults, **overrides})


def make_frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=schema.SCHEMA)


def make_catalog(*rows: dict[str, Any]) -> skyplan.Catalog:
    """A catalog holding exactly `rows` (made with `make_offer`)."""
    return skyplan.Catalog.from_frame(make_frame(*rows), origin="<test>")


def make_task(yaml_text: str) -> skyplan.Dag:
    """A task (DAG) from YAML text."""
    return skyplan.parse_task(yaml_text, "<test>")
