"""Launch with failover (`runtime.launch.Launcher`) over scripted faults (`faulty.FaultyBackend`):
where the next attempt goes after each kind of error, what the store records, and — for any
sequence of faults — that nothing is left behind on any backend."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.errors import (
    ClusterStateError,
    LaunchFailed,
    NoFeasiblePlacement,
    Scope,
)
from skyplan.model import Offer, Task
from skyplan.model.state import Attempt, AttemptOutcome, ClusterRecord, ClusterStatus, LaunchStep
from skyplan.runtime import Launcher, LaunchSpec, Lifecycle
from skyplan.runtime.launch import TRANSIENT_RETRIES
from skyplan.state import Store
from tests.runtime.faulty import Call, Fault, FaultKind, FaultyBackend, cheapest_planner, offers

CLUSTER = "c"


@dataclass
class Cloud:
    """Two fake backends (`fake` with regions r1, r2; `other` with o1) over one store."""

    store: Store
    root: Path
    backends: dict[str, FaultyBackend] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def script(
        self,
        fake: Mapping[str, Fault | Sequence[Fault]] | None = None,
        other: Mapping[str, Fault | Sequence[Fault]] | None = None,
        *,
        terminate_failures: int = 0,
    ) -> None:
        for name, faults in (("fake", fake), ("other", other)):
            self.backends[name] = FaultyBackend(
                name, self.root, faults, calls=self.calls, terminate_failures=terminate_failures
            )

    def launcher(self) -> Launcher:
        return Launcher(self.store, self.backends.__getitem__, sleep=self.sleeps.append)

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.store, self.backends.__getitem__)

    def launch(
        self,
        *,
        num_nodes: int = 1,
        choices: Sequence[Offer] | None = None,
        task: Task | None = None,
        **spec: Any,
    ) -> ClusterRecord:
        return self.launcher().launch(
            LaunchSpec(
                cluster=CLUSTER,
                task=task or Task(num_nodes=num_nodes),
                base_dir=self.root,
                **spec,
            ),
            cheapest_planner(offers(num_nodes) if choices is None else choices),
            lambda _record: None,
        )

    def provisioned(self) -> list[str]:
        """`cloud/place` of every provision call, in order."""
        return [f"{cloud}/{place}" for cloud, op, place in self.calls if op == "provision"]

    def attempts(self) -> list[tuple[str, AttemptOutcome | None]]:
        return [
            ("/".join(p for p in (a.cloud, a.region, a.zone) if p), a.outcome)
            for a in self.store.attempts(CLUSTER)
        ]

    def owned(self) -> dict[str, dict[str, list[int]]]:
        return {
            name: {c: [n.rank for n in nodes] for c, nodes in b.owned().items()}
            for name, b in self.backends.items()
            if b.owned()
        }


def open_cloud(root: Path) -> Cloud:
    cloud = Cloud(Store.open(f"sqlite:///{root / 'state.db'}"), root)
    cloud.script()
    return cloud


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    opened = open_cloud(tmp_path)
    try:
        yield opened
    finally:
        opened.store.close()


OK = AttemptOutcome.OK


# -- where the next attempt goes ---------------------------------------------------------------

FAILOVER_CASES = [
    pytest.param(
        {"r1/r1a": Fault("capacity")},
        {},
        ["fake/r1/r1a", "fake/r1/r1b"],
        [AttemptOutcome.CAPACITY, OK],
        id="capacity blocks the zone: next zone",
    ),
    pytest.param(
        {"r1/r1a": Fault("quota")},
        {},
        ["fake/r1/r1a", "fake/r2/r2a"],
        [AttemptOutcome.QUOTA, OK],
        id="quota blocks the region: its other zones are skipped",
    ),
    pytest.param(
        {"r1/r1a": Fault("auth")},
        {},
        ["fake/r1/r1a", "other/o1/o1a"],
        [AttemptOutcome.AUTH, OK],
        id="auth blocks the whole cloud",
    ),
    pytest.param(
        {"r1/r1a": Fault("capacity", scope=Scope("fake", "r1"))},
        {},
        ["fake/r1/r1a", "fake/r2/r2a"],
        [AttemptOutcome.CAPACITY, OK],
        id="the error's own scope wins over its kind",
    ),
    pytest.param(
        {"r1/r1a": Fault("invalid")},
        {},
        ["fake/r1/r1a", "fake/r1/r1b"],
        [AttemptOutcome.INVALID, OK],
        id="an invalid request is recorded as such and not repeated there",
    ),
    pytest.param(
        {"r1/r1a": Fault("transient", times=2)},
        {},
        ["fake/r1/r1a"] * 3,
        [AttemptOutcome.TRANSIENT, AttemptOutcome.TRANSIENT, OK],
        id="transient retries the same place",
    ),
    pytest.param(
        {"r1/r1a": Fault("transient")},
        {},
        ["fake/r1/r1a"] * (TRANSIENT_RETRIES + 1) + ["fake/r1/r1b"],
        [AttemptOutcome.TRANSIENT] * (TRANSIENT_RETRIES + 1) + [OK],
        id="transient gives up on the place after the retries",
    ),
    pytest.param(
        {"r1": Fault("capacity"), "r2": Fault("quota")},
        {},
        ["fake/r1/r1a", "fake/r1/r1b", "fake/r2/r2a", "other/o1/o1a"],
        [AttemptOutcome.CAPACITY, AttemptOutcome.CAPACITY, AttemptOutcome.QUOTA, OK],
        id="failures add up across zones, regions and clouds",
    ),
]


@pytest.mark.parametrize(("fake", "other", "places", "outcomes"), FAILOVER_CASES)
def test_failover_goes_to_the_next_place(
    cloud: Cloud,
    fake: dict[str, Fault],
    other: dict[str, Fault],
    places: list[str],
    outcomes: list[AttemptOutcome],
) -> None:
    cloud.script(fake, other)
    record = cloud.launch()
    assert cloud.provisioned() == places
    assert cloud.attempts() == list(zip(places, outcomes, strict=True))
    assert (record.status, record.step) == (ClusterStatus.UP, LaunchStep.READY)
    assert f"{record.cloud}/{record.region}/{record.zone}" == places[-1]


def test_every_attempt_is_recorded_with_its_message_and_events(cloud: Cloud) -> None:
    cloud.script({"r1/r1a": Fault("capacity")})
    cloud.launch()
    first, second = cloud.store.attempts(CLUSTER)
    assert (first.number, first.outcome) == (1, AttemptOutcome.CAPACITY)
    assert "scripted capacity fault at r1/r1a" in first.message
    assert (second.number, second.outcome, second.message) == (2, OK, "")
    moves = [(e.old, e.new) for e in cloud.store.events(CLUSTER) if e.kind == "attempt"]
    assert moves == [
        (None, "started"),
        ("started", "capacity"),
        (None, "started"),
        ("started", "ok"),
    ]


def test_the_cluster_takes_the_shape_of_the_place_that_worked(cloud: Cloud) -> None:
    cloud.script({"r1": Fault("quota")})
    record = cloud.launch(num_nodes=2)
    assert (record.cloud, record.region, record.zone, record.num_nodes) == ("fake", "r2", "r2a", 2)
    assert [n.region for n in cloud.store.nodes(CLUSTER)] == ["r2", "r2"]


def test_transient_retries_back_off_exponentially(cloud: Cloud) -> None:
    cloud.script({"r1/r1a": Fault("transient", times=3)})
    cloud.launch(backoff=1.0, max_backoff=3.0)
    assert cloud.sleeps == [1.0, 2.0, 3.0]


def test_nodes_a_failed_attempt_created_are_deleted_before_the_next_one(cloud: Cloud) -> None:
    cloud.script({"r1/r1a": Fault("capacity", after_nodes=2)})
    cloud.launch(num_nodes=3)
    ops = [(name, op) for name, op, _ in cloud.calls]
    assert ops == [("fake", "provision"), ("fake", "terminate"), ("fake", "provision")]
    assert {n.zone for n in cloud.backends["fake"].nodes(CLUSTER)} == {"r1b"}


# -- when nothing is left ----------------------------------------------------------------------


def test_launch_failed_lists_every_attempt_and_forgets_the_cluster(cloud: Cloud) -> None:
    cloud.script(
        {"r1": Fault("capacity", after_nodes=1), "r2": Fault("auth")}, {"o1": Fault("quota")}
    )
    with pytest.raises(LaunchFailed) as failed:
        cloud.launch(num_nodes=2)
    assert [str(a).split(":")[0] for a in failed.value.attempts] == [
        "#1 fake/r1/r1a fake.large",
        "#2 fake/r1/r1b fake.large",
        "#3 fake/r2/r2a fake.large",
        "#4 other/o1/o1a fake.large",
    ]
    assert "every place failed" in str(failed.value)
    assert "#3 fake/r2/r2a fake.large: auth: scripted auth fault at r2/r2a" in str(failed.value)
    assert cloud.store.get_cluster(CLUSTER) is None
    assert cloud.store.attempts(CLUSTER) == []
    assert cloud.owned() == {}


def test_launch_failed_without_any_place_carries_the_planners_reason(cloud: Cloud) -> None:
    with pytest.raises(LaunchFailed) as failed:
        cloud.launch(choices=[])
    assert failed.value.attempts == ()
    assert isinstance(failed.value.__cause__, NoFeasiblePlacement)
    assert "every offer is blocked" in str(failed.value)
    assert cloud.store.get_cluster(CLUSTER) is None


def test_a_failed_launch_whose_nodes_cannot_be_deleted_keeps_the_record_for_down(
    cloud: Cloud,
) -> None:
    cloud.script({"r1": Fault("auth", after_nodes=1)}, {"o1": Fault("auth")})
    cloud.backends["fake"].terminate_failures = 2  # after the attempt, and when giving up
    with pytest.raises(LaunchFailed):
        cloud.launch()
    record = cloud.store.require_cluster(CLUSTER)
    assert record.status == ClusterStatus.INIT
    assert cloud.owned() == {"fake": {CLUSTER: [0]}}
    notes = [e.reason for e in cloud.store.events(CLUSTER) if e.kind == "operation"]
    assert any("cleanup after a failed attempt failed" in n for n in notes)

    cloud.lifecycle().down(CLUSTER)
    assert cloud.owned() == {}
    assert cloud.store.get_cluster(CLUSTER) is None


# -- retry until up ----------------------------------------------------------------------------


def test_retry_until_up_starts_over_until_a_fault_clears(cloud: Cloud) -> None:
    # Every place fails twice, then capacity comes back in r1a.
    cloud.script(
        {"r1": Fault("capacity", times=4), "r2": Fault("capacity", times=2)},
        {"o1": Fault("auth", times=2)},
    )
    record = cloud.launch(retry_until_up=True, backoff=1.0, max_backoff=3.0)
    assert record.status == ClusterStatus.UP
    assert cloud.provisioned() == [
        *["fake/r1/r1a", "fake/r1/r1b", "fake/r2/r2a", "other/o1/o1a"] * 2,
        "fake/r1/r1a",
    ]
    assert cloud.sleeps == [1.0, 2.0], "a pause after each round, backing off"
    assert cloud.attempts()[-1] == ("fake/r1/r1a", OK)
    assert len(cloud.attempts()) == 9


def test_retry_until_up_backoff_is_capped(cloud: Cloud) -> None:
    cloud.script({"r1/r1a": Fault("capacity", times=5)})
    cloud.launch(choices=offers()[:1], retry_until_up=True, backoff=1.0, max_backoff=4.0)
    assert cloud.sleeps == [1.0, 2.0, 4.0, 4.0, 4.0]


# -- reuse, restart, refusal -------------------------------------------------------------------


def test_a_second_launch_reuses_an_up_cluster_without_provisioning(cloud: Cloud) -> None:
    cloud.launch()
    cloud.calls.clear()
    record = cloud.launch()
    assert record.status == ClusterStatus.UP
    assert cloud.calls == []
    assert len(cloud.store.attempts(CLUSTER)) == 1


def test_a_second_launch_syncs_the_new_workdir_and_runs_its_setup_again(
    cloud: Cloud, tmp_path: Path
) -> None:
    for version in ("v1", "v2"):
        (tmp_path / "code").mkdir(exist_ok=True)
        (tmp_path / "code" / "version").write_text(version)
        cloud.launch(task=Task(workdir="code", setup="cat version > ../setup-saw"))
        (node,) = cloud.store.nodes(CLUSTER)
        assert (Path(node.extra["root"]) / "setup-saw").read_text() == version
    assert len(cloud.store.attempts(CLUSTER)) == 1


def test_a_launch_on_a_stopped_cluster_starts_it(cloud: Cloud) -> None:
    cloud.launch()
    cloud.lifecycle().stop(CLUSTER)
    cloud.calls.clear()
    record = cloud.launch()
    assert record.status == ClusterStatus.UP
    assert [op for _, op, _ in cloud.calls] == ["start"]


def test_a_launch_refuses_a_cluster_that_does_not_fit(cloud: Cloud) -> None:
    cloud.launch()
    with pytest.raises(ClusterStateError, match="cannot take this task: too small"):
        cloud.launcher().launch(
            LaunchSpec(cluster=CLUSTER, task=Task()),
            cheapest_planner(offers()),
            lambda _record: "too small",
        )


def test_a_launch_refuses_a_cluster_being_torn_down(cloud: Cloud) -> None:
    cloud.script(terminate_failures=1)
    cloud.launch()
    with pytest.raises(ClusterStateError):
        cloud.lifecycle().down(CLUSTER)
    with pytest.raises(ClusterStateError, match="being torn down"):
        cloud.launch()


def test_setup_failure_keeps_the_nodes_and_a_relaunch_resumes_at_setup(cloud: Cloud) -> None:
    flag = cloud.root / "setup-may-pass"
    task = Task(setup=f"echo trying; test -f {flag}", num_nodes=2)
    with pytest.raises(ClusterStateError, match=r"setup failed.*node 0 exited with code 1"):
        cloud.launch(task=task, num_nodes=2)
    record = cloud.store.require_cluster(CLUSTER)
    assert (record.status, record.step) == (ClusterStatus.INIT, LaunchStep.SYNCED)
    assert cloud.owned() == {"fake": {CLUSTER: [0, 1]}}

    flag.touch()
    cloud.calls.clear()
    record = cloud.launch(task=task, num_nodes=2)
    assert (record.status, record.step) == (ClusterStatus.UP, LaunchStep.READY)
    assert cloud.provisioned() == [], "the nodes were found again, not provisioned anew"


# -- no leaked node, whatever the faults ---------------------------------------------------------

PLACES = ["r1/r1a", "r1/r1b", "r2/r2a", "o1/o1a"]
KINDS: st.SearchStrategy[FaultKind] = st.sampled_from(
    ["capacity", "quota", "auth", "transient", "invalid"]
)


@st.composite
def fault_scripts(draw: st.DrawFn) -> tuple[int, dict[str, Fault], dict[str, Fault], int]:
    num_nodes = draw(st.integers(1, 3))
    faults: dict[str, Fault] = {}
    for place in PLACES:
        if draw(st.booleans()):
            faults[place] = Fault(
                draw(KINDS),
                times=draw(st.sampled_from([1, 2, 5, None])),
                after_nodes=draw(st.integers(0, num_nodes)),
            )
    fake = {p: f for p, f in faults.items() if not p.startswith("o1")}
    other = {p: f for p, f in faults.items() if p.startswith("o1")}
    return num_nodes, fake, other, draw(st.integers(0, 2))


@settings(max_examples=60, deadline=None)
@given(script=fault_scripts())
def test_no_node_is_ever_leaked(
    script: tuple[int, dict[str, Fault], dict[str, Fault], int],
) -> None:
    """Whatever fails where (after creating some nodes or not, terminate failing or not), once
    the launch has ended and `down` has run, no backend holds a node of the cluster, and every
    provision call was recorded as an attempt before it was made."""
    num_nodes, fake, other, terminate_failures = script
    with tempfile.TemporaryDirectory() as tmp:
        cloud = open_cloud(Path(tmp))
        try:
            cloud.script(fake, other, terminate_failures=terminate_failures)
            try:
                cloud.launch(num_nodes=num_nodes, backoff=0.0)
            except LaunchFailed as exc:
                tried = cast(list[Attempt], list(exc.attempts))
                attempted = [f"{a.cloud}/{a.region}/{a.zone}" for a in tried]
                assert all(a.outcome not in (None, OK) for a in tried)
            else:
                attempted = [where for where, _ in cloud.attempts()]
                assert cloud.attempts()[-1][1] == OK
            assert attempted == cloud.provisioned()

            for _ in range(terminate_failures + 1):
                if cloud.store.get_cluster(CLUSTER) is None:
                    break
                try:
                    cloud.lifecycle().down(CLUSTER)
                except ClusterStateError:
                    continue
            assert cloud.store.get_cluster(CLUSTER) is None
            assert cloud.owned() == {}
        finally:
            cloud.store.close()
