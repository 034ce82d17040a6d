"""Cluster and job commands: launch, exec, status, queue, logs, cancel, stop, start, down,
autostop, check, events. Verbs and flags follow SkyPilot's (`-c`, `-i`, `--down`, `-d`,
`--retry-until-up`, `-y`), so its users' habits carry over.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

import skyplan
from skyplan.cli import render
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

yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _session(*, trust: bool = False, catalog: Any = None, quiet: bool = False) -> Any:
    """A session that reports progress on stderr when it is a terminal, and prints what nodes
    print on stdout."""
    err = render.console(stderr=True)
    chatty = sys.stderr.isatty() and not quiet

    def say(message: str) -> None:
        if chatty:
            err.print(message, style="dim")

    def sink(line: str) -> None:
        click.echo(line)  # the job's own output, as it printed it

    return skyplan.Session(catalog=catalog, trust_new_host_keys=trust, say=say, sink=sink)


def _work(words: str | tuple[str, ...] | None) -> tuple[Any, Path]:
    """A task file, or a shell command run as a one-line task (as `sky launch 'cmd'`; several
    words are one command, as `sky launch echo hi`)."""
    entrypoint = " ".join(words) if isinstance(words, tuple) else words
    if not entrypoint:
        return skyplan.Dag(tasks=(skyplan.Task(),)), Path.cwd()
    path = Path(entrypoint)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return skyplan.load_task(path), path.resolve().parent
    return skyplan.Dag(tasks=(skyplan.Task(run=entrypoint),)), Path.cwd()


def _confirm(yes: bool, question: str) -> None:
    if not yes and sys.stdin.isatty():
        click.confirm(question, abort=True)


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _duration(job: Any) -> str:
    if job.started_at is None:
        return "-"
    end = job.ended_at or datetime.now(UTC)
    return f"{int((end - job.started_at).total_seconds())}s"


def _job_json(job: Any) -> dict[str, Any]:
    data: dict[str, Any] = job.model_dump(mode="json")
    return data


def _follow(session: Any, cluster: str, job: Any) -> None:
    """Stream a job's output until it ends; Ctrl-C detaches and the job goes on."""
    with detach_on_interrupt(
        f"job {job.job_id} on {cluster}", f"skyplan logs {cluster} {job.job_id}"
    ):
        final = session.logs(cluster, job.job_id, follow=True)
    render.echo(f"job {final.job_id} {final.status.value}: {final.message}", err=True)
    exit_with_outcome(final.status)


@click.command()
@click.argument("entrypoint", nargs=-1)
@click.option("--cluster", "-c", help="Cluster name (default: a new generated name).")
@resource_options
@env_options
@click.option("--idle-minutes-to-autostop", "-i", type=click.IntRange(min=0), default=None)
@click.option("--down", is_flag=True, help="With -i: tear down instead of stopping.")
@click.option("--retry-until-up", "-r", is_flag=True, help="Keep retrying, with backoff.")
@click.option("--detach-run", "-d", is_flag=True, help="Do not stream the job's output.")
@click.option(
    "--policy", "policies", multiple=True, type=click.Path(path_type=Path), help="Policy file."
)
@click.option("--trust-new-host-keys", is_flag=True, help="Trust unknown SSH host keys once.")
@click.option("--dryrun", is_flag=True, help="Show what would be launched, launch nothing.")
@catalog_option
@context_options
@json_option
@yes_option
def launch(
    entrypoint: tuple[str, ...],
    cluster: str | None,
    envs: tuple[str, ...],
    secrets: tuple[str, ...],
    env_files: tuple[Path, ...],
    idle_minutes_to_autostop: int | None,
    down: bool,
    retry_until_up: bool,
    detach_run: bool,
    policies: tuple[Path, ...],
    trust_new_host_keys: bool,
    dryrun: bool,
    catalog_path: Path | None,
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    overrides: tuple[str, ...],
    as_json: bool,
    yes: bool,
    **resources: Any,
) -> None:
    """Launch a cluster for ENTRYPOINT (a task YAML, or a shell command: one quoted argument or
    several words) and run it."""
    del yes  # accepted as in SkyPilot; launch asks nothing
    work, base = _work(entrypoint)
    env, secret = task_env(envs, secrets, env_files)
    work = skyplan.with_overrides(work, resource_flags(**resources))
    catalog = skyplan.load_catalog(catalog_path)
    policy = optional_policy(policies, catalog)
    context = skyplan.request_context(team=team, user=user, labels=parse_pairs(labels, "--label"))
    soft_overrides = parse_pairs(overrides, "--override")
    with _session(trust=trust_new_host_keys, catalog=catalog, quiet=as_json) as session:
        if dryrun:
            planned = session.plan_launch(
                work, policy=policy, context=context, overrides=soft_overrides
            )
            render.show_plan(planned, as_json)
            return
        result = session.launch(
            work,
            cluster=cluster,
            base_dir=base,
            envs=env,
            secrets=secret,
            retry_until_up=retry_until_up,
            idle_minutes=idle_minutes_to_autostop,
            down=down,
            policy=policy,
            context=context,
            overrides=soft_overrides,
        )
        if as_json:
            render.emit_json(
                {
                    "cluster": result.cluster,
                    "job": _job_json(result.job) if result.job else None,
                    "attempts": [str(a) for a in session.store.attempts(result.cluster)],
                }
            )
            return
        render.echo(f"cluster {result.cluster} is up", err=True)
        if result.job is not None:
            render.echo(f"job {result.job.job_id} submitted", err=True)
            if not detach_run:
                _follow(session, result.cluster, result.job)


