"""Turning what libcloud's GCE driver raises into skyplan's scoped backend errors.

libcloud surfaces a Compute Engine failure as a `GoogleBaseError` (or a subclass:
`QuotaExceededError`, `ResourceNotFoundError`, …) whose `code` is GCE's own: an operation that
finished with an error (`ZONE_RESOURCE_POOL_EXHAUSTED`, `QUOTA_EXCEEDED`, …, HTTP 200) or the
`reason` of a refused request (`rateLimitExceeded`, `authError`, `notFound`, …, HTTP 4xx/5xx).
Its `value` is the message, or the whole error item (a dict with `message`) for refused
requests. The code decides the kind (`libcloud_errors` draws the scopes):

    ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS], …POOL_EXHAUSTED, UNSUPPORTED_OPERATION,
    insufficientCapacity; a machine or accelerator type missing from the zone  → capacity (zone)
    QUOTA_EXCEEDED, quotaExceeded                          → quota (region; "globally": all)
    rateLimitExceeded, userRateLimitExceeded, RESOURCE_NOT_READY, backendError, … → transient
    authError, forbidden, insufficientPermissions, accessNotConfigured, …       → auth
    anything else                                                                → invalid

`UNSUPPORTED_OPERATION` counts as capacity because SkyPilot observed it for VMs preempted while
they were created; a request GCE cannot serve at all would fail the same way in every zone.
Anything that is neither a libcloud error nor an `OSError` is a bug and is not translated.
"""

from __future__ import annotations

import re
from typing import Any

from skyplan.backends.libcloud_errors import ErrorTable
from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    InvalidRequestError,
    QuotaError,
    Scope,
    TransientError,
)

CLOUD = "gcp"

TABLE = ErrorTable(
    cloud=CLOUD,
    service="GCE",
    capacity=frozenset(
        {
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            "UNSUPPORTED_OPERATION",
            "insufficientCapacity",
        }
    ),
    quota=frozenset({"QUOTA_EXCEEDED", "quotaExceeded"}),
    transient=frozenset(
        {
            "rateLimitExceeded",
            "userRateLimitExceeded",
            "RESOURCE_OPERATION_RATE_EXCEEDED",
            "RESOURCE_NOT_READY",  # e.g. the instance is still stopping
            "backendError",
            "internalError",
            "INTERNAL_ERROR",
        }
    ),
    auth=frozenset(
        {
            "authError",
            "forbidden",
            "insufficientPermissions",
            "accessNotConfigured",  # the Compute Engine API is not enabled in the project
            "IAM_PERMISSION_DENIED",
            "PERMISSION_DENIED",
            "UNAUTHENTICATED",
        }
    ),
)

# A type the zone does not offer: GCE answers 404 for `zones/<zone>/machineTypes/<type>`.
_ZONAL_TYPE = re.compile(r"zones/[^/]+/(machineTypes|acceleratorTypes)/")


def code_and_message(exc: Any) -> tuple[str | None, str]:
    """GCE's code and message from a `GoogleBaseError` (`code` may be a bare HTTP status)."""
    raw = getattr(exc, "code", None)
    code = str(raw) if raw not in (None, "") and not str(raw).isdigit() else None
    value = getattr(exc, "value", exc)
    if isinstance(value, dict):
        message = str(value.get("message") or value.get("reason") or value)
    else:
        message = str(value)
    return code, " ".join(message.split())


def from_code(
    code: str | None, message: str, status: int, region: str | None, zone: str | None
) -> BackendError:
    """The skyplan error for GCE's `code` (and `message`), from a call to `region`/`zone`."""
    if "is not found or access is unauthorized" in message:  # a zone this project may not use
        return InvalidRequestError(message, Scope(CLOUD, region, zone if region else None), code)
    if code is None:
        return TABLE.by_status(status, message, region, zone)
    if code in TABLE.quota:
        # "Quota 'GPUS_ALL_REGIONS' exceeded. Limit: 1.0 globally." holds in every region
        where = Scope(CLOUD) if "globally" in message else Scope(CLOUD, region)
        return QuotaError(message, where, code)
    if code == "notFound" and zone and _ZONAL_TYPE.search(message):
        return CapacityError(f"not offered in {zone}: {message}", Scope(CLOUD, region, zone), code)
    if "RESOURCE_POOL_EXHAUSTED" in code:
        return CapacityError(message, TABLE.scope(CapacityError, region, zone), code)
    return TABLE.error(code, message, region, zone)


def classify(exc: BaseException, region: str | None, zone: str | None) -> BackendError:
    """The skyplan error for `exc`, raised by a call to `region` (and `zone`, if it named one).

    Raises `exc` itself when it is neither a libcloud error nor a connection failure."""
    from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
    from libcloud.common.google import GoogleAuthError, GoogleBaseError, ResourceNotFoundError
    from libcloud.common.types import LibcloudError

    where = TABLE.scope(TransientError, region, zone)
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, GoogleAuthError):
        return AuthError(f"cannot authenticate to GCE: {exc.value}", Scope(CLOUD), "authError")
    if isinstance(exc, GoogleBaseError):
        code, message = code_and_message(exc)
        if code is None and isinstance(exc, ResourceNotFoundError):
            code = "notFound"
        status = int(exc.http_code) if str(exc.http_code).isdigit() else 0
        return from_code(code, message, status, region, zone)
    if isinstance(exc, RateLimitReachedError):
        return TransientError("GCE is throttling requests (HTTP 429)", where, "rateLimitExceeded")
    if isinstance(exc, BaseHTTPError):
        status = int(exc.code) if str(exc.code).isdigit() else 0
        return TABLE.by_status(status, str(exc.message), region, zone)
    if isinstance(exc, LibcloudError):  # e.g. "Job did not complete in 180 seconds"
        return TransientError(f"GCE call failed: {exc.value}", where)
    if isinstance(exc, OSError):  # requests' ConnectionError and timeouts are OSErrors
        return TABLE.unreachable(exc, region, zone)
    raise exc
