"""The catalog a launch plans over: the price catalog's rows for clouds with a usable backend,
plus the node shapes backends discovered (SSH pools, this machine), minus the places failover
has blocklisted."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Sequence

import polars as pl

from skyplan.catalog import schema as c
from skyplan.catalog.catalog import Catalog
from skyplan.errors import Scope
from skyplan.model.node import PoolOffer


def pool_frame(offers: Sequence[PoolOffer]) -> pl.DataFrame:
    """Catalog rows for discovered node shapes, at their configured prices."""
    today = datetime.date.today().isoformat()
    rows = [
        {
            c.CLOUD: o.cloud,
            c.REGION: o.region,
            c.ZONE: o.zone,
            c.INSTANCE_TYPE: o.instance_type,
            c.ACCELERATOR: o.accelerator,
            c.ACCELERATOR_COUNT: o.accelerator_count,
            c.ACCELERATOR_MEMORY: o.accelerator_memory,
            c.VCPUS: o.vcpus,
            c.MEMORY_GIB: o.memory_gib,
            c.PRICE: o.price,
            c.SPOT_PRICE: o.spot_price,
            c.ARCH: o.arch,
            c.CAPACITY: o.capacity,
            c.GPU_ATTACHED: False,
            c.SOURCE: o.source,
            c.AS_OF: today,
        }
        for o in offers
    ]
    return c.conform(pl.DataFrame(rows, schema=c.SCHEMA), origin="discovered node pools")


def _covered(scope: Scope) -> pl.Expr:
    expr = pl.col(c.CLOUD) == scope.cloud
    if scope.region is not None:
        expr = expr & (pl.col(c.REGION) == scope.region)
    if scope.zone is not None:
        expr = expr & (pl.col(c.ZONE) == scope.zone)
    return expr


def launch_catalog(
    catalog: Catalog,
    clouds: Collection[str],
    offers: Sequence[PoolOffer],
    blocked: Iterable[Scope] = (),
) -> Catalog:
    """`catalog`'s rows for `clouds`, plus `offers`, minus every row a `blocked` scope covers."""
    priced = catalog.frame.filter(pl.col(c.CLOUD).is_in(list(clouds)))
    frame = pl.concat([priced, pool_frame(offers)]) if offers else priced
    for scope in blocked:
        frame = frame.filter(~_covered(scope).fill_null(False))
    # Both parts already have the schema's columns and types: no second `conform` pass.
    return Catalog(lambda: frame, f"{catalog.origin} + discovered pools")
