"""Turning what libcloud raises for an EC2 call into skyplan's scoped backend errors.

EC2 says what went wrong in an error code (`InsufficientInstanceCapacity`, `VcpuLimitExceeded`,
…); libcloud puts it at the start of its exception's message (`"Code: message"`). The code, not
the HTTP status, decides the kind, and the kind decides the scope the failover loop blocks:

    capacity  → the zone (the region when the request named no zone)
    quota     → the region
    auth      → the whole backend
    transient → where the call went (the same place may work after a pause)
    invalid   → where the call went (an AMI problem: the region, since AMIs are regional)

Connection failures are transient. Anything that is neither a libcloud error nor an `OSError`
is a bug and is not translated.
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

CLOUD = "aws"

CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientCapacity",
        "InsufficientReservedInstanceCapacity",
        "Unsupported",  # the instance type is not offered in the requested zone
        "SpotMaxPriceTooLow",
    }
)
QUOTA_CODES = frozenset(
    {
        "VcpuLimitExceeded",
        "InstanceLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "VolumeLimitExceeded",
        "AddressLimitExceeded",
        "ResourceLimitExceeded",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
    }
)
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "OptInRequired",
        "Blocked",
        "PendingVerification",
        "ExpiredToken",
        "RequestExpired",  # the signature's clock is off by more than five minutes
    }
)

_CODE = re.compile(r"^\s*(?:Server\.|Client\.)?([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)*):\s?")


def split_code(text: str) -> tuple[str | None, str]:
    """`("Code", "message")` from libcloud's `"Code: message"` (first error only)."""
    first = text.strip().strip("'\"").splitlines()[0] if text.strip() else ""
    match = _CODE.match(first)
    if match is None:
        return None, first
    return match.group(1), first[match.end() :]


#: The codes by kind; the rest of the mapping (scopes, HTTP statuses) is shared with the other
#: libcloud clouds.
TABLE = ErrorTable(CLOUD, "EC2", CAPACITY_CODES, QUOTA_CODES, TRANSIENT_CODES, AUTH_CODES)


def kind_of(code: str) -> type[BackendError]:
    """The error class an EC2 error code maps to."""
    kind = TABLE.kind_of(code)
    if kind is InvalidRequestError and code.endswith("LimitExceeded"):
        return QuotaError  # every other `…LimitExceeded` is an account quota
    return kind


def from_code(code: str, message: str, region: str | None, zone: str | None) -> BackendError:
    kind = kind_of(code)
    # AMIs are regional: a bad one is bad in every zone of the region.
    scope = (
        Scope(CLOUD, region) if code.startswith("InvalidAMIID") else TABLE.scope(kind, region, zone)
    )
    return kind(message or code, scope, code)


def classify(
    exc: BaseException, region: str | None, zone: str | None, endpoint: str = "EC2"
) -> BackendError:
    """The skyplan error for `exc`, raised by a call to `region` (and `zone`, if it named one).

    Raises `exc` itself when it is neither a libcloud error nor a connection failure."""
    from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
    from libcloud.common.types import LibcloudError, MalformedResponseError, ProviderError
    from libcloud.compute.types import KeyPairError

    where = Scope(CLOUD, region, zone if region else None)
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, RateLimitReachedError):
        return TransientError("EC2 is throttling requests (HTTP 429)", where, "Throttling")
    if isinstance(exc, BaseHTTPError):
        code, message = split_code(str(exc.message))
        if code is not None:
            return from_code(code, message, region, zone)
        status = int(exc.code) if str(exc.code).isdigit() else 0
        return TABLE.by_status(status, message, region, zone)
    if isinstance(exc, KeyPairError):
        return InvalidRequestError(str(exc.value), where, "InvalidKeyPair.NotFound")
    if isinstance(exc, MalformedResponseError):
        return TransientError(f"{endpoint} did not answer in EC2's XML: {exc.value}", where)
    if isinstance(exc, ProviderError | LibcloudError):
        code, message = split_code(str(exc.value))
        if code is not None:
            return from_code(code, message, region, zone)
        if isinstance(exc, ProviderError) and exc.http_code in (401, 403):
            return AuthError(message or "EC2 refused the credentials", Scope(CLOUD))
        return TransientError(f"EC2 call failed: {message}", where)
    if isinstance(exc, OSError):  # requests' ConnectionError and timeouts are OSErrors
        return TransientError(f"cannot reach {endpoint}: {exc}", where)
    raise exc
