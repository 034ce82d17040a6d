"""Batch admission: many requests planned together under shared quotas, budgets and pool
capacities. Inputs and outputs only; the solver is `skyplan.solver.batch`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from skyplan.model.plan import Offer
from skyplan.model.policy import RequestContext
from skyplan.model.task import Task


class BatchRequest(BaseModel):
    """One request in a batch: a task, who asks, and its priority (higher goes first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    task: Task
    context: RequestContext = RequestContext()
    priority: int = 0


class Admission(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    priority: int
    offer: Offer


class Waiting(BaseModel):
    """A request left out of the batch, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    priority: int
    reason: str
    limits: tuple[str, ...] = ()


class LimitUsage(BaseModel):
    """How much of one quota, budget or pool a group uses after admission."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    group: str
    kind: str  # quota | budget | pool
    used: float
    limit: float
    unit: str


class BatchPlan(BaseModel):
    """Who is admitted where, who waits and why, and how good the answer is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    admitted: tuple[Admission, ...]
    waiting: tuple[Waiting, ...]
    usage: tuple[LimitUsage, ...]
    hourly_cost: float
    greedy_hourly_cost: float
    greedy_admitted: int
    status: str  # OPTIMAL | FEASIBLE | GREEDY (no shared constraint needed the solver)
    gap: float = Field(ge=0.0)
    wall_s: float
    components: int

    def to_json(self) -> dict[str, object]:
        return {
            "admitted": [
                {"id": a.id, "priority": a.priority, **a.offer.model_dump(exclude={"source"})}
                for a in self.admitted
            ],
            "waiting": [w.model_dump() for w in self.waiting],
            "usage": [u.model_dump() for u in self.usage],
            "hourly_cost": round(self.hourly_cost, 6),
            "greedy_hourly_cost": round(self.greedy_hourly_cost, 6),
            "greedy_admitted": self.greedy_admitted,
            "status": self.status,
            "gap": self.gap,
            "wall_s": round(self.wall_s, 4),
            "components": self.components,
        }
