"""The state database's tables, their column types, and the migrations that build them.

Owns the schema and its version; knows nothing of records or of how the store uses the tables.
One schema serves SQLite and PostgreSQL: timestamps go through `UtcDateTime` (aware UTC out, on
both backends) and JSON-ish fields are JSON text (`JsonText`), so neither backend's own JSON or
time-zone handling leaks into the records.

Migrations run in order, inside the caller's write transaction (transactional DDL on both
backends), so a failed one leaves the database at its old version. Concurrent openers are
serialized: SQLite by the write lock the transaction takes up front, PostgreSQL by an advisory
lock taken here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from skyplan.errors import StateError

#: PostgreSQL advisory-lock keys ("skyplan" in ASCII, plus one per purpose).
MIGRATION_LOCK_KEY = 0x736B79706C616E01
EVENT_LOCK_KEY = 0x736B79706C616E02


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned time-zone aware (UTC) on every backend.

    SQLite keeps it as sortable ISO text without an offset; PostgreSQL as `timestamptz`. A naive
    datetime going in is taken to be UTC already."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonText(sa.TypeDecorator[Any]):
    """A JSON value stored as text (sorted keys, compact), the same on both backends."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


metadata = sa.MetaData()


def _cluster_fk() -> sa.ForeignKey:
    return sa.ForeignKey("clusters.name", ondelete="CASCADE")


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)

