"""What the state store records: clusters, their launch attempts, jobs and events.

Frozen values; the store (`skyplan.state`) reads and writes them, the runtime decides them.
Secrets never appear here in clear: a job's `secret_names` lists the names only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClusterStatus(StrEnum):
    INIT = "init"  # being launched, or its state is unknown after an interrupted launch
    UP = "up"
    STOPPED = "stopped"
    DOWN = "down"  # being torn down; the record goes once nothing is left


class LaunchStep(StrEnum):
    """How far a launch got; a repeated `launch` resumes from the step after the last one."""

    PLANNED = "planned"
    PROVISIONED = "provisioned"
    SYNCED = "synced"  # workdir and file mounts copied
    SET_UP = "set-up"  # `setup` ran on every node
    READY = "ready"


class ClusterRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: ClusterStatus
    step: LaunchStep = LaunchStep.PLANNED
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    spot: bool = False
    num_nodes: int = 1
    hourly_cost: float = 0.0
    #: Per-node resources the job queue accounts against: vcpus, memory_gib, accelerators.
    vcpus: float = 0.0
    memory_gib: float = 0.0
    accelerators: dict[str, float] | None = None
    #: The task it was launched with, as JSON, secrets removed (for reuse and resume).
    task: dict[str, Any] = {}
    autostop_minutes: int | None = None
    autostop_down: bool = False
    created_at: datetime
    updated_at: datetime
    #: When the cluster last ran a job or was launched; autostop counts idle time from here.
    last_active_at: datetime
    next_job_id: int = 1


class AttemptOutcome(StrEnum):
    OK = "ok"
    CAPACITY = "capacity"
    QUOTA = "quota"
    AUTH = "auth"
    TRANSIENT = "transient"
    INVALID = "invalid"
    INTERRUPTED = "interrupted"  # the launching process died during the attempt


class Attempt(BaseModel):
    """One try at provisioning a cluster in one place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str
    number: int  # 1, 2, … per cluster, in order
    at: datetime
    cloud: str
    region: str
    zone: str | None = None
    instance_type: str
    spot: bool = False
    outcome: AttemptOutcome | None = None  # None while in progress
    message: str = ""

    def __str__(self) -> str:
        where = "/".join(p for p in (self.cloud, self.region, self.zone) if p)
        what = self.outcome.value if self.outcome else "in progress"
        tail = f": {self.message}" if self.message else ""
        spot = " (spot)" if self.spot else ""
        return f"#{self.number} {where} {self.instance_type}{spot}: {what}{tail}"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # a node it ran on became unreachable

    @property
    def done(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)


class JobDemand(BaseModel):
    """What a job takes from each node it runs on; fractional accelerators share a device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_nodes: int = Field(default=1, ge=1)
    cpus: float = 0.5
    accelerator: str | None = None
    accelerator_count: float = 0.0


class JobRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str
    job_id: int  # 1, 2, … per cluster
    name: str | None = None
    status: JobStatus = JobStatus.PENDING
    demand: JobDemand = JobDemand()
    submitted_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    #: Node ranks it runs on (first = its rank 0) and, per node, the accelerator slots it holds.
    ranks: tuple[int, ...] = ()
    slots: dict[str, list[int]] = {}
    #: Names of the secrets it was given; their values live only on the nodes, for the job.
    secret_names: tuple[str, ...] = ()
    user: str | None = None
    message: str = ""


class Event(BaseModel):
    """One recorded change: a status move, an attempt, an operation. Append-only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    at: datetime
    cluster: str | None
    job_id: int | None = None
    kind: str  # cluster | job | node | attempt | operation
    old: str | None = None
    new: str | None = None
    reason: str = ""
