"""Opening the store: URLs, errors, the schema and its migrations."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from skyplan.errors import StateError
from skyplan.state import Store, default_url, schema
from tests.state.factories import make_cluster

# -- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/sky", "postgresql+psycopg://u:p@db:5432/sky"),
        ("postgres://u@db/sky", "postgresql+psycopg://u@db/sky"),
        ("postgresql+psycopg://u@db/sky", "postgresql+psycopg://u@db/sky"),
        ("sqlite:////srv/state.db", "sqlite:////srv/state.db"),
    ],
    ids=["postgresql", "postgres-alias", "psycopg-explicit", "sqlite"],
)
def test_default_url_prefers_SKYPLAN_DB_URL_and_points_postgresql_at_psycopg(
    tmp_path: Path, given: str, expected: str
) -> None:
    environ = {"SKYPLAN_DB_URL": given, "SKYPLAN_HOME": str(tmp_path / "unused")}
    assert default_url(tmp_path / "home", environ) == expected
    assert not (tmp_path / "unused").exists()


def test_default_url_is_state_db_in_the_given_home_created_if_missing(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    assert default_url(home, {"SKYPLAN_HOME": "/elsewhere"}) == f"sqlite:///{home}/state.db"
    assert home.is_dir()


def test_default_url_falls_back_to_SKYPLAN_HOME_then_dot_skyplan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_url(environ={"SKYPLAN_HOME": str(tmp_path / "h")}).endswith("/h/state.db")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_url(environ={}) == f"sqlite:///{tmp_path}/user/.skyplan/state.db"


def test_open_without_a_url_uses_the_default_in_home(tmp_path: Path) -> None:
    with Store.open(home=tmp_path) as store:
        assert store.url == f"sqlite:///{tmp_path}/state.db"
    assert (tmp_path / "state.db").is_file()


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "not a url", "sqlite:"],
    ids=["unsupported-backend", "garbage", "no-slashes"],
)
def test_open_of_an_unsupported_url_is_a_state_error(url: str) -> None:
    with pytest.raises(StateError, match="unsupported state database URL"):
        Store.open(url)


def test_open_of_an_unreachable_postgres_is_a_clear_state_error() -> None:
    with closed_port() as port:
        url = f"postgresql://skyplan:hunter2@127.0.0.1:{port}/state"
        with pytest.raises(StateError) as caught:
            Store.open(url)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "refused" in message.lower()
    assert "hunter2" not in message
    assert "sqlalche.me" not in message and "[SQL" not in message
    assert isinstance(caught.value.__cause__, sa.exc.OperationalError)


def test_open_of_a_file_that_is_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a database"):
        Store.open(f"sqlite:///{path}")


def test_open_of_a_sqlite_path_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="cannot create the directory"):
        Store.open(f"sqlite:///{tmp_path}/file/sub/state.db")


def test_repr_masks_the_password() -> None:
    store = Store("postgresql+psycopg://u:hunter2@db/sky", sa.create_engine("sqlite://"))
    try:
        assert "hunter2" not in repr(store)
        assert repr(store) == "Store('postgresql+psycopg://u:***@db/sky')"
        assert store.url == "postgresql+psycopg://u:hunter2@db/sky"
    finally:
        store.close()


# -- schema and migrations ------------------------------------------------------------------


def test_open_migrates_an_empty_database_to_the_latest_version(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert store.schema_version() == schema.latest_version() == 3
        tables = set(sa.inspect(store._engine).get_table_names())
    assert tables >= {
        "schema_version",
        "clusters",
        "nodes",
        "attempts",
        "jobs",
        "events",
        "locks",
        "managed_jobs",
        "managed_segments",
    }
    with Store.open(store_url) as again:  # a second open changes nothing
        assert again.schema_version() == 3
        assert _versions(again) == [1, 2, 3]


def test_a_version_1_store_gains_the_managed_job_tables_and_keeps_its_clusters(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    with Store.open(store_url) as old:
        old.create_cluster(make_cluster(), "launch")
        assert old.schema_version() == 1
    monkeypatch.undo()
    with Store.open(store_url) as upgraded:
        assert _versions(upgraded) == [1, 2, 3]
        assert upgraded.require_cluster("train").name == "train"
        assert upgraded.managed.jobs() == []


def test_a_version_2_store_gains_the_slot_column_and_keeps_its_managed_jobs(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
    with Store.open(store_url) as old, old._engine.begin() as conn:
        # As v2 made the table: no slot column.
        conn.execute(sa.text("ALTER TABLE managed_jobs DROP COLUMN slot"))
        now = datetime.now(UTC)
        conn.execute(
            sa.text(
                "INSERT INTO managed_jobs (status, tasks, stage, envs, secret_names, "
                "strategy, recovery, base_dir, planning, keep_on_failure, retry_until_up, "
                "restarts, recoveries, no_place, submitted_at, updated_at, message) VALUES "
                "('RUNNING', '[{}]', 0, '{}', '[]', 'failover', '{}', '.', '{}', false, "
                "false, 0, 0, 0, :now, :now, '')"
            ),
            {"now": now},
        )
    monkeypatch.undo()
    with Store.open(store_url) as upgraded:
        assert _versions(upgraded) == [1, 2, 3]
        (job,) = upgraded.managed.jobs()
        assert (job.status, job.slot) == ("RUNNING", 0)


def test_the_job_and_event_queries_have_indexes(store: Store) -> None:
    inspector = sa.inspect(store._engine)
    indexes = {
        table: {tuple(ix["column_names"]) for ix in inspector.get_indexes(table)}
        for table in ("jobs", "events")
    }
    assert ("cluster", "status") in indexes["jobs"]
    assert ("cluster", "id") in indexes["events"]
    assert ("cluster", "job_id", "id") in indexes["events"]
    assert inspector.get_pk_constraint("jobs")["constrained_columns"] == ["cluster", "job_id"]


def test_open_refuses_a_database_written_by_a_newer_skyplan(store: Store) -> None:
    known = schema.latest_version()
    with store._engine.begin() as conn:
        conn.execute(
            schema.schema_version.insert().values(
                version=known + 1, applied_at=datetime.now(UTC), summary="future"
            )
        )
    pattern = rf"newer skyplan \(schema version {known + 1}.*up to {known}\)"
    with pytest.raises(StateError, match=pattern):
        Store.open(store.url)


def test_open_applies_only_the_missing_migrations_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_cluster(make_cluster(), "launch")
    applied: list[int] = []

    base = schema.latest_version()

    def add_notes(conn: sa.Connection) -> None:
        applied.append(base + 1)
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))

    def add_index(conn: sa.Connection) -> None:
        applied.append(base + 2)
        conn.execute(sa.text("CREATE INDEX ix_notes_body ON notes (body)"))

    migrations = [*schema.MIGRATIONS, schema.Migration(base + 1, "notes", add_notes)]
    monkeypatch.setattr(schema, "MIGRATIONS", migrations)
    with Store.open(store.url) as upgraded:
        assert upgraded.schema_version() == base + 1
    monkeypatch.setattr(
        schema, "MIGRATIONS", [*migrations, schema.Migration(base + 2, "ix", add_index)]
    )
    with Store.open(store.url) as upgraded:
        assert upgraded.schema_version() == base + 2
        assert _versions(upgraded) == list(range(1, base + 3))
        assert upgraded.require_cluster("train").name == "train"
    assert applied == [base + 1, base + 2]


def test_a_failing_migration_leaves_the_database_at_its_old_version(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_done(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("migration bug")

    base = schema.latest_version()
    monkeypatch.setattr(
        schema, "MIGRATIONS", [*schema.MIGRATIONS, schema.Migration(base + 1, "x", half_done)]
    )
    with pytest.raises(RuntimeError, match="migration bug"):
        Store.open(store.url)
    assert store.schema_version() == base
    assert "notes" not in sa.inspect(store._engine).get_table_names()


def _versions(store: Store) -> list[int]:
    with store._engine.connect() as conn:
        query = sa.select(schema.schema_version.c.version).order_by("version")
        return list(conn.execute(query).scalars())


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
