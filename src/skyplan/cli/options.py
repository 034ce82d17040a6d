"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

catalog_option = click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Catalog: skyplan CSV/Parquet file or directory, or a SkyPilot v8 directory. "
    "Default: the shipped catalog (or $SKYPLAN_CATALOG).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def context_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Who asks (seen by policies as task.team, task.user, task.labels) and soft-rule overrides."""
    for option in reversed(
        (
            click.option("--team", help="The requesting team (task.team in policies)."),
            click.option("--user", help="The requesting user (task.user in policies)."),
            click.option(
                "--label",
                "labels",
                multiple=True,
                metavar="KEY=VALUE",
                help="A request label (repeatable).",
            ),
            click.option(
                "--override",
                "overrides",
                multiple=True,
                metavar="RULE=REASON",
                help="Override a soft policy rule, recording why (repeatable).",
            ),
        )
    ):
        command = option(command)
    return command


def parse_pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    """`KEY=VALUE` items as a mapping; a usage error names the flag."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
