"""A throwaway PostgreSQL server for tests: one per test session, a fresh database per test.

Usage from any test package's conftest::

    from tests.services.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

    def test_x(postgres_url):          # an empty database, postgresql+psycopg://postgres@.../DB
        ...

    def test_y(postgres_server):       # the server itself: create_database(), drop_database()
        url = postgres_server.create_database()

The server runs from the PostgreSQL binaries installed on the machine (`/usr/lib/postgresql/*/
bin`, or $SKYPLAN_PG_BIN, or `pg_ctl` on PATH), with its data, socket and log in a fresh
directory under the system temp dir, on a free loopback port, trusting local connections, with
fsync off. As root it runs as the `postgres` user (PostgreSQL refuses to run as root). Without
binaries (or psycopg) the fixture skips, unless SKYPLAN_REQUIRE_POSTGRES=1, which makes it fail:
CI sets it so a missing server can never turn the PostgreSQL half of a suite silently green.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ENV = "SKYPLAN_REQUIRE_POSTGRES"
BIN_ENV = "SKYPLAN_PG_BIN"


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL bin directory with `initdb` and `pg_ctl`, or None."""
    candidates: list[Path] = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: _version_key(p.parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway server; `stop()` removes it and its data."""

    bin_dir: Path
    base: Path  # holds data/, the socket and the log
    port: int
    run_as: str | None  # the OS user it runs as when we are root
    host: str = "127.0.0.1"
    user: str = "postgres"
    _databases: set[str] = field(default_factory=set)
    _stopped: bool = False

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def admin_conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname=postgres"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name unless given); returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        self._databases.add(name)
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        import psycopg

        name = url_or_name.rsplit("/", 1)[-1]
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._databases.discard(name)

    def reset_database(self, name: str = "skyplan_test") -> str:
        """Empty database `name` (created on first use) by recreating its `public` schema, far
        quicker than a new database per test; returns its URL. Sessions still connected to it
        are ended first, so a test that leaked a connection cannot block the next one."""
        import psycopg

        if name not in self._databases:
            self.create_database(name)
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        conninfo = self.admin_conninfo().replace("dbname=postgres", f"dbname={name}")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return self.url(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        _run(self, "pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def _run(server: PostgresServer, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(server.bin_dir / tool), *args]
    if server.run_as:
        command = ["runuser", "-u", server.run_as, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def start_postgres(bin_dir: Path) -> PostgresServer:
    """Initialize and start a server from `bin_dir`; RuntimeError (with its log) if it fails."""
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        try:
            account = pwd.getpwnam(run_as)
        except KeyError as exc:
            raise RuntimeError("running as root, and there is no `postgres` user") from exc
    base = Path(tempfile.mkdtemp(prefix="skyplan-pg-"))
    base.chmod(0o755)
    if run_as:
        os.chown(base, account.pw_uid, account.pw_gid)
    server = PostgresServer(bin_dir=bin_dir, base=base, port=0, run_as=run_as)
    init = _run(
        server,
        "initdb",
        "-D",
        str(base / "data"),
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
        "-U",
        "postgres",
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
    last = ""
    for _ in range(3):  # a free port can be taken by someone else before the server binds it
        server.port = _free_port()
        options = (
            f"-c listen_addresses={server.host} -p {server.port} -k {base} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        start = _run(
            server,
            "pg_ctl",
            "-D",
            str(base / "data"),
            "-w",
            "-t",
            "30",
            "-l",
            str(base / "log"),
            "-o",
            options,
            "start",
        )
        if start.returncode == 0:
            atexit.register(server.stop)
            return server
        log = base / "log"
        last = f"{start.stdout}{start.stderr}{log.read_text() if log.exists() else ''}"
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"pg_ctl could not start PostgreSQL:\n{last}")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires PostgreSQL", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the test session (see the module docstring)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        _unavailable(
            f"no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin, "
            f"${BIN_ENV} or PATH"
        )
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty PostgreSQL database, emptied again for every test that asks."""
    return postgres_server.reset_database()
