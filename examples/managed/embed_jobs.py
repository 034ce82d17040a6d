"""Managed jobs from Python: launch on this machine, follow the output, read the cost.

.venv/bin/python examples/managed/embed_jobs.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import skyplan

HERE = Path(__file__).resolve().parent


def main() -> None:
    # A throwaway home, so the example leaves nothing in ~/.skyplan.
    with skyplan.Session(home=Path(tempfile.mkdtemp(prefix="skyplan-example-"))) as session:
        task = skyplan.load_task(HERE / "checkpointed.yaml")
        job_id = session.jobs.launch(task, base_dir=HERE, envs={"STEPS": "3"})
        print(f"managed job {job_id} submitted")
        final = session.jobs.logs(job_id, follow=True, sink=print)
        view = session.jobs.view(job_id)
        print(
            f"{final.status.value}: {view.placement}, {view.job.recoveries} recoveries, "
            f"${view.cost:.4f}"
        )


if __name__ == "__main__":
    main()
