"""`skyplan show-gpus` and the catalog summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

import skyplan
from skyplan.cli import render


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


@click.command("show-gpus")
@click.argument("name", required=False)
@click.option("--infra", help="Only this cloud / region, e.g. aws or gcp/us-central1.")
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Catalog to read (default: the shipped one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_gpus(
    name: str | None, infra: str | None, catalog_path: Path | None, as_json: bool
) -> None:
    """Accelerators in the catalog; with NAME (e.g. A100 or A100:8), every instance type
    offering it with the cheapest on-demand and spot price and where."""
    catalog = skyplan.load_catalog(catalog_path)
    if name is None:
        rows = skyplan.accelerator_summary(catalog, infra)
        if as_json:
            render.emit_json({"accelerators": rows})
            return
        table = Table(title=f"accelerators in {catalog.origin}", title_justify="left")
        for col in ("GPU", "COUNTS", "CLOUDS", "FROM $/h"):
            table.add_column(col)
        for row in rows:
            counts = ", ".join(f"{n:g}" for n in row["counts"])
            table.add_row(
                row["accelerator"], counts, ", ".join(row["clouds"]), _money(row["min_price"])
            )
        render.console().print(table)
        return
    rows = skyplan.accelerator_offers(catalog, name, infra)
    if as_json:
        render.emit_json({"offers": rows})
        return
    table = Table(title=f"{name} in {catalog.origin}", title_justify="left")
    for col in (
        "GPU",
        "QTY",
        "CLOUD",
        "INSTANCE",
        "vCPUs",
        "Mem(GiB)",
        "ON-DEMAND",
        "REGION",
        "SPOT",
        "REGION",
    ):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["accelerator"],
            f"{row['accelerator_count']:g}",
            row["cloud"],
            row["instance_type"],
            f"{row['vcpus']:g}",
            f"{row['memory_gib']:g}",
            _money(row["on_demand_price"]),
            row["on_demand_region"] or "-",
            _money(row["spot_price"]),
            row["spot_region"] or "-",
        )
    render.console().print(table)


def summary_table(origin: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"catalog {origin}", title_justify="left")
    for col in ("CLOUD", "OFFERS", "REGIONS", "TYPES", "ACCELERATORS", "AS OF", "SOURCES"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["cloud"],
            f"{row['offers']:,}",
            str(row["regions"]),
            str(row["instance_types"]),
            ", ".join(row["accelerators"]) or "-",
            row["as_of"],
            "\n".join(row["sources"]),
        )
    return table
