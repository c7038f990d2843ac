"""Integration tests for the duckdb action (spec §6.3), on real DuckDB files."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replaybook.actions.base import ActionContext
from replaybook.actions.duckdb import DuckDBAction, DuckDBConnections
from replaybook.errors import ActionError, StepTimeout


@pytest.fixture
def conns() -> Iterator[DuckDBConnections]:
    c = DuckDBConnections()
    yield c
    c.close_all()


@pytest.fixture
def run(tmp_path: Path, conns: DuckDBConnections) -> Any:
    action = DuckDBAction()

    def run(
        spec: dict[str, Any],
        *,
        execution_id: str = "exec-1",
        timeout: float | None = None,
        cancelled: threading.Event | None = None,
    ) -> Any:
        ctx = ActionContext(
            execution_id=execution_id,
            step="s",
            attempt=1,
            data_dir=tmp_path,
            timeout=timeout,
            cancelled=cancelled or threading.Event(),
            services={"duckdb": conns},
        )
        return action.run(spec, {}, ctx)

    return run


def test_conformance_shared_database(run: Any, tmp_path: Path) -> None:
    load = run(
        {
            "sql": """
              -- two statements in one step; the table outlives the step
              CREATE TABLE people (id INTEGER, name VARCHAR);
              INSERT INTO people VALUES (1, 'Ada'), (2, 'Linus; not a separator');
            """
        }
    )
    assert load == {"rows": [], "columns": [], "row_count": 2}
    tricky = "O'Brien; -- 'quoted' 東京"
    add = run(
        {"sql": "INSERT INTO people VALUES ($id, $name)", "params": {"id": 3, "name": tricky}}
    )
    assert add == {"rows": [], "columns": [], "row_count": 1}
    query = run(
        {
            "sql": "SELECT id, name FROM people WHERE id >= $min_id ORDER BY id",
            "params": {"min_id": 2},
        }
    )
    assert query == {
        "rows": [{"id": 2, "name": "Linus; not a separator"}, {"id": 3, "name": tricky}],
        "columns": ["id", "name"],
        "row_count": 2,
    }
    tally = run({"sql": "SELECT 'first' AS ignored;\nSELECT count(*) AS n FROM people;"})
    assert tally["rows"] == [{"n": 3}]
    assert (tmp_path / "duckdb" / "exec-1.duckdb").is_file()


def test_each_execution_has_its_own_database(run: Any) -> None:
    run({"sql": "CREATE TABLE t AS SELECT 1 AS a"}, execution_id="one")
    with pytest.raises(ActionError, match="t does not exist"):
        run({"sql": "SELECT * FROM t"}, execution_id="two")


def test_explicit_database_path(run: Any, tmp_path: Path, conns: DuckDBConnections) -> None:
    db = tmp_path / "sub" / "mine.duckdb"
    run({"sql": "CREATE TABLE t AS SELECT 42 AS a", "database": str(db)})
    conns.close(db)  # closing and reopening keeps the data (it is a file)
    assert run({"sql": "SELECT a FROM t", "database": str(db)})["rows"] == [{"a": 42}]


def test_last_query_wins_and_dml_counts(run: Any) -> None:
    run({"sql": "CREATE TABLE t (a INT)"})
    result = run({"sql": "INSERT INTO t VALUES (1), (2); SELECT sum(a) AS s FROM t; DELETE FROM t"})
    assert result == {"rows": [{"s": 3}], "columns": ["s"], "row_count": 1}
    assert run({"sql": "INSERT INTO t VALUES (5), (6), (7)"})["row_count"] == 3
    assert run({"sql": "UPDATE t SET a = a + 1 WHERE a > 5"})["row_count"] == 2
    assert run({"sql": "CREATE TABLE u (a INT)"})["row_count"] == -1
    returning = run({"sql": "INSERT INTO t VALUES (9) RETURNING a, a * 2 AS b"})
    assert returning == {"rows": [{"a": 9, "b": 18}], "columns": ["a", "b"], "row_count": 1}
    # a query with a column called Count is still a query
    counted = run({"sql": 'SELECT count(*) AS "Count" FROM t'})
    assert counted["rows"] == [{"Count": 4}]
    empty = run({"sql": "SELECT a FROM t WHERE a < 0"})
    assert empty == {"rows": [], "columns": ["a"], "row_count": 0}


@pytest.mark.parametrize(
    "sql",
    [
        "VALUES (1, 'x')",
        "SHOW TABLES",
        "DESCRIBE SELECT 1 AS a",
        "WITH q AS (SELECT 1 AS a) SELECT * FROM q",
        "FROM range(3)",
        "PRAGMA version",
    ],
)
def test_query_kinds_return_rows(run: Any, sql: str) -> None:
    run({"sql": "CREATE TABLE IF NOT EXISTS t (a INT)"})
    assert run({"sql": sql})["row_count"] >= 1


def test_values_become_json(run: Any) -> None:
    result = run(
        {
            "sql": """
            SELECT DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts,
                   12.50::DECIMAL(10, 2) AS price, 12345678901234567890.5::DECIMAL(38, 1) AS big,
                   INTERVAL 90 MINUTE AS iv, 'hi'::BLOB AS raw, 'nan'::DOUBLE AS nan,
                   [1, 2] AS list, {'x': 1} AS struct, MAP {1: 'a'} AS map,
                   '{"a": [1, null]}'::JSON AS doc,
                   170141183460469231731687303715884105727::HUGEINT AS h,
                   1 AS dup, 2 AS dup
            """
        }
    )
    assert result["rows"] == [
        {
            "d": "2024-01-02",
            "ts": "2024-01-02T03:04:05",
            "price": 12.5,
            "big": "12345678901234567890.5",
            "iv": 5400,
            "raw": "aGk=",
            "nan": None,
            "list": [1, 2],
            "struct": {"x": 1},
            "map": {"1": "a"},
            "doc": {"a": [1, None]},
            "h": 170141183460469231731687303715884105727,
            "dup": 1,
            "dup_1": 2,
        }
    ]
    assert result["columns"][-2:] == ["dup", "dup_1"]


def test_max_rows(run: Any) -> None:
    with pytest.raises(ActionError) as err:
        run({"sql": "SELECT range AS i FROM range(10001)"})
    assert "table" in str(err.value)
    assert "10000" in str(err.value)
    assert run({"sql": "SELECT range AS i FROM range(10000)"})["row_count"] == 10000
    with pytest.raises(ActionError, match="more than 5 rows"):
        run({"sql": "SELECT * FROM range(6)", "max_rows": 5})


def test_sql_aliases(run: Any) -> None:
    for field in ("command", "query", "script"):
        assert run({field: "SELECT 1 AS a"})["rows"] == [{"a": 1}]
    assert run({"commands": ["CREATE TABLE c (a INT)", "SELECT 2 AS a"]})["rows"] == [{"a": 2}]
    encoded = base64.b64encode("SELECT '東京' AS city".encode()).decode()
    assert run({"command_b64": encoded})["rows"] == [{"city": "東京"}]
    with pytest.raises(ActionError, match="needs SQL"):
        run({})
    with pytest.raises(ActionError, match="no SQL statement"):
        run({"sql": "-- nothing here;"})


def test_params_per_statement(run: Any) -> None:
    result = run(
        {
            "sql": "CREATE TABLE p (a INT, b VARCHAR); INSERT INTO p VALUES ($a, $b); "
            "SELECT * FROM p WHERE a = $a",
            "params": {"a": 7, "b": "$a is not a placeholder inside '...'", "unused": 1},
        }
    )
    assert result["rows"] == [{"a": 7, "b": "$a is not a placeholder inside '...'"}]
    with pytest.raises(ActionError, match=r"\$missing, not in params"):
        run({"sql": "SELECT $missing"})
    assert run({"sql": "SELECT '$x' AS s"})["rows"] == [{"s": "$x"}]


def test_errors_are_action_errors_and_roll_back(run: Any) -> None:
    with pytest.raises(ActionError, match=r"statement 2.*Catalog Error"):
        run({"sql": "SELECT 1; SELECT * FROM nowhere"})
    run({"sql": "CREATE TABLE r (a INT)"})
    with pytest.raises(ActionError):
        run({"sql": "BEGIN; INSERT INTO r VALUES (1); SELECT * FROM nowhere"})
    # the failed transaction was rolled back; the connection works
    assert run({"sql": "SELECT count(*) AS n FROM r"})["rows"] == [{"n": 0}]


def test_timeout_interrupts_and_connection_survives(run: Any) -> None:
    started = time.monotonic()
    with pytest.raises(StepTimeout) as err:
        run({"sql": "SELECT count(*) FROM range(1000000000000) a"}, timeout=0.5)
    assert time.monotonic() - started < 2
    assert str(err.value) == "timed out after 0.5 s"
    assert run({"sql": "SELECT 1 AS a"})["rows"] == [{"a": 1}]


def test_cancel_interrupts(run: Any) -> None:
    cancelled = threading.Event()
    threading.Timer(0.3, cancelled.set).start()
    with pytest.raises(ActionError) as err:
        run({"sql": "SELECT count(*) FROM range(1000000000000) a"}, cancelled=cancelled)
    assert err.value.type == "cancelled"


def test_concurrent_steps_on_one_database_take_turns(run: Any) -> None:
    run({"sql": "CREATE TABLE n (i INT)"})
    errors: list[Exception] = []

    def insert(i: int) -> None:
        try:
            for _ in range(10):
                run(
                    {"sql": "INSERT INTO n VALUES ($i); SELECT count(*) FROM n", "params": {"i": i}}
                )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert run({"sql": "SELECT count(*) AS c FROM n"})["rows"] == [{"c": 40}]


def test_waiting_for_the_lock_honours_timeout(run: Any) -> None:
    outcome: list[str] = []

    def hog() -> None:
        try:
            run({"sql": "SELECT count(*) FROM range(1000000000000) a"}, timeout=1.0)
        except StepTimeout as exc:
            outcome.append(str(exc))

    slow = threading.Thread(target=hog, daemon=True)
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(StepTimeout):
        run({"sql": "SELECT 1"}, timeout=0.3)
    assert time.monotonic() - started < 0.8
    slow.join()
    assert outcome == ["timed out after 1 s"]


def test_connections_are_cached_and_bounded(tmp_path: Path) -> None:
    conns = DuckDBConnections(max_open=2)
    try:
        a = conns.get(tmp_path / "a.duckdb")
        assert conns.get(tmp_path / "a.duckdb") is a
        conns.get(tmp_path / "b.duckdb")
        conns.get(tmp_path / "c.duckdb")  # closes a, the least recently used
        assert a.closed
        assert conns.get(tmp_path / "a.duckdb") is not a
    finally:
        conns.close_all()


# -- files shared with other processes (several workers on one data directory) -------

HOLDER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t (who VARCHAR)")
conn.execute("INSERT INTO t VALUES ('other process')")
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.close()
"""


