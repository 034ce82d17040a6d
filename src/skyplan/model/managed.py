"""What the store records of managed jobs: the job, and the segments it ran (one per placement).

A managed job owns its clusters (one per stage and slot, named `managed_cluster(job_id, stage,
slot)`), so a restarted controller always finds what an earlier one created. Statuses are
SkyPilot's names. Secrets never appear here: the controller keeps their values in a mode-0600
file of its own.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ManagedJobStatus(StrEnum):
    PENDING = "PENDING"  # submitted; no controller has taken it yet
    STARTING = "STARTING"  # its cluster is being launched for the first time
    RUNNING = "RUNNING"
    RECOVERING = "RECOVERING"  # preempted (or restarting after a failure): relaunching
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"  # the job's own command failed, no restarts left
    FAILED_SETUP = "FAILED_SETUP"  # its setup failed
    FAILED_PRECHECKS = "FAILED_PRECHECKS"  # the task could not be launched as given
    FAILED_NO_RESOURCE = "FAILED_NO_RESOURCE"  # nowhere to run it at the first launch
    FAILED_CONTROLLER = "FAILED_CONTROLLER"  # the controller hit an error it cannot handle

    @property
    def done(self) -> bool:
        return self in TERMINAL

    @property
    def failed(self) -> bool:
        return self.value.startswith("FAILED")


TERMINAL = frozenset(
    {
        ManagedJobStatus.SUCCEEDED,
        ManagedJobStatus.CANCELLED,
        ManagedJobStatus.FAILED,
        ManagedJobStatus.FAILED_SETUP,
        ManagedJobStatus.FAILED_PRECHECKS,
        ManagedJobStatus.FAILED_NO_RESOURCE,
        ManagedJobStatus.FAILED_CONTROLLER,
    }
)
ACTIVE = tuple(s for s in ManagedJobStatus if s not in TERMINAL)


def managed_cluster(job_id: int, stage: int = 0, slot: int = 0) -> str:
    """The cluster a managed job's stage runs on: fixed, so a resumed controller finds it.

    A stage has two slots: a switch that keeps the job running while it launches elsewhere
    (`Target.keep_running`) brings the new cluster up in the other slot, and the job's
    `slot` says which one it runs on."""
    base = f"managed-{job_id}" if stage == 0 else f"managed-{job_id}-{stage}"
    return base if slot == 0 else f"{base}-b"


class ManagedJobRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: int
    name: str | None = None
    status: ManagedJobStatus = ManagedJobStatus.PENDING
    #: The stages (one task each, secrets redacted), and which one runs now.
    tasks: list[dict[str, Any]]
    stage: int = 0
    #: Which of the stage's two cluster slots the job runs on (see `managed_cluster`).
    slot: int = 0
    #: The members of a job group (`execution: parallel`) share it: their first member's id.
    group_id: int | None = None
    envs: dict[str, str] = {}
    secret_names: tuple[str, ...] = ()
    #: The recovery strategy's name and the job_recovery settings it runs under.
    strategy: str
    recovery: dict[str, Any] = {}
    base_dir: str = ""
    #: How the embedder plans it again at each recovery (policy files, request context, …).
    planning: dict[str, Any] = {}
    keep_on_failure: bool = False
    retry_until_up: bool = False
    user: str | None = None
    #: Restarts after the job's own failures (counted against max_restarts_on_errors) and
    #: recoveries after preemptions.
    restarts: int = 0
    recoveries: int = 0
    #: Launches in a row that found nowhere to run, and the target last asked for.
    no_place: int = 0
    target: dict[str, Any] | None = None
    #: The job on the stage's cluster that runs the task now (per-cluster job id).
    cluster_job_id: int | None = None
    #: Which run of the job that is: its segment's number, unique within the job (a run on
    #: a new cluster starts again at cluster job id 1), so its kept log is never overwritten.
    run_number: int = 0
    #: When the controller should next look at it (a strategy's Wait), else at once.
    next_check_at: datetime | None = None
    submitted_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime
    exit_code: int | None = None
    message: str = ""


class SegmentRecord(BaseModel):
    """One stretch of a managed job on one placement (see `runtime.recovery.Segment`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: int
    number: int  # 1, 2, … per job
    stage: int = 0
    cloud: str
    region: str
    zone: str | None = None
    instance_type: str
    spot: bool = False
    num_nodes: int = 1
    hourly_cost: float = 0.0
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None

    def seconds(self, now: datetime) -> float:
        return max(0.0, ((self.ended_at or now) - self.started_at).total_seconds())

    def cost(self, now: datetime) -> float:
        return self.hourly_cost * self.seconds(now) / 3600.0
