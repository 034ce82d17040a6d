"""Whole-process CLI latency, this checkout against an earlier revision, in the same run.

Each command is run as a new process (`python -c` starting skyplan's CLI), --repeat times,
alternating between the two trees so a slow spell of the machine hits both; the table gives
medians. The earlier revision (--before, by default the last commit before issue 15's CLI work)
is checked out with `git worktree` into a temporary folder and imported from there, over the
same virtualenv, the same store and the same cache folder.

- `plan examples/train.yaml` on the shipped catalog, and with --catalog on ../shared's
  82,000-offer SkyPilot catalog when it is present (the prepared catalog is on disk after the
  first run: that is the steady state a user sees);
- `status` and `queue -a` on a store holding one local cluster with --jobs finished jobs,
  piped (plain lines) and on a terminal (a pseudo-terminal: the newest 100 after the change);
- `python -c pass`: the interpreter's own start, the floor.

    .venv/bin/python benchmarks/cli_latency.py [--before REV] [--jobs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT.parent / "shared" / "catalogs" / "skypilot-v8-synthetic"
BEFORE = "c2a76d7"

_CHILD = "import sys; sys.path.insert(0, {src!r}); from skyplan.cli.main import main; main()"


def run(src: Path | None, args: list[str], env: dict[str, str], tty: bool) -> float:
    """Seconds for one CLI process; its output is read (and thrown away) as a user's would be."""
    code = "pass" if src is None else _CHILD.format(src=str(src))
    argv = [sys.executable, "-c", code, *args]
    start = time.perf_counter()
    if not tty:
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True)
        if done.returncode != 0:
            sys.exit(f"{args} failed: {done.stderr.decode()[-500:]}")
        return time.perf_counter() - start
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=follower, stderr=follower)
    os.close(follower)
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            if not os.read(leader, 1 << 16):
                break
        except OSError:  # the terminal closed with the process
            break
    proc.wait()
    os.close(leader)
    return time.perf_counter() - start


def fill_store(home: Path, jobs: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import skyplan
    from skyplan.model.state import JobDemand, JobStatus

    with skyplan.Session(home=home) as session:
        session.launch(
            skyplan.Task(resources={"infra": "local"}), cluster="bench", start_agent=False
        )
        store = session.store
        for _ in range(jobs):
            job = store.submit_job("bench", name="step", demand=JobDemand(cpus=0.001))
            store.update_job("bench", job.job_id, "done", status=JobStatus.SUCCEEDED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyplan-cli-bench-") as tmp:
        scratch = Path(tmp)
        old = scratch / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(old), args.before],
            cwd=ROOT,
            check=True,
        )
        try:
            home = scratch / "home"
            env = {
                **os.environ,
                "SKYPLAN_HOME": str(home),
                "SKYPLAN_CACHE_DIR": str(scratch / "cache"),
            }
            print(f"filling a store with {args.jobs:,} finished jobs…", file=sys.stderr)
            fill_store(home, args.jobs)
            commands: list[tuple[str, list[str], bool]] = [
                ("plan examples/train.yaml", ["plan", "examples/train.yaml"], False),
            ]
            if SYNTHETIC.is_dir():
                commands.append(
                    (
                        "plan --catalog skypilot-v8-synthetic",
                        ["plan", "examples/train.yaml", "--catalog", str(SYNTHETIC)],
                        False,
                    )
                )
            commands += [
                ("status", ["status", "--no-refresh"], False),
                (f"queue -a, {args.jobs:,} jobs, piped", ["queue", "-a"], False),
                (f"queue -a, {args.jobs:,} jobs, terminal", ["queue", "-a"], True),
            ]
            rows = []
            for label, argv, tty in commands:
                times: dict[str, list[float]] = {"before": [], "after": []}
                run(ROOT / "src", argv, env, tty)  # warm the page cache and the disk cache
                for _ in range(args.repeat):
                    times["before"].append(run(old / "src", argv, env, tty))
                    times["after"].append(run(ROOT / "src", argv, env, tty))
                before = statistics.median(times["before"])
                after = statistics.median(times["after"])
                rows.append(f"| {label} | {before:.2f} | {after:.2f} | {before / after:.1f}× |")
            floor = statistics.median(run(None, [], env, False) for _ in range(args.repeat))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    print(f"\nCLI processes, median of {args.repeat} (seconds); before = {args.before}\n")
    print("| command | before | after | speed-up |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    print(f"| `python -c pass` (the floor) | {floor:.2f} | {floor:.2f} | |")


if __name__ == "__main__":
    main()
