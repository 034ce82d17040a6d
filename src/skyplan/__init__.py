"""skyplan: policy-driven placement of AI workloads across clouds, Kubernetes and your machines.

The public API, flat: load a task and a catalog, plan, read the plan.

    >>> import skyplan
    >>> task = skyplan.load_task("examples/train.yaml")
    >>> plan = skyplan.plan(task, catalog=skyplan.load_catalog())
"""

from skyplan.api import (
    BatchPlan,
    BatchRequest,
    Catalog,
    EgressModel,
    PipelinePlan,
    Policy,
    PolicyDiff,
    ReplicaPlan,
    RequestContext,
    TestReport,
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
    refresh_catalog,
    request_context,
    run_policy_tests,
    task_schema,
    with_overrides,
)
from skyplan.errors import (
    CatalogError,
    Diagnostic,
    InputError,
    NoFeasiblePlacement,
    PlacementError,
    PolicyError,
    Rejection,
    SkyplanError,
    TaskError,
)
from skyplan.model import Dag, Offer, Placement, Plan, Resources, ServiceSpec, Task, Verdict

__version__ = "0.1.0"

__all__ = [
    "BatchPlan",
    "BatchRequest",
    "Catalog",
    "CatalogError",
    "Dag",
    "Diagnostic",
    "EgressModel",
    "InputError",
    "NoFeasiblePlacement",
    "Offer",
    "PipelinePlan",
    "Placement",
    "PlacementError",
    "Plan",
    "Policy",
    "PolicyDiff",
    "PolicyError",
    "Rejection",
    "ReplicaPlan",
    "RequestContext",
    "Resources",
    "ServiceSpec",
    "SkyplanError",
    "Task",
    "TaskError",
    "TestReport",
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
    "refresh_catalog",
    "request_context",
    "run_policy_tests",
    "task_schema",
    "with_overrides",
]


def __getattr__(name: str) -> object:
    """`skyplan.dsl` (the policy language, with Lark) loads on first use."""
    if name == "dsl":
        import importlib

        return importlib.import_module("skyplan.dsl")
    raise AttributeError(f"module 'skyplan' has no attribute {name!r}")
