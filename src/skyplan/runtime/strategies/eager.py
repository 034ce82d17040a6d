"""`eager-next-region` (the default, as SkyPilot's): after a preemption, go elsewhere at once.

The relaunch after a preemption *excludes the region that was just preempted* (SkyPilot's own
strategy may land in it again: skypilot#10021): capacity that was just reclaimed is the least
likely to be there a minute later. If nothing outside it is free, the strategy widens: it waits
with backoff, then allows every region again, the preempted one included. A restart after a
job failure (not the infrastructure's fault) stays where the job was.
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


class EagerNextRegion:
    name = "eager-next-region"

    def decide(self, view: RecoveryView) -> Decision:
        spot = view.spot_requested
        last = view.last
        if view.trigger == Trigger.START:
            return Launch(Target(spot=spot, reason="first launch"))
        if view.trigger == Trigger.PREEMPTED and last is not None:
            return Launch(
                Target(
                    spot=spot,
                    exclude=frozenset({last.scope}),
                    reason=f"preempted in {last.scope}: trying other regions first",
                )
            )
        if view.trigger == Trigger.FAILED:
            prefer = last.scope if last is not None else None
            return Launch(Target(spot=spot, prefer=prefer, reason="restart after a failure"))
        if view.trigger == Trigger.NO_PLACE:
            tried = view.last_target
            if tried is not None and tried.exclude and view.no_place == 1:
                return Launch(
                    Target(spot=spot, reason="nothing outside the preempted region: widening")
                )
            return Wait(backoff(view.no_place), "nowhere to run; waiting before trying again")
        if view.trigger == Trigger.TICK and view.running is None:
            return Launch(Target(spot=spot, reason="waited: trying everywhere again"))
        return Keep()
