"""What only the PostgreSQL store has to prove: several processes on one database
(ordering of appends, leasing, migrations exactly once), LISTEN/NOTIFY wake-ups and
their reconnection, and its URL settings. The shared behaviour is in
test_store_contract.py, which runs on PostgreSQL too."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pgtest
import pytest

from replaybook.errors import SeqConflict, StoreError
from replaybook.store import open_store, upgrade_store
from replaybook.store.base import NewEvent, NewJob

psycopg = pytest.importorskip("psycopg")

from replaybook.store.postgres import PostgresStore  # noqa: E402
from replaybook.store.postgres.migrate import applied_versions, connect  # noqa: E402
from replaybook.store.postgres.sql import MIGRATIONS  # noqa: E402
from replaybook.store.postgres.target import parse_url  # noqa: E402
from replaybook.store.postgres.watch import parse_message  # noqa: E402


@pytest.fixture
def url(pg_database: str) -> str:
    """A fresh schema's URL (the schema is made by the first opener)."""
    return pgtest.url_of(pg_database, schema=pgtest.new_schema_name())


@pytest.fixture
def open_pg(url: str) -> Iterator[Callable[..., PostgresStore]]:
    opened: list[PostgresStore] = []

    def factory(**kwargs: Any) -> PostgresStore:
        store = PostgresStore(url, **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def run_processes(count: int, script: str, *args: str, timeout: float = 120) -> list[Any]:
    """Run `script` in `count` Python processes at once (argv: index, *args); each
    prints one JSON document, returned in order."""
    code = textwrap.dedent(script)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(n), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


# -- several processes -----------------------------------------------------------

APPENDER = """
    import json, sys, time
    from replaybook.errors import SeqConflict
    from replaybook.store.base import NewEvent
    from replaybook.store.postgres import PostgresStore

    n, url, ex = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    count, start = int(sys.argv[4]), float(sys.argv[5])
    store = PostgresStore(url)
    time.sleep(max(0.0, start - time.time()))  # every process starts together
    conflicts = 0
    for i in range(count):
        while True:
            last = store.get_execution(ex).last_seq
            try:
                store.append(ex, last, [NewEvent("w", data={"writer": n, "i": i})])
                break
            except SeqConflict:
                conflicts += 1
    store.close()
    print(json.dumps({"conflicts": conflicts}))
"""


def test_appenders_in_several_processes_keep_a_gap_free_ordered_log(open_pg: Any, url: str) -> None:
    writers, per_writer = 4, 40
    store = open_pg()
    store.create_execution("ex", "f.yaml", 1)
    start = time.time() + 1.5
    results = run_processes(writers, APPENDER, url, "ex", str(per_writer), str(start))
    events = store.read_events("ex")
    assert [e.seq for e in events] == list(range(1, writers * per_writer + 1))
    for n in range(writers):
        assert [e.data["i"] for e in events if e.data["writer"] == n] == list(range(per_writer))
    info = store.get_execution("ex")
    assert info is not None and info.last_seq == writers * per_writer
    # Writers racing on one execution do collide; each collision wrote nothing.
    assert sum(r["conflicts"] for r in results) > 0


def test_a_conflicting_append_waits_for_the_row_lock_then_fails(open_pg: Any, url: str) -> None:
    # Another session holds the execution row (as an append in flight does): the
    # append waits for it, sees the committed last_seq and raises SeqConflict.
    store = open_pg()
    store.create_execution("ex", "f.yaml", 1)
    store.append("ex", 0, [NewEvent("a")], [NewJob("a", 1, 1)])
    target = parse_url(url)
    with connect(target) as other:
        other.execute("BEGIN")
        other.execute("UPDATE executions SET last_seq = 2 WHERE id = 'ex'")
        other.execute(
            "INSERT INTO events (execution_id, seq, id, type, at, data, logic_version)"
            " VALUES ('ex', 2, 'x', 'other', now(), '{}', 1)"
        )
        outcome: list[BaseException | None] = []

        def append() -> None:
            try:
                store.append("ex", 1, [NewEvent("mine")], [NewJob("b", 1, 1)])
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=append)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive()  # blocked on the row lock
        other.execute("COMMIT")
        thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], SeqConflict)
    assert [e.type for e in store.read_events("ex")] == ["a", "other"]
    assert [j.step for j in store.lease_jobs("w", 10, 30)] == ["a"]


LEASER = """
    import json, sys, time
    from replaybook.store.postgres import PostgresStore

    n, url, start = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    store = PostgresStore(url)
    time.sleep(max(0.0, start - time.time()))
    got = []
    while batch := store.lease_jobs(f"w{n}", 4, 60):
        got.extend(j.id for j in batch)
    store.close()
    print(json.dumps(got))
"""


