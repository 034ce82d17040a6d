"""Embedding skyplan: load a task and the catalog, plan, and read the plan as data."""

from __future__ import annotations

import sys
from pathlib import Path

import skyplan


def main() -> int:
    here = Path(__file__).resolve().parent
    task = skyplan.load_task(here / "train.yaml")
    catalog = skyplan.load_catalog(sys.argv[1] if len(sys.argv) > 1 else None)
    try:
        plan = skyplan.plan(task, catalog=catalog)
    except skyplan.NoFeasiblePlacement as exc:
        print(exc, file=sys.stderr)
        return 1
    for placement in plan.placements:
        choice = placement.choice
        print(
            f"{placement.task}: {choice.cloud}/{choice.region} {choice.instance_type} "
            f"${choice.hourly_cost:.2f}/h"
        )
        for alt in placement.alternatives[:3]:
            print(f"  or {alt.cloud}/{alt.region} {alt.instance_type} ${alt.hourly_cost:.2f}/h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
