"""Where a task may run: `infra` strings (`aws`, `aws/us-east-1`, `gcp/*/us-central1-a`,
`k8s/<context>`, `ssh/<pool>`) and the older `cloud` / `region` / `zone` fields.

Patterns may hold shell-style globs (`eu-*`); `*` or an absent part means "any".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from skyplan.errors import did_you_mean

#: Infra names SkyPilot users write; a name here but absent from the catalog is "not offered",
#: a name not here is a typo.
KNOWN_CLOUDS: tuple[str, ...] = (
    "aws",
    "azure",
    "cudo",
    "do",
    "fluidstack",
    "gcp",
    "hyperbolic",
    "ibm",
    "kubernetes",
    "lambda",
    "local",
    "nebius",
    "oci",
    "paperspace",
    "primeintellect",
    "runpod",
    "scp",
    "seeweb",
    "shadeform",
    "slurm",
    "ssh",
    "vast",
    "vsphere",
)
ALIASES = {"k8s": "kubernetes"}
#: Clouds whose second infra part is a context or pool name that may itself contain '/'.
_OPAQUE_REGION = ("kubernetes", "ssh", "slurm")


class Infra(BaseModel):
    """A cloud / region / zone pin; None means any."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None

    def __str__(self) -> str:
        parts = [self.cloud or "*", self.region or "*", self.zone or "*"]
        while len(parts) > 1 and parts[-1] == "*":
            parts.pop()
        return "/".join(parts)

    def is_any(self) -> bool:
        return self.cloud is None and self.region is None and self.zone is None


def canonical_cloud(name: str) -> str:
    """Lower-case cloud name with aliases resolved; ValueError with a did-you-mean if unknown."""
    lowered = name.strip().lower()
    lowered = ALIASES.get(lowered, lowered)
    if lowered not in KNOWN_CLOUDS:
        guess = did_you_mean(lowered, KNOWN_CLOUDS + tuple(ALIASES))
        hint = f"; did you mean {guess!r}?" if guess else f"; known: {', '.join(KNOWN_CLOUDS)}"
        raise ValueError(f"unknown cloud {name!r}{hint}")
    return lowered


def _part(text: str) -> str | None:
    text = text.strip()
    return None if text in ("", "*") else text


def parse_infra(value: object) -> Infra:
    """Parse an `infra` string into an `Infra`."""
    if isinstance(value, Infra):
        return value
    if isinstance(value, dict) and set(value) <= set(Infra.model_fields):
        return Infra.model_validate(value)  # its own dump (a stored task read back)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an infra string like 'aws/us-east-1', got {value!r}")
    text = value.strip()
    head, _, rest = text.partition("/")
    cloud = None if head.strip() == "*" else canonical_cloud(head)
    if not rest:
        return Infra(cloud=cloud)
    if cloud in _OPAQUE_REGION:
        return Infra(cloud=cloud, region=_part(rest))
    parts = rest.split("/")
    if len(parts) > 2:
        raise ValueError(f"infra {value!r} has too many parts; expected CLOUD[/REGION[/ZONE]]")
    region = _part(parts[0])
    zone = _part(parts[1]) if len(parts) == 2 else None
    return Infra(cloud=cloud, region=region, zone=zone)
