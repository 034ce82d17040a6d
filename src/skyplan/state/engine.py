"""The state store's database connection: which database (`default_url`, `normalize_url`), how
its URL is shown (`masked_url`, never with the password) and the SQLAlchemy engine for it
(`engine_for`).

SQLite engines are set up for many processes at once: WAL mode, a busy timeout, foreign keys,
and transactions begun by SQLAlchemy's `begin` hook — `BEGIN IMMEDIATE` on a connection whose
execution option `skyplan_write` is true, so a writer takes the write lock up front. PostgreSQL
engines get a connect timeout. Only SQLite and PostgreSQL (through psycopg 3) are accepted.

This module knows no tables and runs no statements but the connection's own setup.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url

from skyplan.errors import StateError

#: How long a SQLite writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 30.0
#: How long connecting to a PostgreSQL server may take, unless the URL says otherwise.
CONNECT_TIMEOUT_S = 10

#: The database's own INSERT, which has `on_conflict_do_nothing`.
DialectInsert = (
    Callable[[sa.Table], pg_dialect.Insert] | Callable[[sa.Table], sqlite_dialect.Insert]
)


def normalize_url(url: str) -> str:
    """`url` with PostgreSQL pointed at psycopg 3; StateError for anything but SQLite/PostgreSQL."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    scheme = url.split(":", 1)[0]
    if scheme not in ("sqlite", "postgresql+psycopg") or "://" not in url:
        raise StateError(
            f"unsupported state database URL {masked_url(url)!r}: use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    return url


def default_url(home: Path | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """$SKYPLAN_DB_URL if set, else a SQLite file `state.db` in `home`, $SKYPLAN_HOME or
    ~/.skyplan (created if missing)."""
    url = environ.get("SKYPLAN_DB_URL")
    if url:
        return normalize_url(url)
    if home is None:
        env_home = environ.get("SKYPLAN_HOME")
        home = Path(env_home).expanduser() if env_home else Path.home() / ".skyplan"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create the skyplan home {home}: {exc.strerror}") from exc
    return f"sqlite:///{home.resolve() / 'state.db'}"


def masked_url(url: str) -> str:
    """`url` fit to show: its password hidden (everything before `@` if it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def engine_for(url: str) -> Engine:
    """The engine for a normalized `url` (a SQLite file's directory is created); StateError
    when it cannot be made."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StateError(f"invalid state database URL {masked_url(url)!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
            sa_event.listen(engine, "connect", _sqlite_on_connect)
            sa_event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        if backend == "postgresql":
            args = (
                {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT_S}
            )
            return sa.create_engine(parsed, connect_args=args)
    except OSError as exc:
        raise StateError(
            f"cannot create the directory of {masked_url(url)}: {exc.strerror}"
        ) from exc
    except (ImportError, sa.exc.ArgumentError) as exc:
        raise StateError(f"cannot use state database URL {masked_url(url)!r}: {exc}") from exc
    raise StateError(f"unsupported state database {backend!r}: use SQLite or PostgreSQL")


def insert_for(engine: Engine) -> DialectInsert:
    """The INSERT of `engine`'s database (for `ON CONFLICT DO NOTHING`)."""
    return pg_dialect.insert if engine.dialect.name == "postgresql" else sqlite_dialect.insert


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's begin hook emit BEGIN itself (the driver would defer it to the first write).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file, set once. While another process is switching a new file to
    # WAL, SQLite answers "database is locked" at once instead of calling the busy handler.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("skyplan_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
