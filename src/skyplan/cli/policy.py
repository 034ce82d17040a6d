"""`skyplan policy ...`: format, check, test, explain and diff policy files."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

import skyplan
from skyplan.cli import render
from skyplan.cli.options import catalog_option, context_options, json_option, plan_under_policy


def policy_files(paths: tuple[Path, ...]) -> list[Path]:
    """Files named, and every *.policy under directories named (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob("*.policy")))
        else:
            found.append(path)
    return found


@click.group(name="policy")
def policy_group() -> None:
    """Policy files as code: fmt, check, test, explain, diff."""


@policy_group.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
def fmt(files: tuple[Path, ...], check: bool) -> None:
    """Rewrite FILES (or *.policy under directories) in canonical form, comments kept."""
    unformatted, broken = [], False
    for path in policy_files(files):
        try:
            text = skyplan.read_policy(path)
            formatted = skyplan.format_policy(text, str(path))
        except skyplan.PolicyError as exc:
            render.echo(str(exc), err=True)
            broken = True
            continue
        if formatted != text:
            unformatted.append(path)
            if not check:
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text(formatted, encoding="utf-8")
                tmp.replace(path)
    for path in unformatted:
        render.echo(f"{'would reformat' if check else 'reformatted'} {path}")
    if broken or (check and unformatted):
        sys.exit(1)


def _diagnostic_json(d: skyplan.Diagnostic) -> dict[str, Any]:
    return {
        "file": d.span.file,
        "line": d.span.line,
        "col": d.span.col,
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "hint": d.hint,
    }


@policy_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@catalog_option
@json_option
def check(files: tuple[Path, ...], catalog_path: Path | None, as_json: bool) -> None:
    """Parse and type-check FILES against the catalog's vocabulary. Exit 1 on any error.

    Each file is checked on its own (a directory's files too), and the files named, when there
    are several, also together, as `plan --policy A --policy B` merges them."""
    catalog = skyplan.load_catalog(catalog_path)
    checked = [skyplan.check_policy([path], catalog=catalog) for path in policy_files(files)]
    named = [path for path in files if not path.is_dir()]
    if len(named) > 1:
        checked.append(skyplan.check_policy(named, catalog=catalog))
    found: dict[skyplan.Diagnostic, None] = {}  # in order, each once
    sources: dict[str, Any] = {}
    for loaded in checked:
        found.update(dict.fromkeys(loaded.diagnostics))
        sources.update(loaded.sources)
    diagnostics = list(found)
    report = skyplan.PolicyError(diagnostics, sources) if diagnostics else None
    shown = list(report.diagnostics) if report else []
    if as_json:
        render.emit_json({"diagnostics": [_diagnostic_json(d) for d in shown]})
    elif report is not None:
        render.echo(str(report), err=True)
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if not as_json:
        warnings = len(diagnostics) - errors
        render.echo(
            f"{len(policy_files(files))} file(s) checked: {errors} error(s), {warnings} warning(s)",
            err=True,
        )
    if errors:
        sys.exit(1)


@policy_group.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@catalog_option
@json_option
def test(paths: tuple[Path, ...], catalog_path: Path | None, as_json: bool) -> None:
    """Run the test blocks of policy files (default: ./policies) and report rule coverage."""
    files = policy_files(paths or (Path("policies"),))
    catalog = skyplan.load_catalog(catalog_path) if catalog_path else None
    # Every file is loaded (one that does not check fails the run); those without tests, such
    # as files only imported, report nothing.
    reports = [r for r in skyplan.run_policy_tests(files, catalog=catalog) if r[1].results]
    failed = sum(1 for _, r in reports for t in r.results if not t.passed)
    passed = sum(1 for _, r in reports for t in r.results if t.passed)
    if as_json:
        render.emit_json(
            {
                "files": [
                    {
                        "file": name,
                        "tests": [
                            {
                                "name": t.name,
                                "line": t.line,
                                "passed": t.passed,
                                "failures": t.failures,
                                "outcome": t.outcome,
                            }
                            for t in report.results
                        ],
                        "rules": list(report.rules),
                        "covered": sorted(report.covered),
                        "coverage": round(report.coverage, 4),
                    }
                    for name, report in reports
                ],
                "passed": passed,
                "failed": failed,
            }
        )
    else:
        for name, report in reports:
            for t in report.results:
                mark = "PASS" if t.passed else "FAIL"
                render.echo(f"{mark} {name}:{t.line} {t.name}")
                for failure in t.failures:
                    render.echo(f"     {failure}")
            uncovered = [r for r in report.rules if r not in report.covered]
            covered = f"{len(report.covered)}/{len(report.rules)}"
            line = f"     coverage {covered} rules ({report.coverage:.0%})"
            if uncovered:
                line += "; not exercised: " + ", ".join(repr(r) for r in uncovered)
            render.echo(line)
        render.echo(f"{passed} passed, {failed} failed")
    if failed:
        sys.exit(1)


