"""Spot traces: one zone's spot capacity over time, loaded from the Can't Be Late JSON format.

A trace file is `{"metadata": {"gap_seconds": N}, "data": [count, ...], "prices": [...]}`: tick
*i* covers `[i*N, (i+1)*N)` seconds, `data[i]` is how many spot nodes were available then, and
the optional `prices[i]` is the spot price per node-hour. One file is one zone; its name says
which (`us-west-2a_v100_1.json` → zone `us-west-2a`, region `us-west-2`), the directory's name
the cloud (`aws-10-26-2022` → `aws`). A directory is a set of zones to choose from.

Validation is strict and never a traceback: every problem is an `InputError` naming the file
and the JSON field (and line:col for JSON syntax errors).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from skyplan.errors import InputError

_ZONE = re.compile(r"^(?P<region>.*\d)-?(?P<letter>[a-z])$")
_CLOUDS = ("aws", "gcp", "azure")


@dataclass(frozen=True, eq=False)
class ZoneTrace:
    """One zone's spot availability (`available[i]` nodes in tick i) and optional prices."""

    path: Path
    cloud: str
    region: str
    zone: str
    gap_seconds: float
    available: npt.NDArray[np.int64]
    prices: npt.NDArray[np.float64] | None = None
    label: str = field(default="")

    @property
    def ticks(self) -> int:
        return len(self.available)

    @property
    def hours(self) -> float:
        return self.ticks * self.gap_seconds / 3600.0

    def tick(self, seconds: float) -> int:
        """The tick holding absolute trace time `seconds` (clamped to the last tick)."""
        return min(self.ticks - 1, max(0, int(seconds // self.gap_seconds)))


def _fail(path: Path, where: str, message: str) -> InputError:
    return InputError(f"{path}: {where}: {message}")


def place_of(path: Path) -> tuple[str, str, str]:
    """(cloud, region, zone) from a trace file's path."""
    zone = path.stem.split("_", 1)[0]
    match = _ZONE.match(zone)
    region = match["region"] if match else zone
    prefix = path.parent.name.split("-", 1)[0].lower()
    cloud = prefix if prefix in _CLOUDS else "sim"
    return cloud, region, zone


def load_trace(path: str | Path) -> ZoneTrace:
    """Read and validate one trace file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the trace: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"{exc.lineno}:{exc.colno}", f"not JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise _fail(path, "(top level)", f"must be an object, got {type(raw).__name__}")
    for key in ("metadata", "data"):
        if key not in raw:
            raise _fail(path, key, "missing")
    metadata = raw["metadata"]
    if not isinstance(metadata, dict):
        raise _fail(path, "metadata", f"must be an object, got {type(metadata).__name__}")
    if "gap_seconds" not in metadata:
        raise _fail(path, "metadata.gap_seconds", "missing")
    gap = metadata["gap_seconds"]
    if isinstance(gap, bool) or not isinstance(gap, int | float) or not gap > 0:
        raise _fail(path, "metadata.gap_seconds", f"must be a positive number, got {gap!r}")
    data = raw["data"]
    if not isinstance(data, list) or not data:
        raise _fail(path, "data", "must be a non-empty list of node counts")
    for i, value in enumerate(data):
        if type(value) is not int or value < 0:
            raise _fail(path, f"data[{i}]", f"must be a non-negative integer, got {value!r}")
    prices: npt.NDArray[np.float64] | None = None
    if raw.get("prices") is not None:
        listed = raw["prices"]
        if not isinstance(listed, list):
            raise _fail(path, "prices", f"must be a list, got {type(listed).__name__}")
        if len(listed) != len(data):
            raise _fail(path, "prices", f"has {len(listed)} entries but data has {len(data)}")
        for i, value in enumerate(listed):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise _fail(path, f"prices[{i}]", f"must be a non-negative number, got {value!r}")
        prices = np.asarray(listed, dtype=np.float64)
    cloud, region, zone = place_of(path)
    return ZoneTrace(
        path=path,
        cloud=cloud,
        region=region,
        zone=zone,
        gap_seconds=float(gap),
        available=np.asarray(data, dtype=np.int64),
        prices=prices,
        label=path.stem,
    )


def load_traces(path: str | Path) -> tuple[ZoneTrace, ...]:
    """One file, or every `*.json` of a directory (sorted by name) as zones to choose from.
    The zones of a directory must share one tick length; they are cut to the shortest."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InputError(f"{path}: no trace files (*.json) in this directory")
        traces = [load_trace(f) for f in files]
    elif path.exists():
        traces = [load_trace(path)]
    else:
        raise InputError(f"{path}: no such trace file or directory")
    gaps = {t.gap_seconds for t in traces}
    if len(gaps) > 1:
        raise InputError(
            f"{path}: the traces have different metadata.gap_seconds ({sorted(gaps)}); "
            "zones replayed together need one tick length"
        )
    shortest = min(t.ticks for t in traces)
    return tuple(_cut(t, shortest) for t in traces)


def _cut(trace: ZoneTrace, ticks: int) -> ZoneTrace:
    if trace.ticks == ticks:
        return trace
    prices = None if trace.prices is None else trace.prices[:ticks]
    return ZoneTrace(
        trace.path,
        trace.cloud,
        trace.region,
        trace.zone,
        trace.gap_seconds,
        trace.available[:ticks],
        prices,
        trace.label,
    )


def shape_groups(traces: tuple[ZoneTrace, ...]) -> list[tuple[ZoneTrace, ...]]:
    """Split traces into sets of distinct zones of one node shape (the file name after the
    zone: `us-west-2a_v100_1` and `us-west-2b_v100_1` are one set), in name order. A job can
    choose among the zones of one set; it cannot turn a V100 into a K80."""
    groups: dict[str, list[ZoneTrace]] = {}
    for trace in traces:
        shape = trace.label.split("_", 1)[1] if "_" in trace.label else ""
        groups.setdefault(shape, []).append(trace)
    return [tuple(group) for _, group in sorted(groups.items())]
