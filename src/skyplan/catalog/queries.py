"""Read-only questions about a catalog, as plain rows: what `show-gpus` and `catalog show` print."""

from __future__ import annotations

from typing import Any

import polars as pl

from skyplan.catalog import schema as c
from skyplan.catalog.catalog import Catalog
from skyplan.catalog.expr import glob_expr
from skyplan.errors import InputError, NoFeasiblePlacement, Rejection, did_you_mean
from skyplan.model.infra import parse_infra


def _scoped(catalog: Catalog, infra: str | None) -> pl.DataFrame:
    frame = catalog.frame
    if not infra:
        return frame
    try:
        pin = parse_infra(infra)
    except ValueError as exc:
        raise InputError(f"--infra: {exc}") from None
    for column, value in ((c.CLOUD, pin.cloud), (c.REGION, pin.region), (c.ZONE, pin.zone)):
        if value is not None:
            frame = frame.filter(glob_expr(column, value))
    return frame


def accelerator_summary(catalog: Catalog, infra: str | None = None) -> list[dict[str, Any]]:
    """One row per accelerator: the counts per node offered and the clouds offering it."""
    frame = _scoped(catalog, infra).filter(pl.col(c.ACCELERATOR).is_not_null())
    grouped = (
        frame.group_by(c.ACCELERATOR)
        .agg(
            pl.col(c.ACCELERATOR_COUNT).unique().sort().alias("counts"),
            pl.col(c.CLOUD).unique().sort().alias("clouds"),
            pl.col(c.PRICE).min().alias("min_price"),
        )
        .sort(c.ACCELERATOR)
    )
    return grouped.to_dicts()


def accelerator_offers(
    catalog: Catalog, name: str, infra: str | None = None
) -> list[dict[str, Any]]:
    """Per (cloud, instance type, count): the cheapest on-demand and spot price and where."""
    canonical = catalog.canonical_accelerator(name.split(":")[0])
    if canonical is None:
        guess = did_you_mean(name, catalog.accelerators)
        hint = f"did you mean {guess!r}?" if guess else None
        raise NoFeasiblePlacement(
            None, f"{name} is not in this catalog", [Rejection(name, len(catalog), 0, hint)]
        )
    frame = _scoped(catalog, infra).filter(pl.col(c.ACCELERATOR) == canonical)
    if ":" in name:
        frame = frame.filter(pl.col(c.ACCELERATOR_COUNT) == float(name.split(":")[1]))
    keys = [c.ACCELERATOR, c.ACCELERATOR_COUNT, c.CLOUD, c.INSTANCE_TYPE, c.VCPUS, c.MEMORY_GIB]

    def cheapest(column: str, label: str) -> pl.DataFrame:
        return (
            frame.filter(pl.col(column).is_not_null())
            .sort([column, c.REGION, c.ZONE], nulls_last=True)
            .unique(subset=keys, keep="first", maintain_order=True)
            .select(
                *keys,
                pl.col(column).alias(f"{label}_price"),
                pl.col(c.REGION).alias(f"{label}_region"),
            )
        )

    table = cheapest(c.PRICE, "on_demand").join(
        cheapest(c.SPOT_PRICE, "spot"), on=keys, how="full", coalesce=True, nulls_equal=True
    )
    return table.sort([c.ACCELERATOR_COUNT, "on_demand_price", c.CLOUD], nulls_last=True).to_dicts()


def catalog_summary(catalog: Catalog) -> list[dict[str, Any]]:
    """Per cloud: offers, regions, instance types, accelerators, and provenance."""
    return (
        catalog.frame.group_by(c.CLOUD)
        .agg(
            pl.len().alias("offers"),
            pl.col(c.REGION).n_unique().alias("regions"),
            pl.col(c.INSTANCE_TYPE).n_unique().alias("instance_types"),
            pl.col(c.ACCELERATOR).drop_nulls().unique().sort().alias("accelerators"),
            pl.col(c.SOURCE).unique().sort().alias("sources"),
            pl.col(c.AS_OF).max().alias("as_of"),
        )
        .sort(c.CLOUD)
        .to_dicts()
    )
