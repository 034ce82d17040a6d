"""Jobs on nodes: the files a job leaves in its directory, and the shell that starts, polls,
follows and kills it through any backend's `CommandRunner`.

A job's directory (`layout.job_dir`) holds `run.sh` (the user's command), `env` (its
environment), `secrets` (mode 0600, read and deleted as the job starts),
`log`, `pgid` and, once it ends, `rc`. The job runs in its own session (`setsid`), so it outlives
the connection that started it and `kill -- -PGID` stops all of its processes.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

from skyplan.backends.base import CommandRunner, LineSink
from skyplan.backends.layout import WORKDIR, job_dir


def _env_lines(env: Mapping[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def write_job(
    runner: CommandRunner,
    root: str,
    job_id: int | str,
    command: str,
    env: Mapping[str, str],
    secrets: Mapping[str, str],
) -> None:
    """Put a job's files on a node (before it may start)."""
    directory = job_dir(root, job_id)
    # One copy, no extra command: `put` creates the directory and keeps each file's mode, so
    # `secrets` arrives readable by its owner only.
    with tempfile.TemporaryDirectory(prefix="skyplan-job-") as tmp:
        staging = Path(tmp)
        (staging / "run.sh").write_text(command + "\n")
        (staging / "env").write_text(_env_lines(env))
        if secrets:
            (staging / "secrets").write_text(_env_lines(secrets))
            (staging / "secrets").chmod(0o600)
        runner.put(staging, directory)


def start_script(
    root: str,
    job_id: int,
    extra_env: Mapping[str, str],
    defaults: Mapping[str, str] | None = None,
) -> str:
    """Start the job detached; returns once its process group id is on disk. `extra_env`
    overrides the job's own environment; `defaults` apply only where it sets nothing.

    A background job of a non-interactive shell is not a process group leader, so `setsid`
    makes it one without forking: `$!` is the new session's (and process group's) id. That
    group exists only once `setsid` has run, so the id is written (atomically) after the group
    is there, or the process already gone: before, a poll in between saw a job without a group
    and failed it as ended without an exit code, and `kill -- -pgid` found nothing."""
    d = shlex.quote(job_dir(root, job_id))
    body = (
        "set -a; . ./env; "
        + "".join(f"{k}={shlex.quote(v)}; " for k, v in extra_env.items())
        + "".join(
            f'[ -n "${{{k}:-}}" ] || {k}={shlex.quote(v)}; ' for k, v in (defaults or {}).items()
        )
        + "[ -f secrets ] && { . ./secrets; rm -f secrets; }; set +a; "
        + f"cd {WORKDIR} 2>/dev/null || cd ~; "
        + f"bash {d}/run.sh > {d}/log 2>&1 < /dev/null; echo $? > {d}/rc.tmp; mv {d}/rc.tmp {d}/rc"
    )
    return (
        f"cd {d} && rm -f rc pgid && "
        f"(setsid nohup bash -c {shlex.quote(body)} > /dev/null 2>&1 < /dev/null & "
        "p=$!; while ! kill -0 -$p 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 0.01; done; "
        "echo $p > pgid.tmp && mv pgid.tmp pgid)"
    )


def setup_script(root: str) -> str:
    """Run the setup written by `write_job(..., "setup", ...)` in the foreground, tee'd to its
    log; exits with the setup's exit code."""
    d = shlex.quote(job_dir(root, "setup"))
    # Its process group goes on disk like a job's, so `down`, `stop` and a resumed launch can
    # kill a setup whose launcher died.
    return (
        f"cd {d} && {{ {{ read -r _ _ _ _ pg _ < /proc/$$/stat; }} 2>/dev/null || pg=$$; }} && "
        'echo "$pg" > pgid && set -a && . ./env && '
        "{ [ ! -f secrets ] || { . ./secrets; rm -f secrets; }; } && set +a"
        f" && {{ cd {WORKDIR} 2>/dev/null || cd ~; }} && "
        f"bash {d}/run.sh 2>&1 < /dev/null | tee {d}/log; rc=${{PIPESTATUS[0]}}; "
        # Finished: daemons the setup started are the user's, not ours to kill on a resume.
        f"rm -f {d}/pgid; exit $rc"
    )


def poll_script(root: str, job_ids: list[int]) -> str:
    """Prints `ID rc N`, `ID running` or `ID dead` (no exit code, no process) per job."""
    ids = " ".join(str(j) for j in job_ids)
    jobs = shlex.quote(f"{root}/jobs")
    return (
        f"for j in {ids}; do d={jobs}/$j; "
        'if [ -f "$d/rc" ]; then echo "$j rc $(cat "$d/rc")"; '
        'elif [ -s "$d/pgid" ] && kill -0 -"$(cat "$d/pgid")" 2>/dev/null; '
        'then echo "$j running"; else echo "$j dead"; fi; done'
    )


def parse_poll(output: str) -> dict[int, int | str | None]:
    """`poll_script` output → job id → exit code, "running" or None (died without one)."""
    found: dict[int, int | str | None] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            job = int(parts[0])
            if parts[1] == "rc" and len(parts) == 3 and parts[2].lstrip("-").isdigit():
                found[job] = int(parts[2])
            elif parts[1] == "running":
                found[job] = "running"
            else:
                found[job] = None
    return found


def kill_script(root: str, job_id: int | str) -> str:
    d = shlex.quote(job_dir(root, job_id))
    return (
        f'if [ -s {d}/pgid ]; then p=$(cat {d}/pgid); kill -TERM -"$p" 2>/dev/null; '
        'for _ in $(seq 50); do kill -0 -"$p" 2>/dev/null || break; sleep 0.1; done; '
        'kill -KILL -"$p" 2>/dev/null; fi; true'
    )


def log_script(root: str, job_id: int, follow: bool) -> str:
    """Print a job's log; with `follow`, keep printing until the job has ended, or until the
    node's directory is gone (a node torn down: the follower used to wait for ever)."""
    d = shlex.quote(job_dir(root, job_id))
    if not follow:
        return f"cat {d}/log 2>/dev/null; true"
    alive = f"[ -d {shlex.quote(root)} ]"
    return (
        f"while {alive} && [ ! -f {d}/log ] && [ ! -f {d}/rc ]; do sleep 0.2; done; "
        f"tail -n +1 -f {d}/log 2>/dev/null & t=$!; "
        f"while {alive} && [ ! -f {d}/rc ] && "
        f'{{ [ ! -s {d}/pgid ] || kill -0 -"$(cat {d}/pgid)" 2>/dev/null; }}; do sleep 0.3; done; '
        " sleep 0.3; kill $t 2>/dev/null; wait $t 2>/dev/null; true"
    )


def stream_log(runner: CommandRunner, root: str, job_id: int, follow: bool, sink: LineSink) -> None:
    runner.run(log_script(root, job_id, follow), sink=sink)
