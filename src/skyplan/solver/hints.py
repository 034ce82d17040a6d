"""Where a request *would* fit: one sentence per filter, computed from the offers that were
still candidates just before that filter removed the last of them.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from skyplan.catalog import schema as c
from skyplan.errors import did_you_mean
from skyplan.solver.filters import Request

_LIMIT = 6


def _cheapest_values(frame: pl.DataFrame, column: str) -> list[str]:
    """Distinct values of `column`, cheapest first."""
    ranked = (
        frame.filter(pl.col(column).is_not_null())
        .group_by(column)
        .agg(pl.col("cost").min().alias("best"))
        .sort(["best", column], nulls_last=True)
    )
    return [str(v) for v in ranked.get_column(column).to_list()]


def _listing(values: list[str]) -> str:
    shown = ", ".join(values[:_LIMIT])
    return shown + (f", … ({len(values) - _LIMIT} more)" if len(values) > _LIMIT else "")


def _cloud(req: Request, before: pl.DataFrame) -> str:
    cloud = req.option.infra.cloud
    if cloud not in req.catalog.clouds:
        return f"the catalog has no offers on {cloud} (it has {', '.join(req.catalog.clouds)})"
    return f"offered on {_listing(_cheapest_values(before, c.CLOUD))}"


def _where(column: str) -> Callable[[Request, pl.DataFrame], str]:
    def hint(req: Request, before: pl.DataFrame) -> str:
        return f"offered in {_listing(_cheapest_values(before, column))}"

    return hint


def _instance_type(req: Request, before: pl.DataFrame) -> str:
    wanted = req.option.instance_type or ""
    types = before.get_column(c.INSTANCE_TYPE).unique().to_list()
    guess = did_you_mean(wanted, types)
    return f"did you mean {guess!r}?" if guess else f"{wanted} is not offered there"


def _accelerator(req: Request, before: pl.DataFrame) -> str:
    acc = req.option.accelerator
    if acc is None:
        return "every remaining offer has accelerators; set accelerators to use one"
    if 0 < acc.count < 1:
        return (
            f"a fraction of a GPU is shared by jobs on an existing cluster; a new cluster needs "
            f"whole devices, e.g. {acc.name}:1"
        )
    same = before.filter(pl.col(c.ACCELERATOR) == acc.name)
    if same.height:
        counts = sorted(
            {f"{n:g}" for n in same.get_column(c.ACCELERATOR_COUNT).to_list()}, key=float
        )
        return f"{acc.name} is offered with {', '.join(counts)} per node there"
    anywhere = req.catalog.frame.filter(pl.col(c.ACCELERATOR) == acc.name)
    if anywhere.height:
        places = sorted({f"{r[0]}/{r[1]}" for r in anywhere.select(c.CLOUD, c.REGION).iter_rows()})
        return f"{acc.name} is offered elsewhere: {_listing(places)}"
    return f"{acc.name} is not in this catalog"


def _shape(column: str, unit: str) -> Callable[[Request, pl.DataFrame], str]:
    def hint(req: Request, before: pl.DataFrame) -> str:
        values = sorted({float(v) for v in before.get_column(column).to_list()})
        shown = [f"{v:g}" for v in values]
        return f"{unit} offered there: {_listing(shown)}"

    return hint


def _family(req: Request, before: pl.DataFrame) -> str:
    return "set instance_type (or accelerators) to use another instance family"


def _pricing(req: Request, before: pl.DataFrame) -> str:
    other = c.PRICE if req.option.use_spot else c.SPOT_PRICE
    priced = before.filter(pl.col(other).is_not_null())
    if not priced.height:
        return "no price is known for these offers"
    cheapest = float(priced.get_column(other).min()) * req.num_nodes  # type: ignore[arg-type]
    kind = "on-demand" if req.option.use_spot else "spot"
    return f"{kind} is offered from ${cheapest:.4g}/h"


def _price_cap(req: Request, before: pl.DataFrame) -> str:
    cheapest = float(before.get_column("cost").min())  # type: ignore[arg-type]
    return f"the cheapest offer costs ${cheapest:.4g}/h"


def _capacity(req: Request, before: pl.DataFrame) -> str:
    largest = int(before.get_column(c.CAPACITY).max())  # type: ignore[arg-type]
    return f"the largest pool has room for {largest} node(s)"


HINTS: dict[str, Callable[[Request, pl.DataFrame], str]] = {
    "cloud": _cloud,
    "region": _where(c.REGION),
    "zone": _where(c.ZONE),
    "instance-type": _instance_type,
    "accelerator": _accelerator,
    "cpus": _shape(c.VCPUS, "vCPU counts"),
    "memory": _shape(c.MEMORY_GIB, "memory sizes (GiB)"),
    "default-family": _family,
    "network-tier": lambda req, before: (
        f"offered without it on {_listing(_cheapest_values(before, c.CLOUD))}"
    ),
    "pricing": _pricing,
    "price-cap": _price_cap,
    "capacity": _capacity,
}


def would_fit(name: str, req: Request, before: pl.DataFrame) -> str | None:
    hint = HINTS.get(name)
    if hint is None or before.height == 0:
        return None
    return hint(req, before)