def _ctx(tmp_path: Path, conns: DuckDBConnections, timeout: float | None) -> ActionContext:
    return ActionContext(
        execution_id="exec-1",
        step="s",
        attempt=1,
        data_dir=tmp_path,
        timeout=timeout,
        cancelled=threading.Event(),
        services={"duckdb": conns},
    )


def _hold(path: Path) -> Any:
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_shared_files_wait_for_another_process_and_let_go_after_each_step(
    tmp_path: Path,
) -> None:
    path = DuckDBConnections.default_path(tmp_path, "exec-1")
    path.parent.mkdir(parents=True)
    holder = _hold(path)
    conns = DuckDBConnections(shared=True)
    got: dict[str, Any] = {}

    def step() -> None:
        spec = {"sql": "INSERT INTO t VALUES ('this worker'); SELECT who FROM t ORDER BY who"}
        got["out"] = DuckDBAction().run(spec, {}, _ctx(tmp_path, conns, 30))

    t = threading.Thread(target=step)
    t.start()
    t.join(0.5)
    assert t.is_alive()  # waiting: the other process holds the file
    assert holder.stdin is not None
    holder.stdin.close()  # it lets go
    holder.wait(10)
    t.join(30)
    assert [r["who"] for r in got["out"]["rows"]] == ["other process", "this worker"]
    # The step closed the file behind it: another process can open it at once.
    again = _hold(path)
    assert again.stdin is not None
    again.stdin.close()
    assert again.wait(10) == 0


def test_a_file_held_elsewhere_times_out_with_the_step(tmp_path: Path) -> None:
    path = DuckDBConnections.default_path(tmp_path, "exec-1")
    path.parent.mkdir(parents=True)
    holder = _hold(path)
    try:
        with pytest.raises(StepTimeout):
            DuckDBAction().run(
                {"sql": "SELECT 1"}, {}, _ctx(tmp_path, DuckDBConnections(shared=True), 0.5)
            )
        # Not shared (an embedded run owns its files): a clear error at once.
        with pytest.raises(ActionError, match="cannot open database"):
            DuckDBAction().run({"sql": "SELECT 1"}, {}, _ctx(tmp_path, DuckDBConnections(), 5))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
