"""What the worker processes of the concurrency tests do; importable, so `spawn` can run it.

Each task first waits on a barrier shared by the pool, so all four run at the same moment."""

from __future__ import annotations

import time
from typing import Any

from skyplan.model.state import ClusterStatus, JobDemand
from skyplan.state import Store

PROCESSES = 4
_barrier: Any = None


def init(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _together() -> None:
    _barrier.wait(timeout=60)


def submit_jobs(url: str, cluster: str, count: int, worker: int) -> list[int]:
    """Submit `count` jobs, then start one attempt; the job ids this process got."""
    with Store.open(url) as store:
        _together()
        ids = [
            store.submit_job(cluster, name=f"w{worker}-{i}", demand=JobDemand()).job_id
            for i in range(count)
        ]
        store.start_attempt(
            cluster, cloud="aws", region="us-east-1", zone=None, instance_type="m5", spot=False
        )
    return ids


def flip_status(url: str, cluster: str, count: int, worker: int) -> int:
    """Move the cluster between up and stopped `count` times; how many updates were made."""
    with Store.open(url) as store:
        _together()
        for i in range(count):
            status = ClusterStatus.UP if (i + worker) % 2 == 0 else ClusterStatus.STOPPED
            store.update_cluster(cluster, f"w{worker}-{i}", status=status)
    return count


def hold_lock(url: str, name: str, rounds: int, worker: int) -> list[tuple[float, float]]:
    """Take lock `name` `rounds` times; the (entered, left) wall-clock times of each hold."""
    holds = []
    with Store.open(url) as store:
        _together()
        for _ in range(rounds):
            with store.lock(name, owner=f"worker-{worker}", ttl=30, timeout=30):
                entered = time.time()
                time.sleep(0.01)
                holds.append((entered, time.time()))
    return holds


def open_store(url: str, worker: int) -> int:
    """Open the store at the same moment as the others; the schema version it found."""
    _together()
    with Store.open(url) as store:
        return store.schema_version()
