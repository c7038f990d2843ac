"""Fixtures for the Store contract suite.

`store_factory` is parametrised over backends: each param names a factory that opens a
fresh, empty database for the test and returns a callable opening (another)
connection to it. Adding a backend = adding one entry to BACKENDS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

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


def _sqlite_backend(tmp_path: Path, clock: FakeClock) -> StoreFactory:
    from replaybook.store.sqlite import SQLiteStore

    path = tmp_path / "store.db"
    return lambda: SQLiteStore(path, clock=clock)


# name -> (tmp_path, clock) -> factory opening stores on one fresh database.
# A "postgres" entry creates a fresh schema/database and returns a factory connecting
# to it (skipping when no server is configured).
BACKENDS: dict[str, Callable[[Path, FakeClock], StoreFactory]] = {
    "sqlite": _sqlite_backend,
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StoreFactory]:
    open_backend = BACKENDS[request.param](tmp_path, clock)
    opened: list[Store] = []

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
