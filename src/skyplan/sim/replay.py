"""Replaying a managed job over spot traces, driving a recovery strategy as the controller does.

The replay owns the loop the managed-job controller runs, on a virtual clock over a `SimCloud`:
`Trigger.START` at time 0; `Trigger.TICK` at every trace tick while the job runs, and once a
`Wait(s)` with nothing running is over (at the first tick at least `s` later; a `Wait` while a
run goes on only defers the ticks); `Trigger.PREEMPTED` when `SimCloud.nodes()` no longer lists
the cluster; `Trigger.NO_PLACE` at once when a launch found capacity in no allowed zone. A
`Keep()` with nothing running launches the last target again at the next tick. As in the
controller, a `Launch` ends the running segment (`switched`) *before* launching, so a switch
that finds no place leaves the job idle, unless its target says `keep_running`: then the new
cluster is placed beside the running one and the job moves only if it was placed (a switch that
found nothing changes nothing; the strategy is asked again at the next tick). Launches fail over
as the real launcher does: the target's `prefer` scope first, then every zone it does not
`exclude`, cheapest first. Launches take no time (the changeover stands for provisioning and
setup); the first launch's failure does not fail the job (as with `retry_until_up`). The job is
done when `runtime.recovery.progress()` reaches its duration.

Cost is every segment's paid time (its changeover included) at its hourly price: spot at the
trace's `prices` where the trace has them, else the job's spot price; on-demand at the job's
on-demand price; both per node, times the node count. It must not plan, print or read files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from skyplan.errors import CapacityError, InputError
from skyplan.model import JobRecovery
from skyplan.model.node import ProvisionRequest
from skyplan.model.plan import Offer
from skyplan.runtime.recovery import (
    Decision,
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
from skyplan.sim.clock import VirtualClock
from skyplan.sim.cloud import SimCloud
from skyplan.sim.trace import ZoneTrace

#: A strategy that asks this many times at one instant for launches that all find no place
#: is looping; the replay stops it with an error.
MAX_NO_PLACE_IN_A_ROW = 100
#: A new cluster comes up before the old one goes, so two names alternate.
_CLUSTERS = ("job-a", "job-b")


@runtime_checkable
class TickHint(Protocol):
    """Optional for a strategy: how long its answer to `Trigger.TICK` stays `Keep()`."""

    def keep_until(self, view: RecoveryView) -> float:
        """A time (seconds since submission) before which `decide()` on a TICK returns
        `Keep()` as long as the job is neither preempted nor relaunched."""
        ...


@dataclass(frozen=True)
class JobSpec:
    """The simulated managed job. Prices are per node-hour."""

    duration_hours: float
    deadline_hours: float
    changeover_hours: float = 0.2
    num_nodes: int = 1
    spot_price: float = 0.918
    ondemand_price: float = 3.06
    instance_type: str = "sim-node"

    def __post_init__(self) -> None:
        for what, value in (
            ("duration", self.duration_hours),
            ("deadline", self.deadline_hours),
        ):
            if not value > 0 or math.isinf(value):
                raise InputError(f"{what} must be a positive duration, got {value!r}h")
        if not self.changeover_hours >= 0:
            raise InputError(f"changeover must not be negative, got {self.changeover_hours!r}h")
        if self.deadline_hours < self.duration_hours + self.changeover_hours:
            raise InputError(
                f"deadline ({self.deadline_hours:g}h) is shorter than the duration plus one "
                f"changeover ({self.duration_hours + self.changeover_hours:g}h): it can never "
                "be met"
            )
        if self.num_nodes < 1:
            raise InputError(f"nodes must be at least 1, got {self.num_nodes}")
        if self.spot_price < 0 or self.ondemand_price < 0:
            raise InputError("prices must not be negative")

    def recovery(self, strategy: str | None = None) -> JobRecovery:
        return JobRecovery(
            strategy=strategy,
            deadline_hours=self.deadline_hours,
            duration_hours=self.duration_hours,
            changeover_hours=self.changeover_hours,
        )

    @property
    def all_on_demand_cost(self) -> float:
        """One on-demand run from start to finish: the baseline savings are measured against."""
        hours = self.duration_hours + self.changeover_hours
        return hours * self.ondemand_price * self.num_nodes


@dataclass(frozen=True)
class RunResult:
    """One replay: `finished_at` in hours since submission (None: not done by the trace's
    end); hours are paid cluster hours (changeovers included)."""

    strategy: str
    start_tick: int
    cost: float
    finished_at: float | None
    deadline_met: bool
    spot_hours: float
    ondemand_hours: float
    recoveries: int
    launches: int


class _Prices:
    """Spot price per node-hour by zone and tick, and the paid cost of a stretch of time."""

    def __init__(self, cloud: SimCloud, spec: JobSpec) -> None:
        self.cloud = cloud
        self.spec = spec

    def spot_now(self, zone: str, seconds: float) -> float:
        trace = self.cloud.zones[zone]
        if trace.prices is None:
            return self.spec.spot_price
        return float(trace.prices[min(trace.ticks - 1, self.cloud.tick(seconds))])

    def cost(self, segment: Segment, end: float) -> float:
        nodes = self.spec.num_nodes
        if not segment.spot:
            return (end - segment.started) / 3600.0 * self.spec.ondemand_price * nodes
        trace = self.cloud.zones[segment.zone or ""]
        if trace.prices is None:
            return (end - segment.started) / 3600.0 * self.spec.spot_price * nodes
        gap = self.cloud.gap
        total, at = 0.0, segment.started
        while at < end:
            boundary = min(end, (math.floor(at / gap) + 1) * gap)
            total += (boundary - at) / 3600.0 * self.spot_now(segment.zone or "", at)
            at = boundary
        return total * nodes


def _excluded(target: Target, trace: ZoneTrace, cloud: str) -> bool:
    return any(s.covers(cloud, trace.region, trace.zone) for s in target.exclude)


def replay(
    traces: Sequence[ZoneTrace],
    spec: JobSpec,
    strategy: str | RecoveryStrategy,
    start_tick: int = 0,
    *,
    skip_quiet_ticks: bool = True,
) -> RunResult:
    """Replay one job submitted at trace tick `start_tick`; see the module docstring.

    A strategy with a `keep_until(view) -> seconds` method (see `TickHint`) promises to
    answer `Keep()` to every TICK before that time while nothing else happens; those ticks
    are then skipped (only preemptions and the job's end are looked for). The decisions are
    the same with `skip_quiet_ticks=False`, only slower; a test holds the two equal."""
    strat = strategy_named(strategy) if isinstance(strategy, str) else strategy
    clock = VirtualClock()
    cloud = SimCloud(traces, clock, start_tick=start_tick)
    prices = _Prices(cloud, spec)
    gap = cloud.gap
    total = spec.duration_hours * 3600.0
    deadline = spec.deadline_hours * 3600.0
    change = spec.changeover_hours * 3600.0
    end_of_trace = (min(t.ticks for t in traces) - start_tick) * gap
    recovery = spec.recovery(strat.name)
    extra = {"tick_seconds": gap}
    requests = {
        (name, zone, spot): ProvisionRequest(
            cluster=name,
            offer=Offer(
                cloud=cloud.name,
                region=trace.region,
                zone=zone,
                instance_type=spec.instance_type,
                accelerators=None,
                spot=spot,
                num_nodes=spec.num_nodes,
                hourly_cost=(spec.spot_price if spot else spec.ondemand_price) * spec.num_nodes,
                vcpus=0.0,
                memory_gib=0.0,
            ),
        )
        for name in _CLUSTERS
        for zone, trace in cloud.zones.items()
        for spot in (True, False)
    }
    order = {zone: i for i, zone in enumerate(cloud.zones)}
    items = list(cloud.zones.items())

    history: list[Segment] = []
    done_before = 0.0  # progress of the ended segments
    running: Segment | None = None
    cluster = ""
    launches = recoveries = no_place = 0
    last_target: Target | None = None
    trigger = Trigger.START
    now = 0.0
    cost = spot_hours = ondemand_hours = 0.0
    finished: float | None = None

    def close(segment: Segment, end: float, outcome: str) -> None:
        nonlocal done_before, cost, spot_hours, ondemand_hours
        closed = Segment(
            segment.spot,
            segment.cloud,
            segment.region,
            segment.zone,
            segment.started,
            end,
            outcome,
            segment.hourly_cost,
        )
        history.append(closed)
        done_before += max(0.0, end - segment.started - change)
        cost += prices.cost(segment, end)
        if segment.spot:
            spot_hours += (end - segment.started) / 3600.0
        else:
            ondemand_hours += (end - segment.started) / 3600.0

    def switched_out(segment: Segment) -> None:
        """End the running segment for a switch and give its cluster back."""
        close(segment, now, "switched")
        cloud.terminate(cluster)

    def place(target: Target) -> tuple[str, bool] | None:
        spot = True if target.spot is None else target.spot
        zones = [z for z, t in items if not (target.exclude and _excluded(target, t, cloud.name))]
        preferred = target.prefer

        def rank(zone: str) -> tuple[int, float, int]:
            trace = cloud.zones[zone]
            first = preferred is not None and preferred.covers(cloud.name, trace.region, zone)
            price = prices.spot_now(zone, now) if spot else spec.ondemand_price
            return (0 if first else 1, price, order[zone])

        if len(zones) > 1:
            zones.sort(key=rank)
        for zone in zones:
            # `provision` refuses exactly these (CapacityError); asking first spares the
            # exception on every refused attempt of a long outage.
            if spot and cloud.spot_available(zone, now) < spec.num_nodes:
                continue
            try:
                cloud.provision(requests[(_CLUSTERS[(launches + 1) % 2], zone, spot)])
            except CapacityError:
                continue
            return zone, spot
        return None

    history_view: tuple[Segment, ...] = ()
    failed_at, in_a_row = -1.0, 0
    hint = getattr(strat, "keep_until", None) if skip_quiet_ticks else None
    quiet = 0.0  # the strategy keeps what runs on every TICK before this time
    wake = 0.0  # a Wait while running defers the next TICK until then
    retry: Target | None = None  # launch this again without asking (a Keep while idle)
    while True:
        next_time = (math.floor(now / gap + 1e-9) + 1) * gap
        if retry is not None:
            decision: Decision = Launch(retry)
            retry = None
        elif trigger == Trigger.TICK and now < max(wake, quiet):
            decision = Keep()
        else:
            if len(history_view) != len(history):
                history_view = tuple(history)
            view = RecoveryView(
                trigger,
                now,
                recovery,
                history_view,
                running,
                spec.num_nodes,
                True,
                no_place,
                last_target,
                extra,
            )
            decision = strat.decide(view)
            if hint and trigger == Trigger.TICK and running and isinstance(decision, Keep):
                quiet = hint(view)
        if isinstance(decision, Launch):
            target = decision.target
            # As the controller: the running cluster goes first and the launch follows, or,
            # with `keep_running`, the launch goes beside it and the job moves only if placed.
            beside = running is not None and target.keep_running
            if running is not None and not beside:
                switched_out(running)
                running = None
            placed = place(target)
            if beside and placed is None:
                wake = next_time  # nothing changes; asked again at the next tick
            else:
                if running is not None:
                    switched_out(running)
                    running = None
                last_target = target
                if placed is None:
                    no_place += 1
                    in_a_row = in_a_row + 1 if failed_at == now else 1
                    failed_at = now
                    if in_a_row > MAX_NO_PLACE_IN_A_ROW:
                        raise InputError(
                            f"strategy {strat.name} asked {in_a_row} times at "
                            f"{now / 3600:g}h for a launch that found no place; it must Wait"
                        )
                    trigger = Trigger.NO_PLACE
                    continue
                zone, spot = placed
                quiet = wake = 0.0
                launches += 1
                cluster = _CLUSTERS[launches % 2]
                trace = cloud.zones[zone]
                hourly = prices.spot_now(zone, now) if spot else spec.ondemand_price
                running = Segment(
                    spot, cloud.name, trace.region, zone, now, None, None, hourly * spec.num_nodes
                )
                no_place = 0
        elif isinstance(decision, Wait):
            until = math.ceil((now + max(0.0, decision.seconds)) / gap - 1e-9) * gap
            if running is not None:
                wake = until
            else:  # as the controller: once the wait is over, a TICK with nothing running
                next_time = max(next_time, until)
        elif running is None and last_target is not None:
            retry = last_target  # as the controller: nothing wanted, so the target again
        if running is not None and max(quiet, wake) > next_time:
            # Nothing can happen before the strategy's next possible move or the preemption.
            moves = math.ceil(min(max(quiet, wake), end_of_trace) / gap - 1e-9) * gap
            next_time = max(next_time, min(moves, cloud.preempted_at(cluster)))
        if running is not None:
            finish = running.started + change + (total - done_before)
            if finish <= next_time:
                close(running, finish, "succeeded")
                cloud.terminate(cluster)
                running = None
                finished = finish
                break
        if next_time >= end_of_trace:
            if running is not None:
                close(running, end_of_trace, "cancelled")
            break
        now = next_time
        clock.advance_to(now)
        trigger = Trigger.TICK
        if running is not None and not cloud.nodes(cluster):
            close(running, now, "preempted")
            running = None
            recoveries += 1
            retry = None
            trigger = Trigger.PREEMPTED
            wake = quiet = 0.0

    return RunResult(
        strategy=strat.name,
        start_tick=start_tick,
        cost=cost,
        finished_at=None if finished is None else finished / 3600.0,
        deadline_met=finished is not None and finished <= deadline + 1e-6,
        spot_hours=spot_hours,
        ondemand_hours=ondemand_hours,
        recoveries=recoveries,
        launches=launches,
    )


def start_ticks(
    traces: Sequence[ZoneTrace], spec: JobSpec, starts: int, seed: int = 0
) -> list[int]:
    """`starts` random submission ticks (seeded) such that the deadline ends inside the trace."""
    ticks = min(t.ticks for t in traces)
    gap = traces[0].gap_seconds
    need = math.ceil(spec.deadline_hours * 3600.0 / gap - 1e-9)
    last = ticks - need
    if last < 0:
        raise InputError(
            f"{traces[0].path}: the trace covers {ticks * gap / 3600:g}h, shorter than the "
            f"deadline ({spec.deadline_hours:g}h)"
        )
    rng = random.Random(seed)
    return [rng.randint(0, last) for _ in range(starts)]


def replay_many(
    traces: Sequence[ZoneTrace],
    spec: JobSpec,
    strategy: str | RecoveryStrategy,
    *,
    starts: int = 150,
    seed: int = 0,
) -> list[RunResult]:
    """Replay the job from `starts` random submission ticks (the same ones for equal seeds)."""
    strat = strategy_named(strategy) if isinstance(strategy, str) else strategy
    return [replay(traces, spec, strat, tick) for tick in start_ticks(traces, spec, starts, seed)]
