"""skyplan: policy-driven placement of AI workloads across clouds, Kubernetes and your machines.

The public API, flat: load a task and a catalog, plan, read the plan.

    >>> import skyplan
    >>> task = skyplan.load_task("examples/train.yaml")
    >>> plan = skyplan.plan(task, catalog=skyplan.load_catalog())
"""

from skyplan.api import (
    Catalog,
    accelerator_offers,
    accelerator_summary,
    catalog_summary,
    default_catalog_path,
    load_catalog,
    load_task,
    parse_task,
    plan,
    refresh_catalog,
    task_schema,
    with_overrides,
)
from skyplan.errors import (
    CatalogError,
    Diagnostic,
    InputError,
    NoFeasiblePlacement,
    PlacementError,
    Rejection,
    SkyplanError,
    TaskError,
)
from skyplan.model import Dag, Offer, Placement, Plan, Resources, ServiceSpec, Task

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "CatalogError",
    "Dag",
    "Diagnostic",
    "InputError",
    "NoFeasiblePlacement",
    "Offer",
    "Placement",
    "PlacementError",
    "Plan",
    "Rejection",
    "Resources",
    "ServiceSpec",
    "SkyplanError",
    "Task",
    "TaskError",
    "__version__",
    "accelerator_offers",
    "accelerator_summary",
    "catalog_summary",
    "default_catalog_path",
    "load_catalog",
    "load_task",
    "parse_task",
    "plan",
    "refresh_catalog",
    "task_schema",
    "with_overrides",
]
