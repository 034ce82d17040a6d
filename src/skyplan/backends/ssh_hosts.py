"""The SSH pools' hosts as this machine sees them: surveyed, claimed and released.

The hosts hold the truth about who uses them: a host belongs to a cluster while its
`~/.skyplan/claim` names it (`{"cluster": …, "rank": …, "owner": …}`, created with `ln`, which
fails if the file exists, so two launches can never claim one host). `owner` names the skyplan
home (`<home>/ssh_owner`): another user's cluster of the same name is someone else's, never
reused, listed or deleted here.

This module owns the shell scripts that survey (shape, HOME, claim), claim and release a host,
runs them on many hosts in parallel, and keeps what this machine has seen: the last probe of
each host (reused for the TTLs the caller gives) and the last claims of this home it saw, in
`<home>/ssh_claims.json`, so a host that is down now can still be reported and released later.
It never reads the pool file and never makes nodes or offers: that is the `ssh` backend's.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from skyplan.backends.layout import teardown_script
from skyplan.backends.probe import PROBE_SCRIPT, HostShape, parse_probe
from skyplan.backends.ssh_pools import SshHost
from skyplan.errors import BackendError, TransientError

if TYPE_CHECKING:
    from skyplan.backends.ssh_runner import SshRunner

CLAIMS_CACHE = "ssh_claims.json"
OWNER_FILE = "ssh_owner"
_T = TypeVar("_T")
_R = TypeVar("_R")

_CLAIM_LINES = (
    'echo "home $HOME"; '
    "if [ -f ~/.skyplan/claim ]; then printf 'claim '; cat ~/.skyplan/claim; echo; fi"
)
_SURVEY = f"{PROBE_SCRIPT}\n{_CLAIM_LINES}"


def _claim_script(root: str, claim_text: str) -> str:
    """Create the claim file with `ln` (atomic, fails if it exists) and the cluster's directory;
    prints `claimed`, or `taken <the claim file>`."""
    return (
        'd=~/.skyplan; mkdir -p "$d" || exit 1; t="$d/claim.$$"; '
        f"printf '%s\\n' {shlex.quote(claim_text)} > \"$t\" || exit 1; "
        f'if ln "$t" "$d/claim" 2>/dev/null; then rm -f "$t"; mkdir -p {shlex.quote(root)}; '
        'echo claimed; else rm -f "$t"; printf \'taken \'; cat "$d/claim"; fi'
    )


def _release_script(root: str, claim_text: str) -> str:
    """Tear down the cluster's directory, then remove the claim if it is still `claim_text`."""
    return (
        f"{teardown_script(root)}; f=~/.skyplan/claim; "
        f'if [ "$(cat "$f" 2>/dev/null)" = {shlex.quote(claim_text)} ]; '
        'then rm -f "$f"; fi'
    )


