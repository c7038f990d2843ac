"""Durable storage: the Store interface (`base`) and its backends.

`open_store(url)` picks the backend from a URL:

- `sqlite:///abs/path.db` (or `sqlite:////abs/path.db`), `sqlite:///:memory:`
- a plain file path (`~` is expanded)
- None: `$REPLAYBOOK_DB` if set, else `<data dir>/replaybook.db`, where the data dir
  is `$REPLAYBOOK_DATA_DIR` or the platform's user data dir for "replaybook".
- `postgresql://...` or `postgres://...` (query parameters `schema` and `pool_size`:
  see replaybook.store.postgres.target); needs the `postgres` extra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from replaybook.errors import StoreError
from replaybook.store.base import (
    CatalogEntry,
    Event,
    ExecutionInfo,
    Job,
    NewEvent,
    NewJob,
    Store,
    StoredCredential,
)

__all__ = [
    "CatalogEntry",
    "Event",
    "ExecutionInfo",
    "Job",
    "NewEvent",
    "NewJob",
    "Store",
    "StoredCredential",
    "UnsupportedBackend",
    "default_data_dir",
    "open_store",
    "upgrade_store",
]

DB_FILE_NAME = "replaybook.db"


class UnsupportedBackend(StoreError, NotImplementedError):
    """The URL names a backend this build cannot open (yet)."""


def default_data_dir() -> Path:
    """`$REPLAYBOOK_DATA_DIR`, else the platform's user data dir for replaybook."""
    configured = os.environ.get("REPLAYBOOK_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("replaybook", appauthor=False))


def open_store(url: str | None = None, *, clock: Callable[[], float] = time.time) -> Store:
    """Open the store `url` names (see the module docstring); migrations run on open."""
    backend, target = _resolve(url)
    if backend == "sqlite":
        return _open_sqlite(target, clock)
    return _open_postgres(target, clock)


def upgrade_store(url: str | None = None) -> tuple[list[int], int]:
    """Apply the pending schema migrations of the store `url` names (resolved like
    open_store): (the versions applied now, the schema version after)."""
    backend, target = _resolve(url)
    if backend == "sqlite":
        return _upgrade_sqlite(target)
    try:
        from replaybook.store.postgres.migrate import upgrade as upgrade_postgres
    except ImportError as exc:
        raise _no_psycopg(exc) from exc
    return upgrade_postgres(target)


def _resolve(url: str | None) -> tuple[str, str]:
    """("sqlite", file path or ":memory:") or ("postgres", URL)."""
    if url is None:
        url = os.environ.get("REPLAYBOOK_DB") or str(default_data_dir() / DB_FILE_NAME)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "sqlite", str(Path(url).expanduser())
    scheme = scheme.lower()
    if scheme == "sqlite":
        return "sqlite", _sqlite_path(url, rest)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return "postgres", url
    raise StoreError(f"unknown store URL scheme {scheme!r} in {url!r}")


def _sqlite_path(url: str, rest: str) -> str:
    # rest is what follows "sqlite://": "/abs/path.db", "//abs/path.db" or "/:memory:".
    if not rest.startswith("/"):
        raise StoreError(f"SQLite URL needs an absolute path (sqlite:///abs/path.db): {url!r}")
    path = rest.split("?", 1)[0]
    if path == "/:memory:":
        return ":memory:"
    while path.startswith("//"):
        path = path[1:]
    return path


def _open_sqlite(path: str, clock: Callable[[], float]) -> Store:
    from replaybook.store.sqlite import SQLiteStore

    return SQLiteStore(path, clock=clock)


def _upgrade_sqlite(path: str) -> tuple[list[int], int]:
    import sqlite3

    from replaybook.store.sqlite.migrate import applied_versions, apply_migrations, connect

    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path, busy_timeout_ms=30_000)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
    try:
        applied = apply_migrations(conn)
        return applied, max(applied_versions(conn), default=0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot migrate SQLite store {path}: {exc}") from exc
    finally:
        conn.close()


def _open_postgres(url: str, clock: Callable[[], float]) -> Store:
    try:
        from replaybook.store.postgres import PostgresStore
    except ImportError as exc:
        raise _no_psycopg(exc) from exc
    return PostgresStore(url, clock=clock)


def _no_psycopg(exc: ImportError) -> UnsupportedBackend:
    return UnsupportedBackend(
        "the PostgreSQL store needs psycopg and psycopg_pool"
        f" (pip install 'replaybook[postgres]'): {exc}"
    )
