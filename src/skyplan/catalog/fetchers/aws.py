"""AWS EC2 on-demand offers from the AWS Price List Bulk API (public, no credentials).

    GET {endpoint}/offers/v1.0/aws/AmazonEC2/current/region_index.json
        → {"regions": {"us-east-1": {"regionCode": ..., "currentVersionUrl": "/offers/..."}}}
    GET {endpoint}{currentVersionUrl}          (one offer file per region)
        → {"publicationDate": ..., "products": {sku: {...}}, "terms": {"OnDemand": {...}}}

Kept: products with productFamily "Compute Instance" whose attributes say operatingSystem
Linux, tenancy Shared, preInstalledSw NA and capacitystatus Used (when the attribute is
present), priced by their OnDemand term's USD `pricePerUnit` per hour. Specs come from the
product attributes (`vcpu`, `memory` "16 GiB", `gpu`); accelerator names from
`aws_families`. Spot prices are not in the Price List; `spot_price` is null.

Each region's offer file is large (hundreds of MB for us-east-1); it is downloaded and parsed
one region at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import polars as pl

from skyplan.catalog import schema as c
from skyplan.catalog.fetchers import aws_families
from skyplan.catalog.fetchers._http import get_json, shape_error
from skyplan.errors import CatalogError, did_you_mean

CLOUD = "aws"
DEFAULT_ENDPOINT = "https://pricing.us-east-1.amazonaws.com"
INDEX_PATH = "/offers/v1.0/aws/AmazonEC2/current/region_index.json"

Progress = Callable[[str], None]


def fetch(
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """EC2 Linux on-demand offers for `regions` (default: every region in the index)."""
    say = progress or (lambda _line: None)
    base = endpoint.rstrip("/")
    index_url = base + INDEX_PATH
    say(f"aws: reading region index {index_url}")
    index = get_json(index_url)
    try:
        available: dict[str, Any] = index["regions"]
        urls = {name: str(entry["currentVersionUrl"]) for name, entry in available.items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise shape_error(index_url, exc) from None

    chosen = sorted(urls) if regions is None else list(dict.fromkeys(regions))
    for region in chosen:
        if region not in urls:
            guess = did_you_mean(region, urls)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise CatalogError(f"aws: region {region!r} is not in the price list index{hint}")

    frames = []
    for number, region in enumerate(chosen, 1):
        path = urls[region]
        url = path if path.startswith(("http://", "https://")) else base + path
        say(f"aws: [{number}/{len(chosen)}] downloading {region} offers from {url}")
        offer = get_json(url)
        try:
            frame = _parse_offer(offer, region=region, url=url, say=say)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise shape_error(url, exc) from None
        say(f"aws: {region}: {frame.height} offers")
        frames.append(frame)
    if not frames:
        return c.empty()
    return c.conform(pl.concat(frames), origin="aws price list")


def _on_demand_price(terms: dict[str, Any], sku: str) -> float | None:
    """The USD hourly price of `sku`'s OnDemand term, or None when it has none."""
    for offer in terms.get(sku, {}).values():
        for dimension in offer.get("priceDimensions", {}).values():
            unit = str(dimension.get("unit", "")).lower()
            if unit not in ("hrs", "hours", "hour"):
                continue
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is None:
                continue
            return float(usd)
    return None


def _parse_offer(
    offer: dict[str, Any], *, region: str, url: str, say: Progress | None = None
) -> pl.DataFrame:
    products: dict[str, Any] = offer["products"]
    on_demand: dict[str, Any] = offer["terms"]["OnDemand"]
    published = str(offer.get("publicationDate") or "")[:10]
    as_of = published or dt.datetime.now(dt.UTC).date().isoformat()

    best: dict[str, tuple[float, dict[str, object]]] = {}
    unknown: set[str] = set()
    for sku, product in products.items():
        if product.get("productFamily") != "Compute Instance":
            continue
        attrs: dict[str, Any] = product["attributes"]
        if (
            attrs.get("operatingSystem") != "Linux"
            or attrs.get("tenancy") != "Shared"
            or attrs.get("preInstalledSw", "NA") != "NA"
            or attrs.get("capacitystatus", "Used") != "Used"
        ):
            continue
        price = _on_demand_price(on_demand, sku)
        if price is None or price <= 0:
            continue
        instance_type = str(attrs["instanceType"])
        previous = best.get(instance_type)
        if previous is not None and previous[0] <= price:
            continue
        try:
            accel = aws_families.accelerator_for(instance_type, attrs.get("gpu"))
        except ValueError:
            unknown.add(instance_type)  # an accelerator family, but no count: leave it out
            continue
        best[instance_type] = (
            price,
            {
                c.CLOUD: CLOUD,
                c.REGION: str(attrs.get("regionCode") or region),
                c.ZONE: None,
                c.INSTANCE_TYPE: instance_type,
                c.ACCELERATOR: accel[0] if accel else None,
                c.ACCELERATOR_COUNT: accel[1] if accel else None,
                c.ACCELERATOR_MEMORY: accel[2] if accel else None,
                c.VCPUS: float(str(attrs["vcpu"]).replace(",", "")),
                c.MEMORY_GIB: aws_families.parse_memory_gib(str(attrs["memory"])),
                c.PRICE: price,
                c.SPOT_PRICE: None,
                c.ARCH: aws_families.arch_for(instance_type, attrs.get("physicalProcessor")),
                c.CAPACITY: None,
                c.GPU_ATTACHED: False,
                c.SOURCE: url,
                c.AS_OF: as_of,
            },
        )
    if unknown and say is not None:
        say(
            f"aws: {region}: skipped {len(unknown)} accelerator instance type(s) with no known "
            f"accelerator count: {', '.join(sorted(unknown))}"
        )
    rows = [best[name][1] for name in sorted(best)]
    return pl.DataFrame(rows, schema=c.SCHEMA) if rows else c.empty()
