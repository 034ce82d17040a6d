"""The `ssh` backend: existing machines, listed in pools, lent to one cluster at a time.

A pool (`infra: ssh/<pool>`) is a set of hosts in `ssh_node_pools.yaml` (see `ssh_pools`).
Hosts are probed over SSH for their shape (CPUs, memory, GPUs); a pool offers one shape per
kind of host it has, priced at the pool's `price` per host.

The hosts hold the truth about who uses them: a host belongs to a cluster while its
`~/.skyplan/claim` names it (`{"cluster": …, "rank": …, "owner": …}`, created with `ln`, which
fails if the file exists, so two launches can never claim one host). `owner` names the skyplan
home (`<home>/ssh_owner`): another user's cluster of the same name is someone else's, never
reused, listed or deleted here. A node's files live in
`~/.skyplan/clusters/<cluster>` (`node.extra["root"]`, absolute). This machine only keeps
hints: probe results for a minute (failures for ten seconds), and the last claims it saw in
`<home>/ssh_claims.json`, so a host that is down now can still be reported (UNREACHABLE) and
is not forgotten by `terminate`.

The backend never stops, reboots or reconfigures a host; `terminate` kills the cluster's jobs,
deletes its directory and removes the claim.
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
from skyplan.backends.ssh_pools import SshHost, SshPool, load_pools, pools_path
from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    InputError,
    InvalidRequestError,
    Scope,
    TransientError,
    did_you_mean,
)
from skyplan.model.node import (
    BackendCheck,
    Capabilities,
    Capability,
    Node,
    NodeStatus,
    PoolOffer,
    ProvisionRequest,
)

if TYPE_CHECKING:
    from skyplan.backends.ssh_runner import SshRunner

NAME = "ssh"
KNOWN_HOSTS = "ssh_known_hosts"
CLAIMS_CACHE = "ssh_claims.json"
OWNER_FILE = "ssh_owner"
_T = TypeVar("_T")
_R = TypeVar("_R")

_CLAIM_LINES = (
    'echo "home $HOME"; '
    "if [ -f ~/.skyplan/claim ]; then printf 'claim '; cat ~/.skyplan/claim; echo; fi"
)
_SURVEY = f"{PROBE_SCRIPT}\n{_CLAIM_LINES}"


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


class SshBackend:
    """Existing machines reached over SSH; see the module docstring."""

    name = NAME
    capabilities = Capabilities(
        missing={
            Capability.STOP: (
                "existing machines cannot be stopped by skyplan; use `skyplan down` to release them"
            ),
            Capability.SPOT: "existing machines are never preempted",
            Capability.AUTOSTOP: (
                "existing machines cannot be stopped; autostop can only tear down (`--down`)"
            ),
        }
    )

    #: How long a probe result is reused: a host's shape and claim, and a failure.
    ok_ttl = 60.0
    fail_ttl = 10.0

    def __init__(
        self, home: Path, *, trust_new_hosts: bool = False, probe_timeout: float = 5.0
    ) -> None:
        self.home = home
        self.pools_file = pools_path(home)
        self.known_hosts = home / KNOWN_HOSTS
        self.trust_new_hosts = trust_new_hosts
        self.probe_timeout = probe_timeout
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

    def _ours(self, claim: Claim | None, cluster: str | None = None) -> bool:
        return (
            claim is not None
            and claim.owner == self.owner
            and (cluster is None or claim.cluster == cluster)
        )

    # -- pools and probes -----------------------------------------------------------------------

    def _pools(self) -> dict[str, SshPool]:
        """The pool file's pools; none when it is absent. A bad file raises `InputError`."""
        try:
            return load_pools(self.pools_file)
        except FileNotFoundError:
            return {}

    def _pool(self, name: str) -> SshPool:
        pools = self._pools()
        if name in pools:
            return pools[name]
        if not pools:
            raise InvalidRequestError(
                f"no SSH node pool {name!r}: no SSH node pools: write {self.pools_file}",
                Scope(NAME),
            )
        hint = did_you_mean(name, pools)
        raise InvalidRequestError(
            f"no SSH node pool {name!r} in {self.pools_file}"
            + (f"; did you mean {hint!r}?" if hint else f" (pools: {', '.join(sorted(pools))})"),
            Scope(NAME),
        )

    def _all_hosts(self) -> list[SshHost]:
        return [h for pool in self._pools().values() for h in pool.hosts]

    def _runner(self, host: SshHost) -> SshRunner:
        from skyplan.backends.ssh_runner import SshRunner

        with self._lock:
            runner = self._runners.get(host.node_id)
            if runner is None:
                runner = SshRunner(
                    host.ip,
                    host.port,
                    host.user,
                    host.identity_file,
                    known_hosts=self.known_hosts,
                    trust_new=self.trust_new_hosts,
                    connect_timeout=self.probe_timeout,
                    scope=Scope(NAME, host.pool),
                )
                self._runners[host.node_id] = runner
            return runner

    def _probe(self, host: SshHost, previous: HostStatus | None) -> HostStatus:
        """Run the survey on `host`: its shape (unless `previous` has a fresh one), HOME and
        claim. Never raises for the host's own failures: they land in `error`."""
        now = time.monotonic()
        keep_shape = (
            previous is not None
            and previous.shape is not None
            and now - previous.shape_at < self.ok_ttl
        )
        runner = self._runner(host)
        try:
            result = runner.run(_CLAIM_LINES if keep_shape else _SURVEY, timeout=self.probe_timeout)
            if result.timed_out:
                runner.close()
                raise TransientError(
                    f"{host.address} did not answer the probe within {self.probe_timeout:g}s "
                    "(host hung or overloaded?)",
                    Scope(NAME, host.pool),
                )
            if result.exit_code != 0:
                raise TransientError(
                    f"the probe failed on {host.address} (exit {result.exit_code}): "
                    f"{result.output.strip()[-300:]}",
                    Scope(NAME, host.pool),
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
            return HostStatus(host, now, error=TransientError(str(err), Scope(NAME, host.pool)))
        return HostStatus(
            host,
            now,
            shape=shape,
            shape_at=shape_at,
            home=values.get("home"),
            claim_text=values.get("claim"),
        )

    def _survey(self, hosts: Sequence[SshHost], *, fresh_claims: bool) -> list[HostStatus]:
        """The status of each host, probing those whose cached status is too old (all reachable
        ones when `fresh_claims`). Probes run in parallel, each bounded by `probe_timeout`."""
        now = time.monotonic()
        cached = {h.node_id: self._status.get(h.node_id) for h in hosts}

        def stale(status: HostStatus | None) -> bool:
            if status is None:
                return True
            age = now - status.at
            if status.error is not None:
                return age >= self.fail_ttl
            return fresh_claims or age >= self.ok_ttl

        todo = [h for h in hosts if stale(cached[h.node_id])]
        found = _parallel(lambda h: self._probe(h, cached[h.node_id]), todo)
        with self._lock:
            for status in found:
                self._status[status.host.node_id] = status
        fresh = {s.host.node_id: s for s in found}
        statuses = [fresh.get(h.node_id) or cached[h.node_id] for h in hosts]
        result = [s for s in statuses if s is not None]
        self._remember(result)
        return result

    @property
    def problems(self) -> list[tuple[str, str]]:
        """`(pool/host:port, why)` for each host the last probe could not use."""
        return sorted(
            (s.host.node_id, s.error.message) for s in self._status.values() if s.error is not None
        )

    # -- last known claims ----------------------------------------------------------------------

    def _known_claims(self) -> dict[str, dict[str, str]]:
        if self._known is None:
            try:
                self._known = json.loads((self.home / CLAIMS_CACHE).read_text())
            except (OSError, ValueError):
                self._known = {}
        return self._known

    def _remember(self, statuses: Iterable[HostStatus]) -> None:
        """Record the claims seen on reachable hosts (a hint for when they are down)."""
        with self._lock:
            known = self._known_claims()
            before = dict(known)
            for s in statuses:
                if s.error is not None or s.shape is None:
                    continue
                claim = s.claim
                if claim is None or not self._ours(claim):
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

    # -- nodes ----------------------------------------------------------------------------------

    def _node(
        self,
        host: SshHost,
        cluster: str,
        rank: int,
        root: str,
        itype: str,
        status: NodeStatus = NodeStatus.RUNNING,
    ) -> Node:
        return Node(
            cluster=cluster,
            rank=rank,
            node_id=host.node_id,
            ip=host.ip,
            status=status,
            cloud=NAME,
            region=host.pool,
            instance_type=itype,
            extra={
                "host": host.ip,
                "port": str(host.port),
                "user": host.user,
                "identity_file": host.identity_file or "",
                "pool": host.pool,
                "root": root,
            },
        )

    def _status_node(self, s: HostStatus) -> Node | None:
        """The node a host is, by its fresh claim or (unreachable) by the last known one."""
        claim = s.claim
        if s.error is None and claim is not None and self._ours(claim) and s.shape is not None:
            return self._node(
                s.host, claim.cluster, claim.rank, s.root(claim.cluster), s.shape.instance_type
            )
        known = self._known_claims().get(s.host.node_id)
        if s.error is not None and known is not None:
            return self._node(
                s.host,
                known["cluster"],
                int(known["rank"]),
                known["root"],
                known["instance_type"],
                NodeStatus.UNREACHABLE,
            )
        return None

    def _claimed(self) -> dict[str, list[Node]]:
        found: dict[str, list[Node]] = {}
        for s in self._survey(self._all_hosts(), fresh_claims=True):
            node = self._status_node(s)
            if node is not None:
                found.setdefault(node.cluster, []).append(node)
        return {c: sorted(ns, key=lambda n: n.rank) for c, ns in sorted(found.items())}

    def nodes(self, cluster: str) -> list[Node]:
        """The hosts whose claim names `cluster` (RUNNING), plus hosts that cannot be reached
        now but whose last claim this machine saw named it (UNREACHABLE). A host that was
        claimed from another machine and has been down ever since this one started looking is
        not listed: only the host itself knows."""
        return self._claimed().get(cluster, [])

    def owned(self) -> dict[str, list[Node]]:
        return self._claimed()

    def runner(self, node: Node) -> SshRunner:
        """A new runner for `node` (the caller closes it)."""
        from skyplan.backends.ssh_runner import SshRunner

        return SshRunner(
            node.extra["host"],
            int(node.extra["port"]),
            node.extra["user"],
            node.extra.get("identity_file") or None,
            known_hosts=self.known_hosts,
            trust_new=self.trust_new_hosts,
            scope=Scope(NAME, node.region),
        )

    # -- the Backend protocol -------------------------------------------------------------------

    def check(self) -> BackendCheck:
        if not self.pools_file.exists():
            return BackendCheck(
                backend=NAME,
                ok=False,
                reason=f"no SSH node pools: write {self.pools_file} (see docs)",
            )
        try:
            pools = self._pools()
        except InputError as err:
            return BackendCheck(
                backend=NAME,
                ok=False,
                reason=f"invalid {self.pools_file}",
                detail=tuple(str(err).splitlines()),
            )
        hosts = [h for p in pools.values() for h in p.hosts]
        if not hosts:
            return BackendCheck(
                backend=NAME, ok=False, reason=f"no SSH node pools in {self.pools_file}"
            )
        statuses = self._survey(hosts, fresh_claims=False)
        up = sum(s.error is None for s in statuses)
        return BackendCheck(
            backend=NAME,
            ok=up > 0,
            reason=f"{_count(len(pools), 'pool')}, {up}/{len(hosts)} hosts reachable",
            detail=tuple(
                f"{s.host.node_id}: {s.error.message}"
                if s.error is not None
                else f"{s.host.node_id}: unreadable ~/.skyplan/claim {s.claim_text!r}: "
                "the host is not used until it is removed"
                for s in statuses
                if s.error is not None or (s.claim_text is not None and s.claim is None)
            ),
        )

    def offers(self) -> Sequence[PoolOffer]:
        offers = []
        for pool in self._pools().values():
            statuses = self._survey(pool.hosts, fresh_claims=False)
            shapes: dict[str, list[HostStatus]] = {}
            for s in statuses:
                if s.error is None and s.shape is not None:
                    shapes.setdefault(s.shape.instance_type, []).append(s)
            for itype, members in sorted(shapes.items()):
                shape = min((s.shape for s in members if s.shape), key=lambda x: x.memory_gib)
                offers.append(
                    PoolOffer(
                        cloud=NAME,
                        region=pool.name,
                        instance_type=itype,
                        vcpus=shape.vcpus,
                        memory_gib=shape.memory_gib,
                        accelerator=shape.accelerator,
                        accelerator_count=shape.accelerator_count,
                        accelerator_memory=shape.accelerator_memory,
                        arch=shape.arch,
                        price=pool.price,
                        capacity=sum(s.free for s in members),
                        source=f"ssh pool {pool.name} (probed)",
                    )
                )
        return offers

    def provision(self, request: ProvisionRequest) -> list[Node]:
        offer, cluster = request.offer, request.cluster
        if offer.cloud != NAME:
            raise InvalidRequestError(f"not an SSH offer: cloud {offer.cloud!r}", Scope(NAME))
        scope = Scope(NAME, offer.region)
        if offer.spot:
            raise InvalidRequestError(self.capabilities.missing[Capability.SPOT], scope)
        pool = self._pool(offer.region)
        statuses = self._survey(pool.hosts, fresh_claims=True)
        mine = {c.rank: s for s in statuses if (c := s.claim) and self._ours(c, cluster)}
        missing = [rank for rank in range(offer.num_nodes) if rank not in mine]
        self._refuse_rank_clash(cluster, missing, statuses, scope)
        free = [
            s
            for s in statuses
            if s.free and s.shape and s.shape.instance_type == offer.instance_type
        ]
        made: list[HostStatus] = []
        for rank in missing:
            while free:
                got = self._claim(free.pop(0), Claim(cluster, rank, self.owner))
                if got is not None:
                    mine[rank] = got
                    made.append(got)
                    with self._lock:
                        self._status[got.host.node_id] = got
                    break
            else:
                self._release(made, cluster)
                held = len(mine) - len(made)
                raise self._no_capacity(pool, offer.instance_type, missing, made, held, statuses)
        self._remember(mine.values())
        nodes = [self._status_node(mine[rank]) for rank in sorted(mine)]
        return [n for n in nodes if n is not None]

    def _refuse_rank_clash(
        self, cluster: str, missing: list[int], statuses: list[HostStatus], scope: Scope
    ) -> None:
        # A down host that held a missing rank would hold it twice once it is back.
        known = self._known_claims()
        down = [
            s.host.address
            for s in statuses
            if s.error is not None
            and (k := known.get(s.host.node_id)) is not None
            and k["cluster"] == cluster
            and int(k["rank"]) in missing
        ]
        if down:
            raise TransientError(
                f"host(s) {', '.join(down)} of cluster {cluster!r} cannot be reached; "
                "retry when they are back, or `skyplan down` the cluster",
                scope,
            )

    def _claim(self, status: HostStatus, claim: Claim) -> HostStatus | None:
        """Claim a host for `claim.rank` of the cluster: its status with the claim, or None
        when someone else holds it (or it cannot be reached now)."""
        root = shlex.quote(status.root(claim.cluster))
        script = (
            'd=~/.skyplan; mkdir -p "$d" || exit 1; t="$d/claim.$$"; '
            f"printf '%s\\n' {shlex.quote(claim.text)} > \"$t\" || exit 1; "
            f'if ln "$t" "$d/claim" 2>/dev/null; then rm -f "$t"; mkdir -p {root}; '
            'echo claimed; else rm -f "$t"; printf \'taken \'; cat "$d/claim"; fi'
        )
        try:
            result = self._runner(status.host).run(script, timeout=self.probe_timeout * 2)
        except BackendError:
            return None
        first = result.output.strip()
        if result.exit_code != 0 or result.timed_out:
            return None
        if first == "claimed" or Claim.parse(first.removeprefix("taken ")) == claim:
            return replace(status, claim_text=claim.text)
        return None

    def _release(self, statuses: Iterable[HostStatus], cluster: str) -> list[str]:
        """Tear down the cluster's directory on each host and remove its claim (only if it still
        names the cluster). Returns `host: why` for each host where that failed."""

        def release(s: HostStatus) -> str | None:
            claim = s.claim
            if claim is None or s.error is not None:
                return None
            script = (
                f"{teardown_script(s.root(cluster))}; f=~/.skyplan/claim; "
                f'if [ "$(cat "$f" 2>/dev/null)" = {shlex.quote(claim.text)} ]; '
                'then rm -f "$f"; fi'
            )
            try:
                result = self._runner(s.host).run(script, timeout=60)
            except BackendError as err:
                return f"{s.host.node_id}: {err.message}"
            if result.exit_code != 0:
                return f"{s.host.node_id}: teardown failed: {result.output.strip()[-200:]}"
            released = replace(s, claim_text=None)
            with self._lock:
                self._status[s.host.node_id] = released
            self._remember([released])
            return None

        return [f for f in _parallel(release, list(statuses)) if f is not None]

    @staticmethod
    def _no_capacity(
        pool: SshPool,
        itype: str,
        missing: list[int],
        made: list[HostStatus],
        held: int,
        statuses: list[HostStatus],
    ) -> BackendError:
        # Every free host was tried: the ones this call could claim were all there were.
        scope = Scope(NAME, pool.name)
        down = sum(s.error is not None for s in statuses)
        message = (
            f"pool {pool.name!r} has {_count(len(made), 'free host')} of shape {itype}, "
            f"the cluster needs {len(missing)}"
            + (" more" if held else "")
            + (f" ({down} of its {len(statuses)} hosts cannot be reached)" if down else "")
        )
        refused = [s.error for s in statuses if isinstance(s.error, AuthError)]
        if refused:
            return AuthError(f"{message}; {refused[0].message}", scope)
        return CapacityError(message, scope)

    def terminate(self, cluster: str) -> None:
        """Release every host claimed by `cluster`; hosts that cannot be reached (and that the
        last known claims say are the cluster's) raise `TransientError` after the others
        are released, so `skyplan down` can be run again when they are back."""
        statuses = self._survey(self._all_hosts(), fresh_claims=True)
        ours = [s for s in statuses if self._ours(s.claim, cluster)]
        failures = self._release([s for s in ours if s.error is None], cluster)
        known = self._known_claims()
        failures += [
            f"{s.host.node_id}: {s.error.message}"
            for s in statuses
            if s.error is not None and known.get(s.host.node_id, {}).get("cluster") == cluster
        ]
        if failures:
            pools = {f.split("/", 1)[0] for f in failures}
            raise TransientError(
                f"could not release {_count(len(failures), 'host')} of cluster {cluster!r}: "
                + "; ".join(failures)
                + f". Run `skyplan down` again when they are back, or remove them from "
                f"{self.pools_file}",
                Scope(NAME, pools.pop()) if len(pools) == 1 else Scope(NAME),
            )

    def stop(self, cluster: str) -> None:
        raise InvalidRequestError(self.capabilities.missing[Capability.STOP], Scope(NAME))

    def start(self, cluster: str) -> list[Node]:
        raise InvalidRequestError(self.capabilities.missing[Capability.STOP], Scope(NAME))

    def close(self) -> None:
        """Close the SSH connections this backend keeps open (it reopens them when needed)."""
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
