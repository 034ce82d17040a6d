"""Public hardware facts the loaders need when a source leaves them out.

- Memory per accelerator (vendor data sheets), for catalogs that name a GPU but not its memory.
- GCP machine families with GPUs built in (a2, a3, g2): which GPU and how many each type has;
  SkyPilot's GCP catalog lists the host and the GPUs as separate rows.
- GCP N1 hosts that GPUs attach to: the largest host each (GPU, count) allows, from GCP's
  "GPU machine types" page, and SkyPilot's default host sizing (vCPUs per GPU, high-memory).
"""

from __future__ import annotations

import re

GPU_MEMORY_GIB: dict[str, float] = {
    "A10": 24,
    "A10G": 24,
    "A100": 40,
    "A100-80GB": 80,
    "A40": 48,
    "B200": 180,
    "GH200": 96,
    "H100": 80,
    "H100-MEGA": 80,
    "H200": 141,
    "K80": 12,
    "L4": 24,
    "L40": 48,
    "L40S": 48,
    "M60": 8,
    "MI300X": 192,
    "P100": 16,
    "P4": 8,
    "T4": 16,
    "T4g": 16,
    "V100": 16,
    "V100-32GB": 32,
    "RTX6000": 24,
    "A6000": 48,
}

_GCP_BUILT_IN: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^a2-highgpu-(\d+)g$"), "A100"),
    (re.compile(r"^a2-megagpu-(\d+)g$"), "A100"),
    (re.compile(r"^a2-ultragpu-(\d+)g$"), "A100-80GB"),
    (re.compile(r"^a3-highgpu-(\d+)g$"), "H100"),
    (re.compile(r"^a3-edgegpu-(\d+)g$"), "H100"),
    (re.compile(r"^a3-megagpu-(\d+)g$"), "H100-MEGA"),
    (re.compile(r"^a3-ultragpu-(\d+)g$"), "H200"),
    (re.compile(r"^a4-highgpu-(\d+)g$"), "B200"),
)
#: g2-standard-N → number of L4 GPUs.
_G2_L4 = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}


def gcp_built_in_gpus(instance_type: str) -> tuple[str, int] | None:
    """The GPUs a GCP machine type comes with, or None for hosts without built-in GPUs."""
    for pattern, gpu in _GCP_BUILT_IN:
        match = pattern.match(instance_type)
        if match:
            return gpu, int(match[1])
    match = re.match(r"^g2-standard-(\d+)$", instance_type)
    if match and int(match[1]) in _G2_L4:
        return "L4", _G2_L4[int(match[1])]
    return None


#: (GPU, count) → (max vCPUs, max memory GiB) of an N1 host it can attach to.
GCP_N1_LIMITS: dict[tuple[str, int], tuple[float, float]] = {
    ("T4", 1): (48, 312),
    ("T4", 2): (48, 312),
    ("T4", 4): (96, 624),
    ("V100", 1): (12, 78),
    ("V100", 2): (24, 156),
    ("V100", 4): (48, 312),
    ("V100", 8): (96, 624),
    ("P100", 1): (16, 104),
    ("P100", 2): (32, 208),
    ("P100", 4): (96, 624),
    ("P4", 1): (24, 156),
    ("P4", 2): (48, 312),
    ("P4", 4): (96, 624),
    ("K80", 1): (8, 52),
    ("K80", 2): (16, 104),
    ("K80", 4): (32, 208),
    ("K80", 8): (64, 416),
}
#: vCPUs per GPU of the host SkyPilot picks when the task sets neither cpus nor memory.
GCP_DEFAULT_VCPUS_PER_GPU: dict[str, int] = {"T4": 4, "P4": 4, "P100": 4, "K80": 4, "V100": 8}
#: GiB per vCPU of GCP's n1-highmem family, the default host family for attached GPUs.
GCP_HIGHMEM_RATIO = 6.5