@dataclass(frozen=True)
class Claim:
    """Who holds a host: rank `rank` of cluster `cluster` of the skyplan home `owner` (two
    users' clusters may share a name; neither may reuse or delete the other's hosts)."""

    cluster: str
    rank: int
    owner: str

    @property
    def text(self) -> str:
        """The claim file's exact content (without its newline)."""
        fields = {"cluster": self.cluster, "rank": self.rank, "owner": self.owner}
        return json.dumps(fields, sort_keys=True)

    @staticmethod
    def parse(text: str) -> Claim | None:
        try:
            data = json.loads(text)
            return Claim(str(data["cluster"]), int(data["rank"]), str(data.get("owner", "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class HostStatus:
    """What the last probe of one host found. `error` set: the host was not usable."""

    host: SshHost
    at: float
    shape: HostShape | None = None
    shape_at: float = 0.0
    home: str | None = None
    claim_text: str | None = None  # the claim file's content; None: the host is free
    error: BackendError | None = None

    @property
    def claim(self) -> Claim | None:
        return Claim.parse(self.claim_text) if self.claim_text is not None else None

    @property
    def free(self) -> bool:
        return self.error is None and self.claim_text is None and self.shape is not None

    def root(self, cluster: str) -> str:
        return f"{self.home}/.skyplan/clusters/{cluster}"


class SshHosts:
    """The hosts as this machine sees them; see the module docstring. Safe to share between
    threads.

    `connect` makes the runner for a host; it is kept (one per host) until `close`. The
    survey's own errors carry that runner's scope, like the runner's errors do."""

    def __init__(self, home: Path, connect: Callable[[SshHost], SshRunner]) -> None:
        self.home = home
        self._connect = connect
        self._lock = threading.Lock()
        self._runners: dict[str, SshRunner] = {}
        self._status: dict[str, HostStatus] = {}
        self._known: dict[str, dict[str, str]] | None = None
        self._owner: str | None = None

    @property
    def owner(self) -> str:
        """This skyplan home's name in claims (`user@machine/random`), made once and kept."""
        if self._owner is None:
            path = self.home / OWNER_FILE
            made = f"{getpass.getuser()}@{socket.gethostname()}/{uuid.uuid4().hex[:12]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(path, "x") as f:
                    f.write(made + "\n")
            except FileExistsError:
                pass
            self._owner = path.read_text().strip() or made
        return self._owner

    def ours(self, claim: Claim | None, cluster: str | None = None) -> bool:
        """True when `claim` is this home's (and names `cluster`, if given)."""
        return (
            claim is not None
            and claim.owner == self.owner
            and (cluster is None or claim.cluster == cluster)
        )

    def runner(self, host: SshHost) -> SshRunner:
        with self._lock:
            runner = self._runners.get(host.node_id)
            if runner is None:
                runner = self._connect(host)
                self._runners[host.node_id] = runner
            return runner

    # -- survey ---------------------------------------------------------------------------------

    def survey(
        self,
        hosts: Sequence[SshHost],
        *,
        fresh_claims: bool,
        ok_ttl: float,
        fail_ttl: float,
        timeout: float,
    ) -> list[HostStatus]:
        """The status of each host, probing those whose cached status is older than `ok_ttl`
        (a failure: `fail_ttl`; all reachable ones when `fresh_claims`). Probes run in
        parallel, each bounded by `timeout`."""
        now = time.monotonic()
        cached = {h.node_id: self._status.get(h.node_id) for h in hosts}

        def stale(status: HostStatus | None) -> bool:
            if status is None:
                return True
            age = now - status.at
            if status.error is not None:
                return age >= fail_ttl
            return fresh_claims or age >= ok_ttl

        todo = [h for h in hosts if stale(cached[h.node_id])]
        found = _parallel(
            lambda h: self._probe(h, cached[h.node_id], ok_ttl=ok_ttl, timeout=timeout), todo
        )
        with self._lock:
            for status in found:
                self._status[status.host.node_id] = status
        fresh = {s.host.node_id: s for s in found}
        statuses = [fresh.get(h.node_id) or cached[h.node_id] for h in hosts]
        result = [s for s in statuses if s is not None]
        self.remember(result)
        return result

    def _probe(
        self, host: SshHost, previous: HostStatus | None, *, ok_ttl: float, timeout: float
    ) -> HostStatus:
        """Run the survey on `host`: its shape (unless `previous` has a fresh one), HOME and
        claim. Never raises for the host's own failures: they land in `error`."""
        now = time.monotonic()
        keep_shape = (
            previous is not None and previous.shape is not None and now - previous.shape_at < ok_ttl
        )
        runner = self.runner(host)
        try:
            result = runner.run(_CLAIM_LINES if keep_shape else _SURVEY, timeout=timeout)
            if result.timed_out:
                runner.close()
                raise TransientError(
                    f"{host.address} did not answer the probe within {timeout:g}s "
                    "(host hung or overloaded?)",
                    runner.scope,
                )
            if result.exit_code != 0:
                raise TransientError(
                    f"the probe failed on {host.address} (exit {result.exit_code}): "
                    f"{result.output.strip()[-300:]}",
                    runner.scope,
                )
            values = dict(
                line.partition(" ")[::2] for line in result.output.splitlines() if " " in line
            )
            if keep_shape:
                assert previous is not None
                shape, shape_at = previous.shape, previous.shape_at
            else:
                shape, shape_at = parse_probe(result.output), now
        except BackendError as err:
            return HostStatus(host, now, error=err)
        except ValueError as err:
            return HostStatus(host, now, error=TransientError(str(err), runner.scope))
        return HostStatus(
            host,
            now,
            shape=shape,
            shape_at=shape_at,
            home=values.get("home"),
            claim_text=values.get("claim"),
        )

    @property
    def problems(self) -> list[tuple[str, str]]:
        """`(pool/host:port, why)` for each host the last probe could not use."""
        return sorted(
            (s.host.node_id, s.error.message) for s in self._status.values() if s.error is not None
        )

    # -- last known claims ----------------------------------------------------------------------

    def known_claims(self) -> dict[str, dict[str, str]]:
        """node id → the last claim of this home seen on it (`cluster`, `rank`, `root`,
        `instance_type`), as `<home>/ssh_claims.json` holds them."""
        if self._known is None:
            try:
                self._known = json.loads((self.home / CLAIMS_CACHE).read_text())
            except (OSError, ValueError):
                self._known = {}
        return self._known

    def remember(self, statuses: Iterable[HostStatus]) -> None:
        """Record the claims seen on reachable hosts (a hint for when they are down)."""
        with self._lock:
            known = self.known_claims()
            before = dict(known)
            for s in statuses:
                if s.error is not None or s.shape is None:
                    continue
                claim = s.claim
                if claim is None or not self.ours(claim):
                    known.pop(s.host.node_id, None)
                else:
                    known[s.host.node_id] = {
                        "cluster": claim.cluster,
                        "rank": str(claim.rank),
                        "root": s.root(claim.cluster),
                        "instance_type": s.shape.instance_type,
                    }
            if known != before:
                path = self.home / CLAIMS_CACHE
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
                tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
                tmp.replace(path)

    # -- claims ---------------------------------------------------------------------------------

    def claim(self, status: HostStatus, claim: Claim, *, timeout: float) -> HostStatus | None:
        """Claim a host for `claim.rank` of the cluster: its status with the claim (kept as the
        host's status), or None when someone else holds it (or it cannot be reached now)."""
        script = _claim_script(status.root(claim.cluster), claim.text)
        try:
            result = self.runner(status.host).run(script, timeout=timeout)
        except BackendError:
            return None
        first = result.output.strip()
        if result.exit_code != 0 or result.timed_out:
            return None
        if first == "claimed" or Claim.parse(first.removeprefix("taken ")) == claim:
            got = replace(status, claim_text=claim.text)
            with self._lock:
                self._status[got.host.node_id] = got
            return got
        return None

    def release(self, statuses: Iterable[HostStatus], cluster: str) -> list[str]:
        """Tear down the cluster's directory on each host and remove its claim (only if it still
        names the cluster). Returns `host: why` for each host where that failed."""

        def release(s: HostStatus) -> str | None:
            claim = s.claim
            if claim is None or s.error is not None:
                return None
            script = _release_script(s.root(cluster), claim.text)
            try:
                result = self.runner(s.host).run(script, timeout=60)
            except BackendError as err:
                return f"{s.host.node_id}: {err.message}"
            if result.exit_code != 0:
                return f"{s.host.node_id}: teardown failed: {result.output.strip()[-200:]}"
            released = replace(s, claim_text=None)
            with self._lock:
                self._status[s.host.node_id] = released
            self.remember([released])
            return None

        return [f for f in _parallel(release, list(statuses)) if f is not None]

    def close(self) -> None:
        """Close the SSH connections kept open (they are reopened when needed)."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.close()


def _parallel(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    if not items:
        return []
    if len(items) == 1:
        return [fn(items[0])]
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(fn, items))
