"""`skyplan admit`: place a batch of requests under shared quotas, budgets and pools."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

import skyplan
from skyplan.cli import render
from skyplan.cli.options import catalog_option, json_option, optional_policy


@click.command("admit")
@click.argument("batch", type=click.Path(path_type=Path))
@catalog_option
@json_option
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy file whose quotas, budgets and rules apply (repeatable).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds the solver may spend.",
)
@click.option(
    "--require-all",
    is_flag=True,
    help="Admit every request or fail (exit 1), naming the conflicting limits.",
)
def admit(
    batch: Path,
    catalog_path: Path | None,
    as_json: bool,
    policies: tuple[Path, ...],
    time_limit: float,
    require_all: bool,
) -> None:
    """Admit BATCH (a YAML file with `requests:` and `usage:`, or a directory of task files):
    as many requests as the limits allow, higher priorities first, at the least total cost."""
    requests, usage = skyplan.load_batch(batch)
    catalog = skyplan.load_catalog(catalog_path)
    policy = optional_policy(policies, catalog)
    result = skyplan.plan_batch(
        requests,
        catalog=catalog,
        policy=policy,
        usage=usage,
        time_limit_s=time_limit,
        require_all=require_all,
    )
    if as_json:
        render.emit_json(result.to_json())
        return
    out = render.console()
    admitted = Table(
        title=f"admitted {len(result.admitted)} of {len(requests)}", title_justify="left"
    )
    for col in ("ID", "PRIO", "INFRA", "INSTANCE", "GPUS", "SPOT", "NODES", "$/h"):
        admitted.add_column(col)
    for a in result.admitted:
        o = a.offer
        admitted.add_row(
            a.id,
            str(a.priority),
            render.where(o),
            o.instance_type,
            render.accs(o.accelerators),
            "yes" if o.spot else "no",
            str(o.num_nodes),
            f"{o.hourly_cost:.4f}",
        )
    out.print(admitted)
    if result.waiting:
        waiting = Table(title=f"waiting {len(result.waiting)}", title_justify="left")
        for col in ("ID", "PRIO", "WHY"):
            waiting.add_column(col)
        for w in result.waiting:
            waiting.add_row(w.id, str(w.priority), w.reason)
        out.print(waiting)
    if result.usage:
        usage_table = Table(title="limits after admission", title_justify="left")
        for col in ("LIMIT", "KIND", "GROUP", "USED", "LIMIT"):
            usage_table.add_column(col)
        for u in result.usage:
            usage_table.add_row(
                u.name, u.kind, u.group, f"{u.used:g} {u.unit}", f"{u.limit:g} {u.unit}"
            )
        out.print(usage_table)
    saved = result.greedy_hourly_cost - result.hourly_cost
    out.print(
        f"{result.status} (gap {result.gap:.2%}) in {result.wall_s:.2f}s over {result.components} "
        f"component(s): ${result.hourly_cost:.4f}/h for {len(result.admitted)} request(s); "
        f"one-at-a-time greedy: ${result.greedy_hourly_cost:.4f}/h for {result.greedy_admitted}"
        + (
            f" (saves ${saved:.4f}/h)"
            if saved > 1e-9 and len(result.admitted) == result.greedy_admitted
            else ""
        )
    )
    if require_all and result.waiting:
        sys.exit(1)
