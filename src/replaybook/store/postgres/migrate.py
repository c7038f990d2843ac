"""Connecting to PostgreSQL and applying the schema migrations.

Migrations are applied on open (and by `replaybook db upgrade`), in one transaction
that first takes an advisory lock scoped to the store's schema and then re-reads
`schema_migrations`: concurrent openers of a new database apply every migration
exactly once (the others wait on the lock, then see the work done).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from replaybook.errors import StoreError
from replaybook.store.postgres.sql import MIGRATIONS, QUERIES, Migration
from replaybook.store.postgres.target import PostgresTarget, parse_url

_LOCK: Final = QUERIES["lock_migrations"]
_TABLE_EXISTS: Final = QUERIES["schema_migrations_exists"]
_CREATE_TABLE: Final = QUERIES["create_schema_migrations"]
_APPLIED: Final = QUERIES["applied_migrations"]
_RECORD: Final = QUERIES["record_migration"]

Connection = psycopg.Connection[tuple[Any, ...]]


def connect(target: PostgresTarget) -> Connection:
    """One autocommit connection (transactions are explicit)."""
    try:
        return psycopg.connect(target.connection_string(), autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL store {target.display}: {exc}") from exc


def applied_versions(conn: Connection) -> set[int]:
    row = conn.execute(_TABLE_EXISTS).fetchone()
    if row is None or not row[0]:
        return set()
    return {int(r[0]) for r in conn.execute(_APPLIED).fetchall()}


def apply_migrations(
    conn: Connection, target: PostgresTarget, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now."""
    wanted = {m.version for m in migrations}
    if wanted <= applied_versions(conn):  # fast path: no lock needed
        return []
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute(_LOCK, {"scope": target.lock_scope})
        if target.schema is not None:
            create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target.schema))
            conn.execute(create)
        conn.execute(_CREATE_TABLE)
        done = applied_versions(conn)
        for migration in migrations:
            if migration.version in done:
                continue
            conn.execute(migration.script)  # a script: no parameters, several statements
            conn.execute(_RECORD, {"version": migration.version, "name": migration.name})
            applied_now.append(migration.version)
    return applied_now


def upgrade(url: str) -> tuple[list[int], int]:
    """Bring the store `url` names up to date: (versions applied now, schema version)."""
    target = parse_url(url)
    with connect(target) as conn:
        try:
            applied = apply_migrations(conn, target)
            current = max(applied_versions(conn), default=0)
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate PostgreSQL store {target.display}: {exc}") from exc
    return applied, current
