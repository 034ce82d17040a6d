"""A cluster's agent: the loop that keeps its job queue moving and applies autostop.

One agent per cluster at a time (a store lease `agent:<cluster>`). It polls running jobs,
starts pending ones as resources free up, and stops or tears the cluster down when its idle
time is up; it exits when there is nothing left to watch. Any process may start one; a second
one sees the lease and exits. Killing it loses nothing: the next one resumes from the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from skyplan.errors import BackendError, SkyplanError
from skyplan.model.state import ClusterStatus, LaunchStep
from skyplan.runtime.launch import BackendFor
from skyplan.runtime.lease import TTL, abandoned, owner
from skyplan.runtime.lifecycle import Lifecycle
from skyplan.runtime.queue import ACTIVE, JobQueue
from skyplan.state import Store


def agent_lock(cluster: str) -> str:
    return f"agent:{cluster}"


def _work_left(store: Store, cluster: str) -> bool:
    record = store.get_cluster(cluster)
    if record is None or record.status != ClusterStatus.UP:
        return False  # an interrupted launch (init) is resumed by `launch`, not watched
    return bool(store.count_jobs(cluster, ACTIVE)) or record.autostop_minutes is not None


def run_agent(
    store: Store,
    backend_for: BackendFor,
    cluster: str,
    *,
    interval: float = 0.5,
    log: Callable[[str], None] = lambda _m: None,
    wait_for_lease: float = 3.0,
) -> None:
    """Run the agent loop for `cluster` until there is nothing left to watch."""
    me = owner()
    deadline = time.monotonic() + wait_for_lease
    lease = store.try_lock(agent_lock(cluster), owner=me, ttl=TTL, abandoned=abandoned)
    while lease is None and time.monotonic() < deadline:
        time.sleep(0.2)
        lease = store.try_lock(agent_lock(cluster), owner=me, ttl=TTL, abandoned=abandoned)
    if lease is None:
        log("another agent is running")
        return
    lifecycle = Lifecycle(store, backend_for, log)
    while True:
        try:
            lease.renew(TTL)
            record = store.get_cluster(cluster)
            if (
                record is not None
                and record.status == ClusterStatus.UP
                and (record.step == LaunchStep.READY)
            ):
                queue = JobQueue(store, backend_for(record.cloud or ""), cluster)
                for job in queue.refresh():
                    log(f"job {job.job_id} {job.status.value}: {job.message}")
                for job in queue.schedule():
                    log(f"job {job.job_id} {job.status.value}")
            done = lifecycle.autostop(cluster)
            if done:
                log(f"autostop: {done}")
        except BackendError as exc:
            log(f"backend error (will retry): {exc}")
        except SkyplanError as exc:
            log(f"error: {exc}")
            break
        if not _work_left(store, cluster):
            lease.release()
            # A job submitted while we decided to leave must not be stranded.
            if not _work_left(store, cluster):
                return
            lease = store.try_lock(agent_lock(cluster), owner=me, ttl=TTL, abandoned=abandoned)
            if lease is None:
                return
        time.sleep(interval)
    lease.release()
