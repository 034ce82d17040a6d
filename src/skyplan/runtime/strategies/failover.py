"""`failover`: relaunch where the job was first, then anywhere the task allows.

On a preemption or a restart the same region is tried first (its warm caches, its data); if it
has nothing, the launch fails over as a cluster launch does. A launch that found no place
waits with backoff and tries the whole space again.
"""

from __future__ import annotations

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


class Failover:
    name = "failover"

    def decide(self, view: RecoveryView) -> Decision:
        spot = view.spot_requested
        if view.trigger == Trigger.START:
            return Launch(Target(spot=spot, reason="first launch"))
        if view.trigger in (Trigger.PREEMPTED, Trigger.FAILED):
            last = view.last
            prefer = last.scope if last is not None else None
            return Launch(
                Target(spot=spot, prefer=prefer, reason=f"{view.trigger}: same region first")
            )
        if view.trigger == Trigger.NO_PLACE:
            if view.running is None and view.no_place == 1:
                return Launch(Target(spot=spot, reason="retrying everywhere"))
            return Wait(backoff(view.no_place), "nowhere to run; waiting before trying again")
        if view.trigger == Trigger.TICK and view.running is None:
            return Launch(Target(spot=spot, reason="waited: trying everywhere again"))
        return Keep()