@click.command(name="exec")
@click.argument("cluster")
@click.argument("entrypoint", nargs=-1, required=True)
@env_options
@click.option("--detach-run", "-d", is_flag=True, help="Do not stream the job's output.")
@json_option
def exec_(
    cluster: str,
    entrypoint: tuple[str, ...],
    envs: tuple[str, ...],
    secrets: tuple[str, ...],
    env_files: tuple[Path, ...],
    detach_run: bool,
    as_json: bool,
) -> None:
    """Run ENTRYPOINT (a task YAML or a command, quoted or as several words) as a job on an
    existing CLUSTER."""
    work, base = _work(entrypoint)
    env, secret = task_env(envs, secrets, env_files)
    with _session(quiet=as_json) as session:
        job = session.exec(cluster, work, base_dir=base, envs=env, secrets=secret)
        if as_json:
            render.emit_json(_job_json(job))
            return
        render.echo(f"job {job.job_id} submitted to {cluster}", err=True)
        if not detach_run:
            _follow(session, cluster, job)


def _resources(record: Any) -> str:
    if record.instance_type is None:
        return "-"
    spot = " (spot)" if record.spot else ""
    accs = render.accs(record.accelerators)
    tail = f" [{accs}]" if accs != "-" else ""
    return f"{record.num_nodes}x {record.instance_type}{tail}{spot}"


def _autostop(record: Any) -> str:
    if record.autostop_minutes is None:
        return "-"
    return f"{record.autostop_minutes}m{' (down)' if record.autostop_down else ''}"