def _rules_table(task: str | None, verdicts: Sequence[skyplan.Verdict]) -> Table:
    table = Table(title=f"rules for {task or 'the task'}", title_justify="left")
    for col in ("RULE", "FILE", "KIND", "LEVEL", "APPLIES", "REMOVED", "NOTE"):
        table.add_column(col)
    for v in verdicts:
        table.add_row(
            v.name,
            f"{v.origin.file}:{v.origin.line}" if v.origin else "-",
            v.kind,
            v.level or "-",
            "yes" if v.applies else "no",
            f"{v.removed:,}",
            v.note or "",
        )
    return table


@policy_group.command("explain")
@click.argument("policies", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--task", "task_file", required=True, type=click.Path(path_type=Path), help="Task YAML to plan."
)
@catalog_option
@context_options
@json_option
def explain(
    policies: tuple[Path, ...],
    task_file: Path,
    catalog_path: Path | None,
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Every rule's verdict for one request, where it is written and how many offers it
    removed, the winner and the runner-ups, and which preference decided. A denied request
    shows the same rule table before the error."""
    catalog = skyplan.load_catalog(catalog_path)
    try:
        result = plan_under_policy(
            skyplan.load_task(task_file),
            catalog,
            policy_files(policies),
            team=team,
            user=user,
            labels=labels,
            overrides=overrides,
        )
    except skyplan.NoFeasiblePlacement as denied:
        if as_json:
            verdicts = [v.model_dump(mode="json") for v in denied.verdicts]
            render.emit_json({"task": denied.task, "error": str(denied), "verdicts": verdicts})
            sys.exit(denied.exit_code)
        render.console().print(_rules_table(denied.task, denied.verdicts))
        raise
    if as_json:
        render.emit_json(result.to_json())
        return
    out = render.console()
    for placement in result.placements:
        out.print(_rules_table(placement.task, placement.verdicts))
        if placement.decided_by and placement.cheapest is not None:
            c = placement.cheapest
            out.print(
                f"decided by preference(s) {', '.join(repr(n) for n in placement.decided_by)}: "
                f"the cheapest offer was {c.cloud}/{c.region} {c.instance_type} "
                f"at ${c.hourly_cost:.4f}/h"
            )
    for table in render.plan_table(result):
        out.print(table)
    for line in render.placement_summary(result):
        out.print(line)


@policy_group.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@catalog_option
@json_option
def diff(old: Path, new: Path, catalog_path: Path | None, as_json: bool) -> None:
    """Which offers a change from OLD to NEW newly allows or denies, per request context found
    in the policies' tests. Exit 1 when the change loosens a hard rule."""
    catalog = skyplan.load_catalog(catalog_path)
    result = skyplan.diff_policy([old], [new], catalog=catalog)
    if as_json:
        render.emit_json(
            {
                "contexts": [
                    {
                        "context": ch.context.model_dump(exclude={"name", "num_nodes"}),
                        "newly_allowed": ch.allowed,
                        "newly_denied": ch.denied,
                        "loosened": ch.loosened,
                        "examples_allowed": ch.samples_allowed,
                        "examples_denied": ch.samples_denied,
                    }
                    for ch in result.changes
                ],
                "limits": result.limits,
                "loosens_hard_rule": result.loosens_hard_rule,
                "loosened_rules": result.loosened_rules,
            }
        )
    else:
        for ch in result.changes:
            ctx = ch.context
            who = ", ".join(
                f"{k}={v}"
                for k, v in (("team", ctx.team), ("user", ctx.user), ("kind", ctx.kind))
                if v and not (k == "kind" and v == "task")
            )
            who += "".join(f", labels.{k}={v}" for k, v in sorted(ctx.labels.items()))
            render.echo(
                f"context {who.strip(', ') or '(any request)'}: "
                f"+{ch.allowed:,} allowed, -{ch.denied:,} denied"
            )
            for s in ch.samples_allowed:
                render.echo(f"  + {s}")
            for s in ch.samples_denied:
                render.echo(f"  - {s}")
            if ch.loosened:
                render.echo(
                    f"  ! {ch.loosened:,} offer(s) a hard rule denied are no longer denied by one"
                )
        for line in result.limits:
            render.echo(f"limit {line}")
        if result.empty:
            render.echo("no semantic change")
    if result.loosens_hard_rule:
        named = ", ".join(repr(n) for n in result.loosened_rules)
        render.echo(
            f"error: the change loosens a hard rule{': ' + named if named else ''}", err=True
        )
        sys.exit(1)
