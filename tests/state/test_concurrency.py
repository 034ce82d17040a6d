"""Several processes using one store at once: nothing is lost, nothing is given twice."""

from __future__ import annotations

import itertools
from multiprocessing.pool import Pool

from skyplan.model.state import ClusterStatus
from skyplan.state import Store, schema
from tests.state import workers
from tests.state.factories import make_cluster

N = workers.PROCESSES


def test_four_processes_submitting_fifty_jobs_each_get_ids_1_to_200(
    store: Store, process_pool: Pool
) -> None:
    store.create_cluster(make_cluster(), "launch")
    tasks = [(store.url, "train", 50, worker) for worker in range(N)]

    got = process_pool.starmap(workers.submit_jobs, tasks, chunksize=1)

    assert sorted(i for ids in got for i in ids) == list(range(1, 201))
    assert all(ids == sorted(ids) for ids in got)
    assert [job.job_id for job in store.jobs("train")] == list(range(1, 201))
    assert {job.name for job in store.jobs("train")} == {
        f"w{w}-{i}" for w in range(N) for i in range(50)
    }
    job_events = [e for e in store.events("train") if e.kind == "job"]
    assert sorted(e.job_id or 0 for e in job_events) == list(range(1, 201))
    assert store.require_cluster("train").next_job_id == 201
    assert [a.number for a in store.attempts("train")] == [1, 2, 3, 4]


def test_concurrent_status_updates_leave_an_unbroken_event_chain(
    store: Store, process_pool: Pool
) -> None:
    store.create_cluster(make_cluster(), "launch")
    tasks = [(store.url, "train", 25, worker) for worker in range(N)]

    assert process_pool.starmap(workers.flip_status, tasks, chunksize=1) == [25] * N

    chain = [(e.old, e.new) for e in store.events("train")]
    # Each event starts where the one before it ended: no update read a stale status.
    assert chain[0] == (None, "init")
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(chain))
    assert chain[-1][1] == store.require_cluster("train").status.value
    assert len(chain) > 2
    assert store.require_cluster("train").status in (ClusterStatus.UP, ClusterStatus.STOPPED)


def test_a_lock_is_held_by_one_process_at_a_time(store: Store, process_pool: Pool) -> None:
    tasks = [(store.url, "launch/train", 5, worker) for worker in range(N)]

    holds = sorted(
        h for got in process_pool.starmap(workers.hold_lock, tasks, chunksize=1) for h in got
    )

    assert len(holds) == 5 * N
    overlaps = [(a, b) for a, b in itertools.pairwise(holds) if b[0] < a[1]]
    assert overlaps == []


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(
    store_url: str, process_pool: Pool
) -> None:
    tasks = [(store_url, worker) for worker in range(N)]

    latest = schema.latest_version()
    assert process_pool.starmap(workers.open_store, tasks, chunksize=1) == [latest] * N

    with Store.open(store_url) as store:
        assert store.schema_version() == latest
        assert store.clusters() == []
