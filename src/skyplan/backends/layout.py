"""Where skyplan keeps things on a node, the same on every backend.

    <root>/                  the node's skyplan directory (`node.extra["root"]`)
    <root>/jobs/<id>/        one job: run.sh, log, rc (exit code), pgid (its process group)
    <root>/setup.log         the output of the task's `setup`
    ~/sky_workdir            the task's workdir (SkyPilot's path, so existing scripts work)

The shell snippets here only use POSIX tools (sh, kill, rm, cat), so they run on any node a
backend reaches: this machine, an SSH host, a VM, a pod.
"""

from __future__ import annotations

import shlex

WORKDIR = "~/sky_workdir"


def job_dir(root: str, job_id: int | str) -> str:
    """A job's directory; `setup` holds the task's setup, run the same way."""
    return f"{root}/jobs/{job_id}"


def kill_jobs_script(root: str) -> str:
    """Kill the process group of every job started under `root` (running or not)."""
    jobs = shlex.quote(f"{root}/jobs")
    return (
        f'for f in {jobs}/*/pgid; do [ -f "$f" ] || continue; '
        'kill -TERM -"$(cat "$f")" 2>/dev/null; done; sleep 0.2; '
        f'for f in {jobs}/*/pgid; do [ -f "$f" ] || continue; '
        'kill -KILL -"$(cat "$f")" 2>/dev/null; done; true'
    )


def teardown_script(root: str) -> str:
    """Kill every job under `root`, then delete `root` itself."""
    return f"{kill_jobs_script(root)}; rm -rf {shlex.quote(root)}"
