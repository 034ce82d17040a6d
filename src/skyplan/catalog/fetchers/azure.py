"""Azure VM offers from the Azure Retail Prices API (public, no credentials).

    GET {endpoint}?$filter=serviceName eq 'Virtual Machines' and priceType eq 'Consumption'
        → {"Items": [{"armSkuName", "armRegionName", "retailPrice", "unitOfMeasure",
                      "meterName", "productName", "effectiveStartDate", ...}],
           "NextPageLink": "<absolute URL of the next page>" | null}

Pages are followed through `NextPageLink` until it is null. Kept: items priced per
"1 Hour" with an `armSkuName`; Windows products and "Low Priority" meters are dropped; a meter
whose name contains "Spot" gives the spot price, any other the on-demand price (the latest
`effectiveStartDate` wins when a size has several).

The API carries no vCPU, memory or GPU facts, so sizes are described by `SIZES` below; items
for sizes not in it are dropped and counted in a progress line.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from skyplan.catalog import schema as c
from skyplan.catalog.fetchers._http import get_json, shape_error

CLOUD = "azure"
DEFAULT_ENDPOINT = "https://prices.azure.com/api/retail/prices"
BASE_FILTER = "serviceName eq 'Virtual Machines' and priceType eq 'Consumption'"
#: Stop following NextPageLink after this many pages (the unfiltered VM price list is a few
#: thousand pages of 100 items; a loop longer than this is a server bug).
MAX_PAGES = 20_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Size:
    """What the Retail Prices API does not say about a VM size."""

    vcpus: float
    memory_gib: float
    accelerator: str | None = None
    accelerator_count: float | None = None
    accelerator_memory: float | None = None


def _series(names_vcpus_memory: list[tuple[str, float, float]]) -> dict[str, Size]:
    return {name: Size(vcpus, memory) for name, vcpus, memory in names_vcpus_memory}


#: VM sizes skyplan knows the shape of. Sources (Microsoft Learn, "Sizes in series" tables):
#:   Dsv5  https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/dsv5-series
#:   Esv5  https://learn.microsoft.com/azure/virtual-machines/sizes/memory-optimized/esv5-series
#:   Fsv2  https://learn.microsoft.com/azure/virtual-machines/sizes/compute-optimized/fsv2-series
#:         (there is no F v5 series; Fsv2 is the current general compute-optimized one)
#:   NC_A100_v4  .../sizes/gpu-accelerated/nca100v4-series   (A100 PCIe 80 GB)
#:   NCasT4_v3   .../sizes/gpu-accelerated/ncast4v3-series   (T4 16 GB)
#:   NCads_H100_v5 .../sizes/gpu-accelerated/ncadsh100v5-series (H100 NVL 94 GB)
#:   NDasrA100_v4 .../sizes/gpu-accelerated/ndasra100v4-series (8x A100 40 GB, 900 GiB)
#:   NDm_A100_v4  .../sizes/gpu-accelerated/ndma100v4-series  (8x A100 80 GB, 1900 GiB)
#:   ND_H100_v5   .../sizes/gpu-accelerated/ndh100v5-series   (8x H100 80 GB, 1900 GiB)
SIZES: dict[str, Size] = {
    **_series([(f"Standard_D{n}s_v5", n, 4 * n) for n in (2, 4, 8, 16, 32, 48, 64, 96)]),
    **_series([(f"Standard_E{n}s_v5", n, 8 * n) for n in (2, 4, 8, 16, 20, 32, 48, 64)]),
    **_series([("Standard_E96s_v5", 96, 672), ("Standard_E104is_v5", 104, 672)]),
    **_series([(f"Standard_F{n}s_v2", n, 2 * n) for n in (2, 4, 8, 16, 32, 48, 64, 72)]),
    "Standard_NC24ads_A100_v4": Size(24, 220, "A100-80GB", 1, 80),
    "Standard_NC48ads_A100_v4": Size(48, 440, "A100-80GB", 2, 80),
    "Standard_NC96ads_A100_v4": Size(96, 880, "A100-80GB", 4, 80),
    "Standard_NC4as_T4_v3": Size(4, 28, "T4", 1, 16),
    "Standard_NC8as_T4_v3": Size(8, 56, "T4", 1, 16),
    "Standard_NC16as_T4_v3": Size(16, 110, "T4", 1, 16),
    "Standard_NC64as_T4_v3": Size(64, 440, "T4", 4, 16),
    "Standard_NC40ads_H100_v5": Size(40, 320, "H100", 1, 94),
    "Standard_NC80adis_H100_v5": Size(80, 640, "H100", 2, 94),
    "Standard_ND96asr_v4": Size(96, 900, "A100", 8, 40),
    "Standard_ND96amsr_A100_v4": Size(96, 1900, "A100-80GB", 8, 80),
    "Standard_ND96isr_H100_v5": Size(96, 1900, "H100", 8, 80),
}


def first_url(endpoint: str, regions: list[str] | None) -> str:
    """The first page's URL: `endpoint` with the documented `$filter` (and a region clause)."""
    clause = BASE_FILTER
    if regions:
        either = " or ".join(f"armRegionName eq '{r}'" for r in dict.fromkeys(regions))
        clause += f" and ({either})"
    query = urllib.parse.urlencode({"$filter": clause}, quote_via=urllib.parse.quote)
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def fetch(
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Azure Linux VM offers (on-demand and spot) for the sizes in `SIZES`."""
    say = progress or (lambda _line: None)
    url: str | None = first_url(endpoint, regions)
    # (region, size) → kind ("price" / "spot") → (effectiveStartDate, price, page url)
    seen: dict[tuple[str, str], dict[str, tuple[str, float, str]]] = {}
    unknown: set[str] = set()
    pages = 0
    while url:
        pages += 1
        if pages > MAX_PAGES:
            raise shape_error(url, ValueError(f"more than {MAX_PAGES} pages; giving up"))
        page = get_json(url)
        try:
            items: list[dict[str, Any]] = page["Items"]
            for item in items:
                _take(item, url, seen, unknown)
            next_link = page.get("NextPageLink")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise shape_error(url, exc) from None
        if pages % 50 == 0:
            say(f"azure: {pages} pages read")
        url = str(next_link) if next_link else None

    if unknown:
        say(
            f"azure: dropped {len(unknown)} VM size(s) skyplan has no vCPU/memory specs for "
            f"(add them to skyplan.catalog.fetchers.azure.SIZES to keep them)"
        )
    rows = []
    today = _today()
    for (region, sku), kinds in sorted(seen.items()):
        size = SIZES[sku]
        price = kinds.get("price")
        spot = kinds.get("spot")
        rows.append(
            {
                c.CLOUD: CLOUD,
                c.REGION: region,
                c.ZONE: None,
                c.INSTANCE_TYPE: sku,
                c.ACCELERATOR: size.accelerator,
                c.ACCELERATOR_COUNT: size.accelerator_count,
                c.ACCELERATOR_MEMORY: size.accelerator_memory,
                c.VCPUS: size.vcpus,
                c.MEMORY_GIB: size.memory_gib,
                c.PRICE: price[1] if price else None,
                c.SPOT_PRICE: spot[1] if spot else None,
                c.ARCH: "x86_64",
                c.CAPACITY: None,
                c.GPU_ATTACHED: False,
                c.SOURCE: (price or spot or ("", 0.0, endpoint))[2],
                c.AS_OF: today,
            }
        )
    say(f"azure: {len(rows)} offers from {pages} page(s)")
    frame = pl.DataFrame(rows, schema=c.SCHEMA) if rows else c.empty()
    return c.conform(frame, origin="azure retail prices")


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _take(
    item: dict[str, Any],
    url: str,
    seen: dict[tuple[str, str], dict[str, tuple[str, float, str]]],
    unknown: set[str],
) -> None:
    sku = item.get("armSkuName") or ""
    region = item.get("armRegionName") or ""
    if not sku or not region:
        return
    if item.get("unitOfMeasure") != "1 Hour":
        return
    meter = str(item.get("meterName") or "")
    product = str(item.get("productName") or "")
    if "Low Priority" in meter or "Windows" in product:
        return
    if sku not in SIZES:
        unknown.add(sku)
        return
    price = float(item["retailPrice"])
    if price <= 0:
        return
    kind = "spot" if "Spot" in meter else "price"
    start = str(item.get("effectiveStartDate") or "")
    slot = seen.setdefault((region, sku), {})
    current = slot.get(kind)
    if current is None or start > current[0] or (start == current[0] and price < current[1]):
        slot[kind] = (start, price, url)
