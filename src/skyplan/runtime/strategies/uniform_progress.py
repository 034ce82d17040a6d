"""`uniform-progress`: deadline-aware spot use, after *Can't Be Late* (Wu et al., NSDI '24).

A job needs T seconds of work by a deadline D (seconds since submission) and loses a
changeover C at each (re)start. Uniform progress holds the job to the straight line from
(0, 0) to (D, T): expected progress at time t is t·T/D. The rules, checked in this order:

1. **Safety net.** The slack is what is left once the remaining work is done without a
   break: `D − t − (T − progress)`. When it is at most 2·C (at least C plus the time between
   two looks — the caller's tick, passed as `view.extra["tick_seconds"]`, or the one-minute
   retry — so the slack cannot slip under the one changeover an on-demand start needs), run
   on demand and stay there to the end: an on-demand run keeps the slack where it is, so the
   rule keeps holding and the deadline is met.
2. **On spot, stay.** A spot run progresses faster than the line, so it is kept until it is
   preempted (the controller then asks with `Trigger.PREEMPTED`).
3. **On demand, hysteresis.** An on-demand run is left for spot only once the job is ahead of
   the line by a changeover (the switch costs one), and only while the slack leaves room for
   a spot start above the safety net (slack > 3·C). The controller ends the on-demand run
   before it launches, so a switch that finds no spot leaves the job idle, a changeover
   ahead of the line: rule 4 takes over. (With `probe`, the switch is launched beside the
   on-demand run instead, and one that finds no spot leaves it running: see
   `Target.keep_running`.)
4. **Idle.** With nothing running, spot is tried first (with room above the net; without it,
   on demand at once, since the net is near). If no zone has spot (`Trigger.NO_PLACE`),
   on-demand starts only when the job is behind the line by more than `behind`·C (0 here:
   the paper's rule); otherwise the job waits a minute and tries spot again: a gap that the
   line can absorb costs nothing, an on-demand start for a blip costs a changeover on demand.

Multi-node jobs are polarized: a target is spot or on-demand for the whole cluster (a spot
launch gets all N nodes or fails), never a mix.

The strategy is stateless: the mode is read off `view.running` (what runs and whether it is
spot) and `view.last_target` (what the failed launch asked for). `ProgressStrategy` holds the
rules with their thresholds as fields, so `regional-progress` is the same rules, tuned.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyplan.errors import InputError, Scope
from skyplan.runtime.recovery import (
    Decision,
    Keep,
    Launch,
    RecoveryView,
    Target,
    Trigger,
    Wait,
    backoff,
)

#: While waiting for spot, ask again after this long (the simulator rounds up to its tick).
RETRY_SECONDS = 60.0
_FOREVER = float("inf")


@dataclass
class ProgressStrategy:
    """The uniform-progress rules; thresholds are in changeovers (C). Not frozen only because
    `RecoveryStrategy.name` is a plain attribute; nothing changes a strategy after it is made."""

    name: str = "uniform-progress"
    #: Safety net: on demand to the end once the slack is at most `net`·C.
    net: float = 2.0
    #: A spot start needs slack above (`net` + `room`)·C: its own changeover must not sink
    #: the slack under the net.
    room: float = 1.0
    #: Leave on-demand for spot once ahead of the line by `ahead`·C.
    ahead: float = 1.0
    #: Idle without spot: start on demand once behind the line by more than `behind`·C (a
    #: short spot gap is absorbed by waiting rather than paid with an on-demand changeover).
    behind: float = 0.0
    #: The line's slope as a fraction of T/D (1: the uniform line; lower: waits longer).
    slope: float = 1.0
    #: After a preemption, try other zones first (the zone that was just reclaimed last).
    leave_preempted_zone: bool = False
    #: Leave on-demand for spot by launching spot beside the on-demand run (`keep_running`):
    #: a switch that finds no spot keeps the on-demand run instead of ending it.
    probe: bool = False

    def decide(self, view: RecoveryView) -> Decision:
        rec = view.recovery
        if rec.deadline_hours is None or rec.duration_hours is None:
            raise InputError(
                f"job_recovery.strategy {self.name} needs `deadline` and `duration` "
                "(for example deadline: 36h, duration: 24h)"
            )
        total = rec.duration_hours * 3600.0
        deadline = rec.deadline_hours * 3600.0
        change = view.changeover
        now = view.now
        done = view.progress
        slack = deadline - now - (total - done)
        net = self._net(view)
        running = view.running
        here = _scope_of(view)

        if slack <= net:
            if running is not None and not running.spot:
                return Keep("safety net: on demand to the end")
            if view.trigger == Trigger.NO_PLACE and _asked_on_demand(view):
                return Wait(backoff(view.no_place, base=RETRY_SECONDS), "no on-demand capacity")
            return Launch(
                Target(spot=False, prefer=here, reason="safety net: on demand to the end")
            )

        spot_room = slack > net + self.room * change
        lead = done - self.slope * now * total / deadline
        if running is not None:
            if running.spot:
                return Keep()
            if spot_room and lead >= self.ahead * change:
                return Launch(
                    Target(
                        spot=True,
                        prefer=here,
                        keep_running=self.probe,
                        reason="ahead of the line: spot",
                    )
                )
            return Keep()

        tried = view.last_target
        if view.trigger == Trigger.NO_PLACE and tried is not None:
            if tried.spot is False:
                return Wait(backoff(view.no_place, base=RETRY_SECONDS), "no on-demand capacity")
            if tried.exclude and view.no_place == 1 and spot_room:
                return Launch(Target(spot=True, reason="no spot elsewhere: widening"))
            if lead < -self.behind * change or not spot_room:
                return Launch(Target(spot=False, prefer=here, reason="behind the line: on demand"))
            return Wait(RETRY_SECONDS, "no spot now; on track: trying spot again shortly")
        if spot_room:
            return Launch(self._spot_target(view, here))
        return Launch(Target(spot=False, prefer=here, reason="too little slack for spot"))

    def keep_until(self, view: RecoveryView) -> float:
        """Before this time `decide()` answers a TICK with `Keep()`, unless the job is
        preempted or relaunched (the simulator skips those ticks; the controller may too).
        Conservative: while a run is in its changeover, the answer is `now`."""
        running, rec = view.running, view.recovery
        if running is None or rec.deadline_hours is None or rec.duration_hours is None:
            return view.now
        total = rec.duration_hours * 3600.0
        deadline = rec.deadline_hours * 3600.0
        change = view.changeover
        warm = running.started + change  # progress runs from here at one second per second
        if view.now < warm:
            return view.now
        before = view.progress - (view.now - warm)  # progress when the changeover ended
        slack = deadline - warm - total + before  # constant while the run goes on
        net = self._net(view)
        if running.spot:
            return view.now if slack <= net else _FOREVER
        if slack <= net + self.room * change:
            return _FOREVER  # on demand for good (the net, or no room for spot any more)
        rate = 1.0 - self.slope * total / deadline
        if rate <= 0:
            return view.now
        # lead(t) = before + (t - warm) - slope * t * T / D reaches `ahead`·C at:
        crossing = (self.ahead * change - before + warm) / rate
        return max(view.now, crossing - 1e-6)

    def _net(self, view: RecoveryView) -> float:
        """The safety net in seconds of slack: `net`·C, and never less than one changeover
        plus the longest time between two looks (the caller's tick, or a retry wait), so
        the slack cannot slip under the one changeover an on-demand start needs."""
        look = max(view.extra.get("tick_seconds", 0.0), RETRY_SECONDS)
        return max(self.net * view.changeover, view.changeover + look)

    def _spot_target(self, view: RecoveryView, here: Scope | None) -> Target:
        last = view.last
        if (
            self.leave_preempted_zone
            and view.trigger == Trigger.PREEMPTED
            and last is not None
            and last.outcome == "preempted"
        ):
            gone = Scope(last.cloud, last.region, last.zone)
            return Target(spot=True, exclude=frozenset({gone}), reason=f"preempted in {gone}")
        return Target(spot=True, prefer=here, reason="spot")


def _asked_on_demand(view: RecoveryView) -> bool:
    return view.last_target is not None and view.last_target.spot is False


def _scope_of(view: RecoveryView) -> Scope | None:
    segment = view.running or view.last
    if segment is None:
        return None
    return Scope(segment.cloud, segment.region, segment.zone)


class UniformProgress(ProgressStrategy):
    """`uniform-progress` with the paper's thresholds (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(name="uniform-progress")
