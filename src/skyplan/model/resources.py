"""The `resources:` block of a task, as SkyPilot writes it, and its expansion into options.

`Resources` validates the block (every field SkyPilot accepts, unknown keys rejected) and
normalizes its many spellings. `Resources.option_groups()` expands it into what the planner
searches: an ordered list of groups, each group a set of `ResourceOption`s of which the cheapest
wins; the first group with any feasible offer is used (SkyPilot's `ordered` semantics), so
`any_of` and accelerator sets widen one group while `ordered` and accelerator lists add groups.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from skyplan.model.accelerators import Accelerator, AcceleratorChoice, parse_accelerators
from skyplan.model.infra import Infra, canonical_cloud, parse_infra
from skyplan.model.quantity import CpuSpec, MemorySpec, parse_cpus, parse_disk_size, parse_memory

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_PORT = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
#: Built-in recovery strategies; user code registers more, named `package.module:name`.
RECOVERY_STRATEGIES = ("eager-next-region", "failover", "uniform-progress", "regional-progress")
_DURATION_HOURS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_PLUGIN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w-]*$")


class Autostop(BaseModel):
    """Stop (or tear down) a cluster after it has been idle for `idle_minutes`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    idle_minutes: int = 5
    down: bool = False


class JobRecovery(BaseModel):
    """How a managed job recovers from preemption and failures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str | None = None
    max_restarts_on_errors: int = Field(default=0, ge=0)
    recover_on_exit_codes: tuple[int, ...] = ()
    #: Deadline-aware strategies: hours from submission to the deadline, hours of work the job
    #: needs, and hours lost at each (re)start (provisioning, setup, reloading a checkpoint).
    deadline_hours: float | None = Field(default=None, gt=0)
    duration_hours: float | None = Field(default=None, gt=0)
    changeover_hours: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _deadline_after_duration(self) -> JobRecovery:
        if (
            self.deadline_hours is not None
            and self.duration_hours is not None
            and self.deadline_hours < self.duration_hours + self.changeover_hours
        ):
            raise ValueError(
                f"job_recovery.deadline ({self.deadline_hours:g}h) is shorter than its duration "
                f"plus one changeover ({self.duration_hours + self.changeover_hours:g}h): it can "
                "never be met"
            )
        if self.strategy == "uniform-progress" and (
            self.deadline_hours is None or self.duration_hours is None
        ):
            raise ValueError(
                "job_recovery.strategy uniform-progress needs `deadline` and `duration` "
                "(for example deadline: 36h, duration: 24h)"
            )
        return self


def _minutes(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected minutes, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"idle minutes must be >= 0, got {value}")
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            factor = {"": 1, "s": 1 / 60, "m": 1, "h": 60, "d": 1440}[match[2].lower()]
            return max(0, round(int(match[1]) * factor))
    raise ValueError(f"expected idle minutes like 10, '30m' or '2h', got {value!r}")


def parse_autostop(value: object) -> Autostop | None:
    if value is None or isinstance(value, Autostop):
        return value
    if isinstance(value, dict) and "enabled" in value and set(value) <= set(Autostop.model_fields):
        return Autostop.model_validate(value)  # its own dump (a stored task read back)
    if isinstance(value, bool):
        return Autostop(enabled=value)
    if isinstance(value, dict):
        known = {"idle_minutes", "down", "wait_for", "hook", "hook_timeout"}
        unknown = set(value) - known
        if unknown:
            raise ValueError(
                f"unknown autostop key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"expected {', '.join(sorted(known))}"
            )
        down = value.get("down", False)
        if not isinstance(down, bool):
            raise ValueError(f"autostop.down must be true or false, got {down!r}")
        minutes = _minutes(value["idle_minutes"]) if "idle_minutes" in value else 5
        return Autostop(idle_minutes=minutes, down=down)
    return Autostop(idle_minutes=_minutes(value))


def parse_job_recovery(value: object) -> JobRecovery | None:
    if value is None or isinstance(value, JobRecovery):
        return value
    own = set(JobRecovery.model_fields)
    if isinstance(value, dict) and set(value) <= own and any(k.endswith("_hours") for k in value):
        return JobRecovery.model_validate(value)  # its own dump (a stored task read back)
    if isinstance(value, str):
        value = {"strategy": value}
    if not isinstance(value, dict):
        raise ValueError(f"expected a strategy name or a mapping, got {value!r}")
    known = {
        "strategy",
        "max_restarts_on_errors",
        "recover_on_exit_codes",
        "deadline",
        "duration",
        "changeover",
    }
    unknown = set(value) - known
    if unknown:
        raise ValueError(
            f"unknown job_recovery key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"expected {', '.join(sorted(known))}"
        )
    strategy = value.get("strategy")
    if strategy is not None:
        if not isinstance(strategy, str):
            raise ValueError(f"job_recovery.strategy must be a name, got {strategy!r}")
        strategy = strategy.strip()
        if not _PLUGIN.match(strategy):
            strategy = strategy.lower().replace("_", "-")
            if strategy not in RECOVERY_STRATEGIES:
                guess = difflib.get_close_matches(strategy, RECOVERY_STRATEGIES, n=1)
                hint = f"did you mean {guess[0]!r}? " if guess else ""
                raise ValueError(
                    f"unknown recovery strategy {value['strategy']!r}; {hint}expected one of "
                    f"{', '.join(RECOVERY_STRATEGIES)}, or `package.module:name` for one "
                    "registered by your code"
                )
    restarts = value.get("max_restarts_on_errors", 0)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ValueError(
            f"job_recovery.max_restarts_on_errors must be a non-negative integer, got {restarts!r}"
        )
    codes = value.get("recover_on_exit_codes") or ()
    if isinstance(codes, int) and not isinstance(codes, bool):
        codes = (codes,)
    if not isinstance(codes, list | tuple) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in codes
    ):
        raise ValueError(
            f"job_recovery.recover_on_exit_codes must be exit codes 0-255, got {codes!r}"
        )
    hours = {
        f"{key}_hours": _hours(value[key], f"job_recovery.{key}")
        for key in ("deadline", "duration", "changeover")
        if value.get(key) is not None
    }
    return JobRecovery(
        strategy=strategy,
        max_restarts_on_errors=restarts,
        recover_on_exit_codes=tuple(codes),
        **hours,
    )


def _hours(value: object, what: str) -> float:
    """`36h`, `90m`, `2d`, `3600s` or a number of hours → hours (positive, or 0 for a
    changeover)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a duration like 36h or 90m, got {value!r}")
    if isinstance(value, int | float):
        hours = float(value)
    elif isinstance(value, str) and (match := _DURATION_HOURS.match(value)):
        factor = {"": 1.0, "s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}[match[2].lower()]
        hours = float(match[1]) * factor
    else:
        raise ValueError(f"{what} must be a duration like 36h or 90m, got {value!r}")
    if hours < 0 or hours != hours or hours == float("inf"):
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return hours


def parse_ports(value: object) -> tuple[str, ...] | None:
    """`8080`, `'8000-8010'`, `[8080, '9000-9010']` → normalized port strings."""
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ValueError(f"expected a port or a range like '8000-8010', got {item!r}")
        match = _PORT.match(str(item))
        if not match:
            raise ValueError(f"expected a port or a range like '8000-8010', got {item!r}")
        low = int(match[1])
        high = int(match[2]) if match[2] else low
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port {item!r} is outside 1-65535 or its range is reversed")
        out.append(str(low) if low == high else f"{low}-{high}")
    return tuple(out)


def _input(description: str, *alternatives: dict[str, Any]) -> WithJsonSchema:
    """The JSON Schema editors see for a field: its YAML spellings, not its parsed form."""
    return WithJsonSchema({"anyOf": [*alternatives, {"type": "null"}], "description": description})


_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
InfraInput = Annotated[
    Infra | None,
    _input("CLOUD[/REGION[/ZONE]], k8s/CONTEXT or ssh/POOL; '*' and globs allowed", _STRING),
]
AcceleratorsInput = Annotated[
    AcceleratorChoice | None,
    _input(
        "'A100', 'A100:8', a list (ordered preference) or a mapping of several (any of)",
        _STRING,
        {"type": "array", "items": _STRING},
        {"type": "object", "additionalProperties": {"anyOf": [_NUMBER, {"type": "null"}]}},
    ),
]
CpusInput = Annotated[
    CpuSpec | None, _input("vCPUs per node: 4 (exactly) or '4+'", _NUMBER, _STRING)
]
MemoryInput = Annotated[
    MemorySpec | None,
    _input("GiB per node: 16, '16+', '16GB', '1TB+', or '4x' (GiB per vCPU)", _NUMBER, _STRING),
]
DiskInput = Annotated[int | None, _input("disk size in GiB: 256 or '1TB'", _NUMBER, _STRING)]
PortsInput = Annotated[
    tuple[str, ...] | None,
    _input(
        "a port, a range '8000-8010', or a list of them",
        {"type": "integer"},
        _STRING,
        {"type": "array", "items": {"anyOf": [{"type": "integer"}, _STRING]}},
    ),
]
AutostopInput = Annotated[
    Autostop | None,
    _input(
        "true/false, idle minutes (10, '2h') or {idle_minutes, down}",
        {"type": "boolean"},
        {"type": "integer"},
        _STRING,
        {"type": "object"},
    ),
]
RecoveryInput = Annotated[
    JobRecovery | None,
    _input(
        "a strategy (failover, eager-next-region) or {strategy, max_restarts_on_errors}",
        _STRING,
        {"type": "object"},
    ),
]


class ResourceOption(BaseModel):
    """One concrete alternative the planner matches against catalog offers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    infra: Infra = Infra()
    instance_type: str | None = None
    accelerator: Accelerator | None = None
    cpus: CpuSpec | None = None
    memory: MemorySpec | None = None
    use_spot: bool = False
    max_hourly_cost: float | None = None
    network_tier: Literal["standard", "best"] | None = None

    def describe(self) -> str:
        parts = []
        if not self.infra.is_any():
            parts.append(f"infra={self.infra}")
        if self.instance_type:
            parts.append(f"instance_type={self.instance_type}")
        if self.accelerator:
            parts.append(f"accelerators={self.accelerator}")
        if self.cpus:
            parts.append(f"cpus={self.cpus}")
        if self.memory:
            parts.append(f"memory={self.memory}")
        if self.use_spot:
            parts.append("spot")
        if self.max_hourly_cost is not None:
            parts.append(f"max_hourly_cost={self.max_hourly_cost:g}")
        if self.network_tier == "best":
            parts.append("network_tier=best")
        return ", ".join(parts) or "default resources"


class Resources(BaseModel):
    """A task's `resources:` block. Every field is optional; unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    infra: InfraInput = None
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    accelerators: AcceleratorsInput = None
    cpus: CpusInput = None
    memory: MemoryInput = None
    use_spot: bool | None = None
    job_recovery: RecoveryInput = None
    disk_size: DiskInput = None
    disk_tier: Literal["low", "medium", "high", "ultra", "best"] | None = None
    network_tier: Literal["standard", "best"] | None = None
    ports: PortsInput = None
    labels: dict[str, str] | None = None
    image_id: str | dict[str, str] | None = None
    autostop: AutostopInput = None
    max_hourly_cost: float | None = Field(default=None, gt=0)
    accelerator_args: dict[str, Any] | None = None
    priority: int | None = Field(default=None, ge=0, le=1000)
    any_of: tuple[Resources, ...] | None = None
    ordered: tuple[Resources, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "gpus" in data:
            if "accelerators" in data:
                raise ValueError("give either 'accelerators' or its alias 'gpus', not both")
            data = {("accelerators" if k == "gpus" else k): v for k, v in data.items()}
        return data

    @field_validator("infra", mode="before")
    @classmethod
    def _infra(cls, v: object) -> Infra | None:
        return None if v is None else parse_infra(v)

    @field_validator("cloud", mode="before")
    @classmethod
    def _cloud(cls, v: object) -> str | None:
        if v is None:
            return None
        if not isinstance(v, str):
            raise ValueError(f"expected a cloud name, got {v!r}")
        return canonical_cloud(v)

    @field_validator("accelerators", mode="before")
    @classmethod
    def _accelerators(cls, v: object) -> AcceleratorChoice | None:
        return None if v is None else parse_accelerators(v)

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus(cls, v: object) -> CpuSpec | None:
        return None if v is None else parse_cpus(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: object) -> MemorySpec | None:
        return None if v is None else parse_memory(v)

    @field_validator("disk_size", mode="before")
    @classmethod
    def _disk(cls, v: object) -> int | None:
        return None if v is None else parse_disk_size(v)

    @field_validator("ports", mode="before")
    @classmethod
    def _ports(cls, v: object) -> tuple[str, ...] | None:
        return parse_ports(v)

    @field_validator("autostop", mode="before")
    @classmethod
    def _autostop(cls, v: object) -> Autostop | None:
        return parse_autostop(v)

    @field_validator("job_recovery", mode="before")
    @classmethod
    def _recovery(cls, v: object) -> JobRecovery | None:
        return parse_job_recovery(v)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: object) -> dict[str, str] | None:
        if v is None:
            return None
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of label names to values, got {v!r}")
        return {str(k): str(val) for k, val in v.items()}

    @model_validator(mode="after")
    def _consistent(self) -> Resources:
        if self.infra is not None and (self.cloud or self.region or self.zone):
            raise ValueError("give either 'infra' or the older 'cloud'/'region'/'zone', not both")
        if self.any_of is not None and self.ordered is not None:
            raise ValueError("give either 'any_of' or 'ordered', not both")
        for name in ("any_of", "ordered"):
            entries = getattr(self, name)
            if entries is not None:
                if not entries:
                    raise ValueError(f"'{name}' needs at least one entry")
                for entry in entries:
                    if entry.any_of is not None or entry.ordered is not None:
                        raise ValueError(f"an entry of '{name}' cannot nest any_of/ordered")
        return self

    # -- expansion -------------------------------------------------------------------------

    def pinned_infra(self) -> Infra:
        """`infra`, or the older cloud/region/zone fields, as one Infra."""
        if self.infra is not None:
            return self.infra
        return Infra(cloud=self.cloud, region=self.region, zone=self.zone)

    def merged(self, override: Resources) -> Resources:
        """These resources with every field `override` sets replacing ours. An `infra` in the
        override replaces the whole location; the older `cloud`/`region`/`zone` replace only
        the parts they set, as SkyPilot merges them."""
        legacy = ("cloud", "region", "zone")
        updates: dict[str, Any] = {"any_of": None, "ordered": None}
        given = override.model_fields_set
        if "infra" in given:
            updates.update(dict.fromkeys(legacy))
        elif any(name in given for name in legacy):
            pin = self.pinned_infra()
            updates.update(infra=None, cloud=pin.cloud, region=pin.region, zone=pin.zone)
        for name in given - {"any_of", "ordered"}:
            updates[name] = getattr(override, name)
        return self.model_copy(update=updates)

    def option_groups(self) -> list[list[ResourceOption]]:
        """Ordered groups of alternatives (see the module docstring)."""
        if self.ordered is not None:
            return [group for entry in self.ordered for group in self.merged(entry)._groups()]
        if self.any_of is not None:
            merged = [
                opt for entry in self.any_of for g in self.merged(entry)._groups() for opt in g
            ]
            return [list(dict.fromkeys(merged))]
        return self._groups()

    def _groups(self) -> list[list[ResourceOption]]:
        def option(acc: Accelerator | None) -> ResourceOption:
            return ResourceOption(
                infra=self.pinned_infra(),
                instance_type=self.instance_type,
                accelerator=acc,
                cpus=self.cpus,
                memory=self.memory,
                use_spot=bool(self.use_spot),
                max_hourly_cost=self.max_hourly_cost,
                network_tier=self.network_tier,
            )

        if self.accelerators is None:
            return [[option(None)]]
        if self.accelerators.mode == "ordered":
            return [[option(acc)] for acc in self.accelerators.options]
        return [[option(acc) for acc in self.accelerators.options]]
