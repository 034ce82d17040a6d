"""What the libcloud-backed VM clouds (`gcp`, `azure`) share when they turn a provider's error
into skyplan's scoped backend errors: a table from error codes to kinds, the scope each kind
blocks, and the fallbacks when there is no code (the HTTP status, a connection failure).

    capacity  → the zone (the region when the call named no zone, or the cloud has none)
    quota     → the region
    auth      → the whole backend
    transient → where the call went (the same place may work after a pause)
    invalid   → where the call went

Each cloud's module (`gce_errors`, `azure_errors`) owns its codes and the exceptions its
libcloud driver raises; this module knows neither. (`ec2_errors` predates it and keeps its own
copy of the same rules.)
"""

from __future__ import annotations

from dataclasses import dataclass

from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    InvalidRequestError,
    QuotaError,
    Scope,
    TransientError,
)


@dataclass(frozen=True)
class ErrorTable:
    """One cloud's error codes by the kind of skyplan error they mean. A code in none of the
    sets is an `InvalidRequestError`: the request itself was refused."""

    cloud: str
    service: str  # how messages name the API: "GCE", "Azure"
    capacity: frozenset[str]
    quota: frozenset[str]
    transient: frozenset[str]
    auth: frozenset[str]

    def kind_of(self, code: str) -> type[BackendError]:
        for codes, kind in (
            (self.capacity, CapacityError),
            (self.quota, QuotaError),
            (self.transient, TransientError),
            (self.auth, AuthError),
        ):
            if code in codes:
                return kind
        return InvalidRequestError

    def scope(self, kind: type[BackendError], region: str | None, zone: str | None) -> Scope:
        """Where an error of `kind` holds, for a call to `region` (and `zone`)."""
        if kind is AuthError:
            return Scope(self.cloud)
        if kind is QuotaError:
            return Scope(self.cloud, region)
        return Scope(self.cloud, region, zone if region else None)

    def error(self, code: str, message: str, region: str | None, zone: str | None) -> BackendError:
        kind = self.kind_of(code)
        return kind(message or code, self.scope(kind, region, zone), code)

    def by_status(
        self, status: int, message: str, region: str | None, zone: str | None
    ) -> BackendError:
        """The error for an HTTP failure that carries no code the table knows."""
        where = self.scope(TransientError, region, zone)
        if status in (401, 403):
            return AuthError(
                f"{self.service} refused the request (HTTP {status}): {message}", Scope(self.cloud)
            )
        if status == 429:
            return TransientError(f"{self.service} is throttling requests: {message}", where)
        if status >= 500 or status == 0:
            return TransientError(f"{self.service} failed (HTTP {status or '?'}): {message}", where)
        return InvalidRequestError(
            f"{self.service} rejected the request (HTTP {status}): {message}", where
        )

    def unreachable(
        self, exc: BaseException, region: str | None, zone: str | None
    ) -> TransientError:
        """A connection failure or timeout (the call may or may not have taken effect)."""
        return TransientError(
            f"cannot reach {self.service}: {exc}", self.scope(TransientError, region, zone)
        )
