"""`skyplan serve plan`: where a service's replicas would run (the controller comes later)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

import skyplan
from skyplan.cli import render
from skyplan.cli.options import (
    catalog_option,
    context_options,
    json_option,
    optional_policy,
    parse_pairs,
)


@click.group(name="serve")
def serve_group() -> None:
    """Model services: replica placement."""


@serve_group.command("plan")
@click.argument("task_file", type=click.Path(path_type=Path))
@catalog_option
@json_option
@click.option("--replicas", type=click.IntRange(min=1), help="Replicas (default: the service's).")
@click.option("--min-regions", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--min-clouds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--base-on-demand",
    type=click.IntRange(min=0),
    help="On-demand replicas at least (default: the replica policy's).",
)
@click.option(
    "--spot-domain",
    type=click.Choice(["zone", "region"]),
    default="zone",
    show_default=True,
    help="The failure domain spot replicas spread over.",
)
@click.option("--max-spot-per-domain", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy file to apply (repeatable).",
)
@context_options
def serve_plan(
    task_file: Path,
    catalog_path: Path | None,
    as_json: bool,
    replicas: int | None,
    min_regions: int,
    min_clouds: int,
    base_on_demand: int | None,
    spot_domain: str,
    max_spot_per_domain: int,
    policies: tuple[Path, ...],
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    overrides: tuple[str, ...],
) -> None:
    """Place the replicas of the service in TASK_FILE: a base on demand, the rest on spot
    spread over distinct failure domains, at the least total cost."""
    work = skyplan.load_task(task_file)
    if len(work.tasks) != 1:
        raise click.UsageError("serve plan takes a file with one task")
    catalog = skyplan.load_catalog(catalog_path)
    policy = optional_policy(policies, catalog)
    context = skyplan.request_context(
        team=team, user=user, labels=parse_pairs(labels, "--label"), kind="service"
    )
    if overrides:
        raise click.UsageError("--override applies to plan and admit, not to serve plan")
    result = skyplan.place_replicas(
        work.tasks[0],
        catalog=catalog,
        replicas=replicas,
        min_regions=min_regions,
        min_clouds=min_clouds,
        base_on_demand=base_on_demand,
        spot_domain=spot_domain,
        max_spot_per_domain=max_spot_per_domain,
        policy=policy,
        context=context,
    )
    if as_json:
        render.emit_json(result.to_json())
        return
    table = Table(
        title=f"{len(result.replicas)} replica(s) of {result.task or 'the service'}",
        title_justify="left",
    )
    for col in ("#", "INFRA", "INSTANCE", "GPUS", "SPOT", "NODES", "$/h"):
        table.add_column(col)
    for n, o in enumerate(result.replicas, start=1):
        table.add_row(
            str(n),
            render.where(o),
            o.instance_type,
            render.accs(o.accelerators),
            "yes" if o.spot else "no",
            str(o.num_nodes),
            f"{o.hourly_cost:.4f}",
        )
    out = render.console()
    out.print(table)
    out.print(
        f"{result.on_demand} on demand, {result.spot} spot over {len(result.domains)} "
        f"{result.spot_domain}(s), {len(result.regions)} region(s), {len(result.clouds)} "
        f"cloud(s): ${result.hourly_cost:.4f}/h ({result.status}, gap {result.gap:.2%})"
    )
