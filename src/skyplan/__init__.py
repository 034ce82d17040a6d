"""skyplan: policy-driven placement of AI workloads across clouds, Kubernetes and your machines.

The public API, flat: load a task and a catalog, plan, read the plan.

    >>> import skyplan
    >>> task = skyplan.load_task("examples/train.yaml")
    >>> plan = skyplan.plan(task, catalog=skyplan.load_catalog())

`import skyplan` loads only the error types; the rest of the API (and Polars, pydantic models,
the solver) loads on first use of a name, so embedding skyplan costs nothing until it plans.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    CatalogError,
    ClusterNotFound,
    ClusterStateError,
    Diagnostic,
    InputError,
    InvalidRequestError,
    JobNotFound,
    LaunchFailed,
    NoFeasiblePlacement,
    PlacementError,
    PolicyError,
    QuotaError,
    Rejection,
    Scope,
    SkyplanError,
    StateError,
    TaskError,
    TransientError,
)

# Library logging under "skyplan"; where it goes is the embedder's choice.
logging.getLogger("skyplan").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from skyplan import dsl as dsl
    from skyplan.api import (
        BatchPlan,
        BatchRequest,
        Catalog,
        Policy,
        RequestContext,
        accelerator_offers,
        accelerator_summary,
        catalog_summary,
        check_policy,
        default_catalog_path,
        diff_policy,
        format_policy,
        load_batch,
        load_catalog,
        load_policy,
        load_task,
        parse_task,
        place_replicas,
        plan,
        plan_batch,
        plan_pipeline,
        read_policy,
        refresh_catalog,
        request_context,
        run_policy_tests,
        task_schema,
        with_overrides,
    )
    from skyplan.execution import LaunchResult, Session
    from skyplan.model import Dag, Offer, Placement, Plan, Resources, ServiceSpec, Task, Verdict
    from skyplan.model.state import ClusterStatus, JobRecord, JobStatus
    from skyplan.review import PolicyDiff, TestReport
    from skyplan.solver.dag import PipelinePlan
    from skyplan.solver.egress import EgressModel
    from skyplan.solver.spread import ReplicaPlan

__version__ = "0.1.0"

#: Where each lazily loaded public name lives.
_LAZY: dict[str, str] = {
    "EgressModel": "skyplan.solver.egress",
    "PipelinePlan": "skyplan.solver.dag",
    "PolicyDiff": "skyplan.review",
    "ReplicaPlan": "skyplan.solver.spread",
    "TestReport": "skyplan.review",
    **dict.fromkeys(
        (
            "BatchPlan",
            "BatchRequest",
            "Catalog",
            "Policy",
            "RequestContext",
            "accelerator_offers",
            "accelerator_summary",
            "catalog_summary",
            "check_policy",
            "default_catalog_path",
            "diff_policy",
            "format_policy",
            "load_batch",
            "load_catalog",
            "load_policy",
            "load_task",
            "parse_task",
            "place_replicas",
            "plan",
            "plan_batch",
            "plan_pipeline",
            "read_policy",
            "refresh_catalog",
            "request_context",
            "run_policy_tests",
            "task_schema",
            "with_overrides",
        ),
        "skyplan.api",
    ),
    **dict.fromkeys(
        ("Dag", "Offer", "Placement", "Plan", "Resources", "ServiceSpec", "Task", "Verdict"),
        "skyplan.model",
    ),
    **dict.fromkeys(("LaunchResult", "Session"), "skyplan.execution"),
    **dict.fromkeys(("ClusterStatus", "JobRecord", "JobStatus"), "skyplan.model.state"),
}


def __getattr__(name: str) -> object:
    """Load a public name (or `skyplan.dsl`, the policy language) on first use."""
    if name == "dsl":
        return importlib.import_module("skyplan.dsl")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skyplan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "dsl"})


__all__ = [
    "AuthError",
    "BackendError",
    "BatchPlan",
    "BatchRequest",
    "CapacityError",
    "Catalog",
    "CatalogError",
    "ClusterNotFound",
    "ClusterStateError",
    "ClusterStatus",
    "Dag",
    "Diagnostic",
    "EgressModel",
    "InputError",
    "InvalidRequestError",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "LaunchFailed",
    "LaunchResult",
    "NoFeasiblePlacement",
    "Offer",
    "PipelinePlan",
    "Placement",
    "PlacementError",
    "Plan",
    "Policy",
    "PolicyDiff",
    "PolicyError",
    "QuotaError",
    "Rejection",
    "ReplicaPlan",
    "RequestContext",
    "Resources",
    "Scope",
    "ServiceSpec",
    "Session",
    "SkyplanError",
    "StateError",
    "Task",
    "TaskError",
    "TestReport",
    "TransientError",
    "Verdict",
    "__version__",
    "accelerator_offers",
    "accelerator_summary",
    "catalog_summary",
    "check_policy",
    "default_catalog_path",
    "diff_policy",
    "format_policy",
    "load_batch",
    "load_catalog",
    "load_policy",
    "load_task",
    "parse_task",
    "place_replicas",
    "plan",
    "plan_batch",
    "plan_pipeline",
    "read_policy",
    "refresh_catalog",
    "request_context",
    "run_policy_tests",
    "task_schema",
    "with_overrides",
]