@click.command()
@click.argument("clusters", nargs=-1)
@click.option("--refresh/--no-refresh", default=True, help="Ask the backends (default) or not.")
@click.option("--orphans", is_flag=True, help="Also list tagged nodes the store does not know.")
@json_option
def status(clusters: tuple[str, ...], refresh: bool, orphans: bool, as_json: bool) -> None:
    """Show clusters: status, where, resources, jobs, cost."""
    with _session(quiet=True) as session:
        views = session.status(list(clusters), refresh=refresh)
        lost = session.orphans() if orphans else {}
    if as_json:
        render.emit_json(
            {
                "clusters": [
                    {
                        **v.record.model_dump(mode="json", exclude={"task"}),
                        "nodes": [n.model_dump(mode="json") for n in v.nodes],
                        "active_jobs": v.active_jobs,
                        "note": v.note,
                    }
                    for v in views
                ],
                "orphans": {k: [n.node_id for n in ns] for k, ns in lost.items()},
            }
        )
        return
    table = Table("NAME", "INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "JOBS", "$/H", "LAUNCHED")
    for v in views:
        r = v.record
        where = "/".join(p for p in (r.cloud, r.region, r.zone) if p) or "-"
        state = r.status.value + (f" ({r.step.value})" if r.status.value == "init" else "")
        table.add_row(
            r.name,
            where,
            _resources(r),
            state,
            _autostop(r),
            str(v.active_jobs),
            f"{r.hourly_cost:.2f}",
            _ago(r.created_at),
        )
    out = render.console()
    if views:
        out.print(table)
    else:
        out.print("no clusters")
    for v in views:
        if v.note:
            out.print(f"{v.record.name}: {v.note}")
    for name, nodes in lost.items():
        out.print(f"orphaned: {name}: {len(nodes)} node(s); `skyplan down {name}` deletes them")


#: Jobs `queue` shows per cluster on a terminal unless `--limit` says otherwise.
TERMINAL_ROWS = 100


@click.command()
@click.argument("clusters", nargs=-1)
@click.option("--all", "-a", "all_jobs", is_flag=True, help="Include finished jobs.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    help=f"Show the newest N jobs per cluster (default: {TERMINAL_ROWS} on a terminal, all"
    " when piped or with --json; 0: all).",
)
@json_option
def queue(clusters: tuple[str, ...], all_jobs: bool, limit: int | None, as_json: bool) -> None:
    """Show the job queue of CLUSTERS (every cluster when none is named)."""
    if limit is None and not as_json and sys.stdout.isatty():
        limit = TERMINAL_ROWS
    active = None if all_jobs else [skyplan.JobStatus.PENDING, skyplan.JobStatus.RUNNING]
    with _session(quiet=True) as session:
        names = list(clusters) or [r.name for r in session.store.clusters()]
        queues = {
            name: session.queue(name, all_jobs=all_jobs, limit=limit or None) for name in names
        }
        hidden = {
            name: session.store.count_jobs(name, active) - len(jobs)
            for name, jobs in queues.items()
            if limit and len(jobs) == limit
        }
    if as_json:  # one list, each job naming its cluster
        render.emit_json([_job_json(j) for jobs in queues.values() for j in jobs])
        return
    out = render.console()
    if not queues:
        out.print("no clusters")
    for name, jobs in queues.items():
        title = f"cluster {name}" if len(queues) > 1 or not clusters else None
        out.print(_queue_table(jobs, title) if jobs else _no_jobs(title, all_jobs))
        if hidden.get(name):
            note = f"({hidden[name]:,} earlier job(s) not shown; --limit 0 shows all)"
            render.echo(note, err=True)


def _no_jobs(title: str | None, all_jobs: bool) -> str:
    what = f"no {'jobs' if all_jobs else 'active jobs'}"
    return f"{title}: {what}" if title else what


def _queue_table(jobs: list[Any], title: str | None) -> Table:
    table = Table(
        "ID",
        "NAME",
        "SUBMITTED",
        "DURATION",
        "STATUS",
        "NODES",
        "RESOURCES",
        title=title,
        title_justify="left",
    )
    for j in jobs:
        d = j.demand
        acc = f", {d.accelerator}:{d.accelerator_count:g}" if d.accelerator else ""
        table.add_row(
            str(j.job_id),
            j.name or "-",
            _ago(j.submitted_at),
            _duration(j),
            j.status.value,
            ",".join(str(r) for r in j.ranks) or "-",
            f"{d.num_nodes}x [cpus={d.cpus:g}{acc}]",
        )
    return table


@click.command()
@click.argument("cluster")
@click.argument("job_id", type=int, required=False)
@click.option("--follow/--no-follow", default=True, help="Keep printing until the job ends.")
def logs(cluster: str, job_id: int | None, follow: bool) -> None:
    """Print a job's output (the latest job by default)."""
    with _session() as session:
        if follow:
            which = f" {job_id}" if job_id is not None else ""
            with detach_on_interrupt(f"job{which} on {cluster}", f"skyplan logs {cluster}{which}"):
                job = session.logs(cluster, job_id, follow=True)
        else:
            job = session.logs(cluster, job_id, follow=False)
    exit_with_outcome(job.status)


@click.command()
@click.argument("cluster")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all", "-a", "all_jobs", is_flag=True, help="Cancel every active job.")
@yes_option
@json_option
def cancel(
    cluster: str, job_ids: tuple[int, ...], all_jobs: bool, yes: bool, as_json: bool
) -> None:
    """Cancel jobs on CLUSTER."""
    if not job_ids and not all_jobs:
        raise click.UsageError("name the job ids to cancel, or pass --all")
    _confirm(yes, f"cancel {'all active jobs' if all_jobs else 'these jobs'} on {cluster}?")
    with _session() as session:
        done = session.cancel(cluster, None if all_jobs else list(job_ids))
    if as_json:
        render.emit_json([_job_json(j) for j in done])
        return
    render.echo(f"cancelled {len(done)} job(s): {', '.join(str(j.job_id) for j in done) or '-'}")


def _each(
    names: tuple[str, ...],
    verb: str,
    yes: bool,
    action: Any,
    *,
    every: bool = False,
    status: Any = None,
    as_json: bool = False,
) -> None:
    """Do `action` to each named cluster, or with `every` to each cluster (in `status` if
    given) except those a managed job owns: its controller looks after them. With `as_json`,
    print `{"<verb>": [names done], "left": [names left to the controller]}`."""
    if every and names:
        raise click.UsageError(f"name the cluster(s) to {verb} or pass --all, not both")
    if not names and not every:
        raise click.UsageError(f"name the cluster(s) to {verb}, or pass --all")
    with _session() as session:
        if every:
            owned = session.jobs.owned_clusters()
            found = [r for r in session.store.clusters() if status is None or r.status == status]
            names = tuple(r.name for r in found if r.name not in owned)
            left = sorted(r.name for r in found if r.name in owned)
            if left and not as_json:
                render.echo(
                    f"leaving {', '.join(left)} to the managed-job controller "
                    "(`skyplan jobs cancel` ends their jobs)",
                    err=True,
                )
            if not names and not as_json:
                render.echo(f"no cluster to {verb}", err=True)
                return
        else:
            left = []
        if names:
            _confirm(yes, f"{verb} {', '.join(names)}?")
        for name in names:
            action(session, name)
            if not as_json:
                render.echo(f"{name}: {verb} done")
    if as_json:
        render.emit_json({verb: list(names), "left": left})


all_clusters_option = click.option(
    "--all", "-a", "every", is_flag=True, help="Every cluster (not managed jobs' clusters)."
)


@click.command()
@click.argument("clusters", nargs=-1)
@all_clusters_option
@yes_option
@json_option
def stop(clusters: tuple[str, ...], every: bool, yes: bool, as_json: bool) -> None:
    """Stop clusters, keeping their disks (cancels their jobs)."""
    _each(
        clusters,
        "stop",
        yes,
        lambda s, n: s.stop(n),
        every=every,
        status=skyplan.ClusterStatus.UP,
        as_json=as_json,
    )


@click.command()
@click.argument("clusters", nargs=-1)
@yes_option
@json_option
def start(clusters: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Start stopped clusters."""
    _each(clusters, "start", True, lambda s, n: s.start(n), as_json=as_json)


def _down(session: Any, name: str) -> None:
    try:
        session.down(name)
    except skyplan.ClusterNotFound:
        if name not in session.orphans():
            raise
        session.down_orphan(name)


@click.command()
@click.argument("clusters", nargs=-1)
@all_clusters_option
@yes_option
@json_option
def down(clusters: tuple[str, ...], every: bool, yes: bool, as_json: bool) -> None:
    """Tear clusters down: delete every node, then the record."""
    _each(clusters, "down", yes, _down, every=every, as_json=as_json)


@click.command()
@click.argument("cluster")
@click.option("--idle-minutes", "-i", type=click.IntRange(min=0), help="Idle minutes.")
@click.option("--down", is_flag=True, help="Tear down instead of stopping.")
@click.option("--cancel", is_flag=True, help="Turn autostop off.")
@json_option
def autostop(
    cluster: str, idle_minutes: int | None, down: bool, cancel: bool, as_json: bool
) -> None:
    """Stop (or tear down) CLUSTER after it has been idle for some minutes."""
    if cancel == (idle_minutes is not None):
        raise click.UsageError("give either -i MINUTES or --cancel")
    with _session() as session:
        session.autostop(cluster, None if cancel else idle_minutes, down=down)
    if as_json:
        minutes = None if cancel else idle_minutes
        render.emit_json({"cluster": cluster, "idle_minutes": minutes, "down": down})
        return
    what = "off" if cancel else f"after {idle_minutes} idle minute(s), {'down' if down else 'stop'}"
    render.echo(f"{cluster}: autostop {what}")


@click.command()
@click.option("--trust-new-host-keys", is_flag=True, help="Record unknown SSH host keys once.")
@json_option
def check(trust_new_host_keys: bool, as_json: bool) -> None:
    """Which backends are usable here, and for each that is not, why."""
    with _session(trust=trust_new_host_keys, quiet=True) as session:
        checks = session.check()
    if as_json:
        render.emit_json([c.model_dump(mode="json") for c in checks])
        return
    out = render.console()
    for c in checks:
        mark = Text("ok", style="green") if c.ok else Text("no", style="red")
        out.print(f"{c.backend:<12} ", mark, f"  {c.reason}", sep="")
        for line in c.detail:
            out.print(f"{'':<16}{line}")


@click.command()
@click.argument("cluster", required=False)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def events(cluster: str | None, limit: int, as_json: bool) -> None:
    """Recorded events (status changes, attempts, operations), oldest first."""
    with _session(quiet=True) as session:
        found = session.events(cluster, limit=limit)
    if as_json:
        render.emit_json([e.model_dump(mode="json") for e in found])
        return
    for e in found:
        move = f"{e.old or '-'} -> {e.new}" if e.new else ""
        job = f" job {e.job_id}" if e.job_id else ""
        stamp = e.at.isoformat(timespec="seconds")
        render.echo(f"{stamp} {e.cluster or '-'}{job} {e.kind} {move} {e.reason}".rstrip())
