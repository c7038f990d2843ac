"""Integration tests for `save` (spec §7): a real PostgreSQL (REPLAYBOOK_TEST_PG_DSN,
default the local trust-auth server; those tests skip when it is unreachable), real
DuckDB files in tmp_path, and pytest-httpserver for http saves."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from replaybook.actions.base import ActionContext
from replaybook.actions.duckdb import DuckDBAction, DuckDBConnections
from replaybook.actions.postgres import PostgresConnections
from replaybook.actions.save import quote_table, run_save, translate_binds
from replaybook.errors import ActionError

DSN = os.environ.get("REPLAYBOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_unreachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL is not reachable at {DSN} (set REPLAYBOOK_TEST_PG_DSN): {exc}"


_PG_UNREACHABLE = _pg_unreachable()
needs_pg = pytest.mark.skipif(_PG_UNREACHABLE is not None, reason=_PG_UNREACHABLE or "")


@pytest.fixture
def pg() -> Iterator[Any]:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pg_table(pg: Any) -> Iterator[Callable[..., str]]:
    """Create a uniquely named table from a column list; dropped after the test."""
    names: list[str] = []

    def create(columns: str, schema: str | None = None) -> str:
        name = f"rb_save_{uuid.uuid4().hex[:12]}"
        full = f"{schema}.{name}" if schema else name
        pg.execute(f"CREATE TABLE {full} ({columns})")
        names.append(full)
        return full

    yield create
    for name in reversed(names):
        pg.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def services() -> Iterator[dict[str, Any]]:
    pgs = PostgresConnections()
    ducks = DuckDBConnections()
    yield {"postgres": pgs, "duckdb": ducks}
    pgs.close_all()
    ducks.close_all()


@pytest.fixture
def ctx(tmp_path: Path, services: dict[str, Any]) -> ActionContext:
    return ActionContext(
        execution_id="exec-save",
        step="s",
        attempt=1,
        data_dir=tmp_path,
        services=services,
        cancelled=threading.Event(),
    )


# -- event_log ---------------------------------------------------------------------


def test_event_log_is_the_default(ctx: ActionContext) -> None:
    data = {"id": 1, "note": None, "tags": ["a"]}
    assert run_save({"data": data}, ctx) == {"storage": "event_log", "data": data}
    assert run_save({"storage": "event", "args": [data]}, ctx) == {
        "storage": "event_log",
        "data": [data],
    }
    assert run_save({"storage": {"type": "event_log"}, "data": 5}, ctx) == {
        "storage": "event_log",
        "data": 5,
    }
    assert run_save({}, ctx) is None


def test_unknown_storage_and_bad_data(ctx: ActionContext) -> None:
    with pytest.raises(ActionError) as info:
        run_save({"storage": "mongo", "data": {}}, ctx)
    assert info.value.type == "save"
    assert "mongo" in info.value.message
    with pytest.raises(ActionError, match="must be a mapping"):
        run_save({"storage": "duckdb", "table": "t", "data": "text"}, ctx)
    with pytest.raises(ActionError, match="row 1 is a int"):
        run_save({"storage": "duckdb", "table": "t", "data": [{"a": 1}, 2]}, ctx)
    with pytest.raises(ActionError, match="needs a `table`"):
        run_save({"storage": "duckdb", "data": {"a": 1}}, ctx)
    with pytest.raises(ActionError, match="upsert needs a `key`"):
        run_save({"storage": "duckdb", "table": "t", "mode": "upsert", "data": {"a": 1}}, ctx)
    with pytest.raises(ActionError, match="upsert key id is not in the data"):
        run_save(
            {"storage": "duckdb", "table": "t", "mode": "upsert", "key": "id", "data": {"a": 1}},
            ctx,
        )


def test_sql_helpers() -> None:
    assert quote_table("public.results") == '"public"."results"'
    assert quote_table('"My Schema"."a.b"') == '"My Schema"."a.b"'
    assert quote_table('we"ird') == '"we""ird"'
    for bad in ("a..b", "a.", '"open', ""):
        with pytest.raises(ActionError):
            quote_table(bad)
    assert translate_binds("SELECT :a::jsonb, ':b', x::int -- :c %", "pyformat") == (
        "SELECT %(a)s::jsonb, ':b', x::int -- :c %%",
        ["a"],
    )
    assert translate_binds("SELECT :a, :b, :a", "dollar") == ("SELECT $a, $b, $a", ["a", "b"])
    assert translate_binds("SELECT '100%', x::text", "pyformat") == (
        "SELECT '100%', x::text",
        [],
    )


# -- postgres ----------------------------------------------------------------------


@needs_pg
def test_required_case_upsert_twice_keeps_types(
    ctx: ActionContext, pg: Any, pg_table: Callable[..., str]
) -> None:
    t = pg_table("id int PRIMARY KEY, note text, amount numeric, tags jsonb")
    save = {
        "storage": "postgres",
        "connection": DSN,
        "table": t,
        "mode": "upsert",
        "key": "id",
        "data": {"id": 1, "note": None, "amount": 12.5, "tags": ["a"]},
    }
    first = run_save(save, ctx)
    assert first == {"storage": "postgres", "table": t, "mode": "upsert", "rows": 1}
    assert run_save(save, ctx) == first
    rows = pg.execute(
        f"SELECT count(*) OVER (), id, note IS NULL, amount = 12.5, amount, "
        f"jsonb_typeof(tags), tags FROM {t}"
    ).fetchall()
    assert len(rows) == 1
    count, id_, note_is_null, amount_ok, amount, tags_type, tags = rows[0]
    assert (count, id_, note_is_null, amount_ok, tags_type, tags) == (
        1,
        1,
        True,
        True,
        "array",
        ["a"],
    )
    assert str(amount) == "12.5"


@needs_pg
def test_conformance_upsert_updates_the_row(
    ctx: ActionContext, pg: Any, pg_table: Callable[..., str]
) -> None:
    t = pg_table("id integer PRIMARY KEY, note text, amount numeric, tags jsonb, meta jsonb")
    base = {"storage": "postgres", "connection": DSN, "table": t, "mode": "upsert", "key": "id"}
    run_save(
        {**base, "data": {"id": 1, "note": "first", "amount": 1, "tags": ["a"], "meta": {"v": 1}}},
        ctx,
    )
    run_save(
        {
            **base,
            "data": {
                "id": 1,
                "note": None,
                "amount": 12.5,
                "tags": ["a", "b"],
                "meta": {"nested": {"ok": True}},
            },
        },
        ctx,
    )
    row = pg.execute(
        f"SELECT id, note IS NULL, amount, tags, meta, jsonb_typeof(tags), "
        f"jsonb_typeof(meta), (SELECT count(*) FROM {t}) FROM {t}"
    ).fetchone()
    assert row[0] == 1 and row[1] is True and float(row[2]) == 12.5
    assert row[3:] == (["a", "b"], {"nested": {"ok": True}}, "array", "object", 1)


@needs_pg
def test_text_is_stored_exactly(ctx: ActionContext, pg: Any, pg_table: Callable[..., str]) -> None:
    t = pg_table("id int, name text, pct text, meta_text text, meta_json json")
    tricky = 'O\'Brien <x> "q"; DROP TABLE x; -- %(id)s :id $1 \\ 50%'
    run_save(
        {
            "storage": "postgres",
            "connection": DSN,
            "table": t,
            "data": {
                "id": 1,
                "name": tricky,
                "pct": "100%",
                "meta_text": {"a": 1},
                "meta_json": [1, {"b": None}],
            },
        },
        ctx,
    )
    row = pg.execute(f"SELECT id, name, pct, meta_text, meta_json FROM {t}").fetchone()
    assert row[:3] == (1, tricky, "100%")
    assert json.loads(row[3]) == {"a": 1}
    assert row[4] == [1, {"b": None}]


@needs_pg
def test_list_of_rows_insert(ctx: ActionContext, pg: Any, pg_table: Callable[..., str]) -> None:
    t = pg_table("id int PRIMARY KEY, note text DEFAULT 'dflt', score float8")
    rows = [
        {"id": 1, "note": "a", "score": 1.5},
        {"id": 2, "note": None, "score": 2},
        {"id": 3, "score": 3.25},  # note missing: the column default
        {"score": -1, "id": 4},  # another column order
    ]
    summary = run_save(
        {"storage": {"type": "postgres", "connection": DSN}, "table": t, "args": rows}, ctx
    )
    assert summary == {"storage": "postgres", "table": t, "mode": "insert", "rows": 4}
    got = pg.execute(f"SELECT id, note, score FROM {t} ORDER BY id").fetchall()
    assert got == [(1, "a", 1.5), (2, None, 2.0), (3, "dflt", 3.25), (4, "dflt", -1.0)]
    assert run_save({"storage": "postgres", "connection": DSN, "table": t, "data": []}, ctx) == {
        "storage": "postgres",
        "table": t,
        "mode": "insert",
        "rows": 0,
    }


@needs_pg
def test_insert_is_all_or_nothing(
    ctx: ActionContext, pg: Any, pg_table: Callable[..., str]
) -> None:
    t = pg_table("id int PRIMARY KEY")
    with pytest.raises(ActionError) as info:
        run_save(
            {
                "storage": "postgres",
                "connection": DSN,
                "table": t,
                "data": [{"id": 1}, {"id": 2}, {"id": 1}],
            },
            ctx,
        )
    assert info.value.type == "save"
    assert "UniqueViolation" in info.value.message
    assert t in info.value.message
    assert pg.execute(f"SELECT count(*) FROM {t}").fetchone() == (0,)


@needs_pg
def test_custom_statement_binds_names(
    ctx: ActionContext, pg: Any, pg_table: Callable[..., str]
) -> None:
    t = pg_table("id int PRIMARY KEY, note text, tags jsonb, label text")
    statement = (
        f"INSERT INTO {t} (id, note, tags, label) "
        "VALUES (:id, :note, CAST(:tags::text AS jsonb), ':not_a_bind 100%') "
        "ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note || ' (again)', tags = :tags::jsonb"
    )
    data = {"id": 5, "note": "O'Brien <x>", "tags": {"k": ["v"]}, "unused": 1}
    summary = run_save(
        {"storage": "postgres", "connection": DSN, "statement": statement, "data": data}, ctx
    )
    assert summary == {"storage": "postgres", "table": None, "mode": "statement", "rows": 1}
    run_save(
        {"storage": "postgres", "connection": DSN, "statement": statement, "data": [data]}, ctx
    )
    row = pg.execute(f"SELECT id, note, tags, jsonb_typeof(tags), label FROM {t}").fetchone()
    assert row == (5, "O'Brien <x> (again)", {"k": ["v"]}, "object", ":not_a_bind 100%")
    with pytest.raises(ActionError, match=r"uses :missing, not in data row 0"):
        run_save(
            {
                "storage": "postgres",
                "connection": DSN,
                "statement": f"INSERT INTO {t} (id) VALUES (:missing)",
                "data": {"id": 1},
            },
            ctx,
        )
    # no data: the statement runs once, without binds
    run_save(
        {
            "storage": "postgres",
            "connection": DSN,
            "statement": f"INSERT INTO {t} (id, label) VALUES (9, 'x%')",
        },
        ctx,
    )
    assert pg.execute(f"SELECT label FROM {t} WHERE id = 9").fetchone() == ("x%",)


@needs_pg
def test_schema_qualified_table(ctx: ActionContext, pg: Any, pg_table: Callable[..., str]) -> None:
    schema = f"rb_schema_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE SCHEMA {schema}")
    try:
        t = pg_table("id int PRIMARY KEY, v text", schema)
        run_save(
            {
                "storage": "postgres",
                "connection": DSN,
                "table": t,
                "mode": "upsert",
                "key": ["id"],
                "data": [{"id": 1, "v": "a"}, {"id": 1, "v": "b"}],
            },
            ctx,
        )
        assert pg.execute(f"SELECT id, v FROM {t}").fetchall() == [(1, "b")]
        # quoted names are case-sensitive: "Mixed" is its own table
        pg.execute(f'CREATE TABLE {schema}."Mixed Case" (id int)')
        run_save(
            {
                "storage": "postgres",
                "connection": DSN,
                "table": f'{schema}."Mixed Case"',
                "data": {"id": 3},
            },
            ctx,
        )
        assert pg.execute(f'SELECT id FROM {schema}."Mixed Case"').fetchall() == [(3,)]
    finally:
        pg.execute(f"DROP SCHEMA {schema} CASCADE")


@needs_pg
def test_postgres_connection_fields(
    ctx: ActionContext, pg: Any, pg_table: Callable[..., str]
) -> None:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(DSN)
    t = pg_table("id int")
    auth = {
        "type": "postgres",
        "host": info.get("host", "127.0.0.1"),
        "port": info.get("port", "5432"),
        "user": info.get("user", "postgres"),
        "dbname": info.get("dbname", "postgres"),
        "password": info.get("password"),
    }
    run_save({"storage": "postgres", "auth": auth, "table": t, "data": {"id": 1}}, ctx)
    db_fields = {f"db_{k}": v for k, v in auth.items() if k != "type" and v}
    db_fields["db_name"] = db_fields.pop("db_dbname")
    run_save({"storage": "postgres", **db_fields, "table": t, "data": {"id": 2}}, ctx)
    assert pg.execute(f"SELECT id FROM {t} ORDER BY id").fetchall() == [(1,), (2,)]
    secret = "s3cret-pass-word"
    with pytest.raises(ActionError) as err:
        run_save(
            {
                "storage": "postgres",
                "connection": f"postgresql://u:{secret}@127.0.0.1:1/x",
                "table": t,
                "data": {"id": 3},
            },
            ctx,
        )
    assert err.value.type == "save"
    assert secret not in err.value.message


# -- duckdb ------------------------------------------------------------------------


def test_duckdb_insert_and_upsert(ctx: ActionContext, tmp_path: Path) -> None:
    db = str(tmp_path / "save.duckdb")
    with duckdb.connect(db) as conn:
        conn.execute(
            "CREATE TABLE results (id INTEGER PRIMARY KEY, note VARCHAR, amount DOUBLE, tags JSON)"
        )
    base = {"storage": "duckdb", "database": db, "table": "results"}
    rows = [
        {"id": 1, "note": "O'Brien <x>", "amount": 1.5, "tags": ["a"]},
        {"id": 2, "note": None, "amount": 2, "tags": {"k": 1}},
    ]
    assert run_save({**base, "data": rows}, ctx) == {
        "storage": "duckdb",
        "table": "results",
        "mode": "insert",
        "rows": 2,
    }
    upsert = {**base, "mode": "upsert", "key": "id"}
    run_save({**upsert, "data": {"id": 2, "note": "updated", "amount": 12.5, "tags": []}}, ctx)
    run_save({**upsert, "data": {"id": 3, "note": None, "amount": None, "tags": None}}, ctx)
    ctx.services["duckdb"].close(db)
    with duckdb.connect(db) as conn:
        got = conn.execute(
            "SELECT id, note, amount, tags, json_type(tags) FROM results ORDER BY id"
        ).fetchall()
    assert got == [
        (1, "O'Brien <x>", 1.5, '["a"]', "ARRAY"),
        (2, "updated", 12.5, "[]", "ARRAY"),
        (3, None, None, None, None),
    ]


def test_duckdb_default_database_is_the_execution_file(ctx: ActionContext, tmp_path: Path) -> None:
    action = DuckDBAction()
    action.run(
        {"sql": "CREATE SCHEMA s; CREATE TABLE s.t (id INTEGER PRIMARY KEY, v VARCHAR)"}, {}, ctx
    )
    run_save({"storage": "duckdb", "table": "s.t", "data": {"id": 1, "v": "x"}}, ctx)
    run_save(
        {
            "storage": "duckdb",
            "statement": "INSERT INTO s.t VALUES (:id, :v::VARCHAR || '::x')",
            "data": [{"id": 2, "v": "y"}, {"id": 3, "v": "z"}],
        },
        ctx,
    )
    got = action.run({"sql": "SELECT id, v FROM s.t ORDER BY id"}, {}, ctx)
    assert got["rows"] == [{"id": 1, "v": "x"}, {"id": 2, "v": "y::x"}, {"id": 3, "v": "z::x"}]
    assert DuckDBConnections.default_path(tmp_path, "exec-save").exists()


def test_duckdb_failure_rolls_back(ctx: ActionContext, tmp_path: Path) -> None:
    db = str(tmp_path / "fail.duckdb")
    run_save(
        {"storage": "duckdb", "database": db, "statement": "CREATE TABLE t (id INT PRIMARY KEY)"},
        ctx,
    )
    with pytest.raises(ActionError) as info:
        run_save(
            {"storage": "duckdb", "database": db, "table": "t", "data": [{"id": 1}, {"id": 1}]},
            ctx,
        )
    assert info.value.type == "save"
    assert "save to duckdb table t" in info.value.message
    with pytest.raises(ActionError, match="save to duckdb table nope"):
        run_save({"storage": "duckdb", "database": db, "table": "nope", "data": {"id": 1}}, ctx)
    got = DuckDBAction().run({"database": db, "sql": "SELECT count(*) AS n FROM t"}, {}, ctx)
    assert got["rows"] == [{"n": 0}]


# -- http --------------------------------------------------------------------------


def test_http_save_posts_json(ctx: ActionContext, httpserver: HTTPServer) -> None:
    seen: list[tuple[str, str, Any, str]] = []

    def handler(request: Request) -> Response:
        seen.append(
            (
                request.method,
                request.headers.get("content-type", ""),
                json.loads(request.get_data()),
                request.headers.get("x-token", ""),
            )
        )
        return Response("{}", status=201, content_type="application/json")

    httpserver.expect_request("/ingest").respond_with_handler(handler)
    data = {"id": 1, "note": None, "amount": 12.5, "tags": ["a"], "name": "O'Brien <x>"}
    summary = run_save(
        {
            "storage": "http",
            "url": httpserver.url_for("/ingest"),
            "headers": {"X-Token": "t1"},
            "data": data,
        },
        ctx,
    )
    assert summary == {
        "storage": "http",
        "url": httpserver.url_for("/ingest"),
        "status_code": 201,
        "rows": 1,
    }
    run_save(
        {
            "storage": {"type": "http", "endpoint": httpserver.url_for("/ingest"), "method": "put"},
            "args": [data, data],
        },
        ctx,
    )
    assert seen == [
        ("POST", "application/json", data, "t1"),
        ("PUT", "application/json", [data, data], ""),
    ]


def test_http_save_error_status_fails(ctx: ActionContext, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ingest").respond_with_data("nope", status=500)
    with pytest.raises(ActionError) as info:
        run_save({"storage": "http", "url": httpserver.url_for("/ingest"), "data": {"a": 1}}, ctx)
    assert info.value.type == "save"
    assert info.value.status_code == 500
    assert "HTTP 500" in info.value.message
    with pytest.raises(ActionError, match="needs a `url`"):
        run_save({"storage": "http", "data": {"a": 1}}, ctx)
