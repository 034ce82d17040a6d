"""Recovery strategies, decision by decision, on hand-built views.

Job for the deadline-aware ones: T = 48 h of work, deadline D = 60 h, changeover C = 0.2 h,
so the uniform-progress line is 0.8·t and the slack is `12 h - t + progress`.
"""

from __future__ import annotations

from typing import Literal

import pytest

from skyplan.errors import Scope
from skyplan.model import JobRecovery
from skyplan.runtime.recovery import (
    STRATEGIES,
    Keep,
    Launch,
    RecoveryStrategy,
    RecoveryView,
    Segment,
    Target,
    Trigger,
    Wait,
    strategy_named,
)

H = 3600.0
C = 0.2
RECOVERY = JobRecovery(deadline_hours=60, duration_hours=48, changeover_hours=C)
ZONE_A = ("aws", "us-west-2", "us-west-2a")

Mode = Literal["idle", "spot", "od", "fresh"]


def make_view(
    trigger: Trigger,
    hour: float,
    progress: float = 0.0,
    mode: Mode = "idle",
    *,
    last_target: Target | None = None,
    no_place: int = 0,
    nodes: int = 1,
    spot_requested: bool | None = True,
) -> RecoveryView:
    """A view at `hour` with `progress` hours done: idle after a preempted spot run, or
    running spot / on demand (progress made by that run), or nothing ever run (`fresh`)."""
    now = hour * H
    done = progress * H + C * H
    history: tuple[Segment, ...] = ()
    running = None
    if mode == "idle":
        history = (Segment(True, *ZONE_A, started=0.0, ended=done, outcome="preempted"),)
    elif mode in ("spot", "od"):
        running = Segment(mode == "spot", *ZONE_A, started=now - done)
    view = RecoveryView(
        trigger=trigger,
        now=now,
        recovery=RECOVERY,
        history=history,
        running=running,
        num_nodes=nodes,
        spot_requested=spot_requested,
        no_place=no_place,
        last_target=last_target,
    )
    assert view.progress == pytest.approx(progress * H)
    return view


SPOT = Target(spot=True)
ON_DEMAND = Target(spot=False)


def kind(decision: object) -> str:
    if isinstance(decision, Launch):
        return {True: "spot", False: "od", None: "as-asked"}[decision.target.spot]
    if isinstance(decision, Wait):
        return "wait"
    assert isinstance(decision, Keep)
    return "keep"


@pytest.mark.parametrize(
    "name", ["eager-next-region", "failover", "uniform-progress", "regional-progress"]
)
def test_built_ins_are_registered_and_follow_the_protocol(name: str) -> None:
    strategy = strategy_named(name)
    assert name in STRATEGIES
    assert isinstance(strategy, RecoveryStrategy) and strategy.name == name


# -- eager-next-region ------------------------------------------------------------------------


def test_eager_relaunches_outside_the_preempted_region() -> None:
    decision = strategy_named("eager-next-region").decide(make_view(Trigger.PREEMPTED, 5, 3))
    assert isinstance(decision, Launch)
    assert decision.target.exclude == frozenset({Scope("aws", "us-west-2")})


@pytest.mark.parametrize(
    ("trigger", "target", "no_place", "expected"),
    [
        pytest.param(Trigger.START, None, 0, "spot", id="start-as-asked"),
        pytest.param(
            Trigger.NO_PLACE,
            Target(spot=True, exclude=frozenset({Scope("aws", "us-west-2")})),
            1,
            "spot",
            id="widens-once",
        ),
        pytest.param(Trigger.NO_PLACE, SPOT, 2, "wait", id="then-waits"),
        pytest.param(Trigger.TICK, None, 0, "spot", id="a wait is over: tries again"),
    ],
)
def test_eager_decisions(
    trigger: Trigger, target: Target | None, no_place: int, expected: str
) -> None:
    view = make_view(trigger, 5, 3, last_target=target, no_place=no_place)
    assert kind(strategy_named("eager-next-region").decide(view)) == expected


# -- uniform-progress -------------------------------------------------------------------------

UP_CASES = [
    # trigger, hour, progress, mode, last target, expected
    pytest.param(Trigger.START, 0, 0, "fresh", None, "spot", id="start: spot"),
    pytest.param(Trigger.TICK, 20, 17, "spot", None, "keep", id="on spot: keep"),
    pytest.param(Trigger.TICK, 20, 10, "spot", None, "keep", id="on spot behind: keep"),
    pytest.param(Trigger.PREEMPTED, 20, 17, "idle", None, "spot", id="preempted: spot again"),
    pytest.param(Trigger.NO_PLACE, 20, 17, "idle", SPOT, "wait", id="no spot, on track: wait"),
    pytest.param(Trigger.NO_PLACE, 20, 15.9, "idle", SPOT, "od", id="no spot, behind: od"),
    pytest.param(Trigger.NO_PLACE, 20, 16, "idle", ON_DEMAND, "wait", id="no od: backoff"),
    pytest.param(Trigger.TICK, 20, 16.1, "od", None, "keep", id="od, ahead < C: keep"),
    pytest.param(Trigger.TICK, 20, 16.25, "od", None, "spot", id="od, ahead >= C: spot"),
    pytest.param(Trigger.TICK, 58.5, 46.85, "spot", None, "od", id="net on spot: od"),
    pytest.param(Trigger.NO_PLACE, 58.5, 46.85, "idle", SPOT, "od", id="net idle: od"),
    pytest.param(Trigger.PREEMPTED, 58.5, 46.85, "idle", None, "od", id="net preempted: od"),
    pytest.param(Trigger.TICK, 58.5, 46.85, "od", None, "keep", id="net on od: stay"),
    pytest.param(Trigger.TICK, 30, 24.5, "idle", None, "spot", id="a wait is over: spot"),
    pytest.param(Trigger.PREEMPTED, 58, 46.5, "idle", None, "od", id="no room for spot: od"),
    pytest.param(Trigger.TICK, 58, 46.55, "od", None, "keep", id="no room, ahead: stay od"),
]


