"""The state store: clusters, their nodes, launch attempts, jobs, events and cross-process locks,
in SQLite (the default, one file under ~/.skyplan) or PostgreSQL (shared by several machines).

Every change is one short transaction, and the event describing it is written in that same
transaction, so the event log never disagrees with the records. Many processes may use one store
at once (the CLI, a job runner, an autostop daemon):

- SQLite runs in WAL mode; a write transaction takes the write lock up front (`BEGIN IMMEDIATE`),
  so read-modify-write sequences from several processes queue on the busy timeout instead of
  deadlocking or losing an update. Reads never block.
- PostgreSQL locks the rows it is about to change (`SELECT ... FOR UPDATE`, `UPDATE ...
  RETURNING`), and event-writing transactions queue on an advisory lock just before they insert
  their events, so event ids become visible in id order and `events(after_id=...)` is a cursor
  that never skips one.

The connection setup (URLs, SQLite pragmas, `BEGIN IMMEDIATE`) is `engine`'s; the locks'
SQL is `lease`'s, run in this store's transactions.

Uses SQLAlchemy Core only; must not import anything of skyplan but `model`, `errors` and the
rest of `state`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from skyplan.errors import ClusterNotFound, StateError
from skyplan.model.node import Node
from skyplan.model.state import (
    Attempt,
    AttemptOutcome,
    ClusterRecord,
    Event,
    JobDemand,
    JobRecord,
    JobStatus,
)
from skyplan.state import schema
from skyplan.state.engine import default_url, engine_for, insert_for, masked_url, normalize_url
from skyplan.state.lease import Lease, Locks
from skyplan.state.managed import ManagedJobTable
from skyplan.state.schema import attempts as attempts_t
from skyplan.state.schema import clusters as clusters_t
from skyplan.state.schema import events as events_t
from skyplan.state.schema import jobs as jobs_t
from skyplan.state.schema import nodes as nodes_t

_READ_ONLY_CLUSTER = frozenset({"name", "next_job_id"})
_READ_ONLY_JOB = frozenset({"cluster", "job_id"})

# Statements built once and given their values at execution: SQLAlchemy then reuses the compiled
# form instead of coercing every value into the statement again (a third of a submit's time).
_INSERT_EVENT = events_t.insert().returning(events_t.c.id)
_UPDATE_CLUSTER = clusters_t.update().where(clusters_t.c.name == sa.bindparam("key_name"))
_UPDATE_JOB = jobs_t.update().where(
    (jobs_t.c.cluster == sa.bindparam("key_cluster")) & (jobs_t.c.job_id == sa.bindparam("key_id"))
)
_NEXT_JOB_ID = (
    clusters_t.update()
    .where(clusters_t.c.name == sa.bindparam("key_name"))
    .values(next_job_id=clusters_t.c.next_job_id + 1)
    .returning(clusters_t.c.next_job_id)
)


def _now() -> datetime:
    return datetime.now(UTC)


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The driver's own words for a database error, without SQLAlchemy's SQL and links."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc.orig).__name__


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _values(model: Any) -> dict[str, Any]:
    """A record's fields as column values (enums as their strings)."""
    return {key: _plain(value) for key, value in model.model_dump().items()}


