"""Value types of skyplan: frozen pydantic models, no I/O.

Must not import polars, ortools or lark; every other layer may import this one.
"""

from skyplan.model.accelerators import Accelerator, AcceleratorChoice
from skyplan.model.infra import Infra
from skyplan.model.plan import FilterStep, Offer, Placement, Plan, Verdict
from skyplan.model.policy import Policy, RequestContext
from skyplan.model.quantity import CpuSpec, MemorySpec
from skyplan.model.resources import Autostop, JobRecovery, ResourceOption, Resources
from skyplan.model.service import ReadinessProbe, ReplicaPolicy, ServiceSpec
from skyplan.model.task import Dag, Task

__all__ = [
    "Accelerator",
    "AcceleratorChoice",
    "Autostop",
    "CpuSpec",
    "Dag",
    "FilterStep",
    "Infra",
    "JobRecovery",
    "MemorySpec",
    "Offer",
    "Placement",
    "Plan",
    "Policy",
    "ReadinessProbe",
    "ReplicaPolicy",
    "RequestContext",
    "ResourceOption",
    "Resources",
    "ServiceSpec",
    "Task",
    "Verdict",
]
