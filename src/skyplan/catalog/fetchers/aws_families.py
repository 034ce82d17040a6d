"""EC2 instance families with accelerators: which accelerator, how much memory, how many.

Shared by the offline libcloud builder (`libcloud_ec2`) and the Price List fetcher (`aws`), so
both spell accelerators the same way (SkyPilot's canonical names).

Facts are public specifications: the "Accelerated computing" table of
https://aws.amazon.com/ec2/instance-types/ and the vendors' data sheets. Memory is per
accelerator, in GiB as the vendors round it (an "80 GB" H100 is 80 here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """The accelerator an instance family carries."""

    accelerator: str
    #: memory of one accelerator, GiB; None when not published
    memory_gib: float | None


#: instance family (the part before the dot) → accelerator.
FAMILIES: dict[str, Family] = {
    "p2": Family("K80", 12),
    "p3": Family("V100", 16),
    "p3dn": Family("V100", 32),
    "p4d": Family("A100", 40),
    "p4de": Family("A100-80GB", 80),
    "p5": Family("H100", 80),
    "p5e": Family("H200", 141),
    "p5en": Family("H200", 141),
    "g2": Family("K520", 4),
    "g3": Family("M60", 8),
    "g3s": Family("M60", 8),
    "g4dn": Family("T4", 16),
    "g4ad": Family("Radeon Pro V520", 8),
    "g5": Family("A10G", 24),
    "g5g": Family("T4g", 16),
    "g6": Family("L4", 24),
    "gr6": Family("L4", 24),
    "g6e": Family("L40S", 48),
    "inf1": Family("Inferentia", 8),
    "inf2": Family("Inferentia2", 32),
    "trn1": Family("Trainium", 32),
    "trn1n": Family("Trainium", 32),
    "trn2": Family("Trainium2", 96),
    "dl1": Family("Gaudi", 32),
    "dl2q": Family("Qualcomm AI 100", 16),
}

#: Accelerators per instance where the price data has no GPU count (the ML ASIC families:
#: AWS reports "Inferentia chips", "Trainium chips", ... instead of GPUs), and the GPU counts
#: for sizes whose count the price data sometimes omits. Public specs, per instance size.
COUNTS: dict[str, int] = {
    "inf1.xlarge": 1,
    "inf1.2xlarge": 1,
    "inf1.6xlarge": 4,
    "inf1.24xlarge": 16,
    "inf2.xlarge": 1,
    "inf2.8xlarge": 1,
    "inf2.24xlarge": 6,
    "inf2.48xlarge": 12,
    "trn1.2xlarge": 1,
    "trn1.32xlarge": 16,
    "trn1n.32xlarge": 16,
    "trn2.48xlarge": 16,
    "dl1.24xlarge": 8,
    "dl2q.24xlarge": 8,
    "p5.48xlarge": 8,
    "p5e.48xlarge": 8,
    "p5en.48xlarge": 8,
    "p4d.24xlarge": 8,
    "p4de.24xlarge": 8,
    "p3dn.24xlarge": 8,
}

# A Graviton family has a "g" right after its generation digit: m6g, c7gn, t4g, x2gd, g5g,
# im4gn, is4gen, hpc7g. (g4dn, p5en and gr6 do not.)
_GRAVITON_FAMILY = re.compile(r"^[a-z]+\d+g")


def family_of(instance_type: str) -> str:
    """`p4d.24xlarge` → `p4d`."""
    return instance_type.split(".", 1)[0]


def accelerator_for(
    instance_type: str, reported_count: str | int | float | None
) -> tuple[str, float, float | None] | None:
    """(accelerator, count, memory GiB per accelerator) of `instance_type`, or None for
    instances without accelerators skyplan knows about (CPU-only, FPGA, video transcoders).

    `reported_count` is the GPU count the price data gives ("8", "NA", None); the table above
    fills in where it is missing. A known family whose count cannot be found raises ValueError.
    """
    family = FAMILIES.get(family_of(instance_type))
    if family is None:
        return None
    count = _parse_count(reported_count)
    if count is None:
        known = COUNTS.get(instance_type)
        if known is None:
            raise ValueError(f"no accelerator count known for {instance_type}")
        count = float(known)
    return family.accelerator, count, family.memory_gib


def _parse_count(value: str | int | float | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        count = float(str(value).replace(",", "").strip())
    except ValueError:
        return None
    return count if count > 0 else None


def arch_for(instance_type: str, processor: str | None = None) -> str:
    """`arm64` for Graviton instances, else `x86_64`."""
    if processor and "graviton" in processor.lower():
        return "arm64"
    return "arm64" if _GRAVITON_FAMILY.match(family_of(instance_type)) else "x86_64"


def parse_memory_gib(text: str) -> float:
    """`"16 GiB"`, `"1,952 GiB"`, `"0.5 GiB"` → GiB as a float."""
    number = text.strip().split()[0].replace(",", "")
    return float(number)
