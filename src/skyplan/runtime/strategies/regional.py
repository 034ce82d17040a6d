"""`regional-progress`: uniform progress's deadline safety, spending less on on-demand.

skyplan's own strategy. It keeps every rule of `uniform-progress` that protects the deadline
(the safety net at 2·C, the room a spot start needs above it, on demand to the end once the
net is reached) and the uniform-progress line itself, and changes three things:

- it leaves on-demand for spot by *trying* spot beside the on-demand run
  (`Target.keep_running`): if spot comes up the job moves, if not the on-demand run goes on.
  Uniform progress as published must end the on-demand run to find out, and pays an
  on-demand changeover every time spot was not there;
- since a try costs nothing when it fails, it tries as soon as spot has room above the safety
  net and the job is no more than two changeovers behind the line (`ahead` = −2), instead of
  waiting to be a changeover ahead of it;
- after a preemption it relaunches outside the zone that was just reclaimed (capacity taken
  back a minute ago is the least likely to be there now), widening to every zone, that one
  included, if nothing else has spot; every spot attempt fails over over all allowed zones,
  cheapest first, so an idle job moves to wherever spot is available now (the SkyNomad
  direction).

The safety net is untouched, so a feasible deadline is met exactly as with uniform progress.
Measured on the Can't Be Late traces (`benchmarks/recovery.py`, single zones, job fractions
0.8 and 0.9), it saves 13–16 % more than uniform progress with every deadline met. The
non-destructive switch alone brings 8–14 % (the benchmark's `uniform-progress+probe`
ablation); trying earlier and leaving the preempted zone bring the rest. Over several zones
the gain is smaller: 6–9 % on the 2-week trace, 0–1 % on the 2-month one, where even the
omniscient optimum saves only 2 % more than uniform progress.
"""

from __future__ import annotations

from skyplan.runtime.strategies.uniform_progress import ProgressStrategy


class RegionalProgress(ProgressStrategy):
    def __init__(self) -> None:
        super().__init__(
            name="regional-progress", ahead=-2.0, leave_preempted_zone=True, probe=True
        )
