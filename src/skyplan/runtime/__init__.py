"""Carrying plans out over time: launch with failover, the cluster lifecycle, job queues and
the cluster agent. Imports only `backends.base`, `state`, `model` and `errors`; re-plans
through a `Planner` callable that the caller injects, never through the solver.
"""

from skyplan.runtime.agent import run_agent
from skyplan.runtime.launch import Launcher, LaunchSpec, demand_of
from skyplan.runtime.lifecycle import ClusterView, Lifecycle
from skyplan.runtime.queue import JobQueue

__all__ = [
    "ClusterView",
    "JobQueue",
    "LaunchSpec",
    "Launcher",
    "Lifecycle",
    "demand_of",
    "run_agent",
]
