"""Turning what libcloud's Azure (ARM) driver raises into skyplan's scoped backend errors.

libcloud surfaces a refused Azure Resource Manager call as a `BaseHTTPError` whose message is
`"[Code] message"` (`[SkuNotAvailable] The requested size …`), a throttled one (HTTP 429) as a
`RateLimitReachedError` without the body, and a refused token request as a `BaseHTTPError`
whose message is Azure AD's `error_description` (`AADSTS7000215: Invalid client secret …`). A VM
whose allocation fails after the create call was accepted ends in the `Failed` provisioning
state; `azure_group` reads its code (`ProvisioningState/failed/AllocationFailed`) from the
instance view and classifies it here too. The code decides the kind:

    AllocationFailed, ZonalAllocationFailed, Overconstrained…, SkuNotAvailable → capacity
    QuotaExceeded; OperationNotAllowed when its message is about a quota         → quota
    TooManyRequests, …Throttled, RetryableError, InternalServerError, …          → transient
    AuthorizationFailed, InvalidAuthenticationToken, SubscriptionNotFound, AADSTS… → auth
    ResourceGroupNotFound                            → invalid, for the whole backend
    anything else                                    → invalid, for the region

Azure has zones, but the `azure` backend places VMs by region only (libcloud 3.9.1 cannot ask
for a zone), so capacity is scoped to the region. Anything that is neither a libcloud error nor
an `OSError` is a bug and is not translated.
"""

from __future__ import annotations

import re

from skyplan.backends.libcloud_errors import ErrorTable
from skyplan.errors import (
    AuthError,
    BackendError,
    InvalidRequestError,
    QuotaError,
    Scope,
    TransientError,
)

CLOUD = "azure"

TABLE = ErrorTable(
    cloud=CLOUD,
    service="Azure",
    capacity=frozenset(
        {
            "AllocationFailed",
            "ZonalAllocationFailed",
            "OverconstrainedAllocationRequest",
            "OverconstrainedZonalAllocationRequest",
            "SkuNotAvailable",  # the size is not offered (or restricted) in the region
        }
    ),
    quota=frozenset({"QuotaExceeded", "ResourceQuotaExceeded"}),
    transient=frozenset(
        {
            "TooManyRequests",
            "SubscriptionRequestsThrottled",
            "RetryableError",
            "InternalServerError",
            "InternalExecutionError",
            "ServerTimeout",
            "GatewayTimeout",
            "ServiceUnavailable",
            "AnotherOperationInProgress",
        }
    ),
    auth=frozenset(
        {
            "AuthorizationFailed",
            "LinkedAuthorizationFailed",
            "InvalidAuthenticationToken",
            "InvalidAuthenticationTokenTenant",
            "AuthenticationFailed",
            "ExpiredAuthenticationToken",
            "SubscriptionNotFound",
            "InvalidSubscriptionId",
            "ReadOnlyDisabledSubscription",
            "MissingSubscriptionRegistration",  # Microsoft.Compute/Network not registered
        }
    ),
)

_BRACKETED = re.compile(r"^\s*\[([A-Za-z][\w.]*)\]\s*(.*)$", re.S)
_AAD = re.compile(r"^\s*(AADSTS\d+):")


def split_code(text: str) -> tuple[str | None, str]:
    """`("Code", "message")` from libcloud's `"[Code] message"`; `(None, text)` without one."""
    match = _BRACKETED.match(text)
    if match is None:
        return None, " ".join(text.split())
    return match.group(1), " ".join(match.group(2).split())


def from_code(code: str | None, message: str, status: int, region: str | None) -> BackendError:
    """The skyplan error for Azure's `code` (and `message`), from a call to `region`."""
    if code is None:
        aad = _AAD.match(message)
        if aad is not None:  # Azure AD refused the service principal
            return AuthError(f"Azure AD refused the credentials: {message}", Scope(CLOUD), aad[1])
        return TABLE.by_status(status, message, region, None)
    if code == "OperationNotAllowed" and "quota" in message.lower():
        return QuotaError(message, Scope(CLOUD, region), code)
    if code == "ResourceGroupNotFound":  # the configured group: no other region has it either
        return InvalidRequestError(message, Scope(CLOUD), code)
    return TABLE.error(code, message, region, None)


def classify(exc: BaseException, region: str | None) -> BackendError:
    """The skyplan error for `exc`, raised by a call to `region` (None: not region-bound).

    Raises `exc` itself when it is neither a libcloud error nor a connection failure."""
    from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
    from libcloud.common.types import LibcloudError

    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, RateLimitReachedError):  # libcloud drops the body of a 429
        return TransientError(
            "Azure is throttling requests (HTTP 429)",
            TABLE.scope(TransientError, region, None),
            "TooManyRequests",
        )
    if isinstance(exc, BaseHTTPError):
        code, message = split_code(str(exc.message))
        status = int(exc.code) if str(exc.code).isdigit() else 0
        return from_code(code, message, status, region)
    if isinstance(exc, LibcloudError):
        code, message = split_code(str(exc.value))
        if code is not None:
            return from_code(code, message, 0, region)
        return TransientError(
            f"Azure call failed: {message}", TABLE.scope(TransientError, region, None)
        )
    if isinstance(exc, OSError):  # requests' ConnectionError and timeouts are OSErrors
        return TABLE.unreachable(exc, region, None)
    raise exc
