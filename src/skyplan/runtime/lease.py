"""Holding a store lock for as long as an operation runs: renewed in the background, so a
short TTL is safe; a holder that died on this host is detected at once (its pid is gone), one
on another host loses the lock when its lease expires."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from skyplan.errors import StateError
from skyplan.state import Lease, Store

#: Long enough to ride out a slow store; short enough that a killed CLI's lock soon frees.
TTL = 15.0


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def abandoned(holder: str) -> bool:
    """True when `holder` (an `owner()` string) is a process on this host that has exited: its
    lock can be taken at once instead of waiting for the lease to expire."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (dead, not yet reaped) still answers kill -0
        stat = Path(f"/proc/{pid_text}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@contextmanager
def _renewed(lease: Lease, ttl: float) -> Iterator[None]:
    """Renew `lease` every ttl/3 seconds in the background while the block runs."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                lease.renew(ttl)
            except StateError:
                return

    thread = threading.Thread(target=renew, name=f"lease {lease.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def locked(
    store: Store, name: str, *, ttl: float = 60.0, timeout: float = 30.0
) -> AbstractContextManager[Lease]:
    """Lock `name` for a short block (no renewal), owned by this thread of this process, so a
    holder killed on this host is seen dead at once instead of after `ttl`."""
    return store.lock(name, owner=owner(), ttl=ttl, timeout=timeout, abandoned=abandoned)


@contextmanager
def held(store: Store, name: str, *, timeout: float = 60.0, ttl: float = TTL) -> Iterator[None]:
    """Hold lock `name` for the block, renewing it every ttl/3 seconds."""
    with (
        store.lock(name, owner=owner(), ttl=ttl, timeout=timeout, abandoned=abandoned) as lease,
        _renewed(lease, ttl),
    ):
        yield


@contextmanager
def claimed(store: Store, name: str, *, ttl: float = TTL) -> Iterator[bool]:
    """Take lock `name` if it is free (no waiting) and hold it, renewed, for the block; yields
    whether it was taken. Work claimed this way is done by one process at a time, however many
    controllers share the store."""
    lease = store.try_lock(name, owner=owner(), ttl=ttl, abandoned=abandoned)
    if lease is None:
        yield False
        return
    try:
        with _renewed(lease, ttl):
            yield True
    finally:
        lease.release()
