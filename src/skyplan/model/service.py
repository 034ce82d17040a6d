"""The `service:` block of a task (SkyServe's spec): readiness probe, replicas and their policy.

Parsed and validated here; the service controller carries it out in a later layer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from skyplan.model.resources import PortsInput, parse_ports


class ReadinessProbe(BaseModel):
    """How a replica is judged ready: an HTTP GET (or POST with `post_data`) on `path`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = "/"
    initial_delay_seconds: int = Field(default=1200, ge=0)
    timeout_seconds: int = Field(default=15, gt=0)
    post_data: str | dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"the readiness path must start with '/', got {v!r}")
        return v


class ReplicaPolicy(BaseModel):
    """Autoscaling bounds and the spot / on-demand mix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    target_qps_per_replica: float | dict[str, float] | None = None
    upscale_delay_seconds: int | None = Field(default=None, ge=0)
    downscale_delay_seconds: int | None = Field(default=None, ge=0)
    base_ondemand_fallback_replicas: int | None = Field(default=None, ge=0)
    dynamic_ondemand_fallback: bool | None = None
    num_overprovision: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> ReplicaPolicy:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        autoscaled = self.max_replicas is not None and self.max_replicas != self.min_replicas
        if autoscaled and self.target_qps_per_replica is None:
            raise ValueError(
                "min_replicas differs from max_replicas but target_qps_per_replica is not set; "
                "set target_qps_per_replica to enable autoscaling, or make them equal"
            )
        return self


class Tls(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    keyfile: str
    certfile: str


class ServiceSpec(BaseModel):
    """A task's `service:` block."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    readiness_probe: ReadinessProbe = ReadinessProbe()
    replicas: int | None = Field(default=None, ge=0)
    replica_policy: ReplicaPolicy | None = None
    ports: PortsInput = None
    load_balancing_policy: str | None = None
    tls: Tls | None = None

    @field_validator("readiness_probe", mode="before")
    @classmethod
    def _probe(cls, v: object) -> object:
        return {"path": v} if isinstance(v, str) else v

    @field_validator("ports", mode="before")
    @classmethod
    def _ports(cls, v: object) -> tuple[str, ...] | None:
        return parse_ports(v)

    @model_validator(mode="after")
    def _replicas(self) -> ServiceSpec:
        if self.replicas is not None and self.replica_policy is not None:
            raise ValueError("give either 'replicas' or 'replica_policy', not both")
        return self

    def replica_bounds(self) -> tuple[int, int]:
        """(min, max) replicas this service runs."""
        if self.replica_policy is not None:
            low = self.replica_policy.min_replicas
            return low, self.replica_policy.max_replicas or low
        count = 1 if self.replicas is None else self.replicas
        return count, count
