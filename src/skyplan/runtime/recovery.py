"""Recovery strategies for managed jobs: the interface, the registry, and the progress ledger.

A strategy decides *where and on what* a managed job runs next. The managed-job controller
asks it whenever something happens to the job, and the simulator (`skyplan.sim`) asks the very
same objects while it replays a spot trace, so a strategy that was back-tested is the strategy
that runs:

- `Trigger.START`: the job needs a place for the first time;
- `Trigger.PREEMPTED`: its cluster was reclaimed (spot) or a node of it vanished;
- `Trigger.FAILED`: the job exited with an error and will be restarted (restarts were left or
  the exit code is in `recover_on_exit_codes`);
- `Trigger.NO_PLACE`: the last launch found nowhere to run (every allowed place refused);
- `Trigger.TICK`: periodically while the job runs, and once a `Wait` is over (then nothing
  runs: `view.running is None`, and launching is the strategy's call); deadline-aware
  strategies switch between spot and on-demand here.

It answers with a `Decision`: `Keep()` (change nothing), `Launch(target)` (launch now on
`target`, replacing whatever runs) or `Wait(seconds)` (run nothing for now; ask again by then).

A `Launch` while the job runs is a *switch*. By default the running cluster goes first and the
launch follows (break before make: a switch that finds no place leaves the job idle and asks
with `Trigger.NO_PLACE`). With `Target.keep_running` the new cluster is launched beside the
running one and the job moves only once it is up (make before break): a switch that finds no
place changes nothing, and the strategy is asked again at the next `Trigger.TICK`. A strategy
cannot see whether spot is free right now; a kept-running switch is how it asks.

A strategy keeps **no state of its own** between calls: everything it may use is in the
`RecoveryView` (the job's spec, its history of segments, the clock), which the controller
rebuilds from the store. So a controller killed and restarted decides exactly as the one that
died, and one strategy object serves any number of jobs.

Time is seconds since the job was submitted, on the caller's clock (the wall clock in the
controller, a virtual one in the simulator). Progress is counted the same way everywhere
(`progress()`): every segment's running time, less one changeover per segment, never below zero.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from skyplan.errors import InputError, Scope
from skyplan.model import JobRecovery
from skyplan.registry import Registry

#: Used when a task names no strategy (as SkyPilot's default).
DEFAULT_STRATEGY = "eager-next-region"


class Trigger(StrEnum):
    START = "start"
    PREEMPTED = "preempted"
    FAILED = "failed"
    NO_PLACE = "no-place"
    TICK = "tick"


@dataclass(frozen=True)
class Segment:
    """One stretch of the job on one placement: from the moment its run started (`started`,
    seconds since submission) to `ended` (None while it runs), and how it ended
    (`preempted`, `failed`, `switched`, `succeeded`, `cancelled`, `lost-controller`)."""

    spot: bool
    cloud: str
    region: str
    zone: str | None = None
    started: float = 0.0
    ended: float | None = None
    outcome: str | None = None
    hourly_cost: float = 0.0

    @property
    def scope(self) -> Scope:
        return Scope(self.cloud, self.region)

    def run_time(self, now: float) -> float:
        return max(0.0, (now if self.ended is None else self.ended) - self.started)


@dataclass(frozen=True)
class Target:
    """Where to launch: `spot` True/False (None: as the task asks), places to `exclude`, and a
    place to `prefer` (tried first; the rest of the allowed space if it has nothing). With
    `keep_running`, a switch launches beside the running cluster and moves only if that
    launch comes up (see the module docstring); it means nothing when nothing runs."""

    spot: bool | None = None
    exclude: frozenset[Scope] = frozenset()
    prefer: Scope | None = None
    reason: str = ""
    keep_running: bool = False


@dataclass(frozen=True)
class Keep:
    reason: str = ""


@dataclass(frozen=True)
class Launch:
    target: Target


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str = ""


Decision = Keep | Launch | Wait


@dataclass(frozen=True)
class RecoveryView:
    """What a strategy sees. `history` holds ended segments, oldest first; `running` is the
    segment running now (None while nothing runs). `no_place` counts launches in a row that
    found nowhere to run; `spot_requested` is the task's own `use_spot` (None: not said)."""

    trigger: Trigger
    now: float
    recovery: JobRecovery
    history: tuple[Segment, ...] = ()
    running: Segment | None = None
    num_nodes: int = 1
    spot_requested: bool | None = None
    no_place: int = 0
    #: The last target launched (what `running` was asked for, or what failed to launch).
    last_target: Target | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def changeover(self) -> float:
        return self.recovery.changeover_hours * 3600.0

    @property
    def progress(self) -> float:
        return progress(self.history, self.running, self.now, self.changeover)

    @property
    def last(self) -> Segment | None:
        """The segment that ended most recently."""
        return self.history[-1] if self.history else None


def progress(
    history: Sequence[Segment], running: Segment | None, now: float, changeover: float
) -> float:
    """Seconds of useful work: each segment's running time less one changeover, at least 0."""
    segments = [*history, *([running] if running is not None else [])]
    return sum(max(0.0, s.run_time(now) - changeover) for s in segments)


@runtime_checkable
class RecoveryStrategy(Protocol):
    """Decides where a managed job runs next; stateless (see the module docstring)."""

    name: str

    def decide(self, view: RecoveryView) -> Decision: ...


STRATEGIES: Registry[RecoveryStrategy] = Registry("recovery strategy")


def register(strategy: RecoveryStrategy) -> RecoveryStrategy:
    """Register a strategy under its `name` (a duplicate name raises)."""
    return STRATEGIES.register(strategy.name, strategy)


def strategy_named(name: str | None) -> RecoveryStrategy:
    """The registered strategy `name` (the default when None). `package.module:name` imports
    `package.module` first, so a strategy registered by user code is found by its name."""
    from skyplan.runtime import strategies  # noqa: F401  (registers the built-ins)

    name = name or DEFAULT_STRATEGY
    if ":" in name and name not in STRATEGIES:
        module, _, _attr = name.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(
                f"job_recovery.strategy {name!r}: cannot import {module!r}: {exc}"
            ) from None
    try:
        return STRATEGIES.get(name)
    except Exception as exc:
        raise InputError(f"job_recovery.strategy: {exc}") from None


def backoff(attempt: int, *, base: float = 30.0, cap: float = 600.0) -> float:
    """Seconds to wait before the `attempt`-th retry (1, 2, …): doubling from `base`, capped."""
    # The exponent is capped: 2.0 ** 1024 overflows, and an outage can last that many tries.
    return float(min(cap, base * 2.0 ** min(max(0, attempt - 1), 64)))
