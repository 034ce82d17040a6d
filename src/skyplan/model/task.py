"""A task (one SkyPilot task YAML document) and a DAG of tasks (a pipeline or a job group).

Only data and validation live here; reading files is `skyplan.model.taskfile` + `skyplan.api`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skyplan.model.resources import Resources
from skyplan.model.service import ServiceSpec

EnvValue = str | int | float | bool | None

#: The most nodes one task may ask for: far past any cluster built, and small enough that
#: prices times nodes stay exact numbers (10**23 nodes planned, 1e300 in a test crashed).
MAX_NUM_NODES = 100_000


class Task(BaseModel):
    """One task: what to run, where it may run, and (for a service) how to serve it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    workdir: str | dict[str, Any] | None = None
    num_nodes: int = Field(default=1, ge=1, le=MAX_NUM_NODES)
    resources: Resources = Resources()
    envs: dict[str, EnvValue] = {}
    secrets: dict[str, EnvValue] = {}
    file_mounts: dict[str, Any] | None = None
    setup: str | None = None
    run: str | None = None
    service: ServiceSpec | None = None
    inputs: dict[str, float] | None = None
    outputs: dict[str, float] | None = None
    config: dict[str, Any] | None = None
    volumes: dict[str, Any] | list[Any] | None = None
    pool: dict[str, Any] | None = None
    event_callback: str | None = None

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, v: object) -> object:
        return Resources() if v is None else v

    @field_validator("envs", "secrets", mode="before")
    @classmethod
    def _envs(cls, v: object) -> object:
        if v is None:
            return {}
        if isinstance(v, dict):
            return {str(k): val for k, val in v.items()}
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("the task name is empty")
        return v

    @property
    def is_service(self) -> bool:
        return self.service is not None


class Dag(BaseModel):
    """The tasks of one task file, in order. A single task is a DAG of one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    kind: Literal["task", "pipeline", "job_group"] = "task"
    tasks: tuple[Task, ...]
    primary_tasks: tuple[str, ...] | None = None
    termination_delay: str | None = None


class DagHeader(BaseModel):
    """The first document of a multi-document file when it only names the pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    execution: Literal["serial", "parallel"] | None = None
    primary_tasks: tuple[str, ...] | None = None
    termination_delay: str | int | None = None


HEADER_KEYS = frozenset(DagHeader.model_fields)
