"""Fetching JSON over HTTP(S) with the standard library, failures raised as `CatalogError`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from skyplan.errors import CatalogError

USER_AGENT = "skyplan-catalog-refresh"
TIMEOUT_S = 120.0


def get_json(url: str, *, timeout: float = TIMEOUT_S) -> Any:
    """GET `url` and decode its JSON body; any failure is a `CatalogError` naming the URL."""
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        raise CatalogError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise CatalogError(f"{url}: cannot fetch: {exc.reason}") from None
    except TimeoutError as exc:
        raise CatalogError(f"{url}: timed out after {timeout:g}s ({exc})") from None
    except OSError as exc:
        raise CatalogError(f"{url}: cannot fetch: {exc}") from None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{url}: response is not valid JSON: {exc}") from None


def shape_error(url: str, exc: BaseException) -> CatalogError:
    """A `CatalogError` for a response that is JSON but not in the documented shape."""
    detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
    return CatalogError(f"{url}: unexpected response: {detail}")