@pytest.mark.parametrize(("trigger", "hour", "progress", "mode", "target", "expected"), UP_CASES)
def test_uniform_progress_decisions(
    trigger: Trigger,
    hour: float,
    progress: float,
    mode: Mode,
    target: Target | None,
    expected: str,
) -> None:
    view = make_view(
        trigger, hour, progress, mode, last_target=target, no_place=int(trigger == Trigger.NO_PLACE)
    )
    assert kind(strategy_named("uniform-progress").decide(view)) == expected


@pytest.mark.parametrize("nodes", [1, 4, 16])
def test_multi_node_targets_are_all_spot_or_all_on_demand(nodes: int) -> None:
    up = strategy_named("uniform-progress")
    for view in (
        make_view(Trigger.START, 0, 0, "fresh", nodes=nodes),
        make_view(Trigger.NO_PLACE, 20, 15, "idle", last_target=SPOT, no_place=1, nodes=nodes),
    ):
        decision = up.decide(view)
        assert isinstance(decision, Launch) and isinstance(decision.target.spot, bool)


def test_the_line_wait_is_a_short_retry_and_the_net_holds_to_the_end() -> None:
    up = strategy_named("uniform-progress")
    wait = up.decide(make_view(Trigger.NO_PLACE, 20, 17, last_target=SPOT, no_place=1))
    assert isinstance(wait, Wait) and wait.seconds <= 60
    # On demand inside the net: the slack stays put, so every later tick keeps it.
    for hour in (58.5, 59.0, 59.9):
        view = make_view(Trigger.TICK, hour, 46.85 + hour - 58.5, "od")
        assert kind(up.decide(view)) == "keep"


def test_a_job_without_deadline_or_duration_is_refused() -> None:
    view = RecoveryView(trigger=Trigger.START, now=0.0, recovery=JobRecovery())
    with pytest.raises(Exception, match="needs `deadline` and `duration`"):
        strategy_named("uniform-progress").decide(view)


# -- regional-progress ------------------------------------------------------------------------


def test_regional_leaves_the_preempted_zone_then_widens() -> None:
    regional = strategy_named("regional-progress")
    first = regional.decide(make_view(Trigger.PREEMPTED, 20, 17))
    assert isinstance(first, Launch) and first.target.spot is True
    assert first.target.exclude == frozenset({Scope(*ZONE_A)})
    again = regional.decide(
        make_view(Trigger.NO_PLACE, 20, 17, last_target=first.target, no_place=1)
    )
    assert isinstance(again, Launch) and again.target.spot and not again.target.exclude


@pytest.mark.parametrize(
    ("progress", "up", "regional"),
    [
        pytest.param(16.3, "spot", "try spot", id="ahead of the line: both leave on demand"),
        pytest.param(15.7, "keep", "try spot", id="a little behind: regional tries spot"),
        pytest.param(15.5, "keep", "keep", id="two changeovers behind: both stay"),
    ],
)
def test_regional_tries_spot_beside_on_demand_from_two_changeovers_behind(
    progress: float, up: str, regional: str
) -> None:
    def what(decision: object) -> str:
        if isinstance(decision, Launch) and decision.target.keep_running:
            return f"try {kind(decision)}"
        return kind(decision)

    view = make_view(Trigger.TICK, 20, progress, "od")  # the line is at 16 h of work
    assert what(strategy_named("uniform-progress").decide(view)) == up
    assert what(strategy_named("regional-progress").decide(view)) == regional


def test_regional_keeps_the_safety_net() -> None:
    view = make_view(Trigger.NO_PLACE, 58.5, 46.85, last_target=SPOT, no_place=1)
    assert kind(strategy_named("regional-progress").decide(view)) == "od"


def test_keep_until_is_a_promise_the_decisions_keep() -> None:
    up = strategy_named("uniform-progress")
    view = make_view(Trigger.TICK, 20, 16.1, "od")
    until = up.keep_until(view)  # type: ignore[attr-defined]
    # lead = progress - 0.8 t grows at 0.2 per hour: it reaches C = 0.2 h after 0.5 h.
    assert until == pytest.approx(20.5 * H, abs=1e-3)
    assert kind(up.decide(make_view(Trigger.TICK, 20.49, 16.59, "od"))) == "keep"
    assert kind(up.decide(make_view(Trigger.TICK, 20.51, 16.61, "od"))) == "spot"
    assert up.keep_until(make_view(Trigger.TICK, 20, 17, "spot")) == float("inf")  # type: ignore[attr-defined]
