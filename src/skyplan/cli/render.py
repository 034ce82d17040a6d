"""Rendering plans and catalogs for people: rich tables on a terminal, plain text when piped.

The CLI's only place that formats output; the library never prints. Text from users (task,
cluster and rule names, policy source in diagnostics) is shown as written: never read as rich
markup (`train[v2]` stays `train[v2]`), and a control character — the start of a terminal
escape sequence that could retitle the window or clear the screen — is shown as `\\x1b`. What
jobs print is theirs and is passed through (`logs`, `launch` following a job).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

import skyplan

#: C0 controls but tab and newline, DEL, C1 controls (U+0080-U+009F: 0x9b is a CSI too), and
#: the characters that reorder or hide what is shown: zero-width ones, the line and paragraph
#: separators, bidirectional embeddings, overrides and isolates, a stray BOM; and half of a
#: surrogate pair, which no stream can encode.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ud800-\udfff\ufeff]"
)


def safe(text: str) -> str:
    """`text` with every character a terminal acts on, or that hides or reorders text, written
    out as an escape (`\\x1b`, `\\u202e`)."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class _Console(Console):
    """A console whose every string, table cell and title included, goes through `safe`, and
    whose tables are plain columns (no box drawing) when it does not write to a terminal."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(safe(text), **kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.is_terminal and len(objects) == 1 and isinstance(objects[0], Table):
            text = plain_table(objects[0])
            if text is not None:
                self.file.write(safe(text))
                self.file.flush()
                return
        super().print(*objects, **kwargs)


def plain_table(table: Table) -> str | None:
    """`table` as plain lines: its title, then the header and rows in columns two spaces apart
    (right-justified where the column is), trailing spaces dropped. Written straight out, not
    laid out by rich (10,000 rows took rich 8 s). None when a cell is not text."""
    columns: list[list[str]] = []
    for column in table.columns:
        texts: list[str] = []
        for cell in [column.header, *column.cells] if table.show_header else column.cells:
            if isinstance(cell, Text):
                texts.append(cell.plain)
            elif isinstance(cell, str):
                texts.append(cell)
            else:
                return None
        columns.append(texts)
    if any("\n" in cell for cells in columns for cell in cells):
        return None
    widths = [max((len(c) for c in cells), default=0) for cells in columns]
    right = [column.justify == "right" for column in table.columns]
    lines = [str(table.title)] if table.title else []
    for row in zip(*columns, strict=True):
        lines.append(
            "  ".join(
                cell.rjust(w) if r else cell.ljust(w)
                for cell, w, r in zip(row, widths, right, strict=True)
            ).rstrip()
        )
    return "".join(f"{line}\n" for line in lines)


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return _Console(
        file=stream,
        highlight=False,
        markup=False,
        soft_wrap=False,
        width=None if stream.isatty() else 200,
    )


def echo(message: str, err: bool = False) -> None:
    """One line of skyplan's own output (which may quote user text), through `safe`."""
    click.echo(safe(message), err=err)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def accs(accs: dict[str, float] | None) -> str:
    if not accs:
        return "-"
    return ", ".join(f"{k}:{v:g}" for k, v in accs.items())


def where(offer: skyplan.Offer) -> str:
    return "/".join(p for p in (offer.cloud, offer.region, offer.zone) if p)


