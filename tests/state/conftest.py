"""The `store` fixture: every state-store test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.pool import Pool

import pytest

from skyplan.state import Store
from tests.services.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from tests.state import workers


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of an empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    yield request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture(scope="session")
def process_pool() -> Iterator[Pool]:
    """Four worker processes (spawned, so nothing is inherited), started once per session.

    Tasks start together on a barrier, so four tasks always run in four processes at once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers.PROCESSES)
    pool = context.Pool(workers.PROCESSES, initializer=workers.init, initargs=(barrier,))
    try:
        yield pool
    finally:
        pool.close()
        pool.join()
