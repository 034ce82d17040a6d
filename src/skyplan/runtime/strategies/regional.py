"""`regional-progress`: uniform progress's deadline safety, spending the slack across zones.

skyplan's own strategy. It keeps every rule of `uniform-progress` that protects the deadline
(the safety net at 2·C, the room a spot start needs above it, on demand to the end once the
net is reached) and the uniform-progress line itself, and changes two things:

- after a preemption it relaunches outside the zone that was just reclaimed (capacity taken
  back a minute ago is the least likely to be there now), widening to every zone, that one
  included, if nothing else has spot; every spot attempt fails over over all allowed zones,
  cheapest first, so an idle job moves to wherever spot is available now (the SkyNomad
  direction);
- idle without spot anywhere, it absorbs a lag of up to one changeover behind the line before
  paying for on demand (`behind` = 1): a short gap is waited out instead of buying an
  on-demand start and its changeover.

The safety net is untouched, so a feasible deadline is met exactly as with uniform progress.
Measured on the Can't Be Late traces (`benchmarks/recovery.py`), this does *not* reach the
goal of saving 10 % more than uniform progress: flatter or steeper lines and other
hysteresis bands were tried and were within a point of it or worse.
"""

from __future__ import annotations

from skyplan.runtime.strategies.uniform_progress import ProgressStrategy


class RegionalProgress(ProgressStrategy):
    def __init__(self) -> None:
        super().__init__(name="regional-progress", behind=1.0, leave_preempted_zone=True)
