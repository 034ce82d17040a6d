"""The `ssh` backend: existing machines, listed in pools, lent to one cluster at a time.

A pool (`infra: ssh/<pool>`) is a set of hosts in `ssh_node_pools.yaml` (see `ssh_pools`).
Hosts are probed over SSH for their shape (CPUs, memory, GPUs); a pool offers one shape per
kind of host it has, priced at the pool's `price` per host.

The hosts hold the truth about who uses them: a host belongs to a cluster while its
`~/.skyplan/claim` names it and this skyplan home (see `ssh_hosts`, which surveys, claims and
releases hosts). A node's files live in `~/.skyplan/clusters/<cluster>` (`node.extra["root"]`,
absolute). This machine only keeps hints: probe results for a minute (failures for ten
seconds), and the last claims it saw in `<home>/ssh_claims.json`, so a host that is down now
can still be reported (UNREACHABLE) and is not forgotten by `terminate`.

This module owns the Backend protocol: pools, offers, nodes and the launch/teardown decisions.
The backend never stops, reboots or reconfigures a host; `terminate` kills the cluster's jobs,
deletes its directory and removes the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from skyplan.backends.ssh_hosts import Claim, HostStatus, SshHosts
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
        self._hosts = SshHosts(home, self._connect)

    @property
    def owner(self) -> str:
        """This skyplan home's name in claims (`user@machine/random`), made once and kept."""
        return self._hosts.owner

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

    def _connect(self, host: SshHost) -> SshRunner:
        """A new runner for a pool's host (`SshHosts` keeps one per host)."""
        from skyplan.backends.ssh_runner import SshRunner

        return SshRunner(
            host.ip,
            host.port,
            host.user,
            host.identity_file,
            known_hosts=self.known_hosts,
            trust_new=self.trust_new_hosts,
            connect_timeout=self.probe_timeout,
            scope=Scope(NAME, host.pool),
        )

    def _survey(self, hosts: Sequence[SshHost], *, fresh_claims: bool) -> list[HostStatus]:
        """The status of each host (see `SshHosts.survey`), with this backend's TTLs."""
        return self._hosts.survey(
            hosts,
            fresh_claims=fresh_claims,
            ok_ttl=self.ok_ttl,
            fail_ttl=self.fail_ttl,
            timeout=self.probe_timeout,
        )

    @property
    def problems(self) -> list[tuple[str, str]]:
        """`(pool/host:port, why)` for each host the last probe could not use."""
        return self._hosts.problems

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
        if (
            s.error is None
            and claim is not None
            and self._hosts.ours(claim)
            and s.shape is not None
        ):
            return self._node(
                s.host, claim.cluster, claim.rank, s.root(claim.cluster), s.shape.instance_type
            )
        known = self._hosts.known_claims().get(s.host.node_id)
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
        mine = {c.rank: s for s in statuses if (c := s.claim) and self._hosts.ours(c, cluster)}
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
                claim = Claim(cluster, rank, self.owner)
                got = self._hosts.claim(free.pop(0), claim, timeout=self.probe_timeout * 2)
                if got is not None:
                    mine[rank] = got
                    made.append(got)
                    break
            else:
                self._hosts.release(made, cluster)
                held = len(mine) - len(made)
                raise self._no_capacity(pool, offer.instance_type, missing, made, held, statuses)
        self._hosts.remember(mine.values())
        nodes = [self._status_node(mine[rank]) for rank in sorted(mine)]
        return [n for n in nodes if n is not None]

    def _refuse_rank_clash(
        self, cluster: str, missing: list[int], statuses: list[HostStatus], scope: Scope
    ) -> None:
        # A down host that held a missing rank would hold it twice once it is back.
        known = self._hosts.known_claims()
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
        ours = [s for s in statuses if self._hosts.ours(s.claim, cluster)]
        failures = self._hosts.release([s for s in ours if s.error is None], cluster)
        known = self._hosts.known_claims()
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
        self._hosts.close()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
