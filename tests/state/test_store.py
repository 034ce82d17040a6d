"""The state store's records and their events, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from skyplan.errors import ClusterNotFound, StateError
from skyplan.model.node import NodeStatus
from skyplan.model.state import (
    AttemptOutcome,
    ClusterStatus,
    JobDemand,
    JobRecord,
    JobStatus,
    LaunchStep,
)
from skyplan.state import Store
from skyplan.state import store as store_module
from tests.state.factories import NOW, make_cluster, make_node


def _transitions(store: Store, cluster: str, kind: str = "cluster") -> list[tuple[str | None, ...]]:
    return [(e.old, e.new, e.reason) for e in store.events(cluster) if e.kind == kind]


# -- clusters -------------------------------------------------------------------------------


def test_a_cluster_round_trips_every_field(store: Store) -> None:
    record = make_cluster(
        status=ClusterStatus.UP,
        step=LaunchStep.SET_UP,
        cloud="aws",
        region="us-east-1",
        zone="us-east-1a",
        instance_type="p4d.24xlarge",
        spot=True,
        num_nodes=2,
        hourly_cost=32.77,
        vcpus=96,
        memory_gib=1152,
        accelerators={"A100": 8},
        task={"run": "python train.py", "resources": {"accelerators": "A100:8"}, "n": [1, 2]},
        autostop_minutes=30,
        autostop_down=True,
        last_active_at=NOW + timedelta(minutes=5),
        next_job_id=7,
    )
    assert store.create_cluster(record, "launch") == record
    assert store.get_cluster("train") == record
    assert store.require_cluster("train") == record


def test_creating_a_cluster_writes_a_cluster_event(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch requested")
    (event,) = store.events("train")
    assert (event.kind, event.cluster, event.old, event.new, event.reason) == (
        "cluster",
        "train",
        None,
        "init",
        "launch requested",
    )
    assert event.at.tzinfo is UTC


def test_creating_a_cluster_twice_is_a_state_error_and_keeps_the_first(store: Store) -> None:
    store.create_cluster(make_cluster(hourly_cost=1.0), "launch")
    with pytest.raises(StateError, match="'train' already exists"):
        store.create_cluster(make_cluster(hourly_cost=2.0), "launch again")
    assert store.require_cluster("train").hourly_cost == 1.0
    assert len(store.events("train")) == 1


def test_clusters_are_listed_by_name(store: Store) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.create_cluster(make_cluster(name), "launch")
    assert [c.name for c in store.clusters()] == ["alpha", "mid", "zeta"]


def test_get_cluster_of_an_unknown_name_is_none(store: Store) -> None:
    assert store.get_cluster("nope") is None


def test_require_cluster_suggests_the_closest_known_name(store: Store) -> None:
    store.create_cluster(make_cluster("training"), "launch")
    with pytest.raises(ClusterNotFound, match="did you mean 'training'") as caught:
        store.require_cluster("trainig")
    assert caught.value.name == "trainig"


def test_update_cluster_writes_one_event_per_status_or_step_change(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    updated = store.update_cluster(
        "train", "nodes are up", status=ClusterStatus.UP, step=LaunchStep.PROVISIONED
    )
    assert (updated.status, updated.step) == (ClusterStatus.UP, LaunchStep.PROVISIONED)
    assert updated.updated_at > NOW
    assert store.require_cluster("train") == updated
    assert _transitions(store, "train")[1:] == [
        ("init", "up", "nodes are up"),
        ("planned", "provisioned", "nodes are up"),
    ]


def test_update_cluster_of_other_fields_writes_no_event(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    updated = store.update_cluster("train", "priced", hourly_cost=3.5, task={"run": "x"})
    assert (updated.hourly_cost, updated.task) == (3.5, {"run": "x"})
    assert len(store.events("train")) == 1


def test_update_cluster_accepts_status_strings(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    assert store.update_cluster("train", "up", status="up").status is ClusterStatus.UP


@pytest.mark.parametrize(
    ("field", "message"),
    [("colour", "unknown field"), ("name", "cannot change"), ("next_job_id", "cannot change")],
    ids=["unknown-field", "name-is-the-key", "job-counter-is-the-stores"],
)
def test_update_cluster_rejects_fields_it_cannot_set(
    store: Store, field: str, message: str
) -> None:
    store.create_cluster(make_cluster(), "launch")
    with pytest.raises(TypeError, match=message):
        store.update_cluster("train", "x", **{field: 1})


def test_update_of_an_unknown_cluster_is_cluster_not_found(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    with pytest.raises(ClusterNotFound, match="did you mean 'train'"):
        store.update_cluster("trian", "x", status=ClusterStatus.UP)


def test_delete_cluster_removes_its_records_and_keeps_its_events(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.create_cluster(make_cluster("other"), "launch")
    store.set_nodes("train", [make_node()])
    store.submit_job("train", name="j", demand=JobDemand())
    store.start_attempt(
        "train", cloud="aws", region="us-east-1", zone=None, instance_type="m5", spot=False
    )
    store.submit_job("other", name="kept", demand=JobDemand())

    store.delete_cluster("train", "user asked: down")

    assert store.get_cluster("train") is None
    assert (store.nodes("train"), store.jobs("train"), store.attempts("train")) == ([], [], [])
    assert store.count_jobs() == 1
    assert [e.kind for e in store.events("train")] == ["cluster", "job", "attempt", "cluster"]
    assert _transitions(store, "train")[-1] == ("init", "deleted", "user asked: down")
    # The name is free again, and the new cluster's job ids start over.
    store.create_cluster(make_cluster(), "launch")
    assert store.submit_job("train", name=None, demand=JobDemand()).job_id == 1


def test_delete_of_an_unknown_cluster_is_cluster_not_found(store: Store) -> None:
    with pytest.raises(ClusterNotFound):
        store.delete_cluster("ghost", "down")


def test_a_change_whose_event_cannot_be_written_is_rolled_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_cluster(make_cluster(), "launch")

    def fail(self: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_module._Tx, "flush", fail)
    with pytest.raises(RuntimeError):
        store.update_cluster("train", "up", status=ClusterStatus.UP)
    with pytest.raises(RuntimeError):
        store.submit_job("train", name=None, demand=JobDemand())
    monkeypatch.undo()

    assert store.require_cluster("train").status is ClusterStatus.INIT
    assert store.count_jobs("train") == 0
    assert store.submit_job("train", name=None, demand=JobDemand()).job_id == 1


# -- timestamps -----------------------------------------------------------------------------


def test_timestamps_come_back_aware_utc_whatever_zone_they_went_in(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2025, 3, 1, 21, 0, tzinfo=tokyo)
    store.create_cluster(make_cluster(created_at=created), "launch")
    back = store.require_cluster("train").created_at
    assert back == created
    assert back.tzinfo is UTC
    assert back.hour == 12


def test_naive_timestamps_are_taken_as_utc(store: Store) -> None:
    store.create_cluster(make_cluster(created_at=datetime(2025, 3, 1, 12, 0)), "launch")
    assert store.require_cluster("train").created_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_timestamps_are_utc_when_the_postgres_session_is_in_another_zone(
    postgres_url: str,
) -> None:
    with Store.open(f"{postgres_url}?options=-c%20timezone%3DAsia/Tokyo") as store:
        store.create_cluster(make_cluster(), "launch")
        back = store.require_cluster("train")
    assert back.created_at == NOW
    assert back.created_at.tzinfo is UTC


# -- nodes ----------------------------------------------------------------------------------


def test_set_nodes_replaces_the_clusters_nodes_which_come_back_by_rank(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.create_cluster(make_cluster("other"), "launch")
    store.set_nodes("other", [make_node("other")])
    first = [make_node(rank=2), make_node(rank=0), make_node(rank=1)]
    store.set_nodes("train", first)
    assert store.nodes("train") == sorted(first, key=lambda n: n.rank)

    second = [
        make_node(
            rank=0,
            status=NodeStatus.UNREACHABLE,
            zone=None,
            spot=True,
            extra={"host": "h1", "port": "22"},
        )
    ]
    store.set_nodes("train", second)
    assert store.nodes("train") == second
    assert len(store.nodes("other")) == 1
    store.set_nodes("train", [])
    assert store.nodes("train") == []


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([make_node(rank=0), make_node(rank=0)], "share a rank"),
        ([make_node("other", rank=0)], "nodes of cluster"),
    ],
    ids=["duplicate-rank", "another-clusters-node"],
)
def test_set_nodes_rejects_inconsistent_nodes(store: Store, nodes: list, message: str) -> None:
    store.create_cluster(make_cluster(), "launch")
    with pytest.raises(ValueError, match=message):
        store.set_nodes("train", nodes)


def test_set_nodes_of_an_unknown_cluster_is_cluster_not_found(store: Store) -> None:
    with pytest.raises(ClusterNotFound):
        store.set_nodes("train", [make_node()])


# -- attempts -------------------------------------------------------------------------------


def test_attempts_are_numbered_per_cluster_and_each_step_is_an_event(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.create_cluster(make_cluster("other"), "launch")
    first = store.start_attempt(
        "train", cloud="aws", region="us-east-1", zone="us-east-1a", instance_type="p4d", spot=True
    )
    finished = store.finish_attempt("train", 1, AttemptOutcome.CAPACITY, "no p4d in us-east-1a")
    second = store.start_attempt(
        "train", cloud="gcp", region="us-central1", zone=None, instance_type="a2", spot=False
    )
    other = store.start_attempt(
        "other", cloud="aws", region="eu-west-1", zone=None, instance_type="m5", spot=False
    )

    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert first.outcome is None and first.at.tzinfo is UTC
    assert finished == first.model_copy(
        update={"outcome": AttemptOutcome.CAPACITY, "message": "no p4d in us-east-1a"}
    )
    assert store.attempts("train") == [finished, second]
    assert [(old, new) for old, new, _ in _transitions(store, "train", "attempt")] == [
        (None, "started"),
        ("started", "capacity"),
        (None, "started"),
    ]
    assert "no p4d in us-east-1a" in _transitions(store, "train", "attempt")[1][2]


def test_finishing_an_unknown_or_finished_attempt_is_a_state_error(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.start_attempt(
        "train", cloud="aws", region="us-east-1", zone=None, instance_type="m5", spot=False
    )
    with pytest.raises(StateError, match="no attempt #2"):
        store.finish_attempt("train", 2, AttemptOutcome.OK)
    store.finish_attempt("train", 1, AttemptOutcome.OK)
    with pytest.raises(StateError, match="already ended"):
        store.finish_attempt("train", 1, AttemptOutcome.QUOTA)
    with pytest.raises(ClusterNotFound):
        store.finish_attempt("ghost", 1, AttemptOutcome.OK)
    with pytest.raises(ClusterNotFound):
        store.start_attempt(
            "ghost", cloud="aws", region="us-east-1", zone=None, instance_type="m5", spot=False
        )


# -- jobs -----------------------------------------------------------------------------------


def test_a_job_round_trips_every_field(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    demand = JobDemand(num_nodes=2, cpus=4, accelerator="A100", accelerator_count=0.5)
    submitted = store.submit_job(
        "train", name="train-llm", demand=demand, secret_names=["HF_TOKEN"], user="ada"
    )
    assert submitted == JobRecord(
        cluster="train",
        job_id=1,
        name="train-llm",
        demand=demand,
        submitted_at=submitted.submitted_at,
        secret_names=("HF_TOKEN",),
        user="ada",
    )
    assert submitted.submitted_at.tzinfo is UTC
    assert store.job("train", 1) == submitted

    done = store.update_job(
        "train",
        1,
        "exited",
        status=JobStatus.FAILED,
        started_at=NOW,
        ended_at=NOW + timedelta(hours=1),
        exit_code=3,
        ranks=(1, 0),
        slots={"1": [0, 1], "0": [2]},
        message="CUDA out of memory",
    )
    assert store.job("train", 1) == done
    assert done.ranks == (1, 0) and done.slots == {"1": [0, 1], "0": [2]}


def test_submitted_jobs_get_ids_per_cluster_and_a_pending_event(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.create_cluster(make_cluster("other", next_job_id=10), "launch")
    ids = [store.submit_job("train", name=None, demand=JobDemand()).job_id for _ in range(3)]
    assert ids == [1, 2, 3]
    assert store.submit_job("other", name=None, demand=JobDemand(), user="bob").job_id == 10
    assert store.require_cluster("train").next_job_id == 4
    events = store.events("train", job_id=2)
    assert [(e.kind, e.job_id, e.old, e.new) for e in events] == [("job", 2, None, "pending")]
    assert store.events("other")[-1].reason == "submitted by bob"


def test_submitting_to_an_unknown_cluster_is_cluster_not_found(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    with pytest.raises(ClusterNotFound, match="did you mean 'train'"):
        store.submit_job("trian", name=None, demand=JobDemand())


def test_update_job_writes_an_event_only_when_the_status_changes(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.submit_job("train", name=None, demand=JobDemand())
    store.update_job("train", 1, "scheduled", status=JobStatus.RUNNING, ranks=(0,))
    store.update_job("train", 1, "progress", message="epoch 2")
    store.update_job("train", 1, "exit 0", status="succeeded", exit_code=0)
    assert [(e.old, e.new, e.reason) for e in store.events("train", job_id=1)][1:] == [
        ("pending", "running", "scheduled"),
        ("running", "succeeded", "exit 0"),
    ]


@pytest.mark.parametrize(
    ("field", "message"),
    [("colour", "unknown field"), ("job_id", "cannot change"), ("cluster", "cannot change")],
    ids=["unknown-field", "job-id-is-the-key", "cluster-is-the-key"],
)
def test_update_job_rejects_fields_it_cannot_set(store: Store, field: str, message: str) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.submit_job("train", name=None, demand=JobDemand())
    with pytest.raises(TypeError, match=message):
        store.update_job("train", 1, "x", **{field: 2})


def test_update_of_an_unknown_job_is_an_error(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    with pytest.raises(StateError, match="no job 5"):
        store.update_job("train", 5, "x", status=JobStatus.RUNNING)
    with pytest.raises(ClusterNotFound):
        store.update_job("ghost", 1, "x", status=JobStatus.RUNNING)
    assert store.job("train", 5) is None


def test_jobs_and_count_jobs_over_a_thousand_jobs(store: Store) -> None:
    store.create_cluster(make_cluster(), "launch")
    store.create_cluster(make_cluster("other"), "launch")
    for _ in range(1000):
        store.submit_job("train", name=None, demand=JobDemand())
    store.submit_job("other", name=None, demand=JobDemand())
    running = set(range(3, 1001, 7))
    for job_id in sorted(running):
        store.update_job("train", job_id, "scheduled", status=JobStatus.RUNNING)

    assert store.count_jobs() == 1001
    assert store.count_jobs("train") == 1000
    assert store.count_jobs("train", [JobStatus.RUNNING]) == len(running)
    assert store.count_jobs(statuses=[JobStatus.PENDING]) == 1001 - len(running)
    assert store.count_jobs("train", []) == 0
    assert [j.job_id for j in store.jobs("train", [JobStatus.RUNNING])] == sorted(running)
    assert [j.job_id for j in store.jobs("train")] == list(range(1, 1001))
    assert [j.job_id for j in store.jobs("train", limit=3)] == [998, 999, 1000]
    last_running = [j.job_id for j in store.jobs("train", {JobStatus.RUNNING}, limit=2)]
    assert last_running == sorted(running)[-2:]
    assert store.jobs("train", [JobStatus.LOST]) == []
    assert store.jobs("nope") == []


# -- events ---------------------------------------------------------------------------------


def test_record_event_appends_and_events_filter_by_cluster_job_cursor_and_limit(
    store: Store,
) -> None:
    store.create_cluster(make_cluster(), "launch")
    op = store.record_event("operation", "autostop armed", cluster="train", new="30m")
    note = store.record_event("operation", "catalog refreshed")
    store.submit_job("train", name=None, demand=JobDemand())

    assert (op.kind, op.cluster, op.old, op.new, op.reason) == (
        "operation",
        "train",
        None,
        "30m",
        "autostop armed",
    )
    every = store.events()
    assert [e.id for e in every] == sorted(e.id for e in every)
    assert len(every) == 4 and note in every
    assert note.cluster is None and note not in store.events("train")
    assert store.events(after_id=op.id) == every[2:]
    assert store.events(limit=2) == every[:2]
    assert store.events(after_id=every[-1].id) == []
    assert [e.job_id for e in store.events("train", job_id=1)] == [1]
