"""Cross-process leases in the store's `locks` table, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from skyplan.errors import LockTimeout, StateError
from skyplan.state import Lease, Store
from skyplan.state.schema import locks


def test_try_lock_takes_a_free_lock_and_refuses_a_held_one(store: Store) -> None:
    lease = store.try_lock("launch/train", owner="cli-1", ttl=30)
    assert isinstance(lease, Lease)
    assert (lease.name, lease.owner) == ("launch/train", "cli-1")
    assert lease.held()
    assert store.try_lock("launch/train", owner="cli-2") is None
    assert store.try_lock("launch/other", owner="cli-2") is not None


def test_the_default_owner_is_unique_to_each_call(store: Store) -> None:
    first = store.try_lock("x")
    assert first is not None
    assert store.try_lock("x") is None


def test_an_owner_may_take_its_own_lock_again(store: Store) -> None:
    store.try_lock("x", owner="daemon", ttl=1)
    again = store.try_lock("x", owner="daemon", ttl=60)
    assert again is not None and again.held()


def test_a_released_lock_is_free(store: Store) -> None:
    lease = store.try_lock("x", owner="a")
    assert lease is not None
    lease.release()
    assert not lease.held()
    assert store.try_lock("x", owner="b") is not None
    lease.release()  # releasing a lock someone else now holds leaves it alone
    assert store.try_lock("x", owner="c") is None


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew(store: Store) -> None:
    old = store.try_lock("x", owner="crashed", ttl=60)
    assert old is not None
    assert store.try_lock("x", owner="next") is None
    _expire(store, "x")
    assert not old.held()
    new = store.try_lock("x", owner="next", ttl=30)
    assert new is not None and new.held()
    with pytest.raises(StateError, match="no longer held by crashed"):
        old.renew()
    assert new.held()


def test_renew_extends_a_lease_from_now(store: Store) -> None:
    lease = store.try_lock("x", owner="a", ttl=1)
    assert lease is not None
    before = lease.expires_at
    lease.renew(60)
    assert lease.expires_at - before > timedelta(seconds=50)
    _expire(store, "x")
    lease.renew()  # an expired lease nobody took is still ours to renew, for its own ttl
    assert lease.held()
    assert store.try_lock("x", owner="b") is None


def test_lock_holds_the_lease_for_the_block_and_releases_it_even_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.lock("x", owner="a") as lease:
        assert lease.held()
        assert store.try_lock("x", owner="b") is None
        raise RuntimeError("launch failed")
    assert not lease.held()
    assert store.try_lock("x", owner="b") is not None


def test_lock_waits_for_a_lease_to_expire(store: Store) -> None:
    store.try_lock("x", owner="crashed", ttl=0.3)
    started = time.monotonic()
    with store.lock("x", owner="waiter", timeout=5) as lease:
        assert lease.owner == "waiter"
    assert 0.2 < time.monotonic() - started < 5


def test_lock_timeout_names_the_holder(store: Store) -> None:
    store.try_lock("launch/train", owner="host-a:4242:cafe", ttl=60)
    started = time.monotonic()
    held_by = r"'launch/train': held by host-a:4242:cafe until"
    with (
        pytest.raises(LockTimeout, match=held_by),
        store.lock("launch/train", owner="b", timeout=0.3),
    ):
        pytest.fail("must not get the lock")
    assert 0.25 < time.monotonic() - started < 5


def test_a_lease_needs_a_positive_ttl(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        store.try_lock("x", ttl=0)


def _expire(store: Store, name: str) -> None:
    """Make lock `name` look as if its holder stopped renewing it a minute ago."""
    past = datetime.now(UTC) - timedelta(minutes=1)
    with store._engine.begin() as conn:
        conn.execute(locks.update().where(locks.c.name == name).values(expires_at=past))


def test_a_lock_whose_holder_is_abandoned_is_taken_at_once(store: Store) -> None:
    assert store.try_lock("launch", owner="dead-host:1", ttl=600) is not None
    assert store.try_lock("launch", owner="me", abandoned=lambda o: False) is None
    taken = store.try_lock("launch", owner="me", abandoned=lambda o: o == "dead-host:1")
    assert taken is not None and taken.owner == "me"
