"""The optimizer: `plan(task, catalog=...) -> Plan`, a pure function over the catalog.

May import model, catalog, errors, polars (and ortools); never the DSL, backends or runtime.
"""

from skyplan.solver.dag import PipelinePlan, plan_pipeline
from skyplan.solver.egress import EgressModel
from skyplan.solver.filters import DEFAULT_FILTERS, FILTERS, Filter, Request
from skyplan.solver.planner import evaluate, feasible_offers, offer_from_row, place, plan
from skyplan.solver.spread import ReplicaPlan, place_replicas

__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "EgressModel",
    "Filter",
    "PipelinePlan",
    "ReplicaPlan",
    "Request",
    "evaluate",
    "feasible_offers",
    "offer_from_row",
    "place",
    "place_replicas",
    "plan",
    "plan_pipeline",
]
