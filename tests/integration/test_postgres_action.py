"""Integration tests for the postgres action (spec §6.4), against a real PostgreSQL.

The server comes from REPLAYBOOK_TEST_PG_DSN (default: the local trust-auth server at
postgresql://postgres@127.0.0.1:5432/postgres); the tests skip when it is unreachable.
Every test uses its own table names and drops them.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replaybook.actions.base import ActionContext
from replaybook.actions.postgres import (
    PostgresAction,
    PostgresConnections,
    postgres_conninfo,
)
from replaybook.errors import ActionError, StepTimeout

psycopg = pytest.importorskip("psycopg")

DSN = os.environ.get("REPLAYBOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _reachable() -> str | None:
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL is not reachable at {DSN} (set REPLAYBOOK_TEST_PG_DSN): {exc}"


_UNREACHABLE = _reachable()
pytestmark = pytest.mark.skipif(_UNREACHABLE is not None, reason=_UNREACHABLE or "")


@pytest.fixture
def pg() -> Iterator[Any]:
    """An autocommit connection for set-up and checks."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        yield conn


@pytest.fixture
def table(pg: Any) -> Iterator[Callable[[], str]]:
    """Unique table names (dropped after the test)."""
    names: list[str] = []

    def new() -> str:
        names.append(f"rb_test_{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield new
    for name in names:
        pg.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def conns() -> Iterator[PostgresConnections]:
    c = PostgresConnections()
    yield c
    c.close_all()


@pytest.fixture
def run(tmp_path: Path, conns: PostgresConnections) -> Any:
    action = PostgresAction()

    def run(
        spec: dict[str, Any],
        *,
        timeout: float | None = None,
        cancelled: threading.Event | None = None,
        log: Callable[[str], None] = lambda line: None,
        connection: bool = True,
    ) -> Any:
        ctx = ActionContext(
            execution_id="exec-1",
            step="s",
            attempt=1,
            data_dir=tmp_path,
            timeout=timeout,
            log=log,
            cancelled=cancelled or threading.Event(),
            services={"postgres": conns},
        )
        full = {"connection": DSN, **spec} if connection else spec
        return action.run(full, {}, ctx)

    return run


def test_conformance_crud_params(run: Any, table: Callable[[], str]) -> None:
    t = table()
    created = run(
        {
            "sql": f"""
              CREATE TABLE {t} (id integer PRIMARY KEY, name text, amount numeric, tags jsonb);
              INSERT INTO {t} VALUES (1, 'seed', 1.5, '["s"]');
            """
        }
    )
    assert created == {"rows": [], "columns": [], "row_count": 1}
    inserted = run(
        {
            "sql": f"INSERT INTO {t} (id, name, amount) VALUES (%(id)s, %(name)s, %(amount)s)",
            "params": {"id": 2, "name": "O'Brien", "amount": 12.5},
        }
    )
    assert inserted["row_count"] == 1
    read = run(
        {
            "sql": f"SELECT id, name, amount, tags FROM {t} WHERE id >= %(min_id)s ORDER BY id",
            "params": {"min_id": 1},
        }
    )
    assert read == {
        "rows": [
            {"id": 1, "name": "seed", "amount": 1.5, "tags": ["s"]},
            {"id": 2, "name": "O'Brien", "amount": 12.5, "tags": None},
        ],
        "columns": ["id", "name", "amount", "tags"],
        "row_count": 2,
    }


def test_all_statements_run_in_one_transaction(run: Any, pg: Any, table: Callable[[], str]) -> None:
    t = table()
    run({"sql": f"CREATE TABLE {t} (id integer PRIMARY KEY, note text)"})
    with pytest.raises(ActionError) as info:
        run(
            {
                "sql": f"""
                  INSERT INTO {t} VALUES (1, 'first');
                  INSERT INTO {t} VALUES (1, 'duplicate key fails');
                """
            }
        )
    assert info.value.type == "postgres"
    assert info.value.message.startswith("UniqueViolation: duplicate key value")
    assert "statement 2 of 2" in info.value.message
    assert info.value.details == {"sqlstate": "23505"}
    assert pg.execute(f"SELECT count(*) FROM {t}").fetchone() == (0,)
    # The connection went back clean: the next step works and commits.
    run({"sql": f"INSERT INTO {t} VALUES (2, 'ok')"})
    assert pg.execute(f"SELECT count(*) FROM {t}").fetchone() == (1,)


def test_ddl_is_rolled_back_too(run: Any, pg: Any, table: Callable[[], str]) -> None:
    t = table()
    with pytest.raises(ActionError, match="DivisionByZero"):
        run({"sql": f"CREATE TABLE {t} (id int); SELECT 1/0"})
    assert pg.execute("SELECT to_regclass(%s)", [t]).fetchone() == (None,)


def test_params_are_bound_not_spliced(run: Any, table: Callable[[], str]) -> None:
    t = table()
    tricky = 'O\'Brien <x> "q" ; -- %(name)s $1 \\'
    result = run(
        {
            "sql": f"""
              CREATE TABLE {t} (id int, name text, pct text);
              INSERT INTO {t} VALUES (%(id)s, %(name)s, %(pct)s);
              SELECT name, pct, name LIKE 'O%%' AS starts_o FROM {t} WHERE id = %(id)s
            """,
            "params": {"id": 7, "name": tricky, "pct": "50% off", "unused": "x"},
        }
    )
    assert result["rows"] == [{"name": tricky, "pct": "50% off", "starts_o": True}]


def test_statement_without_placeholders_keeps_literal_percent(run: Any) -> None:
    result = run(
        {
            "sql": "SELECT 'a%' AS lit, 10 % 3 AS modulo; SELECT %(x)s::int + 1 AS y, 'a%%' AS b",
            "params": {"x": 1},
        }
    )
    assert result["rows"] == [{"y": 2, "b": "a%"}]
    first = run({"sql": "SELECT 'a%' AS lit, 10 % 3 AS modulo", "params": {"x": 1}})
    assert first["rows"] == [{"lit": "a%", "modulo": 1}]


def test_each_statement_gets_the_names_it_uses(run: Any) -> None:
    result = run(
        {
            "sql": "SELECT %(a)s::text AS a; SELECT %(b)s::int AS b -- a comment: %(zzz)s",
            "params": {"a": "x", "b": 2},
        }
    )
    assert result["rows"] == [{"b": 2}]
    with pytest.raises(ActionError, match=r"statement 2 uses %\(c\)s, not in params"):
        run({"sql": "SELECT %(a)s::text; SELECT %(c)s::int", "params": {"a": "x"}})


def test_mapping_params_are_jsonb_and_lists_arrays(run: Any) -> None:
    result = run(
        {
            "sql": "SELECT %(meta)s::jsonb -> 'k' AS k, %(ids)s::int[] AS ids, "
            "jsonb_typeof(%(objs)s) AS objs_type, 2 = ANY(%(ids)s) AS has_two",
            "params": {"meta": {"k": [1, None]}, "ids": [1, 2], "objs": [{"a": 1}]},
        }
    )
    assert result["rows"] == [
        {"k": [1, None], "ids": [1, 2], "objs_type": "array", "has_two": True}
    ]


def test_result_types(run: Any) -> None:
    result = run(
        {
            "sql": r"""
              SELECT 1.5::numeric AS frac, 12.50::numeric AS frac2, 42.000::numeric AS whole,
                     0.1::numeric AS tenth, 3::bigint AS big, 2.5::float8 AS dbl,
                     '{"a": [1, {"b": null}]}'::jsonb AS obj, '[1, "x"]'::json AS arr,
                     NULL::text AS nothing, true AS yes,
                     '2024-03-04 05:06:07.5+02'::timestamptz AS ts,
                     '2024-03-04 05:06:07'::timestamp AS ts_naive,
                     '2024-03-04'::date AS d, 'infinity'::timestamptz AS inf,
                     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
                     '\x00ff10'::bytea AS raw, '1 day 2 hours'::interval AS span,
                     '1.5 seconds'::interval AS short, ARRAY[1.5, 2]::numeric[] AS nums,
                     '10.1.2.3'::inet AS ip, '[1,5)'::int4range AS r, 'NaN'::numeric AS nan
            """
        }
    )
    (row,) = result["rows"]
    assert row == {
        "frac": 1.5,
        "frac2": 12.5,
        "whole": 42,
        "tenth": 0.1,
        "big": 3,
        "dbl": 2.5,
        "obj": {"a": [1, {"b": None}]},
        "arr": [1, "x"],
        "nothing": None,
        "yes": True,
        "ts": "2024-03-04T03:06:07.500000+00:00",
        "ts_naive": "2024-03-04T05:06:07",
        "d": "2024-03-04",
        "inf": "infinity",
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "raw": base64.b64encode(b"\x00\xff\x10").decode("ascii"),
        "span": 93600,
        "short": 1.5,
        "nums": [1.5, 2],
        "ip": "10.1.2.3",
        "r": "[1,5)",
        "nan": None,
    }
    assert isinstance(row["whole"], int) and isinstance(row["frac"], float)
    assert result["columns"][:3] == ["frac", "frac2", "whole"]


def test_timestamptz_follows_the_session_time_zone(run: Any) -> None:
    result = run(
        {
            "sql": "SET LOCAL TIME ZONE 'America/New_York'; "
            "SELECT '2024-07-01 12:00:00+00'::timestamptz AS ts"
        }
    )
    assert result["rows"] == [{"ts": "2024-07-01T08:00:00-04:00"}]


def test_result_is_the_last_statement_returning_rows(run: Any, table: Callable[[], str]) -> None:
    t = table()
    result = run(
        {
            "sql": f"""
              CREATE TABLE {t} (id int);
              SELECT 'not me' AS x;
              INSERT INTO {t} VALUES (1), (2) RETURNING id;
              UPDATE {t} SET id = id + 10;
            """
        }
    )
    assert result == {"rows": [{"id": 1}, {"id": 2}], "columns": ["id"], "row_count": 2}
    updated = run({"sql": f"UPDATE {t} SET id = id + 1 WHERE id > 10"})
    assert updated == {"rows": [], "columns": [], "row_count": 2}
    ddl = run({"sql": f"ALTER TABLE {t} ADD COLUMN note text"})
    assert ddl == {"rows": [], "columns": [], "row_count": -1}
    empty = run({"sql": f"SELECT id FROM {t} WHERE false"})
    assert empty == {"rows": [], "columns": ["id"], "row_count": 0}
    shown = run({"sql": "SHOW standard_conforming_strings"})
    assert shown["rows"] == [{"standard_conforming_strings": "on"}]


def test_repeated_column_names_get_a_suffix(run: Any) -> None:
    result = run({"sql": "SELECT 1 AS x, 2 AS x, 3 AS x_1"})
    assert result["columns"] == ["x", "x_1", "x_1_1"]
    assert result["rows"] == [{"x": 1, "x_1": 2, "x_1_1": 3}]


def test_max_rows(run: Any) -> None:
    ok = run({"sql": "SELECT generate_series(1, 10) AS n", "max_rows": 10})
    assert ok["row_count"] == 10
    with pytest.raises(ActionError) as info:
        run({"sql": "SELECT generate_series(1, 11) AS n", "max_rows": 10})
    assert "more than 10 rows" in info.value.message
    assert "table" in info.value.message
    with pytest.raises(ActionError, match="more than 10000 rows"):
        run({"sql": "SELECT generate_series(1, 10001) AS n"})


def test_sql_aliases_and_base64(run: Any) -> None:
    assert run({"query": "SELECT 1 AS a"})["rows"] == [{"a": 1}]
    assert run({"command": "SELECT 2 AS a"})["rows"] == [{"a": 2}]
    assert run({"commands": ["SELECT 3 AS a", "SELECT 4 AS a"]})["rows"] == [{"a": 4}]
    encoded = base64.b64encode(b"SELECT 'b64;' AS a").decode()
    assert run({"command_b64": encoded})["rows"] == [{"a": "b64;"}]
    with pytest.raises(ActionError, match="needs SQL"):
        run({})
    with pytest.raises(ActionError, match="no SQL statement"):
        run({"sql": " -- only a comment\n;"})


def test_dollar_quotes_and_comments_split_right(run: Any) -> None:
    result = run(
        {
            "sql": """
              /* a; comment */
              DO $body$ BEGIN PERFORM 1; END $body$;
              SELECT $$a;b$$ AS x -- trailing; comment
            """
        }
    )
    assert result["rows"] == [{"x": "a;b"}]


def test_connection_from_db_fields_and_auth(run: Any) -> None:
    info = psycopg.conninfo.conninfo_to_dict(DSN)
    fields = {
        "db_host": info.get("host", "127.0.0.1"),
        "db_port": int(info.get("port", 5432)),
        "db_user": info.get("user", "postgres"),
        "db_name": info.get("dbname", "postgres"),
    }
    if info.get("password"):
        fields["db_password"] = info["password"]
    got = run({"sql": "SELECT current_user AS u", **fields}, connection=False)
    assert got["rows"] == [{"u": fields["db_user"]}]
    auth = {
        "type": "postgres",
        "host": fields["db_host"],
        "port": str(fields["db_port"]),
        "username": fields["db_user"],
        "database": fields["db_name"],
        "password": info.get("password"),
    }
    # auth wins over the other fields (the bogus db_host is never tried)
    got = run(
        {"sql": "SELECT 1 AS one", "auth": auth, "db_host": "nowhere.invalid"}, connection=False
    )
    assert got["rows"] == [{"one": 1}]
    got = run({"sql": "SELECT 1 AS one", "auth": {"dsn": DSN}}, connection=False)
    assert got["rows"] == [{"one": 1}]
    with pytest.raises(ActionError, match="needs connection fields"):
        run({"sql": "SELECT 1"}, connection=False)
    with pytest.raises(ActionError, match="not resolved"):
        run({"sql": "SELECT 1", "auth": "pg_local"}, connection=False)


def test_conninfo_building() -> None:
    assert postgres_conninfo({"connection": "postgresql://u:p@h:5/db"}) == (
        "postgresql://u:p@h:5/db"
    )
    built = psycopg.conninfo.conninfo_to_dict(
        postgres_conninfo(
            {
                "db_host": "h",
                "db_port": 6543,
                "db_user": "u",
                "db_password": "a b'c",
                "db_name": "d",
            }
        )
    )
    assert built == {"host": "h", "port": "6543", "user": "u", "password": "a b'c", "dbname": "d"}
    from_auth = psycopg.conninfo.conninfo_to_dict(
        postgres_conninfo({"auth": {"dsn": "postgresql://h/d", "user": "x", "sslmode": "disable"}})
    )
    assert from_auth == {"host": "h", "dbname": "d", "user": "x", "sslmode": "disable"}


def test_errors_never_show_the_password(run: Any) -> None:
    secret = "hunter2-not-shown"
    with pytest.raises(ActionError) as info:
        run({"sql": "SELECT 1", "connection": f"postgresql://postgres:{secret}@127.0.0.1:1/x"})
    assert info.value.type == "postgres"
    assert info.value.message.startswith("OperationalError: ")
    assert secret not in info.value.message
    with pytest.raises(ActionError) as info:
        run({"sql": "SELECT 1", "connection": "postgresql://postgres:has space@127.0.0.1/x"})
    assert "has space" not in info.value.message
    with pytest.raises(ActionError) as info:
        run(
            {"sql": "SELECT 1", "db_host": "127.0.0.1", "db_port": 1, "db_password": secret},
            connection=False,
        )
    assert secret not in info.value.message


def test_timeout_cancels_the_query(run: Any, conns: PostgresConnections) -> None:
    started = time.monotonic()
    with pytest.raises(StepTimeout):
        run({"sql": "SELECT pg_sleep(5)"}, timeout=0.5)
    assert time.monotonic() - started < 3
    # Several statements share the deadline (each alone would fit).
    started = time.monotonic()
    with pytest.raises(StepTimeout):
        run(
            {"sql": "SELECT pg_sleep(0.4); SELECT pg_sleep(0.4); SELECT pg_sleep(0.4)"}, timeout=0.6
        )
    assert time.monotonic() - started < 3
    assert run({"sql": "SELECT 1 AS ok"}, timeout=5)["rows"] == [{"ok": 1}]
    # statement_timeout was SET LOCAL: it does not outlive the step on the connection
    shown = run({"sql": "SHOW statement_timeout"})
    assert shown["rows"] == [{"statement_timeout": "0"}]


def test_own_statement_timeout_is_an_ordinary_error(run: Any) -> None:
    with pytest.raises(ActionError) as info:
        run({"sql": "SET LOCAL statement_timeout = '100ms'; SELECT pg_sleep(2)"}, timeout=30)
    assert not isinstance(info.value, StepTimeout)
    assert info.value.message.startswith("QueryCanceled: ")


def test_cancel_stops_the_query(run: Any, pg: Any, table: Callable[[], str]) -> None:
    t = table()
    cancelled = threading.Event()
    timer = threading.Timer(0.3, cancelled.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(ActionError) as info:
        run(
            {"sql": f"CREATE TABLE {t} (id int); INSERT INTO {t} VALUES (1); SELECT pg_sleep(5)"},
            cancelled=cancelled,
        )
    assert info.value.type == "cancelled"
    assert time.monotonic() - started < 3
    assert pg.execute("SELECT to_regclass(%s)", [t]).fetchone() == (None,)
    # a cancel set before the step starts stops it at once
    with pytest.raises(ActionError, match="cancelled"):
        run({"sql": "SELECT 1"}, cancelled=cancelled)


def test_connections_are_reused_one_step_at_a_time(run: Any) -> None:
    first = run({"sql": "SELECT pg_backend_pid() AS pid"})["rows"][0]["pid"]
    second = run({"sql": "SELECT pg_backend_pid() AS pid"})["rows"][0]["pid"]
    assert first == second
    pids: list[int] = []
    barrier = threading.Barrier(3)

    def step() -> None:
        barrier.wait()
        pids.append(run({"sql": "SELECT pg_sleep(0.2), pg_backend_pid() AS pid"})["rows"][0]["pid"])

    threads = [threading.Thread(target=step) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(pids)) == 3  # concurrent steps never share a connection


def test_dead_pooled_connection_is_replaced(run: Any, pg: Any) -> None:
    pid = run({"sql": "SELECT pg_backend_pid() AS pid"})["rows"][0]["pid"]
    pg.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    again = run({"sql": "SELECT pg_backend_pid() AS pid"})["rows"][0]["pid"]
    assert again != pid


def test_notices_go_to_the_log(run: Any) -> None:
    lines: list[str] = []
    run({"sql": "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$"}, log=lines.append)
    assert lines == ["NOTICE: hello 42"]


def test_default_connections_without_services(tmp_path: Path) -> None:
    ctx = ActionContext(execution_id="e", step="s", attempt=1, data_dir=tmp_path)
    result = PostgresAction().run({"connection": DSN, "sql": "SELECT 1 AS one"}, {}, ctx)
    assert result["rows"] == [{"one": 1}]


def test_registered_as_builtin() -> None:
    from replaybook.actions.registry import action_types, get_action

    assert "postgres" in action_types()
    assert isinstance(get_action("postgres"), PostgresAction)


def test_idle_connections_are_capped(tmp_path: Path) -> None:
    conns = PostgresConnections(max_idle_per_dsn=1, max_idle=2)
    ctx = ActionContext(
        execution_id="e", step="s", attempt=1, data_dir=tmp_path, services={"postgres": conns}
    )
    action = PostgresAction()
    try:
        barrier = threading.Barrier(3)

        def step() -> None:
            barrier.wait()
            action.run({"connection": DSN, "sql": "SELECT pg_sleep(0.1)"}, {}, ctx)

        threads = [threading.Thread(target=step) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert conns.idle_count() == 1  # three were open at once; one kept per DSN
        for name in ("a", "b", "c"):
            dsn = psycopg.conninfo.make_conninfo(DSN, application_name=f"rb_{name}")
            action.run({"connection": dsn, "sql": "SELECT 1"}, {}, ctx)
        assert conns.idle_count() == 2  # at most max_idle in all
    finally:
        conns.close_all()
    assert conns.idle_count() == 0
