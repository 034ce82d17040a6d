"""What a machine has: CPUs, memory, architecture and NVIDIA GPUs, read by one shell script.

The same script runs on this machine (the local backend) and over SSH (existing machines), so
both report shapes the same way; GPU model names are mapped to the catalog's spelling
("NVIDIA A100-SXM4-80GB" → "A100-80GB").
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache

#: Prints `cpus N`, `mem_kib N`, `arch X` and one `gpu NAME, MEMORY_MIB` line per GPU.
PROBE_SCRIPT = (
    'echo "cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"; '
    "echo \"mem_kib $(awk '/^MemTotal:/ {print $2}' /proc/meminfo)\"; "
    'echo "arch $(uname -m)"; '
    "if command -v nvidia-smi >/dev/null 2>&1; then "
    "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null "
    "| sed 's/^/gpu /'; fi; true"
)


@dataclass(frozen=True)
class HostShape:
    vcpus: float
    memory_gib: float
    arch: str = "x86_64"
    accelerator: str | None = None
    accelerator_count: float | None = None
    accelerator_memory: float | None = None

    @property
    def instance_type(self) -> str:
        """A readable name for the shape, used as the instance type of pool offers."""
        name = f"{self.vcpus:g}cpu-{self.memory_gib:.0f}gb"
        if self.accelerator:
            name += f"-{self.accelerator}x{self.accelerator_count:g}"
        return name


def gpu_name(raw: str, memory_gib: float | None = None) -> str:
    """The catalog's name for a GPU model as nvidia-smi prints it."""
    name = re.sub(r"^(NVIDIA\s+)?(Tesla\s+|GeForce\s+|Quadro\s+)?", "", raw.strip())
    name = re.sub(r"^RTX\s+", "RTX", name)
    base = re.split(r"[\s-]", name, maxsplit=1)[0]
    if base == "A100" and memory_gib is not None and memory_gib > 60:
        return "A100-80GB"
    return base


def parse_probe(text: str) -> HostShape:
    """Read `PROBE_SCRIPT`'s output; ValueError when it lacks the CPU or memory line."""
    values: dict[str, str] = {}
    gpus: list[tuple[str, float | None]] = []
    for line in text.splitlines():
        key, _, rest = line.strip().partition(" ")
        if key == "gpu":
            name, _, mem_mib = rest.rpartition(",")
            try:
                mem_gib: float | None = float(mem_mib) / 1024
            except ValueError:
                mem_gib = None
            gpus.append((name.strip(), mem_gib))
        elif key:
            values[key] = rest.strip()
    try:
        cpus = float(values["cpus"])
        mem = float(values["mem_kib"]) / (1024 * 1024)
    except (KeyError, ValueError):
        raise ValueError(f"cannot read the machine's CPUs and memory from: {text!r}") from None
    arch = "arm64" if values.get("arch") in ("aarch64", "arm64") else "x86_64"
    if not gpus:
        return HostShape(cpus, round(mem, 1), arch)
    raw, gpu_mem = gpus[0]
    return HostShape(
        cpus,
        round(mem, 1),
        arch,
        accelerator=gpu_name(raw, gpu_mem),
        accelerator_count=float(len(gpus)),
        accelerator_memory=round(gpu_mem, 1) if gpu_mem is not None else None,
    )


@lru_cache(maxsize=1)
def probe_local() -> HostShape:
    """This machine's shape (probed once per process)."""
    out = subprocess.run(
        ["sh", "-c", PROBE_SCRIPT], capture_output=True, text=True, timeout=30, check=False
    )
    return parse_probe(out.stdout)
