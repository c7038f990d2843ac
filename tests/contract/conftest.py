"""Fixtures for the Store contract suite.

`store_factory` is parametrised over backends: each param names a context manager
that makes a fresh, empty database for the test and yields a callable opening
(another) connection to it. Adding a backend = adding one entry to BACKENDS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pgtest
import pytest

from replaybook.store.base import Store

StoreFactory = Callable[[], Store]


class FakeClock:
    """A clock tests advance by hand: leases and delays expire without sleeping."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@contextmanager
def _sqlite_backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StoreFactory]:
    from replaybook.store.sqlite import SQLiteStore

    path = tmp_path / "store.db"
    yield lambda: SQLiteStore(path, clock=clock)


@contextmanager
def _postgres_backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StoreFactory]:
    # A fresh schema in the session's database: far cheaper than a database per test.
    database: str = request.getfixturevalue("pg_database")
    url = pgtest.url_of(database, schema=pgtest.new_schema_name())
    from replaybook.store.postgres import PostgresStore

    yield lambda: PostgresStore(url, clock=clock)


# name -> (request, tmp_path, clock) -> context manager yielding a factory that opens
# stores on one fresh database.
BACKENDS: dict[
    str,
    Callable[[pytest.FixtureRequest, Path, FakeClock], AbstractContextManager[StoreFactory]],
] = {
    "sqlite": _sqlite_backend,
    "postgres": _postgres_backend,
}


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database made for this test session (dropped at its end); skips or fails
    the test when PostgreSQL is not available (see pgtest)."""
    pgtest.require()
    name = pgtest.create_database("rb_pg_contract")
    yield name
    pgtest.drop_database(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StoreFactory]:
    opened: list[Store] = []
    with BACKENDS[request.param](request, tmp_path, clock) as open_backend:

        def factory() -> Store:
            store = open_backend()
            opened.append(store)
            return store

        yield factory
        for store in opened:
            store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()
