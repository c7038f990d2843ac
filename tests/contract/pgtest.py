"""PostgreSQL for the tests: the server, a database made for this test session, and
fresh schemas in it.

The server is `$REPLAYBOOK_TEST_PG_DSN` (default: the local trust-auth server). When
it cannot be reached the PostgreSQL tests skip, saying why; with
`REPLAYBOOK_REQUIRE_PG=1` (CI) they fail instead.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

DSN = os.environ.get("REPLAYBOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("REPLAYBOOK_REQUIRE_PG", "") not in ("", "0")


def unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"psycopg / psycopg_pool are not installed ({exc}): pip install -e '.[postgres]'"
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {DSN} (set REPLAYBOOK_TEST_PG_DSN): {exc}"


def require() -> None:
    """Skip (or, with REPLAYBOOK_REQUIRE_PG=1, fail) the calling test without a server."""
    reason = unreachable()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"REPLAYBOOK_REQUIRE_PG=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def url_of(database: str, **query: str) -> str:
    """DSN with the database replaced (and store parameters added)."""
    parts = urlsplit(DSN)
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    q = "&".join(p for p in (parts.query, extra) if p)
    return urlunsplit(parts._replace(path=f"/{database}", query=q))


def create_database(prefix: str = "rb_pg_test") -> str:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"
