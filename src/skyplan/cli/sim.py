"""`skyplan sim jobs`: replay managed-job recovery strategies over spot traces and compare them
with all-on-demand and with the omniscient optimum. Uses `skyplan.sim` only."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from skyplan import sim
from skyplan.cli import render
from skyplan.cli.options import json_option


@click.group(name="sim")
def sim_group() -> None:
    """Simulate managed jobs over spot traces."""


def _strategies(names: Sequence[str]) -> list[str]:
    known = sim.strategy_names()
    if not names or "all" in names:
        return known
    chosen: list[str] = []
    for name in names:
        if name not in known and ":" not in name:
            # Match the whole name or its first word (`unifrom` → uniform-progress).
            words = {**{k.split("-")[0]: k for k in known}, **{k: k for k in known}}
            close = difflib.get_close_matches(name, list(words), n=1, cutoff=0.6)
            hint = f"; did you mean {words[close[0]]!r}?" if close else ""
            raise click.BadParameter(
                f"no recovery strategy named {name!r}{hint} (known: {', '.join(known)}, all)",
                param_hint="--strategy",
            )
        if ":" in name:
            sim.strategy_named(name)  # imports the module that registers it
        if name not in chosen:
            chosen.append(name)
    return chosen


@sim_group.command("jobs")
@click.option(
    "--trace",
    "trace_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A trace file (one zone) or a directory of them (zones to choose from).",
)
@click.option(
    "--strategy",
    "strategy_names",
    multiple=True,
    help="Recovery strategy (repeatable; `all` for every registered one). Default: all.",
)
@click.option("--duration", default="48h", show_default=True, help="Hours of work the job needs.")
@click.option("--deadline", default="60h", show_default=True, help="Deadline after submission.")
@click.option("--changeover", default="0.2h", show_default=True, help="Time lost per (re)start.")
@click.option("--starts", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--spot-price", type=click.FloatRange(min=0), default=0.918, show_default=True)
@click.option("--ondemand-price", type=click.FloatRange(min=0), default=3.06, show_default=True)
@click.option(
    "--single-zone",
    is_flag=True,
    help="Replay every trace file of a directory on its own (default: its zones as choices).",
)
@click.option("--no-optimum", is_flag=True, help="Skip the omniscient optimum row.")
@click.option("--plot", type=click.Path(path_type=Path), help="Write a cost chart (PNG) here.")
@json_option
def sim_jobs(
    trace_path: Path,
    strategy_names: tuple[str, ...],
    duration: str,
    deadline: str,
    changeover: str,
    starts: int,
    seed: int,
    nodes: int,
    spot_price: float,
    ondemand_price: float,
    single_zone: bool,
    no_optimum: bool,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Replay a managed job from random submission times over the traces at --trace and
    compare the strategies: savings against all on demand, deadlines met, spot and on-demand
    hours, recoveries. Exit 2 on bad input."""
    strategies = _strategies(strategy_names)
    hours = {
        "duration": sim.parse_hours(duration, "--duration"),
        "deadline": sim.parse_hours(deadline, "--deadline"),
        "changeover": sim.parse_hours(changeover, "--changeover"),
    }
    for flag in ("duration", "deadline"):
        if hours[flag] <= 0:
            raise click.BadParameter(
                f"must be positive, got {hours[flag]:g}h", param_hint=f"--{flag}"
            )
    if hours["deadline"] < hours["duration"] + hours["changeover"]:
        raise click.BadParameter(
            f"{hours['deadline']:g}h is shorter than --duration plus one --changeover "
            f"({hours['duration'] + hours['changeover']:g}h): it can never be met",
            param_hint="--deadline",
        )
    spec = sim.JobSpec(
        duration_hours=hours["duration"],
        deadline_hours=hours["deadline"],
        changeover_hours=hours["changeover"],
        num_nodes=nodes,
        spot_price=spot_price,
        ondemand_price=ondemand_price,
    )
    traces = sim.load_traces(trace_path)
    sets = [(t,) for t in traces] if single_zone else sim.shape_groups(traces)
    rows = sim.compare(sets, spec, strategies, starts=starts, seed=seed, optimum=not no_optimum)
    if plot is not None:
        _plot(rows, spec, plot)
    if as_json:
        render.emit_json(
            {
                "job": {
                    "duration_hours": spec.duration_hours,
                    "deadline_hours": spec.deadline_hours,
                    "changeover_hours": spec.changeover_hours,
                    "num_nodes": spec.num_nodes,
                    "spot_price": spec.spot_price,
                    "ondemand_price": spec.ondemand_price,
                    "all_on_demand_cost": round(spec.all_on_demand_cost, 4),
                },
                "trace_sets": [[t.label for t in group] for group in sets],
                "starts": starts,
                "seed": seed,
                "rows": [r.as_dict() for r in rows],
                "plot": None if plot is None else str(plot),
            }
        )
        return
    table = Table(
        title=(
            f"{spec.duration_hours:g}h job, deadline {spec.deadline_hours:g}h, changeover "
            f"{spec.changeover_hours:g}h, {starts} starts × {len(sets)} trace set(s)"
        )
    )
    for column in ("strategy", "savings", "deadlines met", "spot h", "on-demand h"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    table.add_column("recoveries", justify="right")
    table.add_column("mean cost", justify="right")
    for row in rows:
        table.add_row(
            row.strategy,
            f"{row.savings_pct:.1f}%",
            f"{row.deadlines_met}/{row.runs}",
            _num(row.mean_spot_hours),
            _num(row.mean_ondemand_hours),
            _num(row.mean_recoveries),
            f"${row.mean_cost:.2f}",
        )
    out = render.console()
    out.print(table)
    out.print(f"all on demand: ${spec.all_on_demand_cost:.2f} per job")
    late = [r.strategy for r in rows if r.deadlines_met < r.runs]
    if late:
        out.print(
            f"{', '.join(late)} missed deadlines: late runs (and runs unfinished at the "
            "trace's end, charged only up to it) make their savings incomparable"
        )
    if plot is not None:
        out.print(f"wrote {plot}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _plot(rows: Sequence[sim.Summary], spec: sim.JobSpec, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(rows)), 4.5))
    axes.boxplot([list(r.costs) for r in rows], showfliers=False)
    # Cheap is not good when it is late: each label says how many deadlines were met.
    labels = [f"{r.strategy}\n{r.deadlines_met}/{r.runs} on time" for r in rows]
    axes.set_xticks(range(1, len(rows) + 1), labels, rotation=20)
    axes.axhline(spec.all_on_demand_cost, linestyle="--", color="grey", label="all on demand")
    axes.set_ylabel("cost per job ($)")
    axes.set_title(f"{spec.duration_hours:g}h job, deadline {spec.deadline_hours:g}h")
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path, format="png")
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc}", param_hint="--plot") from None
    finally:
        plt.close(figure)
