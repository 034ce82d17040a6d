"""Plan latency for one task over the 75k-row SkyPilot-format catalog.

Prints a table: for several requests, skyplan's warm in-process plan time (median of N), the
time of a plain row-by-row Python scan of the same catalog for the same request (the baseline,
measured in this run; it also cross-checks the chosen cost), and the whole-process time of
`skyplan plan --json` (median of 3 runs, including interpreter start, imports and catalog load).

    python benchmarks/plan_latency.py [--catalog DIR] [--repeat N]

SkyPilot's own optimizer is not run here (it cannot be installed and run offline on this
machine); the issue quotes 0.4-2.2 s warm per request and 1.5-2 s for its import alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import skyplan

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = ROOT.parent / "shared" / "catalogs" / "skypilot-v8-synthetic"

REQUESTS: dict[str, str] = {
    "A100:8 any cloud": "resources:\n  accelerators: A100:8\n",
    "H100:8, 2 nodes": "num_nodes: 2\nresources:\n  accelerators: H100:8\n",
    "T4 spot, aws or gcp": (
        "resources:\n  accelerators: T4:1\n  use_spot: true\n"
        "  any_of:\n    - infra: aws\n    - infra: gcp\n"
    ),
    "{A10G,L4,T4} x spot/on-demand": (
        "resources:\n  accelerators: {A10G: 1, L4: 1, T4: 1}\n  memory: 32+\n"
        "  any_of:\n    - use_spot: true\n    - use_spot: false\n"
    ),
    "ordered [A100-80GB:8, H100:8]": "resources:\n  accelerators: [A100-80GB:8, H100:8]\n",
    "CPU default": "resources: {}\n",
    "cpus 4+, memory 8+, eu-*": "resources:\n  cpus: 4+\n  memory: 8+\n  infra: '*/eu-*'\n",
}


def _matches(row: dict[str, Any], opt: skyplan.Resources | Any, num_nodes: int) -> float | None:
    """Row-by-row reference for one ResourceOption: the row's cost, or None if it does not fit."""
    from fnmatch import fnmatch

    from skyplan.solver import filters as f

    infra = opt.infra
    if infra.cloud and row["cloud"] != infra.cloud:
        return None
    if infra.region and not fnmatch(row["region"], infra.region):
        return None
    if infra.zone and not fnmatch(row["zone"] or "", infra.zone):
        return None
    acc = opt.accelerator
    if acc is None and row["accelerator"] is not None:
        return None
    if acc is not None and (
        row["accelerator"] != acc.name or row["accelerator_count"] != acc.count
    ):
        return None
    cpu_only = acc is None and opt.instance_type is None
    cpus, memory = opt.cpus, opt.memory
    if cpu_only and cpus is None and memory is None:
        cpus = f.DEFAULT_CPUS
    if cpu_only and memory is None:
        memory = f.DEFAULT_MEMORY_RATIO
    if cpus is not None and not cpus.matches(row["vcpus"]):
        return None
    if memory is not None and not memory.matches(row["memory_gib"], row["vcpus"]):
        return None
    if acc is not None and row["gpu_attached"] and opt.cpus is None and opt.memory is None:
        per_gpu = f.hardware.GCP_DEFAULT_VCPUS_PER_GPU.get(acc.name)
        if per_gpu and (
            row["vcpus"] < per_gpu * acc.count or row["memory_gib"] < 6.5 * row["vcpus"]
        ):
            return None
    if cpu_only:
        import re

        pattern = f.CPU_DEFAULT_FAMILIES.get(row["cloud"])
        if pattern and not re.search(pattern, row["instance_type"]):
            return None
    price = row["spot_price"] if opt.use_spot else row["price"]
    return None if price is None else price * num_nodes


def reference_plan(rows: list[dict[str, Any]], task: skyplan.Task) -> float | None:
    for group in task.resources.option_groups():
        costs = [
            cost
            for opt in group
            for row in rows
            if (cost := _matches(row, opt, task.num_nodes)) is not None
        ]
        if costs:
            return min(costs)
    return None


def _cost(dag: skyplan.Dag, catalog: skyplan.Catalog) -> float | None:
    """The plan's $/h, or None when no offer in `catalog` fits (a small catalog lacks some)."""
    try:
        return skyplan.plan(dag, catalog=catalog).hourly_cost
    except skyplan.NoFeasiblePlacement:
        return None


def _timed(fn: Any, repeat: int) -> tuple[float, Any]:
    result = fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not args.catalog.exists():
        print(f"catalog {args.catalog} not found; pass --catalog", file=sys.stderr)
        return 2

    start = time.perf_counter()
    catalog = skyplan.load_catalog(args.catalog)
    _ = catalog.frame
    load_s = time.perf_counter() - start
    rows = catalog.frame.to_dicts()
    print(f"catalog: {catalog.origin} — {len(catalog):,} offers, loaded in {load_s * 1000:.0f} ms")

    header = (
        f"{'request':34} {'skyplan warm':>13} {'row scan':>10} {'speed-up':>9} "
        f"{'process':>9} {'$/h':>10} {'same':>5}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for label, text in REQUESTS.items():
            dag = skyplan.parse_task(text, label)
            warm, cost = _timed(lambda dag=dag: _cost(dag, catalog), args.repeat)
            scan, ref = _timed(lambda dag=dag: reference_plan(rows, dag.tasks[0]), 1)
            path = Path(tmp) / "task.yaml"
            path.write_text(text)
            proc_times = []
            for _ in range(3):
                t0 = time.perf_counter()
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "skyplan",
                        "plan",
                        str(path),
                        "--catalog",
                        str(args.catalog),
                        "--json",
                    ],
                    capture_output=True,
                )
                if done.returncode not in (0, 1):  # 1: no feasible placement, as in process
                    print(done.stderr.decode(), file=sys.stderr)
                    return 1
                proc_times.append(time.perf_counter() - t0)
            same = ref == cost if ref is None or cost is None else abs(ref - cost) < 1e-9
            shown = "no offer" if cost is None else f"{cost:.4f}"
            print(
                f"{label:34} {warm * 1000:10.2f} ms {scan * 1000:7.0f} ms {scan / warm:8.0f}x "
                f"{statistics.median(proc_times):7.2f} s {shown:>10} "
                f"{'yes' if same else 'NO':>5}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