class _Tx:
    """One open transaction and the events to write at its end."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pending: list[dict[str, Any]] = []

    def event(
        self,
        kind: str,
        reason: str,
        *,
        cluster: str | None = None,
        job_id: int | None = None,
        old: Any = None,
        new: Any = None,
        at: datetime | None = None,
    ) -> None:
        self._pending.append(
            {
                "at": at or _now(),
                "cluster": cluster,
                "job_id": job_id,
                "kind": kind,
                "old": None if old is None else str(_plain(old)),
                "new": None if new is None else str(_plain(new)),
                "reason": reason,
            }
        )

    def flush(self) -> list[Event]:
        """Write the pending events, last in the transaction (see the module docstring)."""
        if not self._pending:
            return []
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(schema.EVENT_LOCK_KEY)))
        written = []
        for values in self._pending:
            event_id = self.conn.execute(_INSERT_EVENT, values).scalar_one()
            written.append(Event(id=event_id, **values))
        self._pending.clear()
        return written


class Store:
    """The state store; see the module docstring. Open with `Store.open()`, close when done."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self._engine = engine
        self._insert = insert_for(engine)
        self._locks = Locks(self._tx, self._insert)
        #: Managed jobs and their segments (`state.managed`).
        self.managed = ManagedJobTable(self._tx)

    @classmethod
    def open(cls, url: str | None = None, *, home: Path | None = None) -> Store:
        """Open (creating or migrating it as needed) the store at `url`, or at `default_url()`."""
        url = normalize_url(url) if url else default_url(home)
        store = cls(url, engine_for(url))
        try:
            with store._tx() as tx:
                version = schema.read_version(tx.conn)
            latest = schema.latest_version()
            if version > latest:
                raise schema.too_new(version, latest)
            if version < latest:
                with store._tx(write=True) as tx:
                    schema.migrate(tx.conn)
        except BaseException:
            store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"Store({masked_url(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    def schema_version(self) -> int:
        with self._tx() as tx:
            return schema.read_version(tx.conn)

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[_Tx]:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(skyplan_write=write)
                with conn.begin():
                    tx = _Tx(conn)
                    yield tx
                    tx.flush()
        except sa.exc.DBAPIError as exc:
            raise StateError(f"state store at {masked_url(self.url)}: {_reason(exc)}") from exc

    # -- clusters ---------------------------------------------------------------------------

    def _names(self, conn: Connection) -> list[str]:
        return list(
            conn.execute(sa.select(clusters_t.c.name).order_by(clusters_t.c.name)).scalars()
        )

    def _locked_cluster(self, conn: Connection, name: str) -> ClusterRecord:
        query = sa.select(clusters_t).where(clusters_t.c.name == name).with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise ClusterNotFound(name, self._names(conn))
        return ClusterRecord.model_validate(dict(row._mapping))

    def create_cluster(self, record: ClusterRecord, reason: str) -> ClusterRecord:
        """Record a new cluster; StateError if one of that name exists."""
        with self._tx(write=True) as tx:
            insert = (
                self._insert(clusters_t)
                .values(**_values(record))
                .on_conflict_do_nothing()
                .returning(clusters_t.c.name)  # rowcount of an INSERT is not reliable
            )
            if tx.conn.execute(insert).first() is None:
                raise StateError(f"a cluster named {record.name!r} already exists")
            tx.event("cluster", reason, cluster=record.name, new=record.status)
        return record

    def get_cluster(self, name: str) -> ClusterRecord | None:
        with self._tx() as tx:
            row = tx.conn.execute(sa.select(clusters_t).where(clusters_t.c.name == name)).first()
        return None if row is None else ClusterRecord.model_validate(dict(row._mapping))

    def require_cluster(self, name: str) -> ClusterRecord:
        with self._tx() as tx:
            row = tx.conn.execute(sa.select(clusters_t).where(clusters_t.c.name == name)).first()
            if row is None:
                raise ClusterNotFound(name, self._names(tx.conn))
        return ClusterRecord.model_validate(dict(row._mapping))

    def clusters(self) -> list[ClusterRecord]:
        """Every cluster, sorted by name."""
        with self._tx() as tx:
            rows = tx.conn.execute(sa.select(clusters_t).order_by(clusters_t.c.name)).all()
        return [ClusterRecord.model_validate(dict(row._mapping)) for row in rows]

    def update_cluster(self, name: str, /, reason: str, **changes: Any) -> ClusterRecord:
        """Change fields of a cluster; `updated_at` becomes now unless given.

        A change of `status` or `step` writes one event each (kind "cluster"). TypeError for a
        field ClusterRecord lacks or that cannot change (`name`, `next_job_id`)."""
        _check_fields(ClusterRecord, changes, _READ_ONLY_CLUSTER, "update_cluster")
        with self._tx(write=True) as tx:
            old = self._locked_cluster(tx.conn, name)
            at = _now()
            new = ClusterRecord.model_validate({**old.model_dump(), "updated_at": at, **changes})
            values = _values(new)
            del values["name"]
            tx.conn.execute(_UPDATE_CLUSTER, {**values, "key_name": name})
            if new.status != old.status:
                tx.event("cluster", reason, cluster=name, old=old.status, new=new.status, at=at)
            if new.step != old.step:
                tx.event("cluster", reason, cluster=name, old=old.step, new=new.step, at=at)
        return new

    def delete_cluster(self, name: str, reason: str) -> None:
        """Remove a cluster with its nodes, attempts and jobs; its events stay."""
        with self._tx(write=True) as tx:
            old = self._locked_cluster(tx.conn, name)
            for table in (jobs_t, nodes_t, attempts_t):
                tx.conn.execute(table.delete().where(table.c.cluster == name))
            tx.conn.execute(clusters_t.delete().where(clusters_t.c.name == name))
            tx.event("cluster", reason, cluster=name, old=old.status, new="deleted")

    # -- nodes ------------------------------------------------------------------------------

    def set_nodes(self, cluster: str, nodes: Sequence[Node]) -> None:
        """Replace the cluster's nodes with `nodes`."""
        ranks = [node.rank for node in nodes]
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"set_nodes({cluster!r}): two nodes share a rank: {sorted(ranks)}")
        strays = sorted({node.cluster for node in nodes} - {cluster})
        if strays:
            raise ValueError(f"set_nodes({cluster!r}) got nodes of cluster(s) {strays}")
        with self._tx(write=True) as tx:
            self._locked_cluster(tx.conn, cluster)
            tx.conn.execute(nodes_t.delete().where(nodes_t.c.cluster == cluster))
            if nodes:
                tx.conn.execute(nodes_t.insert(), [_values(node) for node in nodes])

    def nodes(self, cluster: str) -> list[Node]:
        """The cluster's nodes by rank ([] for an unknown cluster)."""
        query = sa.select(nodes_t).where(nodes_t.c.cluster == cluster).order_by(nodes_t.c.rank)
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        return [Node.model_validate(dict(row._mapping)) for row in rows]

    # -- attempts ---------------------------------------------------------------------------

    def start_attempt(
        self,
        cluster: str,
        *,
        cloud: str,
        region: str,
        zone: str | None,
        instance_type: str,
        spot: bool,
    ) -> Attempt:
        """Record the start of a provisioning attempt, numbered 1, 2, … per cluster."""
        with self._tx(write=True) as tx:
            self._locked_cluster(tx.conn, cluster)  # the row lock serializes numbering
            last = tx.conn.execute(
                sa.select(sa.func.max(attempts_t.c.number)).where(attempts_t.c.cluster == cluster)
            ).scalar()
            attempt = Attempt(
                cluster=cluster,
                number=(last or 0) + 1,
                at=_now(),
                cloud=cloud,
                region=region,
                zone=zone,
                instance_type=instance_type,
                spot=spot,
            )
            tx.conn.execute(attempts_t.insert(), _values(attempt))
            tx.event("attempt", str(attempt), cluster=cluster, new="started", at=attempt.at)
        return attempt

    def finish_attempt(
        self, cluster: str, number: int, outcome: AttemptOutcome, message: str = ""
    ) -> Attempt:
        """Record how attempt `number` ended; StateError if it is unknown or already ended."""
        where = (attempts_t.c.cluster == cluster) & (attempts_t.c.number == number)
        with self._tx(write=True) as tx:
            row = tx.conn.execute(sa.select(attempts_t).where(where).with_for_update()).first()
            if row is None:
                self._locked_cluster(tx.conn, cluster)
                raise StateError(f"cluster {cluster!r} has no attempt #{number}")
            old = Attempt.model_validate(dict(row._mapping))
            if old.outcome is not None:
                raise StateError(f"attempt {old} of cluster {cluster!r} has already ended")
            outcome = AttemptOutcome(outcome)
            new = old.model_copy(update={"outcome": outcome, "message": message})
            tx.conn.execute(
                attempts_t.update().where(where).values(outcome=outcome.value, message=message)
            )
            tx.event("attempt", str(new), cluster=cluster, old="started", new=outcome)
        return new

    def attempts(self, cluster: str) -> list[Attempt]:
        """The cluster's attempts in order ([] for an unknown cluster)."""
        query = (
            sa.select(attempts_t)
            .where(attempts_t.c.cluster == cluster)
            .order_by(attempts_t.c.number)
        )
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        return [Attempt.model_validate(dict(row._mapping)) for row in rows]

    # -- jobs -------------------------------------------------------------------------------

    def submit_job(
        self,
        cluster: str,
        *,
        name: str | None,
        demand: JobDemand,
        secret_names: Sequence[str] = (),
        user: str | None = None,
    ) -> JobRecord:
        """Queue a job; its id comes from the cluster's counter, so concurrent submitters in any
        number of processes get distinct ids 1, 2, … and every record is kept."""
        with self._tx(write=True) as tx:
            next_id = tx.conn.execute(_NEXT_JOB_ID, {"key_name": cluster}).scalar()
            if next_id is None:
                raise ClusterNotFound(cluster, self._names(tx.conn))
            job = JobRecord(
                cluster=cluster,
                job_id=next_id - 1,
                name=name,
                demand=demand,
                submitted_at=_now(),
                secret_names=tuple(secret_names),
                user=user,
            )
            tx.conn.execute(jobs_t.insert(), _values(job))
            who = f" by {user}" if user else ""
            tx.event(
                "job",
                f"submitted{who}",
                cluster=cluster,
                job_id=job.job_id,
                new=job.status,
                at=job.submitted_at,
            )
        return job

    def job(self, cluster: str, job_id: int) -> JobRecord | None:
        where = (jobs_t.c.cluster == cluster) & (jobs_t.c.job_id == job_id)
        with self._tx() as tx:
            row = tx.conn.execute(sa.select(jobs_t).where(where)).first()
        return None if row is None else JobRecord.model_validate(dict(row._mapping))

    def jobs(
        self,
        cluster: str,
        statuses: Collection[JobStatus] | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """The cluster's jobs by ascending id, only those in `statuses` if given; with `limit`,
        the last `limit` of them (still ascending)."""
        query = sa.select(jobs_t).where(jobs_t.c.cluster == cluster)
        if statuses is not None:
            query = query.where(jobs_t.c.status.in_([_plain(s) for s in statuses]))
        if limit is not None:
            query = query.order_by(jobs_t.c.job_id.desc()).limit(limit)
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        records = [JobRecord.model_validate(dict(row._mapping)) for row in rows]
        return sorted(records, key=lambda job: job.job_id)

    def count_jobs(
        self, cluster: str | None = None, statuses: Collection[JobStatus] | None = None
    ) -> int:
        """How many jobs (of `cluster`, in `statuses`) the store holds."""
        query = sa.select(sa.func.count()).select_from(jobs_t)
        if cluster is not None:
            query = query.where(jobs_t.c.cluster == cluster)
        if statuses is not None:
            query = query.where(jobs_t.c.status.in_([_plain(s) for s in statuses]))
        with self._tx() as tx:
            return int(tx.conn.execute(query).scalar_one())

    def update_job(self, cluster: str, job_id: int, /, reason: str, **changes: Any) -> JobRecord:
        """Change fields of a job; a status change writes an event (kind "job").

        TypeError for a field JobRecord lacks or that cannot change (`cluster`, `job_id`);
        ClusterNotFound for an unknown cluster, StateError for an unknown job."""
        _check_fields(JobRecord, changes, _READ_ONLY_JOB, "update_job")
        where = (jobs_t.c.cluster == cluster) & (jobs_t.c.job_id == job_id)
        with self._tx(write=True) as tx:
            row = tx.conn.execute(sa.select(jobs_t).where(where).with_for_update()).first()
            if row is None:
                self._locked_cluster(tx.conn, cluster)
                raise StateError(f"cluster {cluster!r} has no job {job_id}")
            old = JobRecord.model_validate(dict(row._mapping))
            new = JobRecord.model_validate({**old.model_dump(), **changes})
            values = _values(new)
            del values["cluster"], values["job_id"]
            tx.conn.execute(_UPDATE_JOB, {**values, "key_cluster": cluster, "key_id": job_id})
            if new.status != old.status:
                tx.event(
                    "job", reason, cluster=cluster, job_id=job_id, old=old.status, new=new.status
                )
        return new

    # -- events -----------------------------------------------------------------------------

    def record_event(
        self,
        kind: str,
        reason: str,
        *,
        cluster: str | None = None,
        job_id: int | None = None,
        old: str | None = None,
        new: str | None = None,
    ) -> Event:
        """Append an event that no record change implies (an operation, a note)."""
        with self._tx(write=True) as tx:
            tx.event(kind, reason, cluster=cluster, job_id=job_id, old=old, new=new)
            (written,) = tx.flush()
        return written

    def events(
        self,
        cluster: str | None = None,
        job_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """Events with id > `after_id` by ascending id (at most `limit`, the first ones), of
        `cluster` and `job_id` if given. Pass the last id seen as `after_id` to follow the log."""
        query = sa.select(events_t).where(events_t.c.id > after_id).order_by(events_t.c.id)
        if cluster is not None:
            query = query.where(events_t.c.cluster == cluster)
        if job_id is not None:
            query = query.where(events_t.c.job_id == job_id)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as tx:
            rows = tx.conn.execute(query).all()
        return [Event.model_validate(dict(row._mapping)) for row in rows]

    # -- locks ------------------------------------------------------------------------------

    def try_lock(
        self,
        name: str,
        *,
        owner: str | None = None,
        ttl: float = 60.0,
        abandoned: Callable[[str], bool] | None = None,
    ) -> Lease | None:
        """Take lock `name` for `ttl` seconds if it is free, expired, or already `owner`'s —
        or held by an owner that `abandoned(owner)` says is gone (a dead process); None if
        another owner holds it. The default owner is unique to this call."""
        return self._locks.try_lock(name, owner=owner, ttl=ttl, abandoned=abandoned)

    def lock(
        self,
        name: str,
        *,
        owner: str | None = None,
        ttl: float = 60.0,
        timeout: float = 30.0,
        abandoned: Callable[[str], bool] | None = None,
    ) -> AbstractContextManager[Lease]:
        """Hold lock `name` for the `with` block, waiting up to `timeout` seconds for it.

        LockTimeout (naming the holder) if it stays taken. Renew the lease in blocks that may
        outlast `ttl`, or another process may take the lock over."""
        return self._locks.lock(name, owner=owner, ttl=ttl, timeout=timeout, abandoned=abandoned)


def _check_fields(
    model: type[ClusterRecord] | type[JobRecord],
    changes: Mapping[str, Any],
    read_only: frozenset[str],
    method: str,
) -> None:
    unknown = sorted(set(changes) - set(model.model_fields))
    if unknown:
        raise TypeError(f"{method}() got unknown field(s): {', '.join(unknown)}")
    fixed = sorted(set(changes) & read_only)
    if fixed:
        raise TypeError(f"{method}() cannot change {', '.join(fixed)}")