def test_leasers_in_several_processes_never_share_a_job(open_pg: Any, url: str) -> None:
    total = 400
    store = open_pg()
    store.create_execution("ex", "f.yaml", 1)
    store.append("ex", 0, [NewEvent("e")], [NewJob(f"s{n}", 1, 1) for n in range(total)])
    results = run_processes(3, LEASER, url, str(time.time() + 1.5))
    ids = [job_id for got in results for job_id in got]
    assert len(ids) == total and len(set(ids)) == total
    assert all(results), "every process leased some jobs"


def test_concurrent_upgrades_apply_each_migration_once(url: str) -> None:
    barrier = threading.Barrier(6)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            barrier.wait()
            applied.append(upgrade_store(url)[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everything = [m.version for m in MIGRATIONS]
    assert sorted(applied) == [[]] * 5 + [everything]
    with connect(parse_url(url)) as conn:
        assert applied_versions(conn) == set(everything)
        rows = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert rows == (len(everything),)


OPENER = """
    import json, sys, time
    from replaybook.store import open_store

    url, start = sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    store = open_store(url)
    store.create_execution(f"ex{sys.argv[1]}", "f.yaml", 1)
    store.close()
    print(json.dumps("ok"))
"""


def test_processes_opening_a_new_schema_at_once_all_succeed(url: str) -> None:
    assert run_processes(3, OPENER, url, str(time.time() + 1.5)) == ["ok"] * 3
    store = open_store(url)
    try:
        assert sorted(e.id for e in store.list_executions()) == ["ex0", "ex1", "ex2"]
    finally:
        store.close()
    assert upgrade_store(url) == ([], max(m.version for m in MIGRATIONS))


def test_upgrade_cli_on_postgres(url: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replaybook", "db", "upgrade", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    from replaybook.store.postgres.sql import MIGRATIONS

    versions = [m.version for m in MIGRATIONS]
    first = cli("--db", url, "--json")
    assert first.returncode == 0, first.stderr
    expected = {"status": "ok", "applied": versions, "version": versions[-1]}
    assert json.loads(first.stdout) == expected
    again = cli("--db", url)
    assert again.returncode == 0
    assert again.stdout.strip() == f"up to date; schema version {versions[-1]}"
    bad = cli("--db", pgtest.url_of("rb_no_such_database_x"), "--json")
    assert bad.returncode == 1
    assert "rb_no_such_database_x" in json.loads(bad.stdout)["error"]


# -- watch -----------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []
        self._cond = threading.Condition()

    def __call__(self, execution_id: str, jobs: int) -> None:
        with self._cond:
            self.items.append((execution_id, jobs))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[str, int]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.items) >= count, timeout)
            return list(self.items)


def test_watch_hears_appends_of_another_store_instance(open_pg: Any) -> None:
    watching, writing = open_pg(), open_pg()
    inbox = Inbox()
    stop = watching.watch(inbox)
    assert stop is not None
    writing.create_execution("ex", "f.yaml", 1)
    writing.append("ex", 0, [NewEvent("a")], [NewJob("a", 1, 1), NewJob("b", 1, 1)])
    writing.append("ex", 1, [NewEvent("b")])
    assert inbox.wait_for(2) == [("ex", 2), ("ex", 0)]
    # a rejected append notifies nobody (its transaction rolled back)
    with pytest.raises(SeqConflict):
        writing.append("ex", 0, [NewEvent("late")], [NewJob("c", 1, 1)])
    (leased,) = writing.lease_jobs("w", 1, 30)
    writing.release(leased)  # a job back in the queue wakes the watchers too
    assert inbox.wait_for(3)[2:] == [("ex", 1)]
    stop()
    writing.append("ex", 2, [NewEvent("c")])
    time.sleep(0.3)
    assert len(inbox.items) == 3
    stop()  # twice is harmless


def test_watch_is_scoped_to_the_schema(pg_database: str) -> None:
    one = PostgresStore(pgtest.url_of(pg_database, schema=pgtest.new_schema_name()))
    two = PostgresStore(pgtest.url_of(pg_database, schema=pgtest.new_schema_name()))
    try:
        inbox_one, inbox_two = Inbox(), Inbox()
        one.watch(inbox_one)
        two.watch(inbox_two)
        two.create_execution("ex", "f.yaml", 1)
        two.append("ex", 0, [NewEvent("a")])
        assert inbox_two.wait_for(1) == [("ex", 0)]
        time.sleep(0.2)
        assert inbox_one.items == []
    finally:
        one.close()
        two.close()


def test_watch_reconnects_when_its_connection_is_killed(open_pg: Any, url: str) -> None:
    store = open_pg()
    inbox = Inbox()
    store.watch(inbox)
    store.create_execution("ex", "f.yaml", 1)
    with connect(parse_url(url)) as admin:
        killed = admin.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
        assert [ok for _, ok in killed] == [True]
        deadline = time.monotonic() + 10
        while True:  # until the watcher listens again, on a new connection
            # (the killed backend can still show its LISTEN for a moment)
            listening = admin.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
                " AND pid <> %s",
                (killed[0][0],),
            ).fetchone()
            if listening == (1,) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    store.append("ex", 0, [NewEvent("a")], [NewJob("a", 1, 1)])
    assert inbox.wait_for(1) == [("ex", 1)]


