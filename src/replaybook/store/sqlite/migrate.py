"""Opening an SQLite database: connection settings and schema migrations.

Migrations are applied on open, each inside one BEGIN IMMEDIATE transaction that
first re-reads `schema_migrations`, so two processes opening the same new file at
once apply every migration exactly once (the second waits on the write lock, then
sees the work done).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Final

from replaybook.store.sqlite.sql import MIGRATIONS, QUERIES, Migration

_CREATE_TABLE: Final = QUERIES["create_schema_migrations"]
_APPLIED: Final = QUERIES["applied_migrations"]
_RECORD: Final = QUERIES["record_migration"]


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any
    thread (the caller serialises access), in WAL mode with synchronous=NORMAL."""
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _enable_wal(conn, busy_timeout_ms)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite does not always
    # run the busy handler for it, so retry while another opener holds the file.
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    try:
        rows = conn.execute(_APPLIED).fetchall()
    except sqlite3.OperationalError:  # no such table: a new database
        return set()
    return {int(row[0]) for row in rows}


def apply_migrations(
    conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now."""
    wanted = {m.version for m in migrations}
    if wanted <= applied_versions(conn):  # fast path: no write lock needed
        return []
    applied_now: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_TABLE)
        done = applied_versions(conn)
        for migration in migrations:
            if migration.version in done:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(_RECORD, {"version": migration.version, "name": migration.name})
            applied_now.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied_now
