"""The one error tree of skyplan; every error a caller can act on is one of these.

    SkyplanError                      root; `exit_code` is what the CLI exits with
    ├── InputError                    the input is invalid: fix it and retry (exit 2)
    │   ├── TaskError                 a task YAML is invalid; carries located `Diagnostic`s
    │   ├── PolicyError               policy files do not parse or check; located, coded diagnostics
    │   └── CatalogError              a catalog cannot be read or does not fit the schema
    │   └── ClusterNotFound           a command names a cluster the store does not hold
    ├── PlacementError                the input is valid but cannot be satisfied (exit 1)
    │   ├── NoFeasiblePlacement       no offer meets a task's request; carries the reasons
    │   └── LaunchFailed              failover tried every place it could; carries the attempts
    ├── BackendError                  a backend could not do what was asked (exit 1); `scope`
    │   ├── RetryableBackendError     failover may go on
    │   │   ├── CapacityError         no capacity in a zone (or a region without zones)
    │   │   ├── QuotaError            a region's quota is used up
    │   │   └── TransientError        throttling, a dropped connection: the same place may work
    │   └── PermanentBackendError     retrying cannot help
    │       ├── AuthError             credentials or permissions: the whole backend is out
    │       └── InvalidRequestError   the backend rejects the request itself: never retried
    ├── ClusterStateError             the cluster is not in a state that allows the operation
    └── StateError                    the state store cannot be opened, migrated or locked
        └── LockTimeout               another process held a lock for too long

Errors render themselves (`str(err)`): file:line:col, the message, the offending line with a
caret, and a did-you-mean where one exists. Later layers (policy, backends) add their branches
here so callers keep catching one root.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skyplan.source import Source, Span


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice closest to `word` (case-insensitive), or None when nothing is close."""
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


class SkyplanError(Exception):
    """Root of every error skyplan raises on purpose."""

    exit_code = 2


class InputError(SkyplanError):
    """The input is invalid (bad YAML, bad field, bad catalog, bad flag)."""

    exit_code = 2


@dataclass(frozen=True)
class Diagnostic:
    """One located problem in an input file."""

    span: Span
    message: str
    field: str | None = None
    hint: str | None = None
    code: str = "SP001"
    severity: str = "error"
    slug: str | None = None

    def render(self, source: Source | None = None) -> str:
        where = str(self.span)
        if self.slug:
            where += f": {self.severity} {self.code} {self.slug}"
        head = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        parts = [head]
        if source is not None:
            snippet = source.snippet(self.span)
            if snippet:
                parts.append(snippet)
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


@dataclass
class TaskError(InputError):
    """A task file is invalid. Up to ten diagnostics, sorted by position."""

    diagnostics: Sequence[Diagnostic]
    source: Source | None = None
    extra: int = field(default=0)

    def __post_init__(self) -> None:
        ordered = sorted(
            self.diagnostics, key=lambda d: (d.span.file, d.span.line or 0, d.span.col or 0)
        )
        self.extra = max(0, len(ordered) - 10)
        self.diagnostics = ordered[:10]
        super().__init__(str(self))

    def __str__(self) -> str:
        text = "\n".join(d.render(self.source) for d in self.diagnostics)
        if self.extra:
            text += f"\n... and {self.extra} more problem(s)"
        return text


@dataclass
class PolicyError(InputError):
    """Policy files do not parse or check. Diagnostics carry a stable code; up to ten per file,
    sorted by position. `sources` maps file names to their text for the caret snippets."""

    diagnostics: Sequence[Diagnostic]
    sources: dict[str, Source] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ordered = sorted(
            self.diagnostics, key=lambda d: (d.span.file, d.span.line or 0, d.span.col or 0)
        )
        kept: list[Diagnostic] = []
        per_file: dict[str, int] = {}
        for diagnostic in ordered:
            count = per_file.get(diagnostic.span.file, 0)
            if count < 10:
                kept.append(diagnostic)
            per_file[diagnostic.span.file] = count + 1
        self.dropped = len(ordered) - len(kept)
        self.diagnostics = kept
        super().__init__(str(self))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def __str__(self) -> str:
        text = "\n".join(d.render(self.sources.get(d.span.file)) for d in self.diagnostics)
        if self.dropped:
            text += f"\n... and {self.dropped} more problem(s)"
        return text


class CatalogError(InputError):
    """A catalog could not be read, or its rows do not fit the catalog schema."""


