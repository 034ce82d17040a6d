"""Options, and the planning call, shared by several commands."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import skyplan
from skyplan.cli import render

catalog_option = click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Catalog: skyplan CSV/Parquet file or directory, or a SkyPilot v8 directory. "
    "Default: the shipped catalog (or $SKYPLAN_CATALOG).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def env_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--env`, `--secret` (KEY=VALUE, or KEY alone for this environment's value) and
    `--env-file` (dotenv format), as SkyPilot takes them; read them with `task_env`."""
    for option in reversed(
        (
            click.option(
                "--env",
                "envs",
                multiple=True,
                metavar="KEY[=VALUE]",
                help="Set an env var (KEY alone: its value here).",
            ),
            click.option(
                "--secret",
                "secrets",
                multiple=True,
                metavar="KEY[=VALUE]",
                help="Set a secret (KEY alone: its value here).",
            ),
            click.option(
                "--env-file",
                "env_files",
                multiple=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Env vars from a dotenv file (--env wins over it).",
            ),
        )
    ):
        command = option(command)
    return command


def task_env(
    envs: tuple[str, ...], secrets: tuple[str, ...], env_files: tuple[Path, ...] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """The env vars and secrets `env_options` gave: env files first, then `--env`."""
    from dotenv import dotenv_values

    out: dict[str, str] = {}
    for path in env_files:
        for key, value in dotenv_values(path).items():
            where = f"--env-file {path}"
            out[_env_name(key, where)] = value if value is not None else _from_here(key, where)
    out.update(_env_pairs(envs, "--env"))
    return out, _env_pairs(secrets, "--secret")


def _env_pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name = _env_name(key.strip(), f"{flag} {item!r}")
        out[name] = value if sep else _from_here(name, f"{flag} {name}")
    return out


def _env_name(key: str, where: str) -> str:
    if not _ENV_NAME.match(key):
        raise click.UsageError(
            f"{where}: {key!r} is not an environment variable name (letters, digits and _, "
            "not starting with a digit)"
        )
    return key


def _from_here(key: str, where: str) -> str:
    value = os.environ.get(key)
    if value is None:
        raise click.UsageError(f"{where}: {key} is not set here; give {key}=VALUE")
    return value


@contextmanager
def detach_on_interrupt(what: str, again: str) -> Iterator[None]:
    """Ctrl-C while following output detaches: say that `what` keeps running and how to
    follow it `again`, and exit 0; the job is not touched."""
    try:
        yield
    except KeyboardInterrupt:
        render.echo(f"\ndetached: {what} keeps running (`{again}` follows it again)", err=True)
        sys.exit(0)


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


def resource_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """SkyPilot's resource flags; each replaces the task's field (see `resource_flags`)."""
    for option in reversed(
        (
            click.option(
                "--infra", help="Pin the infra, e.g. aws, aws/us-east-1, ssh/mypool, local."
            ),
            click.option("--gpus", help="Accelerators, e.g. A100:8 (replaces the task's)."),
            click.option("--cpus", help="vCPUs per node, e.g. 8 or 8+."),
            click.option("--memory", help="Memory per node in GiB, e.g. 32 or 32+."),
            click.option("--instance-type", "-t", help="Instance type."),
            click.option("--num-nodes", type=click.IntRange(min=1), help="Number of nodes."),
            click.option("--use-spot/--no-use-spot", default=None, help="Use spot instances."),
        )
    ):
        command = option(command)
    return command


def resource_flags(
    *,
    infra: str | None,
    gpus: str | None,
    cpus: str | None,
    memory: str | None,
    instance_type: str | None,
    num_nodes: int | None,
    use_spot: bool | None,
) -> dict[str, Any]:
    """The `resource_options` the user gave, as `skyplan.with_overrides` takes them."""
    flags = {
        "infra": infra,
        "accelerators": gpus,
        "cpus": cpus,
        "memory": memory,
        "instance_type": instance_type,
        "use_spot": use_spot,
        "num_nodes": num_nodes,
    }
    return {k: v for k, v in flags.items() if v is not None}


def parse_pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    """`KEY=VALUE` items as a mapping; a usage error names the flag."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def optional_policy(paths: list[Path] | tuple[Path, ...], catalog: Any) -> Any:
    """The effective policy of `paths`, or None when there are none."""
    return skyplan.load_policy(list(paths), catalog=catalog) if paths else None


def plan_under_policy(
    work: Any,
    catalog: Any,
    policy_paths: list[Path],
    *,
    team: str | None,
    user: str | None,
    labels: tuple[str, ...],
    overrides: tuple[str, ...],
    alternatives: int = 8,
) -> Any:
    """`skyplan.plan` with the policies and request context the command line gave."""
    policy = optional_policy(policy_paths, catalog)
    return skyplan.plan(
        work,
        catalog=catalog,
        alternatives=alternatives,
        policy=policy,
        context=skyplan.request_context(
            team=team, user=user, labels=parse_pairs(labels, "--label")
        ),
        overrides=parse_pairs(overrides, "--override"),
    )


#: Exit codes for a job's outcome, as SkyPilot's (`sky logs`, `sky jobs logs`): scripts written
#: for it read skyplan the same. Invalid input stays 2; an unknown job is 102 (`JobNotFound`).
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_NOT_FINISHED, EXIT_CANCELLED = 0, 100, 101, 103


def outcome_exit(status: Any) -> int:
    """The exit code for a job (or managed job) in `status`."""
    if not status.done:
        return EXIT_NOT_FINISHED
    if status.value.lower() == "succeeded":
        return EXIT_SUCCEEDED
    if status.value.lower() == "cancelled":
        return EXIT_CANCELLED
    return EXIT_FAILED  # failed, lost, failed_setup, failed_no_resource, …


def exit_with_outcome(*statuses: Any) -> None:
    """Exit with the worst outcome of `statuses` (failed over cancelled over not finished)."""
    codes = {outcome_exit(s) for s in statuses}
    for code in (EXIT_FAILED, EXIT_CANCELLED, EXIT_NOT_FINISHED):
        if code in codes:
            sys.exit(code)
