"""`skyplan catalog refresh`: rebuild a cloud's offers from public price data.

    aws           AWS Price List Bulk API (network; no credentials)
    azure         Azure Retail Prices API (network; no credentials)
    aws-libcloud  the EC2 price data apache-libcloud ships (offline)

Every refresher returns a frame that passes `schema.conform`; every failure (network, HTTP
status, malformed JSON, unexpected shape, unknown cloud or region) is a `CatalogError`.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
from collections.abc import Callable

import polars as pl

from skyplan.catalog import schema as c
from skyplan.errors import CatalogError, did_you_mean

Progress = Callable[[str], None]


def _aws(
    *,
    endpoint: str | None = None,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    from skyplan.catalog.fetchers import aws

    return aws.fetch(endpoint=endpoint or aws.DEFAULT_ENDPOINT, regions=regions, progress=progress)


def _azure(
    *,
    endpoint: str | None = None,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    from skyplan.catalog.fetchers import azure

    return azure.fetch(
        endpoint=endpoint or azure.DEFAULT_ENDPOINT, regions=regions, progress=progress
    )


def _aws_libcloud(
    *,
    endpoint: str | None = None,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    from skyplan.catalog.fetchers import libcloud_ec2

    if importlib.util.find_spec("libcloud") is None:
        raise CatalogError(
            "aws-libcloud reads apache-libcloud's bundled prices, and apache-libcloud is not"
            " installed: pip install 'skyplan[aws]'"
        )
    if endpoint is not None:
        raise CatalogError("aws-libcloud reads libcloud's bundled data; it takes no endpoint")
    frame = libcloud_ec2.build(regions=regions, progress=progress)
    if regions:
        missing = sorted(set(regions) - set(frame.get_column(c.REGION).unique()))
        if missing:
            raise CatalogError(f"aws-libcloud: no prices for region(s) {', '.join(missing)}")
    return frame


#: cloud name → refresher(*, endpoint, regions, progress) → conformed frame.
REFRESHERS: dict[str, Callable[..., pl.DataFrame]] = {
    "aws": _aws,
    "azure": _azure,
    "aws-libcloud": _aws_libcloud,
}


def refresh(
    cloud: str,
    *,
    endpoint: str | None = None,
    regions: list[str] | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Fetch `cloud`'s current offers; see the module docstring for the sources."""
    refresher = REFRESHERS.get(cloud)
    if refresher is None:
        guess = did_you_mean(cloud, REFRESHERS)
        hint = f"; did you mean {guess!r}?" if guess else ""
        known = ", ".join(sorted(REFRESHERS))
        raise CatalogError(f"no catalog refresher for cloud {cloud!r}{hint} (known: {known})")
    where = f" from {endpoint}" if endpoint else ""
    try:
        frame: pl.DataFrame = refresher(endpoint=endpoint, regions=regions, progress=progress)
    except CatalogError:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise CatalogError(f"{cloud}: cannot fetch prices{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{cloud}: price data{where} is not valid JSON: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CatalogError(f"{cloud}: unexpected price data{where}: {exc!r}") from None
    return c.conform(frame, origin=f"catalog refresh {cloud}")
