"""Cross-process locks in the store's `locks` table: `Lease`, a held lock, and `Locks`, the SQL
that takes, waits for, renews, releases and checks one.

A lock is a row (name, owner, expires_at). An owner may take it when the row is missing,
expired or already its own, or held by an owner that the caller's `abandoned` says is gone; the
row lock taken while deciding (`SELECT ... FOR UPDATE`, SQLite's `BEGIN IMMEDIATE`) makes the
decision atomic.

Runs each step in a transaction of the store's (`Store` passes its own, so database errors
become its StateError); must not import `store`.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from skyplan.errors import LockTimeout, StateError
from skyplan.state.engine import DialectInsert
from skyplan.state.schema import locks as locks_t


class _HasConnection(Protocol):
    conn: Connection


class Transaction(Protocol):
    """Opens one transaction, a write transaction when `write`, as the store's `_tx` does."""

    def __call__(self, *, write: bool = False) -> AbstractContextManager[_HasConnection]: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Locks:
    """The store's locks; `Store.try_lock` and `Store.lock` say what each call does."""

    def __init__(self, transaction: Transaction, insert: DialectInsert) -> None:
        self._tx = transaction
        self._insert = insert

    def try_lock(
        self,
        name: str,
        *,
        owner: str | None,
        ttl: float,
        abandoned: Callable[[str], bool] | None,
    ) -> Lease | None:
        if ttl <= 0:
            raise ValueError(f"a lock's ttl must be positive, not {ttl}")
        owner = owner or _default_owner()
        now = _now()
        expires_at = now + timedelta(seconds=ttl)
        with self._tx(write=True) as tx:
            query = sa.select(locks_t).where(locks_t.c.name == name).with_for_update()
            row = tx.conn.execute(query).first()
            if row is None:
                insert = (
                    self._insert(locks_t)
                    .values(name=name, owner=owner, expires_at=expires_at)
                    .on_conflict_do_nothing()
                    .returning(locks_t.c.name)
                )
                if tx.conn.execute(insert).first() is None:
                    return None  # another process created it a moment ago
            elif (
                row.owner == owner
                or row.expires_at <= now
                or (abandoned is not None and abandoned(row.owner))
            ):
                tx.conn.execute(
                    locks_t.update()
                    .where(locks_t.c.name == name)
                    .values(owner=owner, expires_at=expires_at)
                )
            else:
                return None
        return Lease(self, name, owner, expires_at, ttl)

    @contextmanager
    def lock(
        self,
        name: str,
        *,
        owner: str | None,
        ttl: float,
        timeout: float,
        abandoned: Callable[[str], bool] | None,
    ) -> Iterator[Lease]:
        owner = owner or _default_owner()
        deadline = time.monotonic() + timeout
        pause = 0.02
        while (lease := self.try_lock(name, owner=owner, ttl=ttl, abandoned=abandoned)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(self._timeout_message(name, timeout))
            time.sleep(min(left, pause * random.uniform(0.5, 1.0)))
            pause = min(pause * 2, 0.5)
        try:
            yield lease
        finally:
            lease.release()

    def _timeout_message(self, name: str, timeout: float) -> str:
        with self._tx() as tx:
            row = tx.conn.execute(sa.select(locks_t).where(locks_t.c.name == name)).first()
        holder = (
            f"held by {row.owner} until {row.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            if row is not None
            else "held by another process"
        )
        return f"gave up waiting {timeout:g} s for lock {name!r}: {holder}"

    def renew(self, lease: Lease, ttl: float) -> datetime:
        """The lease's new expiry, `ttl` seconds from now; StateError if it is no longer held."""
        expires_at = _now() + timedelta(seconds=ttl)
        mine = (locks_t.c.name == lease.name) & (locks_t.c.owner == lease.owner)
        with self._tx(write=True) as tx:
            changed = tx.conn.execute(locks_t.update().where(mine).values(expires_at=expires_at))
            if changed.rowcount == 0:
                raise StateError(
                    f"lock {lease.name!r} is no longer held by {lease.owner}: it expired and "
                    "another process took it"
                )
        return expires_at

    def release(self, lease: Lease) -> None:
        mine = (locks_t.c.name == lease.name) & (locks_t.c.owner == lease.owner)
        with self._tx(write=True) as tx:
            tx.conn.execute(locks_t.delete().where(mine))

    def holds(self, lease: Lease) -> bool:
        mine = (
            (locks_t.c.name == lease.name)
            & (locks_t.c.owner == lease.owner)
            & (locks_t.c.expires_at > _now())
        )
        with self._tx() as tx:
            return tx.conn.execute(sa.select(locks_t.c.name).where(mine)).first() is not None


class Lease:
    """A held lock: `owner` has lock `name` until `expires_at` unless it renews or releases it."""

    def __init__(
        self, locks: Locks, name: str, owner: str, expires_at: datetime, ttl: float
    ) -> None:
        self._locks = locks
        self.name = name
        self.owner = owner
        self.expires_at = expires_at
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, owner={self.owner!r}, expires_at={self.expires_at})"

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def renew(self, ttl: float | None = None) -> None:
        """Extend the lease by `ttl` (default: the one it was taken with) from now; StateError
        if another owner has taken the lock since it expired."""
        self.expires_at = self._locks.renew(self, self.ttl if ttl is None else ttl)

    def release(self) -> None:
        """Give the lock up (nothing happens if another owner has taken it since)."""
        self._locks.release(self)

    def held(self) -> bool:
        """True while this owner holds the lock and it has not expired."""
        return self._locks.holds(self)
