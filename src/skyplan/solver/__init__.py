"""The optimizer: `plan(task, catalog=...) -> Plan`, a pure function over the catalog.
Batch admission, pipelines and replica spread are the submodules `batch`, `dag` and `spread`,
imported by whoever uses them.

May import model, catalog, errors, polars (and ortools); never the DSL, backends or runtime.
"""

from skyplan.solver.filters import DEFAULT_FILTERS, FILTERS, Filter, Request
from skyplan.solver.planner import evaluate, feasible_offers, offer_from_row, place, plan

__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "Filter",
    "Request",
    "evaluate",
    "feasible_offers",
    "offer_from_row",
    "place",
    "plan",
]
