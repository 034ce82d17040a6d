"""The `Backend` protocol every adapter implements, and the `CommandRunner` it hands out.

A backend is thin: it creates, lists, stops and deletes nodes tagged with a cluster name, and
runs commands on them. It never plans, never touches the state store, and never retries on its
own: it raises a scoped `BackendError` (capacity → zone, quota → region, auth → the whole
backend, transient → retry here) and the runtime's failover loop decides what to do.

Every node a backend creates carries its cluster's tag before the call returns, so `owned()`
can always find it again: a launch killed half-way leaves nothing the runtime cannot list and
delete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from skyplan.model.node import BackendCheck, Capabilities, Node, PoolOffer, ProvisionRequest

#: Called with each line of output (without its newline) as a command produces it.
LineSink = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """How a command ended. `output` holds what it printed (stdout and stderr, interleaved)
    unless it was streamed to a sink; `timed_out` means it was killed at its timeout."""

    exit_code: int
    output: str = ""
    timed_out: bool = False


@runtime_checkable
class CommandRunner(Protocol):
    """Runs shell commands on one node and copies files to it."""

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        sink: LineSink | None = None,
    ) -> RunResult:
        """Run `command` with `bash -c` on the node. Raises `TransientError` when the node
        cannot be reached (the command may not have run), never for a non-zero exit."""
        ...

    def put(self, local: Path, remote: str, skip: Callable[[str], bool] | None = None) -> None:
        """Copy a local file or directory (recursively) to `remote` on the node; `~` at its
        start is the node's home. Creates parent directories. `skip(path)` leaves out a path
        relative to `local` (POSIX form; a directory with a trailing `/`, not descended)."""
        ...

    def close(self) -> None:
        """Release connections; the runner may be used again afterwards (it reconnects)."""
        ...


@runtime_checkable
class Backend(Protocol):
    """One kind of infrastructure (`local`, `ssh`, `aws`, `kubernetes`, …)."""

    #: The cloud name in catalogs and `infra` strings.
    name: str
    capabilities: Capabilities

    def check(self) -> BackendCheck:
        """Is this backend usable here (credentials, endpoint, configuration), and if not why."""
        ...

    def offers(self) -> Sequence[PoolOffer]:
        """Node shapes discovered on machines this backend manages, with free capacity. Empty
        for backends whose offers come from the price catalog (clouds)."""
        ...

    def provision(self, request: ProvisionRequest) -> list[Node]:
        """Create (or find, if they exist) the request's nodes, ranks 0..n-1, tagged with the
        cluster, and wait until they are running. Raises a scoped `BackendError`; nodes it
        created before failing stay tagged so `terminate` finds them."""
        ...

    def nodes(self, cluster: str) -> list[Node]:
        """The cluster's nodes as the backend sees them now (by tag), sorted by rank."""
        ...

    def runner(self, node: Node) -> CommandRunner:
        """A runner for commands on `node`."""
        ...

    def stop(self, cluster: str) -> None:
        """Stop the cluster's nodes, keeping their disks (only with the `stop` capability)."""
        ...

    def start(self, cluster: str) -> list[Node]:
        """Start a stopped cluster's nodes again and return them."""
        ...

    def terminate(self, cluster: str) -> None:
        """Delete every node tagged with `cluster`. Idempotent: nothing left is not an error."""
        ...

    def owned(self) -> dict[str, list[Node]]:
        """Every node this backend holds that carries a skyplan cluster tag, by cluster."""
        ...


@dataclass(frozen=True)
class BackendSettings:
    """What every backend is built from: skyplan's home directory (its configuration, keys and
    known hosts live there) and whether unknown SSH host keys may be trusted once."""

    home: Path
    trust_new_host_keys: bool = False


BackendFactory = Callable[[BackendSettings], Backend]