def test_a_failing_callback_does_not_stop_the_watcher(open_pg: Any) -> None:
    store = open_pg()
    inbox = Inbox()

    def flaky(execution_id: str, jobs: int) -> None:
        inbox(execution_id, jobs)
        if len(inbox.items) == 1:
            raise RuntimeError("boom")

    store.watch(flaky)
    store.create_execution("ex", "f.yaml", 1)
    store.append("ex", 0, [NewEvent("a")])
    store.append("ex", 1, [NewEvent("b")])
    assert inbox.wait_for(2) == [("ex", 0), ("ex", 0)]


def test_close_stops_the_watchers_and_refuses_new_ones(open_pg: Any) -> None:
    store = open_pg()
    store.watch(Inbox())
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if t.name == "replaybook-pg-watch"]
    with pytest.raises(StoreError):
        store.watch(Inbox())
    store.close()  # twice is harmless


def test_parse_message() -> None:
    assert parse_message("ex-1:3") == ("ex-1", 3)
    assert parse_message("a:b:0") == ("a:b", 0)
    assert parse_message("nojobs") is None
    assert parse_message(":1") is None
    assert parse_message("ex:x") is None


def test_reads_survive_the_server_dropping_the_pooled_connections(open_pg: Any, url: str) -> None:
    store = open_pg()
    store.create_execution("ex", "f.yaml", 1)
    with connect(parse_url(url)) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert killed and all(ok for (ok,) in killed)
    info = store.get_execution("ex")  # its connection is dead: tried again on a new one
    assert info is not None and info.last_seq == 0
    store.append("ex", 0, [NewEvent("a")])
    assert [e.type for e in store.read_events("ex")] == ["a"]


# -- URLs and errors ---------------------------------------------------------------


def test_url_settings_are_taken_out_of_the_libpq_url() -> None:
    target = parse_url("postgres://u:secret@h:5433/db?schema=rb_x&pool_size=4&sslmode=disable")
    assert target.conninfo == "postgresql://u:secret@h:5433/db?sslmode=disable"
    assert (target.schema, target.pool_size, target.channel) == ("rb_x", 4, "replaybook.rb_x")
    assert target.display == "postgres://u:***@h:5433/db?schema=rb_x&pool_size=4&sslmode=disable"
    conninfo = target.connection_string()
    assert "search_path=rb_x" in conninfo and "application_name=replaybook" in conninfo
    plain = parse_url("postgresql+psycopg://h/db")
    assert (plain.conninfo, plain.schema) == ("postgresql://h/db", None)
    assert plain.channel == "replaybook"
    assert "search_path" not in plain.connection_string()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?schema=bad-name", "schema 'bad-name'"),
        ("postgresql://h/db?schema=" + "x" * 53, "at most 52"),
        ("postgresql://h/db?pool_size=0", "pool_size"),
        ("postgresql://h/db?pool_size=many", "pool_size"),
        ("mysql://h/db", "not a PostgreSQL URL"),
    ],
)
def test_bad_url_settings_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_url(url)


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://postgres:hunter2-secret@127.0.0.1:1/db?connect_timeout=2")
    assert "hunter2-secret" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_timestamps_read_back_exactly_as_written(open_pg: Any) -> None:
    store = open_pg(clock=lambda: 1_700_000_000.1234565)
    store.create_execution("ex", "f.yaml", 1)
    (written,) = store.append("ex", 0, [NewEvent("a")])
    (read,) = store.read_events("ex")
    assert read.at == written.at == "2023-11-14T22:13:20.123456Z"
    info = store.get_execution("ex")
    assert info is not None and info.created_at == info.updated_at == written.at
    entry, _ = store.register_playbook("p.yaml", "p", "x")
    assert store.get_playbook("p.yaml") == entry
