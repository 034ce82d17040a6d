"""`skyplan jobs`: managed jobs — launch, queue, logs, cancel — as SkyPilot's `sky jobs`.

A managed job gets its own cluster and a controller that brings it back after a preemption or
a failure (see `docs/managed-jobs.md`). `launch` returns once the job is recorded; without `-d`
it then follows the job's output across its recoveries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

import skyplan
from skyplan.cli import render
from skyplan.cli.clusters import _ago, _confirm, _session, _work, yes_option
from skyplan.cli.options import (
    catalog_option,
    context_options,
    detach_on_interrupt,
    env_options,
    exit_with_outcome,
    json_option,
    optional_policy,
    parse_pairs,
    resource_flags,
    resource_options,
    task_env,
)


@click.group(name="jobs")
def jobs_group() -> None:
    """Managed jobs: their own cluster, recovered after preemptions and failures."""


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"


def _exit_for(job: Any) -> None:
    exit_with_outcome(job.status)


@jobs_group.command(name="launch")
@click.argument("entrypoint", nargs=-1, required=True)
@click.option("--name", "-n", help="A name for the job (default: the task's).")
@resource_options
@env_options
@click.option("--detach-run", "-d", is_flag=True, help="Return once the job is submitted.")
@click.option("--retry-until-up", "-r", is_flag=True, help="Wait for capacity at the start.")
@click.option(
    "--keep-on-failure", is_flag=True, help="Keep a failed job's cluster up (with autostop)."
)
@click.option(
    "--policy", "policies", multiple=True, type=click.Path(path_type=Path), help="Policy file."
)
@catalog_option
@context_options
@json_option
@yes_option
def launch(
    entrypoint: tuple[str, ...],
    name: str | None,
    envs: tuple[str, ...],
    secrets: tuple[str, ...],
    env_files: tuple[Path, ...],
    detach_run: bool,
    retry_until_up: bool,
    keep_on_failure: bool,
    policies: tuple[Path, ...],
    catalog_path: Path | None,
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    overrides: tuple[str, ...],
    as_json: bool,
    yes: bool,
    **resources: Any,
) -> None:
    """Launch ENTRYPOINT (a task YAML, a pipeline or job group YAML, or a command, quoted or
    as several words) as a managed job."""
    del yes, overrides  # accepted as in SkyPilot; soft-rule overrides apply to `launch`
    work, base = _work(entrypoint)
    env, secret = task_env(envs, secrets, env_files)
    work = skyplan.with_overrides(work, resource_flags(**resources))
    catalog = skyplan.load_catalog(catalog_path)
    optional_policy(policies, catalog)  # a bad policy is an error now, not at a recovery
    context = skyplan.request_context(
        team=team, user=user, labels=parse_pairs(labels, "--label"), kind="job"
    )
    with _session(catalog=catalog, quiet=as_json) as session:
        job_id = session.jobs.launch(
            work,
            name=name,
            base_dir=base,
            envs=env,
            secrets=secret,
            policy_files=list(policies),
            catalog_path=catalog_path,
            context=context,
            retry_until_up=retry_until_up,
            keep_on_failure=keep_on_failure,
        )
        members = session.jobs.members(job_id)
        if len(members) > 1:
            _launched_group(session, job_id, members, as_json=as_json, detach=detach_run)
            return
        if as_json:
            render.emit_json(session.jobs.view(job_id).to_json())
            return
        render.echo(f"managed job {job_id} submitted", err=True)
        if detach_run:
            return
        final = _follow(session, job_id)
    render.echo(f"managed job {final.job_id} {final.status.value}: {final.message}", err=True)
    _exit_for(final)


def _launched_group(
    session: Any, group_id: int, members: list[Any], *, as_json: bool, detach: bool
) -> None:
    """A job group was submitted: say so (JSON: every member's view) and, unless detached,
    wait for every member to end; exit 1 if one failed."""
    if as_json:
        render.emit_json([session.jobs.view(m.job_id).to_json() for m in members])
        return
    names = ", ".join(f"{m.job_id} ({m.name})" for m in members)
    render.echo(f"managed job group {group_id} submitted: jobs {names}", err=True)
    if detach:
        return
    render.echo(
        f"waiting for its {len(members)} jobs (`skyplan jobs logs ID` follows one)", err=True
    )
    with detach_on_interrupt(f"managed job group {group_id}", "skyplan jobs queue"):
        finals = [session.jobs.wait(m.job_id) for m in members]
    for final in finals:
        render.echo(f"managed job {final.job_id} {final.status.value}: {final.message}", err=True)
    exit_with_outcome(*(f.status for f in finals))


def _follow(session: Any, job: str | int) -> Any:
    """Stream the job's output; Ctrl-C detaches (the job goes on) instead of aborting."""
    job_id = session.jobs.resolve(job).job_id
    with detach_on_interrupt(f"managed job {job_id}", f"skyplan jobs logs {job_id}"):
        return session.jobs.logs(job_id, follow=True)


@jobs_group.command(name="queue")
@click.option("--all", "-a", "all_jobs", is_flag=True, help="Include finished jobs.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="The latest N only.")
@json_option
def queue(all_jobs: bool, limit: int | None, as_json: bool) -> None:
    """Show managed jobs: status, recoveries, time on spot and on-demand, cost so far."""
    with _session(quiet=True) as session:
        views = session.jobs.queue(all_jobs=all_jobs, limit=limit)
    if as_json:
        render.emit_json([v.to_json() for v in views])
        return
    table = Table(
        "ID",
        "NAME",
        "SUBMITTED",
        "STATUS",
        "RECOVERIES",
        "RESTARTS",
        "SPOT H",
        "ON-DEMAND H",
        "COST $",
        "PLACEMENT",
    )
    for v in views:
        j = v.job
        table.add_row(
            str(j.job_id),
            j.name or "-",
            _ago(j.submitted_at),
            j.status.value,
            str(j.recoveries),
            str(j.restarts),
            _hours(v.spot_seconds),
            _hours(v.ondemand_seconds),
            f"{v.cost:.2f}",
            v.placement,
        )
    out = render.console()
    out.print(table if views else f"no {'managed jobs' if all_jobs else 'active managed jobs'}")
    for v in views:
        if v.job.status.failed and v.job.message:
            out.print(f"{v.job.job_id}: {v.job.message}")


@jobs_group.command(name="logs")
@click.argument("job")
@click.option("--follow/--no-follow", default=True, help="Keep printing until the job ends.")
@click.option("--controller", is_flag=True, help="The job's history: states and decisions.")
def logs(job: str, follow: bool, controller: bool) -> None:
    """Print a managed job's output (JOB is an id or a name), across its recoveries."""
    with _session() as session:
        if controller:
            session.jobs.controller_log(job)
            return  # the history is printed; the job's outcome is for its output
        final = _follow(session, job) if follow else session.jobs.logs(job, follow=False)
    if final.status.done:
        render.echo(f"managed job {final.job_id} {final.status.value}: {final.message}", err=True)
    _exit_for(final)


@jobs_group.command(name="cancel")
@click.argument("jobs", nargs=-1)
@click.option("--name", "-n", help="Cancel the active jobs of this name.")
@click.option("--all", "-a", "all_jobs", is_flag=True, help="Cancel every active job.")
@yes_option
@json_option
def cancel(
    jobs: tuple[str, ...], name: str | None, all_jobs: bool, yes: bool, as_json: bool
) -> None:
    """Cancel managed jobs by id, by name, or all."""
    if sum(bool(x) for x in (jobs, name, all_jobs)) != 1:
        raise click.UsageError("give job ids, or --name NAME, or --all")
    _confirm(yes, f"cancel {'all active managed jobs' if all_jobs else 'these managed jobs'}?")
    with _session() as session:
        done = session.jobs.cancel(list(jobs), name=name, all_jobs=all_jobs)
    if as_json:
        render.emit_json([j.model_dump(mode="json") for j in done])
        return
    ids = ", ".join(str(j.job_id) for j in done) or "-"
    render.echo(f"cancelling {len(done)} managed job(s): {ids}")