clusters = sa.Table(
    "clusters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("step", sa.String, nullable=False),
    sa.Column("cloud", sa.String),
    sa.Column("region", sa.String),
    sa.Column("zone", sa.String),
    sa.Column("instance_type", sa.String),
    sa.Column("spot", sa.Boolean, nullable=False),
    sa.Column("num_nodes", sa.Integer, nullable=False),
    sa.Column("hourly_cost", sa.Float, nullable=False),
    sa.Column("vcpus", sa.Float, nullable=False),
    sa.Column("memory_gib", sa.Float, nullable=False),
    sa.Column("accelerators", JsonText),
    sa.Column("task", JsonText, nullable=False),
    sa.Column("autostop_minutes", sa.Integer),
    sa.Column("autostop_down", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("last_active_at", UtcDateTime, nullable=False),
    sa.Column("next_job_id", sa.Integer, nullable=False),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("cluster", sa.String, _cluster_fk(), primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.String, nullable=False),
    sa.Column("ip", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("cloud", sa.String, nullable=False),
    sa.Column("region", sa.String, nullable=False),
    sa.Column("zone", sa.String),
    sa.Column("instance_type", sa.String, nullable=False),
    sa.Column("spot", sa.Boolean, nullable=False),
    sa.Column("extra", JsonText, nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("cluster", sa.String, _cluster_fk(), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("cloud", sa.String, nullable=False),
    sa.Column("region", sa.String, nullable=False),
    sa.Column("zone", sa.String),
    sa.Column("instance_type", sa.String, nullable=False),
    sa.Column("spot", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.String),
    sa.Column("message", sa.Text, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("cluster", sa.String, _cluster_fk(), primary_key=True),
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("demand", JsonText, nullable=False),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("exit_code", sa.Integer),
    sa.Column("ranks", JsonText, nullable=False),
    sa.Column("slots", JsonText, nullable=False),
    sa.Column("secret_names", JsonText, nullable=False),
    sa.Column("user", sa.String),
    sa.Column("message", sa.Text, nullable=False),
    # The job queue asks "the pending/running jobs of this cluster" on every scheduling pass.
    sa.Index("ix_jobs_cluster_status", "cluster", "status"),
    sa.Index("ix_jobs_status", "status"),
)

# No foreign key to clusters: events outlive the clusters they describe.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("cluster", sa.String),
    sa.Column("job_id", sa.Integer),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("old", sa.String),
    sa.Column("new", sa.String),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_events_cluster_id", "cluster", "id"),
    sa.Index("ix_events_cluster_job_id", "cluster", "job_id", "id"),
    # SQLite: never reuse an id, so `events(after_id=...)` is a sound cursor.
    sqlite_autoincrement=True,
)

managed_jobs = sa.Table(
    "managed_jobs",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("tasks", JsonText, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    # Added by v3 (below); v2 databases get them with ALTER TABLE.
    sa.Column("slot", sa.Integer, nullable=False, server_default="0"),
    sa.Column("group_id", sa.Integer),
    sa.Column("run_number", sa.Integer, nullable=False, server_default="0"),
    sa.Column("envs", JsonText, nullable=False),
    sa.Column("secret_names", JsonText, nullable=False),
    sa.Column("strategy", sa.String, nullable=False),
    sa.Column("recovery", JsonText, nullable=False),
    sa.Column("base_dir", sa.Text, nullable=False),
    sa.Column("planning", JsonText, nullable=False),
    sa.Column("keep_on_failure", sa.Boolean, nullable=False),
    sa.Column("retry_until_up", sa.Boolean, nullable=False),
    sa.Column("user", sa.String),
    sa.Column("restarts", sa.Integer, nullable=False),
    sa.Column("recoveries", sa.Integer, nullable=False),
    sa.Column("no_place", sa.Integer, nullable=False),
    sa.Column("target", JsonText),
    sa.Column("cluster_job_id", sa.Integer),
    sa.Column("next_check_at", UtcDateTime),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("exit_code", sa.Integer),
    sa.Column("message", sa.Text, nullable=False),
    # The controller asks "the active managed jobs" on every pass.
    sa.Index("ix_managed_jobs_status", "status"),
    sqlite_autoincrement=True,
)

managed_segments = sa.Table(
    "managed_segments",
    metadata,
    sa.Column(
        "job_id",
        sa.Integer,
        sa.ForeignKey("managed_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("cloud", sa.String, nullable=False),
    sa.Column("region", sa.String, nullable=False),
    sa.Column("zone", sa.String),
    sa.Column("instance_type", sa.String, nullable=False),
    sa.Column("spot", sa.Boolean, nullable=False),
    sa.Column("num_nodes", sa.Integer, nullable=False),
    sa.Column("hourly_cost", sa.Float, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("outcome", sa.String),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class Migration:
    """One step of the schema: `apply` moves a database at `version - 1` to `version`."""

    version: int
    summary: str
    apply: Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    # While v1 is the only version the metadata above *is* v1. When a later migration changes a
    # table, freeze v1's definitions here first and let the new migration ALTER from them.
    metadata.create_all(conn, tables=[clusters, nodes, attempts, jobs, events, locks])


def _v2(conn: Connection) -> None:
    # `managed_jobs` above is v3's table; v3 below adds what v2 lacked only where it lacks it.
    metadata.create_all(conn, tables=[managed_jobs, managed_segments])


def _v3(conn: Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns(managed_jobs.name)}
    added = {
        "slot": "INTEGER NOT NULL DEFAULT 0",
        "group_id": "INTEGER",
        "run_number": "INTEGER NOT NULL DEFAULT 0",
    }
    for name, kind in added.items():
        if name not in columns:
            conn.execute(sa.text(f"ALTER TABLE managed_jobs ADD COLUMN {name} {kind}"))


MIGRATIONS: list[Migration] = [
    Migration(1, "clusters, nodes, attempts, jobs, events and locks", _v1),
    Migration(2, "managed jobs and their segments", _v2),
    Migration(3, "managed jobs' cluster slots, job groups and run numbers", _v3),
]


def latest_version(migrations: Sequence[Migration] | None = None) -> int:
    migrations = MIGRATIONS if migrations is None else migrations
    return migrations[-1].version if migrations else 0


def read_version(conn: Connection) -> int:
    """The database's schema version; 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def too_new(version: int, known: int) -> StateError:
    return StateError(
        f"the state database was written by a newer skyplan (schema version {version}; this "
        f"skyplan knows versions up to {known}): upgrade skyplan to use it"
    )


def migrate(conn: Connection, migrations: Sequence[Migration] | None = None) -> int:
    """Bring the database to the latest version; call inside a write transaction.

    Returns the version reached. Raises StateError for a database newer than `migrations`."""
    migrations = MIGRATIONS if migrations is None else migrations
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise StateError(f"migrations must be numbered 1, 2, … in order, not {versions}")
    if conn.dialect.name == "postgresql":
        # Transactional DDL alone does not stop two openers both creating the tables.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    current = read_version(conn)
    latest = latest_version(migrations)
    if current > latest:
        raise too_new(current, latest)
    if current == 0:
        schema_version.create(conn, checkfirst=True)
    for migration in migrations:
        if migration.version <= current:
            continue
        migration.apply(conn)
        conn.execute(
            schema_version.insert().values(
                version=migration.version, applied_at=datetime.now(UTC), summary=migration.summary
            )
        )
    return latest
