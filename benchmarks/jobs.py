"""Job queue benchmark on a local cluster: how fast jobs are submitted and started, how fast
they are seen to finish, and how long `status` / `queue` take with 1,000 jobs in the store.

Baselines measured in the same run:
- submit+start: starting the same command as bare processes (`bash -c true`) one after another
  — the floor any job system pays; skyplan adds the store, job files and its own detached
  start;
- status/queue: the same calls with an empty job history.

    .venv/bin/python benchmarks/jobs.py [--jobs 200] [--history 1000] [--repeat 15]

Everything runs in a temporary SKYPLAN_HOME with SQLite; the agent is not started (the
benchmark drives `refresh()` itself), so the numbers are the queue's own.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

import skyplan
from skyplan.model.state import JobDemand, JobStatus
from skyplan.runtime import JobQueue

TINY = JobDemand(cpus=0.001)


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bare_processes(count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run(["bash", "-c", "true"], check=True)
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skyplan-bench-") as tmp:
        session = skyplan.Session(home=Path(tmp))
        session.launch(skyplan.Task(resources={"infra": "local"}), cluster="bench")
        store = session.store
        queue = JobQueue(store, session.backend("local"), "bench")

        empty_status = _median_ms(lambda: session.status(["bench"]), args.repeat)
        empty_queue = _median_ms(lambda: session.queue("bench", all_jobs=True), args.repeat)

        start = time.perf_counter()
        for _ in range(args.jobs):
            queue.submit("true", name=None, demand=TINY, envs={}, secrets={})
            queue.schedule()
        submitted = time.perf_counter() - start
        started = store.count_jobs("bench", [JobStatus.RUNNING, JobStatus.SUCCEEDED])
        deadline = time.monotonic() + 120
        while store.count_jobs("bench", [JobStatus.RUNNING]) and time.monotonic() < deadline:
            queue.refresh()
        finished = time.perf_counter() - start
        done = store.count_jobs("bench", [JobStatus.SUCCEEDED])

        for _ in range(max(0, args.history - args.jobs)):
            job = store.submit_job("bench", name=None, demand=TINY)
            store.update_job("bench", job.job_id, "history", status=JobStatus.SUCCEEDED)
        total = store.count_jobs("bench")
        full_status = _median_ms(lambda: session.status(["bench"]), args.repeat)
        full_queue = _median_ms(lambda: session.queue("bench"), args.repeat)
        full_queue_all = _median_ms(lambda: session.queue("bench", all_jobs=True), args.repeat)
        session.down("bench")
        session.close()

    floor = bare_processes(args.jobs)
    table = Table(title=f"job queue on a local cluster ({args.jobs} jobs of `true`)")
    table.add_column("measure")
    table.add_column("skyplan", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("baseline is")
    table.add_row(
        "submitted + started / s",
        f"{started / submitted:,.1f}",
        f"{floor:,.1f}",
        "bare `bash -c true` processes / s",
    )
    table.add_row(
        "all finished and recorded, s",
        f"{finished:.2f} ({done}/{args.jobs} ok)",
        f"{args.jobs / floor:.2f}",
        "the bare processes, run one by one",
    )
    table.add_row(
        f"status, ms ({total:,} jobs in the store)",
        f"{full_status:.1f}",
        f"{empty_status:.1f}",
        "status with no jobs",
    )
    table.add_row("queue (active jobs), ms", f"{full_queue:.1f}", f"{empty_queue:.1f}", "")
    table.add_row(
        f"queue --all, ms ({total:,} jobs)",
        f"{full_queue_all:.1f}",
        f"{empty_queue:.1f}",
        "queue --all with no jobs",
    )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
