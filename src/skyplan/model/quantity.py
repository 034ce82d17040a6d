"""Quantities in a request: vCPUs, memory and disk, with SkyPilot's spellings.

`cpus`: `4` (exactly), `'4+'` (at least). `memory`: `16` / `'16GB'` (exactly, GiB), `'16+'` /
`'1TB+'` (at least), `'4x'` (at least 4 GiB per vCPU). Decimal and binary unit names are both
read as binary (GB == GiB), as SkyPilot's catalogs do.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

_UNITS = {
    "": 1.0,
    "k": 1 / 1024**2,
    "kb": 1 / 1024**2,
    "kib": 1 / 1024**2,
    "m": 1 / 1024,
    "mb": 1 / 1024,
    "mib": 1 / 1024,
    "g": 1.0,
    "gb": 1.0,
    "gib": 1.0,
    "t": 1024.0,
    "tb": 1024.0,
    "tib": 1024.0,
}
_AMOUNT = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-zA-Z]*)\s*(?P<plus>\+?)\s*$")


class CpuSpec(BaseModel):
    """A vCPU requirement per node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: float
    at_least: bool = False

    def __str__(self) -> str:
        return f"{self.count:g}{'+' if self.at_least else ''}"

    def matches(self, vcpus: float) -> bool:
        return vcpus >= self.count if self.at_least else vcpus == self.count


class MemorySpec(BaseModel):
    """A memory requirement per node: GiB, or GiB per vCPU when `per_cpu`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gib: float
    mode: Literal["exact", "at_least", "per_cpu"] = "exact"

    def __str__(self) -> str:
        suffix = {"exact": "", "at_least": "+", "per_cpu": "x"}[self.mode]
        return f"{self.gib:g}{suffix}"

    def matches(self, memory_gib: float, vcpus: float) -> bool:
        if self.mode == "per_cpu":
            return memory_gib >= self.gib * vcpus
        if self.mode == "at_least":
            return memory_gib >= self.gib
        return memory_gib == self.gib


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number for {what}, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"expected a number for {what}, got {value!r}")


def parse_cpus(value: object) -> CpuSpec:
    """`4`, `'4'`, `'4+'`, `'0.5+'` → CpuSpec."""
    if isinstance(value, CpuSpec):
        return value
    if isinstance(value, dict) and "count" in value and set(value) <= set(CpuSpec.model_fields):
        return CpuSpec.model_validate(value)  # its own dump (a stored task read back)
    if isinstance(value, str):
        text = value.strip()
        plus = text.endswith("+")
        body = text[:-1].strip() if plus else text
        try:
            count = float(body)
        except ValueError:
            raise ValueError(f"expected a vCPU count like 4 or '4+', got {value!r}") from None
    else:
        count, plus = _number(value, "cpus"), False
    if not 0 < count < float("inf"):
        raise ValueError(f"cpus must be a finite number greater than 0, got {value!r}")
    return CpuSpec(count=count, at_least=plus)


def parse_size_gib(value: object, what: str) -> tuple[float, bool]:
    """`16`, `'16GB'`, `'1TB+'`, `'512MB'` → (GiB, at_least)."""
    if isinstance(value, str):
        match = _AMOUNT.match(value)
        if not match or match["unit"].lower() not in _UNITS:
            raise ValueError(
                f"expected a size like 16, '16GB', '1TB' or '16+' for {what}, got {value!r}"
            )
        gib = float(match["num"]) * _UNITS[match["unit"].lower()]
        return gib, bool(match["plus"])
    return _number(value, what), False


def parse_memory(value: object) -> MemorySpec:
    """`16`, `'16+'`, `'16GB'`, `'1TB+'`, `'4x'` → MemorySpec."""
    if isinstance(value, MemorySpec):
        return value
    if isinstance(value, dict) and "gib" in value and set(value) <= set(MemorySpec.model_fields):
        return MemorySpec.model_validate(value)  # its own dump (a stored task read back)
    if isinstance(value, str) and value.strip().lower().endswith("x"):
        body = value.strip()[:-1]
        try:
            ratio = float(body)
        except ValueError:
            raise ValueError(f"expected a ratio like '4x' (GiB per vCPU), got {value!r}") from None
        if not ratio > 0:
            raise ValueError(f"memory ratio must be greater than 0, got {value!r}")
        return MemorySpec(gib=ratio, mode="per_cpu")
    gib, plus = parse_size_gib(value, "memory")
    if not 0 < gib < float("inf"):
        raise ValueError(f"memory must be a finite size greater than 0, got {value!r}")
    return MemorySpec(gib=gib, mode="at_least" if plus else "exact")


def parse_disk_size(value: object) -> int:
    """`256`, `'1024GB'`, `'1TB'` → whole GiB."""
    gib, plus = parse_size_gib(value, "disk_size")
    if plus:
        raise ValueError(f"disk_size is an exact size; drop the '+' in {value!r}")
    if gib < 1 or gib != int(gib):
        raise ValueError(f"disk_size must be a whole number of GiB >= 1, got {value!r}")
    return int(gib)
