"""What moving data between placements costs and how fast it goes: `EgressModel`.

Per-GB prices are the providers' published list prices as quoted by the pages cited below;
bandwidths are assumptions. Used by the pipeline optimizer (`skyplan.solver.dag`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

LinkKind = Literal["same-region", "inter-region", "inter-cloud"]
Location = tuple[str, str]  # (cloud, region)

#: Internet data transfer out, $/GB, first paid tier, by the *source* cloud. List prices as
#: quoted by the pages below (found through the project's search index; tiers fall with monthly
#: volume, and the first 100 GB a month are free on AWS and Azure, which a per-pipeline model
#: ignores):
#: - aws 0.09: EC2 to the internet, US East, "Next 9.999 TB per month $0.09 per GB" —
#:   https://blogs.vmware.com/cloudhealth/aws-data-transfer-pricing/ and
#:   https://finopsforge.com/reduce-aws-data-transfer-costs ("Internet egress (first 10TB/month)
#:   $0.09/GB"). AWS's own page (https://aws.amazon.com/ec2/pricing/on-demand/) renders its
#:   rates dynamically and could not be read.
#: - gcp 0.12: Premium Tier to North America, 1-1,024 GiB a month, "$0.12 / 1 gibibyte" — a
#:   transcription of https://cloud.google.com/vpc/network-pricing at
#:   https://raw.githubusercontent.com/api-evangelist/google-cloud-vpc/refs/heads/main/plans/google-cloud-vpc-plans-pricing.yml
#:   and https://egresscost.com/gcp/regions ("$0.12/GB Premium"). Google bills per GiB; the
#:   model reads it per GB (7% less).
#: - azure 0.087: after the free 100 GB, first 10 TB, "~$0.087/GB" —
#:   https://c3x.dev/blog/azure-egress-bandwidth-cost/ (third-party). Microsoft's own page
#:   (https://azure.microsoft.com/pricing/details/bandwidth/) could not be read.
#: Other clouds (Lambda, Kubernetes, SSH pools, ...) take `default_internet_usd_per_gb`, 0.09:
#: an assumption, not a published price.
INTERNET_USD_PER_GB: Mapping[str, float] = {"aws": 0.09, "gcp": 0.12, "azure": 0.087}

#: Data transfer between two regions of the same cloud, $/GB, by the source cloud:
#: - aws 0.02: "EC2 charges 2 cents per gigabyte for inter-region egress traffic" —
#:   https://github.com/NixOS/amis/issues/122; https://finopsforge.com/reduce-aws-data-transfer-costs
#:   gives "$0.02-$0.08/GB" by region pair.
#: - gcp 0.02: "Between regions (same continent) $0.01 - $0.02" —
#:   https://brainagents.ai/gcpfinops/blog/gcp-network-egress-cross-region-costs; also
#:   https://cloudwebschool.com/docs/gcp/cost-management/network-egress-costs/ ("~$0.01-0.08/GB
#:   depending on the region pair"). The upper end of the one-continent range; not verified on
#:   Google's own page.
#: - azure 0.02: "Cross-region transfers within North America or Europe cost $0.02/GB" —
#:   https://lucidity.cloud/feeds/blog/azure-storage-egress-cost (other continents more). Not
#:   verified on Microsoft's own page.
#: Other clouds take `default_inter_region_usd_per_gb`, 0.02 (an assumption). Zones of one
#: region are one location: AWS's $0.01/GB each way between zones is left out.
INTER_REGION_USD_PER_GB: Mapping[str, float] = {"aws": 0.02, "gcp": 0.02, "azure": 0.02}


@dataclass(frozen=True)
class Link:
    """What moving data from one placement to another costs and how fast it goes."""

    kind: LinkKind
    usd_per_gb: float
    gbps: float

    def hours(self, gb: float) -> float:
        """Transfer time of `gb` gigabytes over this link."""
        return gb * 8 / self.gbps / 3600


@dataclass(frozen=True)
class EgressModel:
    """$/GB and Gbit/s between two (cloud, region) placements.

    Same region: free (zones of one region are treated alike). Same cloud, other region: the
    source cloud's inter-region price. Different clouds: the source cloud's internet egress
    price. Clouds missing from the tables (Lambda, Kubernetes, SSH pools, ...) use the defaults.

    The bandwidths are modelling assumptions, not published figures: what one node sustains to
    storage in its own region, across the cloud's backbone, and over the public internet.
    """

    internet_usd_per_gb: Mapping[str, float] = field(
        default_factory=lambda: dict(INTERNET_USD_PER_GB)
    )
    inter_region_usd_per_gb: Mapping[str, float] = field(
        default_factory=lambda: dict(INTER_REGION_USD_PER_GB)
    )
    default_internet_usd_per_gb: float = 0.09
    default_inter_region_usd_per_gb: float = 0.02
    same_region_gbps: float = 10.0
    inter_region_gbps: float = 5.0
    inter_cloud_gbps: float = 1.0

    def __post_init__(self) -> None:
        prices = [
            *self.internet_usd_per_gb.values(),
            *self.inter_region_usd_per_gb.values(),
            self.default_internet_usd_per_gb,
            self.default_inter_region_usd_per_gb,
        ]
        if any(not (math.isfinite(p) and p >= 0) for p in prices):
            raise ValueError("egress prices must be finite and non-negative")
        speeds = (self.same_region_gbps, self.inter_region_gbps, self.inter_cloud_gbps)
        if any(not (math.isfinite(s) and s > 0) for s in speeds):
            raise ValueError("bandwidths must be finite and positive")

    def internet(self, cloud: str) -> float:
        return self.internet_usd_per_gb.get(cloud, self.default_internet_usd_per_gb)

    def inter_region(self, cloud: str) -> float:
        return self.inter_region_usd_per_gb.get(cloud, self.default_inter_region_usd_per_gb)

    def link(self, source: Location, target: Location) -> Link:
        """The link from a placement at `source` to one at `target`, each (cloud, region)."""
        if source == target:
            return Link("same-region", 0.0, self.same_region_gbps)
        if source[0] == target[0]:
            return Link("inter-region", self.inter_region(source[0]), self.inter_region_gbps)
        return Link("inter-cloud", self.internet(source[0]), self.inter_cloud_gbps)
