"""Resource accounting of the job queue (`runtime.fit`): pure functions, specified by tables and
by properties over random clusters and job sequences."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.model.state import JobDemand
from skyplan.runtime.fit import (
    Assignment,
    NodeFree,
    empty_cluster,
    fit,
    free_after,
    never_fits,
    schedule,
)


def need(gpus: float = 0.0, *, cpus: float = 0.5, nodes: int = 1) -> JobDemand:
    return JobDemand(
        num_nodes=nodes, cpus=cpus, accelerator="A100" if gpus else None, accelerator_count=gpus
    )


def node(rank: int = 0, cpus: float = 8.0, devices: tuple[float, ...] = (1.0, 1.0)) -> NodeFree:
    return NodeFree(rank, cpus, list(devices))


# -- fit ---------------------------------------------------------------------------------------

FIT_CASES = [
    pytest.param(need(), [node(devices=())], Assignment((0,), {0: ()}), id="cpu-only job"),
    pytest.param(need(1), [node()], Assignment((0,), {0: (0,)}), id="one whole gpu"),
    pytest.param(need(2), [node()], Assignment((0,), {0: (0, 1)}), id="two whole gpus"),
    pytest.param(
        need(1.5), [node()], Assignment((0,), {0: (0, 1)}), id="1.5 gpus round up to two devices"
    ),
    pytest.param(need(3), [node()], None, id="more gpus than the node has"),
    pytest.param(
        need(1),
        [node(devices=(0.5, 1.0))],
        Assignment((0,), {0: (1,)}),
        id="a partly used device is not a whole one",
    ),
    pytest.param(
        need(0.5),
        [node(devices=(1.0, 0.5))],
        Assignment((0,), {0: (1,)}),
        id="a fraction goes to the fullest device with room, so whole ones stay whole",
    ),
    pytest.param(
        need(0.5),
        [node(devices=(0.25, 1.0))],
        Assignment((0,), {0: (1,)}),
        id="a fraction skips a device without enough room",
    ),
    pytest.param(need(0.6), [node(devices=(0.5, 0.5))], None, id="fractions never split"),
    pytest.param(need(cpus=9), [node()], None, id="more cpus than the node has free"),
    pytest.param(
        need(cpus=2),
        [node(0, cpus=1), node(1, cpus=4)],
        Assignment((1,), {1: ()}),
        id="a node without the cpus is skipped",
    ),
    pytest.param(
        need(1, nodes=2),
        [node(0), node(1), node(2)],
        Assignment((0, 1), {0: (0,), 1: (0,)}),
        id="multi-node takes the lowest ranks",
    ),
    pytest.param(
        need(1, nodes=2),
        [node(0, devices=(0.0, 0.0)), node(1), node(2)],
        Assignment((1, 2), {1: (0,), 2: (0,)}),
        id="multi-node skips a full node",
    ),
    pytest.param(
        need(nodes=3), [node(0), node(1)], None, id="multi-node needs that many fitting nodes"
    ),
]


@pytest.mark.parametrize(("demand", "nodes", "expected"), FIT_CASES)
def test_fit(demand: JobDemand, nodes: list[NodeFree], expected: Assignment | None) -> None:
    assert fit(demand, nodes) == expected


def test_fit_does_not_change_the_free_capacity() -> None:
    nodes = [node(0), node(1)]
    fit(need(1, nodes=2), nodes)
    assert nodes == [node(0), node(1)]


def test_free_after_takes_each_running_jobs_share() -> None:
    nodes = empty_cluster(2, 8, 2)
    running = [
        (need(1, cpus=2), Assignment((0,), {0: (0,)})),
        (need(0.25, cpus=1, nodes=2), Assignment((0, 1), {0: (1,), 1: (0,)})),
    ]
    assert free_after(nodes, running) == [NodeFree(0, 5, [0.0, 0.75]), NodeFree(1, 7, [0.75, 1.0])]


# -- schedule: FIFO with backfill ---------------------------------------------------------------

SCHEDULE_CASES = [
    pytest.param(
        [need(0.5), need(0.5), need(0.5)],
        (1, 1),
        {1: {0: (0,)}, 2: {0: (0,)}},
        id="two halves share one device and a third waits",
    ),
    pytest.param(
        [need(0.6), need(0.6)],
        (1, 1),
        {1: {0: (0,)}},
        id="a device is never shared beyond 1.0",
    ),
    pytest.param(
        [need(0.1, cpus=0.25)] * 11,
        (1, 1),
        {i: {0: (0,)} for i in range(1, 11)},
        id="ten tenths fill one device exactly despite rounding",
    ),
    pytest.param(
        [need(1), need(1)],
        (1, 1),
        {1: {0: (0,)}},
        id="first come first served",
    ),
    pytest.param(
        [need(2), need(0), need(1)],
        (1, 1),
        {2: {0: ()}, 3: {0: (0,)}},
        id="a big job waits while later small ones backfill",
    ),
    pytest.param(
        [need(cpus=3), need(cpus=3), need(cpus=1)],
        (1, 0),
        {1: {0: ()}, 3: {0: ()}},
        id="cpus are accounted too",
    ),
    pytest.param(
        [need(1, nodes=2), need(1, nodes=2), need(1)],
        (3, 1),
        {1: {0: (0,), 1: (0,)}, 3: {2: (0,)}},
        id="a multi-node job waits for enough nodes",
    ),
]


@pytest.mark.parametrize(("pending", "shape", "expected"), SCHEDULE_CASES)
def test_schedule(
    pending: list[JobDemand], shape: tuple[int, int], expected: dict[int, dict[int, tuple[int]]]
) -> None:
    num_nodes, gpus = shape
    free = empty_cluster(num_nodes, 4, gpus)
    started = schedule(list(enumerate(pending, start=1)), free)
    assert {job: a.slots for job, a in started} == expected
    assert [job for job, _ in started] == sorted(expected), "started in queue order"


def test_a_starving_job_stops_backfill_behind_it() -> None:
    pending = list(enumerate([need(1), need(2, cpus=1), need(0.5), need(1)], start=1))
    free = empty_cluster(1, 4, 2)
    # Job 1 takes a device; job 2 (both devices) does not fit; 3 and 4 would backfill...
    assert [j for j, _ in schedule(pending, empty_cluster(1, 4, 2))] == [1, 3]
    # ...unless job 2 has waited too long: then only what is ahead of it starts.
    assert [j for j, _ in schedule(pending, free, starving=2)] == [1]


# -- never_fits --------------------------------------------------------------------------------

NEVER_FITS_CASES = [
    pytest.param(need(1), (1, 8, 1), None, id="fits"),
    pytest.param(need(nodes=3), (2, 8, 0), "the job needs 3 nodes; the cluster has 2", id="nodes"),
    pytest.param(
        need(cpus=12), (1, 8, 0), "the job needs 12 CPUs per node; a node has 8", id="cpus"
    ),
    pytest.param(need(2), (1, 8, 1), "the job needs 2 A100 per node; a node has 1", id="gpus"),
    pytest.param(
        need(0.5), (1, 8, 0), "the job needs 0.5 A100 per node; a node has 0", id="cpu-only node"
    ),
    pytest.param(
        JobDemand(accelerator_count=2),
        (1, 8, 1),
        "the job needs 2 accelerators per node; a node has 1",
        id="an unnamed accelerator",
    ),
]


@pytest.mark.parametrize(("demand", "shape", "message"), NEVER_FITS_CASES)
def test_never_fits(
    demand: JobDemand, shape: tuple[int, float, float], message: str | None
) -> None:
    assert never_fits(demand, *shape) == message


@pytest.mark.parametrize(
    ("demand", "gpus"),
    [
        pytest.param(need(1), 1.0, id="one whole gpu"),
        pytest.param(need(0.5), 1.0, id="half of a whole gpu"),
        pytest.param(
            need(0.167),
            0.167,
            id="a fractional-gpu node shape",
        ),
    ],
)
def test_a_job_never_fits_accepts_can_run_on_an_empty_cluster(
    demand: JobDemand, gpus: float
) -> None:
    assert never_fits(demand, 1, 8, gpus) is None
    assert fit(demand, empty_cluster(1, 8, gpus)) is not None


# -- properties --------------------------------------------------------------------------------

GPU_COUNTS = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0])
DEMANDS = st.builds(
    JobDemand,
    num_nodes=st.integers(1, 3),
    cpus=st.sampled_from([0.5, 1.0, 2.0, 3.5]),
    accelerator_count=GPU_COUNTS,
)
CLUSTERS = st.tuples(st.integers(1, 4), st.sampled_from([1.0, 4.0, 8.0]), st.integers(0, 4))


@settings(max_examples=200, deadline=None)
@given(cluster=CLUSTERS, batches=st.lists(st.lists(DEMANDS, max_size=8), min_size=1, max_size=3))
def test_schedule_never_overcommits(
    cluster: tuple[int, float, int], batches: list[list[JobDemand]]
) -> None:
    """Whatever is queued, in however many passes: no node gives out more cpus than it has, no
    device more than 1.0, and every job runs on exactly num_nodes distinct nodes."""
    num_nodes, vcpus, gpus = cluster
    running: list[tuple[JobDemand, Assignment]] = []
    for batch in batches:
        free = free_after(empty_cluster(num_nodes, vcpus, gpus), running)
        by_id = dict(enumerate(batch))
        for job_id, assignment in schedule(list(by_id.items()), free):
            wanted = by_id[job_id]
            assert len(set(assignment.ranks)) == len(assignment.ranks) == wanted.num_nodes
            assert all(0 <= r < num_nodes for r in assignment.ranks)
            for rank in assignment.ranks:
                slots = assignment.slots[rank]
                assert len(set(slots)) == len(slots)
                whole = wanted.accelerator_count >= 1
                devices = math.ceil(wanted.accelerator_count) if whole else 1
                assert len(slots) == (devices if wanted.accelerator_count > 0 else 0)
            running.append((wanted, assignment))
        used = free_after(empty_cluster(num_nodes, vcpus, gpus), running)
        for n in used:
            assert n.cpus >= -1e-9, f"node {n.rank} over-committed its cpus"
            assert all(d >= -1e-9 for d in n.devices), f"node {n.rank} shares a device past 1.0"
        assert used == free, "schedule's own accounting matches what it handed out"


@settings(max_examples=200, deadline=None)
@given(cluster=CLUSTERS, demand=DEMANDS)
def test_a_job_fits_an_empty_cluster_exactly_when_never_fits_says_so(
    cluster: tuple[int, float, int], demand: JobDemand
) -> None:
    num_nodes, vcpus, gpus = cluster
    possible = fit(demand, empty_cluster(num_nodes, vcpus, gpus)) is not None
    assert possible == (never_fits(demand, num_nodes, vcpus, gpus) is None)
