"""The reference CLI, over the public `skyplan` API only.

Exit codes: 0 success; 1 the request cannot be satisfied; 2 invalid input or usage.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

import skyplan
from skyplan.cli import render
from skyplan.cli.options import (
    catalog_option,
    context_options,
    json_option,
    optional_policy,
    parse_pairs,
    plan_under_policy,
    resource_flags,
    resource_options,
)
from skyplan.paths import refreshed_catalogs

EXIT_INTERNAL = 70

#: Commands defined in other modules, imported only when run (or listed by `--help`), so a
#: `plan` process never loads the store, the runtime or the simulator: name → "module:attr".
LAZY = {
    **{
        name: f"skyplan.cli.clusters:{name}"
        for name in ("launch", "status", "queue", "logs", "cancel", "stop", "start", "down")
    },
    "exec": "skyplan.cli.clusters:exec_",
    "autostop": "skyplan.cli.clusters:autostop",
    "check": "skyplan.cli.clusters:check",
    "events": "skyplan.cli.clusters:events",
    "jobs": "skyplan.cli.jobs:jobs_group",
    "show-gpus": "skyplan.cli.show_gpus:show_gpus",
    "policy": "skyplan.cli.policy:policy_group",
    "admit": "skyplan.cli.admit:admit",
    "serve": "skyplan.cli.serve:serve_group",
    "sim": "skyplan.cli.sim:sim_group",
}


class _Group(click.Group):
    """Turns every skyplan error into its message and exit code, never a traceback; loads the
    `LAZY` commands on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY and cmd_name not in self.commands:
            module, attr = LAZY[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except skyplan.SkyplanError as exc:
            render.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("SKYPLAN_DEBUG"):
                raise
            render.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "(this is a bug in skyplan; rerun with SKYPLAN_DEBUG=1 for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(skyplan.__version__, prog_name="skyplan")
def cli() -> None:
    """skyplan: place AI workloads on the cheapest infrastructure that fits."""


@cli.command()
@click.argument("task_file", type=click.Path(path_type=Path))
@catalog_option
@json_option
@resource_options
@click.option(
    "--alternatives",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="How many runner-ups to show.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy file to apply (repeatable; later files after earlier ones).",
)
@click.option(
    "--pipeline",
    is_flag=True,
    help="Place a multi-task file's tasks together, counting egress between them.",
)
@click.option(
    "--objective",
    type=click.Choice(["cost", "time"]),
    default="cost",
    show_default=True,
    help="With --pipeline: minimize total cost or the makespan.",
)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    metavar="TASK=HOURS",
    help="With --pipeline: a task's expected runtime (default 1 hour; repeatable).",
)
@context_options
def plan(
    task_file: Path,
    catalog_path: Path | None,
    as_json: bool,
    alternatives: int,
    policies: tuple[Path, ...],
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    overrides: tuple[str, ...],
    pipeline: bool,
    objective: str,
    runtimes: tuple[str, ...],
    **resources: Any,
) -> None:
    """Plan TASK_FILE: the cheapest feasible placement and the runner-ups."""
    work = skyplan.with_overrides(skyplan.load_task(task_file), resource_flags(**resources))
    catalog = skyplan.load_catalog(catalog_path)
    if pipeline:
        _plan_pipeline(work, catalog, policies, objective, runtimes, team, user, labels, as_json)
        return
    result = plan_under_policy(
        work,
        catalog,
        list(policies),
        team=team,
        user=user,
        labels=labels,
        overrides=overrides,
        alternatives=alternatives,
    )
    render.show_plan(result, as_json)
    if not as_json:
        info, warnings = render.price_ages(result, catalog)
        render.echo(info)
        for warning in warnings:
            render.echo(warning, err=True)


def _plan_pipeline(
    work: skyplan.Dag,
    catalog: skyplan.Catalog,
    policies: tuple[Path, ...],
    objective: str,
    runtimes: tuple[str, ...],
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    as_json: bool,
) -> None:
    hours: dict[str, float] = {}
    for name, value in parse_pairs(runtimes, "--runtime").items():
        try:
            hours[name] = float(value)
        except ValueError:
            raise click.UsageError(f"--runtime {name}={value}: hours must be a number") from None
    result = skyplan.plan_pipeline(
        work,
        catalog=catalog,
        policy=optional_policy(policies, catalog),
        context=skyplan.request_context(
            team=team, user=user, labels=parse_pairs(labels, "--label")
        ),
        objective=objective,
        runtime_hours=hours or None,
    )
    if as_json:
        render.emit_json(result.to_json())
        return
    out = render.console()
    for line in render.pipeline_lines(result):
        out.print(line)


@cli.group()
def schema() -> None:
    """JSON Schemas of skyplan's input files."""


@schema.command("task")
def schema_task() -> None:
    """Print the JSON Schema of a task YAML document (for editors)."""
    render.emit_json(skyplan.task_schema())


@cli.group(name="catalog")
def catalog_group() -> None:
    """Inspect and refresh pricing catalogs."""


@catalog_group.command("show")
@catalog_option
@json_option
def catalog_show(catalog_path: Path | None, as_json: bool) -> None:
    """Summarize a catalog: offers per cloud, regions, accelerators, provenance."""
    catalog = skyplan.load_catalog(catalog_path)
    summary = skyplan.catalog_summary(catalog)
    if as_json:
        render.emit_json({"catalog": catalog.origin, "clouds": summary})
        return
    from skyplan.cli.show_gpus import summary_table

    render.console().print(summary_table(catalog.origin, summary))


@catalog_group.command("refresh")
@click.argument("cloud")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="File to write (default: $SKYPLAN_HOME/catalogs/CLOUD.csv).",
)
@click.option("--endpoint", help="Base URL of the pricing API (default: the public one).")
@click.option("--region", "regions", multiple=True, help="Only these regions (repeatable).")
def catalog_refresh(
    cloud: str, output: Path | None, endpoint: str | None, regions: tuple[str, ...]
) -> None:
    """Fetch current public prices for CLOUD (aws, azure, aws-libcloud) into a catalog file."""
    target = output or refreshed_catalogs() / f"{cloud}.csv"
    quiet = not sys.stderr.isatty()
    err = render.console(stderr=True)

    def progress(message: str) -> None:
        if not quiet:
            err.print(message, style="dim")

    rows = skyplan.refresh_catalog(
        cloud, target, endpoint=endpoint, regions=regions, progress=progress
    )
    render.echo(f"wrote {rows:,} offers to {target}")


def main() -> None:
    cli(prog_name="skyplan")
