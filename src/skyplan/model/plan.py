"""The planner's output: a `Plan` holds one `Placement` per task, each with ranked alternatives
and the explanation of how the candidates were narrowed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from skyplan.model.policy import Origin


class Offer(BaseModel):
    """One priced choice: where, on what, and what it costs per hour for all nodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str
    region: str
    zone: str | None
    instance_type: str
    accelerators: dict[str, float] | None
    spot: bool
    num_nodes: int
    hourly_cost: float
    vcpus: float
    memory_gib: float
    source: str | None = None
    arch: str = "x86_64"
    accelerator_memory: float | None = None
    capacity: int | None = None


class FilterStep(BaseModel):
    """One narrowing step of the search: how many candidates it removed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    requirement: str
    before: int
    after: int
    rule: str | None = None

    @property
    def removed(self) -> int:
        return self.before - self.after


class Verdict(BaseModel):
    """What one policy rule did for one task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: str  # require | deny | prefer | quota | budget
    level: str | None = None
    applies: bool = True
    removed: int = 0
    note: str | None = None
    #: where the rule is written
    origin: Origin | None = None


class Placement(BaseModel):
    """Where one task runs, the runner-ups, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str | None
    choice: Offer
    alternatives: tuple[Offer, ...] = ()
    option: str
    steps: tuple[FilterStep, ...] = ()
    notes: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    preferred: tuple[str, ...] = ()
    decided_by: tuple[str, ...] = ()
    cheapest: Offer | None = None

    def to_json(self) -> dict[str, object]:
        """The stable JSON shape of `skyplan plan --json` (see the README)."""
        return {
            "task": self.task,
            **_offer_json(self.choice),
            "alternatives": [_offer_json(a) for a in self.alternatives],
            "option": self.option,
            "filters": [s.model_dump() for s in self.steps],
            "notes": list(self.notes),
            "rules": [v.model_dump() for v in self.verdicts],
            "preferences_applied": list(self.preferred),
            "decided_by": list(self.decided_by),
        }


def _count(value: float) -> float | int:
    return int(value) if value == int(value) else value


def _offer_json(offer: Offer) -> dict[str, object]:
    accs = offer.accelerators
    return {
        "cloud": offer.cloud,
        "region": offer.region,
        "zone": offer.zone,
        "instance_type": offer.instance_type,
        "accelerators": None if accs is None else {k: _count(v) for k, v in accs.items()},
        "spot": offer.spot,
        "num_nodes": offer.num_nodes,
        "hourly_cost": round(offer.hourly_cost, 6),
        "vcpus": offer.vcpus,
        "memory_gib": offer.memory_gib,
    }


class Plan(BaseModel):
    """The placements of every task of a DAG, in task order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    placements: tuple[Placement, ...]

    @property
    def hourly_cost(self) -> float:
        return sum(p.choice.hourly_cost for p in self.placements)

    def to_json(self) -> dict[str, object]:
        return {
            "placements": [p.to_json() for p in self.placements],
            "hourly_cost": round(self.hourly_cost, 6),
        }
