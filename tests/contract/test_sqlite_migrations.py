"""SQLite migrations produce the expected schema, exactly once, however they are run."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from replaybook.errors import StoreError
from replaybook.store import UnsupportedBackend, default_data_dir, open_store
from replaybook.store.sqlite import SQLiteStore
from replaybook.store.sqlite.migrate import applied_versions, apply_migrations, connect
from replaybook.store.sqlite.sql import (
    MIGRATIONS,
    QUERIES,
    Migration,
    parse_named_queries,
    split_statements,
)

EXPECTED_COLUMNS = {
    "schema_migrations": ["version", "name", "applied_at"],
    "executions": [
        "id",
        "playbook_path",
        "playbook_version",
        "parent_id",
        "parent_step",
        "status",
        "created_at",
        "updated_at",
        "last_seq",
    ],
    "events": [
        "execution_id",
        "seq",
        "id",
        "type",
        "at",
        "step",
        "visit",
        "idx",
        "attempt",
        "data",
        "logic_version",
    ],
    "jobs": [
        "id",
        "execution_id",
        "step",
        "visit",
        "attempt",
        "idx",
        "pool",
        "payload",
        "status",
        "available_at",
        "due_at",
        "lease_token",
        "worker_id",
        "lease_expires_at",
        "leases",
    ],
    "catalog": ["path", "version", "name", "content", "content_hash", "registered_at"],
    "credentials": ["name", "type", "data", "created_at", "updated_at"],
    "schedules": [
        "id",
        "playbook_path",
        "playbook_version",
        "cron",
        "timezone",
        "payload",
        "catch_up",
        "paused",
        "created_at",
        "updated_at",
        "last_slot",
    ],
    "schedule_slots": ["schedule_id", "slot", "claimed_at", "claimed_by", "execution_id"],
    "hooks": [
        "name",
        "playbook_path",
        "playbook_version",
        "auth",
        "secret_credential",
        "created_at",
        "updated_at",
    ],
}

EXPECTED_INDEXES = {
    "executions_created": ("executions", ["created_at"]),
    "executions_status": ("executions", ["status", "created_at"]),
    "executions_playbook": ("executions", ["playbook_path", "created_at"]),
    "executions_parent": ("executions", ["parent_id", "created_at"]),
    "jobs_due": ("jobs", ["due_at"]),
}

EXPECTED_PRIMARY_KEYS = {
    "executions": ["id"],
    "events": ["execution_id", "seq"],
    "jobs": ["id"],
    "catalog": ["path", "version"],
    "credentials": ["name"],
    "schedules": ["id"],
    "schedule_slots": ["schedule_id", "slot"],
    "hooks": ["name"],
    "schema_migrations": ["version"],
}


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
    ).fetchall()
    return [(str(t), str(n), str(s)) for t, n, s in rows]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(str(tmp_path / "m.db"), busy_timeout_ms=5000)
    yield connection
    connection.close()


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[0].name == "initial"


def test_migrations_produce_the_expected_schema(conn: sqlite3.Connection) -> None:
    assert apply_migrations(conn) == [m.version for m in MIGRATIONS]
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    assert tables == set(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        assert [row[1] for row in info] == columns, table
        keys = sorted((row[5], row[1]) for row in info if row[5])
        assert [name for _, name in keys] == EXPECTED_PRIMARY_KEYS[table], table
    indexes = {
        row[0]: row[1]
        for row in conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    assert set(indexes) == set(EXPECTED_INDEXES)
    for name, (table, columns) in EXPECTED_INDEXES.items():
        assert indexes[name] == table
        assert [row[2] for row in conn.execute(f"PRAGMA index_info({name})")] == columns
    without_rowid = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert "WITHOUT ROWID" in without_rowid[0]
    assert conn.execute("PRAGMA foreign_key_list(events)").fetchall()
    assert conn.execute("PRAGMA foreign_key_list(jobs)").fetchall()


def test_applying_migrations_twice_is_a_no_op(conn: sqlite3.Connection) -> None:
    apply_migrations(conn)
    schema = schema_of(conn)
    recorded = conn.execute("SELECT * FROM schema_migrations").fetchall()
    assert apply_migrations(conn) == []
    assert schema_of(conn) == schema
    assert conn.execute("SELECT * FROM schema_migrations").fetchall() == recorded
    assert applied_versions(conn) == {m.version for m in MIGRATIONS}


def test_reopening_a_store_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "re.db"
    with SQLiteStore(path) as store:
        store.create_execution("ex", "a.yaml", 1)
    with SQLiteStore(path) as store:
        assert store.get_execution("ex") is not None
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_a_later_migration_applies_alone(conn: sqlite3.Connection) -> None:
    apply_migrations(conn)
    later = Migration(len(MIGRATIONS) + 1, "extra", ("CREATE TABLE extra (x INTEGER)",))
    assert apply_migrations(conn, [*MIGRATIONS, later]) == [later.version]
    assert apply_migrations(conn, [*MIGRATIONS, later]) == []
    assert conn.execute("SELECT count(*) FROM extra").fetchone()[0] == 0


def test_a_failing_migration_leaves_nothing_behind(conn: sqlite3.Connection) -> None:
    broken = Migration(1, "broken", ("CREATE TABLE half (x INTEGER)", "CREATE TABLE oops ("))
    with pytest.raises(sqlite3.Error):
        apply_migrations(conn, [broken])
    assert not conn.in_transaction
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    assert "half" not in names
    assert applied_versions(conn) == set()


def test_opening_a_new_file_from_many_threads_at_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    count = 8
    barrier = threading.Barrier(count)
    stores: list[SQLiteStore] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            barrier.wait()
            stores.append(SQLiteStore(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for store in stores:
        store.close()
    conn = sqlite3.connect(path)
    versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    conn.close()
    assert versions == [m.version for m in MIGRATIONS]


def test_opening_a_new_file_from_several_processes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "procs.db"
    script = (
        "import sys\n"
        "from replaybook.store.sqlite import SQLiteStore\n"
        "sys.stdin.read()  # start line: returns when the test closes our stdin\n"
        "s = SQLiteStore(sys.argv[1]); s.create_execution(sys.argv[2], 'a.yaml', 1); s.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), f"ex{n}"], stdin=subprocess.PIPE)
        for n in range(4)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    with SQLiteStore(path) as store:
        assert sorted(e.id for e in store.list_executions()) == ["ex0", "ex1", "ex2", "ex3"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_connection_settings(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "p.db") as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_every_named_query_compiles_against_the_schema(conn: sqlite3.Connection) -> None:
    apply_migrations(conn)
    for name, sql in QUERIES.items():
        if "{where}" in sql:
            sql = sql.replace("{where}", "")
        if name.startswith("filter_"):
            sql = f"SELECT 1 FROM executions WHERE {sql}"
        conn.execute(f"EXPLAIN {sql}", _null_params(sql))


def _null_params(sql: str) -> dict[str, None] | tuple[None, ...]:
    if "?" in sql:
        return (None,) * sql.count("?")
    return dict.fromkeys(re.findall(r":(\w+)", sql))


def test_sql_file_parsing() -> None:
    queries = parse_named_queries(
        "-- header\n-- name: one\nSELECT 1;\n\n-- a comment\n-- name: two\nSELECT\n  2\n"
    )
    assert queries == {"one": "SELECT 1", "two": "SELECT\n  2"}
    with pytest.raises(ValueError):
        parse_named_queries("-- name: x\nSELECT 1\n-- name: x\nSELECT 2\n")
    script = "-- c; with semicolon\nCREATE TABLE a (x); -- trailing\nCREATE TABLE b (\n y\n);\n"
    assert split_statements(script) == (
        "-- c; with semicolon\nCREATE TABLE a (x); -- trailing",
        "CREATE TABLE b (\n y\n);",
    )
    with pytest.raises(ValueError):
        split_statements("CREATE TABLE c (")


# -- open_store --------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path) -> None:
    for url in (
        f"sqlite://{tmp_path}/u1.db",
        f"sqlite:///{tmp_path}/u2.db",
        str(tmp_path / "u3.db"),
    ):
        store = open_store(url)
        assert isinstance(store, SQLiteStore)
        store.create_execution("ex", "a.yaml", 1)
        store.close()
    assert {p.name for p in tmp_path.glob("u*.db")} == {"u1.db", "u2.db", "u3.db"}
    memory = open_store("sqlite:///:memory:")
    memory.create_execution("ex", "a.yaml", 1)
    assert memory.get_execution("ex") is not None
    memory.close()


def test_open_store_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLAYBOOK_DB", raising=False)
    monkeypatch.setenv("REPLAYBOOK_DATA_DIR", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    store = open_store()
    assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "data/replaybook.db")
    store.close()
    monkeypatch.setenv("REPLAYBOOK_DB", f"sqlite://{tmp_path}/env.db")
    store = open_store()
    assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "env.db")
    store.close()
    monkeypatch.delenv("REPLAYBOOK_DATA_DIR")
    assert default_data_dir().name.lower() == "replaybook"


def test_open_store_rejects_unknown_backends() -> None:
    assert issubclass(UnsupportedBackend, StoreError)
    assert issubclass(UnsupportedBackend, NotImplementedError)
    with pytest.raises(StoreError, match="mysql"):
        open_store("mysql://localhost/db")
    # postgres URLs go to the PostgreSQL store (which checks its parameters first)
    with pytest.raises(StoreError, match="schema 'no-dash'"):
        open_store("postgres://user:pw@localhost/db?schema=no-dash")