class ClusterNotFound(InputError):
    """A command names a cluster that the state store does not hold."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        guess = did_you_mean(name, known)
        hint = f"; did you mean {guess!r}?" if guess else ""
        super().__init__(f"no cluster named {name!r}{hint} (see `skyplan status`)")


class JobNotFound(SkyplanError):
    """No job of that cluster, or no managed job, has that id or name. Exit 102, SkyPilot's
    NOT_FOUND, so scripts written for `sky logs` read it the same way."""

    exit_code = 102


class ClusterStateError(SkyplanError):
    """The cluster exists but its state does not allow the operation (exec on a stopped one)."""

    exit_code = 1


class PlacementError(SkyplanError):
    """The request is valid but cannot be satisfied."""

    exit_code = 1


@dataclass(frozen=True)
class Rejection:
    """How many offers one requirement removed, and where the request would have fit."""

    requirement: str
    removed: int
    remaining: int
    would_fit: str | None = None
    rule: str | None = None


class NoFeasiblePlacement(PlacementError):
    """No offer satisfies a task's request; `reasons` says which requirement removed what.
    Under a policy, `verdicts` holds every rule's `model.Verdict` (what each removed, which
    did not apply, and where each is written), as a placement's verdicts do."""

    def __init__(
        self,
        task: str | None,
        summary: str,
        reasons: Sequence[Rejection] = (),
        verdicts: Sequence[Any] = (),
    ) -> None:
        self.task = task
        self.summary = summary
        self.reasons = tuple(reasons)
        self.verdicts = tuple(verdicts)
        super().__init__(self._render())

    def _render(self) -> str:
        who = f"task {self.task!r}" if self.task else "the task"
        lines = [f"no feasible placement for {who}: {self.summary}"]
        for r in self.reasons:
            line = f"  - {r.requirement}: removed {r.removed:,} offer(s), {r.remaining:,} left"
            if r.would_fit:
                line += f"; {r.would_fit}"
            lines.append(line)
        return "\n".join(lines)


class StateError(SkyplanError):
    """The state store cannot be opened, migrated or locked (exit 1)."""

    exit_code = 1


class LockTimeout(StateError):
    """Another process held a state-store lock longer than the caller would wait."""


class LaunchFailed(PlacementError):
    """Failover ran out of places to try. `attempts` lists every try, in order."""

    def __init__(self, cluster: str, summary: str, attempts: Sequence[object] = ()) -> None:
        self.cluster = cluster
        self.summary = summary
        self.attempts = tuple(attempts)
        lines = [f"could not launch cluster {cluster!r}: {summary}"]
        lines += [f"  - {a}" for a in self.attempts]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Scope:
    """Where a backend error holds: a whole backend (`cloud` only), a region, or a zone.

    Failover blocklists the scope of a capacity, quota or auth error and re-plans outside it."""

    cloud: str
    region: str | None = None
    zone: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.cloud, self.region, self.zone) if p is not None)

    def covers(self, cloud: str, region: str | None, zone: str | None) -> bool:
        """True when a node in (cloud, region, zone) falls inside this scope."""
        if cloud != self.cloud:
            return False
        if self.region is not None and region != self.region:
            return False
        return self.zone is None or zone == self.zone


class BackendError(SkyplanError):
    """A backend could not do what was asked. `scope` says where the failure holds."""

    exit_code = 1
    retryable = False

    def __init__(self, message: str, scope: Scope | None = None, code: str | None = None) -> None:
        self.message = message
        self.scope = scope
        self.code = code
        where = f"{scope}: " if scope is not None else ""
        tag = f" [{code}]" if code else ""
        super().__init__(f"{where}{message}{tag}")


class RetryableBackendError(BackendError):
    """Failover may go on: elsewhere (capacity, quota) or here after a pause (transient)."""

    retryable = True


class CapacityError(RetryableBackendError):
    """No capacity for the request in a zone (or in a region that has no zones)."""


class QuotaError(RetryableBackendError):
    """A quota of the region is used up; other regions may have room."""


class TransientError(RetryableBackendError):
    """Throttling, a timeout or a dropped connection: the same place may work after a pause."""


class PermanentBackendError(BackendError):
    """Retrying cannot help."""


class AuthError(PermanentBackendError):
    """Credentials are missing or refused, or a permission is lacking: the backend is out."""


class InvalidRequestError(PermanentBackendError):
    """The backend rejects the request itself (bad image, unknown instance type)."""