def plan_table(plan: skyplan.Plan) -> list[Table]:
    tables = []
    for placement in plan.placements:
        title = f"task {placement.task}" if placement.task else "task"
        table = Table(title=f"{title}: {placement.option}", title_justify="left")
        for name, justify in (
            ("", "left"),
            ("INFRA", "left"),
            ("INSTANCE", "left"),
            ("vCPUs", "right"),
            ("Mem(GiB)", "right"),
            ("GPUS", "left"),
            ("SPOT", "left"),
            ("NODES", "right"),
            ("$/h", "right"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for marker, offer in [("✔", placement.choice)] + [("", a) for a in placement.alternatives]:
            table.add_row(
                marker,
                where(offer),
                offer.instance_type,
                f"{offer.vcpus:g}",
                f"{offer.memory_gib:g}",
                accs(offer.accelerators),
                "yes" if offer.spot else "no",
                str(offer.num_nodes),
                f"{offer.hourly_cost:.4f}",
                style="bold green" if marker else None,
            )
        tables.append(table)
    return tables


def placement_summary(plan: skyplan.Plan) -> list[str]:
    lines = []
    for p in plan.placements:
        who = f"{p.task}: " if p.task else ""
        lines.append(
            f"{who}{where(p.choice)} {p.choice.instance_type} ({accs(p.choice.accelerators)}), "
            f"{'spot' if p.choice.spot else 'on-demand'}, {p.choice.num_nodes} node(s), "
            f"${p.choice.hourly_cost:.4f}/h"
        )
        lines.extend(f"  note: {n}" for n in p.notes)
    if len(plan.placements) > 1:
        lines.append(f"total: ${plan.hourly_cost:.4f}/h")
    return lines


#: Prices older than this many days get a warning (`SKYPLAN_CATALOG_MAX_AGE_DAYS`; 0: never).
MAX_AGE_DAYS = 180


def price_ages(
    plan: skyplan.Plan, catalog: skyplan.Catalog, today: dt.date | None = None
) -> tuple[str, list[str]]:
    """Which catalog a plan was made over and how old the prices of the clouds it shows are
    (each cloud's newest `as_of`); and a warning for each cloud older than the allowed age."""
    today = today or dt.date.today()
    shown = {o.cloud for p in plan.placements for o in (p.choice, *p.alternatives)}
    newest = {row["cloud"]: row["as_of"] for row in skyplan.catalog_summary(catalog)}
    limit = _max_age()
    parts, warnings = [], []
    for cloud in sorted(shown & set(newest)):
        try:
            days = (today - dt.date.fromisoformat(str(newest[cloud]))).days
        except ValueError:
            continue
        parts.append(f"{cloud} as of {newest[cloud]} ({days} day(s) old)")
        if limit and days > limit:
            warnings.append(
                f"warning: {cloud} prices are {days} days old, more than"
                f" SKYPLAN_CATALOG_MAX_AGE_DAYS={limit} (see `skyplan catalog refresh`)"
            )
    return f"prices: {', '.join(parts) or 'none shown'}; catalog {catalog.origin}", warnings


def _max_age() -> int:
    raw = os.environ.get("SKYPLAN_CATALOG_MAX_AGE_DAYS", "")
    try:
        return max(0, int(raw)) if raw.strip() else MAX_AGE_DAYS
    except ValueError:
        raise click.UsageError(
            f"SKYPLAN_CATALOG_MAX_AGE_DAYS must be a whole number of days, not {raw!r}"
        ) from None


def pipeline_lines(result: skyplan.PipelinePlan) -> list[str]:
    """A pipeline plan as text: one line per task and per transfer, then the totals."""
    lines = []
    for step in result.steps:
        o = step.offer
        lines.append(
            f"{step.task or '#' + str(step.index + 1)}: {where(o)} {o.instance_type} "
            f"({accs(o.accelerators)}), ${o.hourly_cost:.4f}/h x {step.runtime_hours:g} h = "
            f"${step.cost:.4f}, runs {step.start_hours:.2f}-{step.finish_hours:.2f} h"
        )
    for t in result.transfers:
        lines.append(
            f"  {t.source} -> {t.target}: {t.gb:g} GB over {t.kind}, ${t.cost:.4f}, {t.hours:.2f} h"
        )
    lines.append(
        f"total ${result.total_cost:.4f} (compute ${result.compute_cost:.4f}, egress "
        f"${result.egress_cost:.4f}), makespan {result.makespan_hours:.2f} h; {result.solver}, "
        f"{result.status}, gap {result.gap:.2%}"
    )
    return lines


def show_plan(planned: skyplan.Plan, as_json: bool) -> None:
    """Print a plan: its JSON, or its tables and summary lines."""
    if as_json:
        emit_json(planned.to_json())
        return
    out = console()
    for table in plan_table(planned):
        out.print(table)
    for line in placement_summary(planned):
        out.print(line)
