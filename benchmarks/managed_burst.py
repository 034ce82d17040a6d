"""Managed jobs in a burst: N jobs submitted at once, one controller process serving them all.

Prints, for each controller width (concurrent launches), the time from the controller's start
until every job has started running, the time until all have ended, and the controller's peak
resident memory (VmHWM) and its growth per job. The baseline measured in the same run is
width 1 — one launch at a time, the way a controller that walks its jobs one by one behaves
(SkyPilot showed > 20 s between jobs: skypilot#4294).

Also printed: the submit rate (`session.jobs.launch`, which validates and plans each job before
recording it).

    .venv/bin/python benchmarks/managed_burst.py [--jobs 1000] [--widths 1,8,32]

Everything runs on the local backend in a temporary SKYPLAN_HOME with SQLite; each job gets its
own cluster (a directory) and runs `sleep 1`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import skyplan
from skyplan.model.managed import ManagedJobStatus

TASK = {"name": "burst", "run": "sleep 1", "resources": {"infra": "local", "cpus": "0.001+"}}


def _rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set of `pid` in KiB."""
    now = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return now, peak


BASE = """
import os, sys, tempfile
from pathlib import Path
import skyplan
from skyplan.runtime.recovery import Target
with skyplan.Session(home=Path(tempfile.mkdtemp())) as s:
    c = s.jobs.controller()
    task = skyplan.Task.model_validate(TASK)
    s.jobs._plan_one(task, frozenset(), None, None, None)
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            print(line.split()[1])
    c.close()
"""


def base_rss_kib() -> int:
    """A controller process's memory before it serves any job: imports, store, one plan."""
    code = f"TASK = {TASK!r}\n{BASE}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def run(jobs: int, width: int, console: Console) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="skyplan-burst-"))
    with skyplan.Session(home=home) as session:
        task = skyplan.Task.model_validate(TASK)
        start = time.perf_counter()
        ids = [session.jobs.launch(task, start_controller=False) for _ in range(jobs)]
        submit = time.perf_counter() - start
        env = {
            **os.environ,
            "SKYPLAN_HOME": str(home),
            "SKYPLAN_JOBS_POLL": "1",
            "SKYPLAN_JOBS_WORKERS": str(width),
        }
        env.pop("SKYPLAN_DB_URL", None)
        begun = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "skyplan.execution.jobs_controller"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        all_started = None
        peak_running = 0
        try:
            while True:
                views = session.store.managed.jobs()
                started = sum(
                    v.started_at is not None or v.status.done for v in views if v.job_id in ids
                )
                running = sum(v.status == ManagedJobStatus.RUNNING for v in views)
                peak_running = max(peak_running, running)
                if all_started is None and started == jobs:
                    all_started = time.perf_counter() - begun
                if all(v.status.done for v in views):
                    break
                _now, peak = _rss_kib(proc.pid)
                time.sleep(0.2)
            total = time.perf_counter() - begun
            _now, peak = _rss_kib(proc.pid)
        finally:
            proc.wait(timeout=120)
        failed = [v for v in session.store.managed.jobs() if v.status != ManagedJobStatus.SUCCEEDED]
        if failed:
            console.print(f"[red]{len(failed)} job(s) did not succeed: {failed[0].message}[/red]")
    return {
        "submit_s": submit,
        "started_s": all_started or total,
        "total_s": total,
        "peak_kib": peak,
        "peak_running": peak_running,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--widths", default="1,8,32")
    args = parser.parse_args()
    console = Console(width=170)
    base = base_rss_kib()
    widths = [int(w) for w in args.widths.split(",")]
    table = Table(
        title=f"{args.jobs} managed jobs in a burst (local backend, SQLite, `sleep 1` each)",
        title_justify="left",
    )
    for name in (
        "launch width",
        "submit (jobs/s)",
        "all started (s)",
        "jobs started/s",
        "all ended (s)",
        "peak running",
        "controller peak RSS (MiB)",
        "RSS per job (KiB)",
    ):
        table.add_column(name, justify="right")
    for width in widths:
        r = run(args.jobs, width, console)
        table.add_row(
            f"{width}{' (baseline)' if width == widths[0] else ''}",
            f"{args.jobs / r['submit_s']:.0f}",
            f"{r['started_s']:.1f}",
            f"{args.jobs / r['started_s']:.1f}",
            f"{r['total_s']:.1f}",
            f"{r['peak_running']:.0f}",
            f"{r['peak_kib'] / 1024:.0f}",
            f"{max(0.0, r['peak_kib'] - base) / args.jobs:.0f}",
        )
    console.print(table)
    console.print(
        f"RSS per job = (peak RSS - {base / 1024:.0f} MiB, a controller process that has "
        "imported everything, opened the store and planned once) / jobs"
    )


if __name__ == "__main__":
    main()
