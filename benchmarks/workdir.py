"""Workdir sync to an SSH host, and `down` of a cluster holding a large workdir.

**sync**: a generated workdir (N files of 1-8 KiB in nested folders, plus a few 8 MiB files on
the largest rows) copied to a real sshd on loopback (the test suite's harness,
tests/backends/sshd.py) by `SshRunner.put`, which streams one tar archive into `tar -x`. The
baseline, measured in the same run on the same tree and host, is `SshRunner.put_sftp`: SFTP
one request per file and directory, as every put was before (and as hosts without `tar` still
are). Each figure is the median of --repeat copies into a fresh folder, the three ways taking
turns after a `sync`. The floor is the same tree through `tar -c | tar -x` on this machine with
no SSH in between: what the disk costs.

**down**: a `local` cluster launched with the largest workdir (synced to its node's
`~/sky_workdir`), then `Session.down` timed; the floor, measured in the same run, is `rm -rf`
of a copy of the same tree.

    .venv/bin/python benchmarks/workdir.py [--files 500,5000,20000] [--repeat 3]

Needs OpenSSH's sshd (`bash scripts/test-services` installs it).
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.backends.sshd import SshdFarm, SshdUnavailable  # noqa: E402

import skyplan  # noqa: E402
from skyplan.backends.ssh_runner import SshRunner  # noqa: E402

BIG = 8 * 1024 * 1024


def make_tree(root: Path, files: int) -> int:
    """`files` small files in nested folders (plus 8 MiB files on large rows); total bytes."""
    total = 0
    for i in range(files):
        folder = root / f"pkg{i % 20}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        data = (f"line {i}\n" * (100 + (i * 37) % 900)).encode()
        (folder / f"f{i}.py").write_bytes(data)
        total += len(data)
    for j in range(files // 2500):
        data = os.urandom(BIG)
        (root / f"weights{j}.bin").write_bytes(data)
        total += len(data)
    return total


def rotation(
    methods: dict[str, Callable[[Path], None]], home: Path, repeat: int
) -> dict[str, float]:
    """Median seconds of each method, taking turns (so a slow spell of the disk hits all of
    them), each into a fresh folder of `home` after `sync`, the folder removed untimed."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for turn in range(repeat):
        for name, copy in methods.items():
            target = home / f"{name}{turn}"
            os.sync()
            start = time.perf_counter()
            copy(target)
            times[name].append(time.perf_counter() - start)
            shutil.rmtree(target)
    return {name: statistics.median(t) for name, t in times.items()}


def sync_rows(farm: SshdFarm, trees: dict[int, tuple[Path, int]], repeat: int) -> list[str]:
    host = farm.hosts[0]
    known = farm.root / "known_hosts"
    known.write_text(farm.known_hosts([0]))
    runner = SshRunner(
        host.ip, host.port, getpass.getuser(), str(farm.client_key), known_hosts=known
    )
    rows = []
    try:
        runner.has_tar()  # connect, read HOME and probe tar before timing either way
        home = Path(runner.home())
        for files, (tree, size) in trees.items():

            def archive(target: Path, tree: Path = tree) -> None:
                runner.put(tree, str(target))

            def sftp(target: Path, tree: Path = tree) -> None:
                runner.put_sftp(tree, str(target))

            def floor(target: Path, tree: Path = tree) -> None:
                target.mkdir()
                subprocess.run(
                    f"tar -cf - -C {tree} . | tar -xf - -C {target} --no-same-owner",
                    shell=True,
                    check=True,
                )

            took = rotation({"sftp": sftp, "archive": archive, "floor": floor}, home, repeat)
            before, after = took["sftp"], took["archive"]
            rows.append(
                f"| {files:,} | {size / 2**20:,.1f} | {before:.2f} | {after:.2f} |"
                f" {before / after:.1f}× | {took['floor']:.2f} |"
            )
    finally:
        runner.close()
    return rows


def down_row(tree: Path, files: int, size: int, scratch: Path) -> str:
    task = skyplan.parse_task(
        f"workdir: {tree}\nresources:\n  infra: local\nrun: ls | wc -l\n", "bench"
    )
    with skyplan.Session(home=scratch / "home") as session:
        start = time.perf_counter()
        session.launch(task, cluster="big", start_agent=False)
        launched = time.perf_counter() - start
        start = time.perf_counter()
        session.down("big")
        down = time.perf_counter() - start
    copy = scratch / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    start = time.perf_counter()
    subprocess.run(["rm", "-rf", str(copy)], check=True)
    floor = time.perf_counter() - start
    return f"| {files:,} | {size / 2**20:,.1f} | {launched:.2f} | {down:.2f} | {floor:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="500,5000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.files.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        trees = {}
        for files in counts:
            tree = scratch / f"tree{files}"
            trees[files] = (tree, make_tree(tree, files))
        try:
            (scratch / "sshd").mkdir()
            farm = SshdFarm(scratch / "sshd", 1, {})
            farm.start_all()
        except SshdUnavailable as err:
            sys.exit(f"needs sshd: {err} (bash scripts/test-services installs it)")
        try:
            rows = sync_rows(farm, trees, args.repeat)
        finally:
            farm.stop_all()
        print(f"Workdir sync to one sshd on loopback, median of {args.repeat} (seconds)\n")
        print(
            "| files | MiB | SFTP per file (before) | one tar stream (after) | speed-up"
            " | local tar, no SSH (floor) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows))
        files = max(counts)
        tree, size = trees[files]
        print("\n`down` of a local cluster holding the workdir (seconds)\n")
        print("| files | MiB | launch (sync included) | down | rm -rf of a copy (floor) |")
        print("|---:|---:|---:|---:|---:|")
        print(down_row(tree, files, size, scratch))


if __name__ == "__main__":
    main()
