"""The `duckdb` action (spec §6.3).

    DuckDBAction().run(spec, inputs, ctx) -> {rows: [{col: value}], columns, row_count}
    DuckDBConnections                         open connections by database path,
                                              ctx.services["duckdb"] if given
        .default_path(data_dir, execution_id) the per-execution database file
        .close(path) / .close_all()

SQL comes from `sql` (aliases `command`, `commands`, `query`, `script`; a list of
texts is joined; `command_b64` is base64) and is split with `split_sql`. `params` is a
mapping bound with DuckDB's `$name` placeholders: each statement gets the names its
text uses. The result is that of the last statement that returns rows (SELECT,
VALUES, SHOW, DESCRIBE, PRAGMA..., or DML with RETURNING; DuckDB's `Count` answer
to DDL/DML does not count); with none, `{rows: [], columns: [], row_count: N}`, N
the rows changed by the last statement (-1 if unknown). More than `max_rows` (10,000)
rows fails. Repeated column names get a suffix (`x`, `x_1`) so no value is lost; JSON
columns are parsed; other values go through `to_json_value`.

`database` is a path (or `:memory:`); by default each execution has its own file,
`<data_dir>/duckdb/<execution_id>.duckdb`, shared by its duckdb steps. Connections
stay open and are reused; one lock per database makes concurrent steps on one file
take turns. The runner closes an execution's file with `close(default_path(...))`.
`auth` (resolved by the executor from stored credentials; one or a list) runs first
on the step's connection, see `auth_statements`: a `postgres` credential is attached
(`ATTACH IF NOT EXISTS '<conninfo>' AS <alias> (TYPE postgres)`, alias from the
auth's `alias` override, else the credential's name); an `s3` credential becomes a
temporary secret (`CREATE OR REPLACE SECRET <name> (TYPE s3, KEY_ID ..., ...)`,
kept in memory only, never in the database file).
A step whose time runs out is interrupted (`conn.interrupt()`) and fails with
StepTimeout; a cancelled one is interrupted too. After a failure an open transaction
is rolled back, so the next step starts clean. Statements run in autocommit mode
unless the SQL itself says BEGIN/COMMIT.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from replaybook.actions.base import ActionContext
from replaybook.actions.jsonsafe import to_json_value
from replaybook.actions.sqlsplit import split_sql
from replaybook.errors import ActionError, StepTimeout

if TYPE_CHECKING:
    import duckdb

DEFAULT_MAX_ROWS = 10_000
_SQL_FIELDS = ("sql", "command", "commands", "query", "script")
_POLL_SECONDS = 0.05
# How long a step waits for a database file another process holds (no timeout set).
LOCK_WAIT_SECONDS = 120.0


class _Database:
    """One open database: its connection, the lock steps take turns with, and the
    guard that keeps an interrupt from hitting the next step's query."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.guard = threading.Lock()
        self.running = False
        self.closed = False

    def interrupt_if_running(self) -> None:
        with self.guard:
            if self.running:
                self.conn.interrupt()


class DuckDBConnections:
    """Open DuckDB connections keyed by database path. Thread-safe. At most `max_open`
    stay open: the least recently used idle ones are closed beyond that.

    `shared`: other processes open the same files (several workers on one host, or
    on many through a shared data directory). DuckDB lets one process at a time hold
    a database file, so then each step opens its database, closes it when done, and
    waits (up to its timeout, else LOCK_WAIT_SECONDS) while another process has it.
    An embedded run owns its files and keeps them open."""

    def __init__(self, max_open: int = 64, *, shared: bool = False) -> None:
        self.max_open = max_open
        self.shared = shared
        self._dbs: OrderedDict[str, _Database] = OrderedDict()
        self._lock = threading.Lock()
        # Shared files: the steps of this process take turns per file (a fixed set
        # of locks, so a long-lived worker keeps no state per execution).
        self._turns = [threading.Lock() for _ in range(64)]

    @contextmanager
    def using(
        self, database: str | Path, deadline: float | None, ctx: ActionContext
    ) -> Iterator[_Database]:
        """The database, held by this step alone until the block ends."""
        if self.shared:
            with self._shared_turn(database, deadline, ctx) as db:
                yield db
            return
        while True:
            db = self.get(database)
            while not db.lock.acquire(timeout=_POLL_SECONDS):
                _check(deadline, ctx)
            if not db.closed:
                break
            db.lock.release()  # closed while we waited: open it again
        try:
            yield db
        finally:
            db.lock.release()

    @contextmanager
    def _shared_turn(
        self, database: str | Path, deadline: float | None, ctx: ActionContext
    ) -> Iterator[_Database]:
        key = _key(database)
        turn = self._turns[hash(key) % len(self._turns)]
        while not turn.acquire(timeout=_POLL_SECONDS):
            _check(deadline, ctx)
        try:
            if key != ":memory:":
                Path(key).parent.mkdir(parents=True, exist_ok=True)
            db = _Database(self._connect(key, deadline, ctx))
            try:
                yield db
            finally:
                db.closed = True
                db.conn.close()  # let the other processes have the file
        finally:
            turn.release()

    @staticmethod
    def default_path(data_dir: Path, execution_id: str) -> Path:
        return Path(data_dir) / "duckdb" / f"{execution_id}.duckdb"

    def get(self, database: str | Path) -> _Database:
        key = _key(database)
        with self._lock:
            db = self._dbs.get(key)
            if db is not None:
                self._dbs.move_to_end(key)
                return db
        if key != ":memory:":
            Path(key).parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(key, None, None)  # not shared: a held file fails at once
        with self._lock:
            existing = self._dbs.get(key)
            if existing is None:
                self._dbs[key] = db = _Database(conn)
                self._trim()
                return db
        conn.close()  # another thread opened it first
        return existing

    def _connect(
        self, key: str, deadline: float | None, ctx: ActionContext | None
    ) -> duckdb.DuckDBPyConnection:
        import duckdb

        give_up = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return duckdb.connect(key)
            except duckdb.IOException as exc:
                held = "lock" in str(exc).lower()
                if not (self.shared and held) or time.monotonic() >= give_up:
                    raise ActionError(f"duckdb: cannot open database {key}: {exc}") from exc
            except duckdb.Error as exc:
                raise ActionError(f"duckdb: cannot open database {key}: {exc}") from exc
            if ctx is not None:
                _check(deadline, ctx)
            # Another process holds the file; it says nothing when it lets go.
            time.sleep(_POLL_SECONDS)

    def _trim(self) -> None:
        for key in list(self._dbs)[: max(0, len(self._dbs) - self.max_open)]:
            db = self._dbs[key]
            if db.lock.acquire(blocking=False):
                try:
                    del self._dbs[key]
                    db.closed = True
                    db.conn.close()
                finally:
                    db.lock.release()

    def close(self, database: str | Path) -> None:
        """Close the connection to `database` (waiting for a step using it)."""
        with self._lock:
            db = self._dbs.pop(_key(database), None)
        if db is not None:
            _close(db)

    def close_all(self) -> None:
        with self._lock:
            dbs = list(self._dbs.values())
            self._dbs.clear()
        for db in dbs:
            _close(db)


def _close(db: _Database) -> None:
    with db.lock:
        db.closed = True
        db.conn.close()


def _key(database: str | Path) -> str:
    text = str(database)
    if text == ":memory:" or text.startswith("md:"):
        return text
    return str(Path(text).expanduser().resolve())


_default: DuckDBConnections | None = None
_default_lock = threading.Lock()


def default_connections() -> DuckDBConnections:
    """The process-wide connections, used when ctx.services has no "duckdb"."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            _default = DuckDBConnections()
            atexit.register(_default.close_all)
        return _default


class DuckDBAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        statements = split_sql(_sql_of(spec))
        if not statements:
            raise ActionError("duckdb step has no SQL statement")
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise ActionError("duckdb step: `params` must be a mapping of $name values")
        max_rows = _max_rows(spec.get("max_rows", DEFAULT_MAX_ROWS))
        conns = ctx.services.get("duckdb")
        if not isinstance(conns, DuckDBConnections):
            conns = default_connections()
        database = spec.get("database") or DuckDBConnections.default_path(
            ctx.data_dir, ctx.execution_id
        )
        setup = auth_statements(spec.get("auth"))
        deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout
        with conns.using(database, deadline, ctx) as db:
            return _run_locked(db, statements, params, max_rows, deadline, ctx, setup)


def _check(deadline: float | None, ctx: ActionContext) -> None:
    if ctx.cancelled.is_set():
        raise ActionError("cancelled", type="cancelled")
    if deadline is not None and time.monotonic() >= deadline:
        raise StepTimeout(ctx.timeout or 0)


def _run_locked(
    db: _Database,
    statements: list[str],
    params: Mapping[str, Any],
    max_rows: int,
    deadline: float | None,
    ctx: ActionContext,
    setup: list[tuple[str, str]] = [],  # noqa: B006 (never mutated)
) -> dict[str, Any]:
    import duckdb

    _check(deadline, ctx)
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(db, done, deadline, ctx), name="duckdb-watch", daemon=True
    )
    with db.guard:
        db.running = True
    watcher.start()
    try:
        _run_setup(db.conn, setup)
        return _execute(db.conn, statements, params, max_rows)
    except duckdb.InterruptException:
        _rollback(db.conn)
        if ctx.cancelled.is_set():
            raise ActionError("cancelled", type="cancelled") from None
        raise StepTimeout(ctx.timeout or 0) from None
    except BaseException:
        _rollback(db.conn)
        raise
    finally:
        with db.guard:
            db.running = False
        done.set()


def _watch(
    db: _Database, done: threading.Event, deadline: float | None, ctx: ActionContext
) -> None:
    while True:
        wait = (
            _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
        )
        if done.wait(max(0.0, wait)):
            return
        if ctx.cancelled.is_set() or (deadline is not None and time.monotonic() >= deadline):
            db.interrupt_if_running()
            return


def _execute(
    conn: duckdb.DuckDBPyConnection,
    statements: list[str],
    params: Mapping[str, Any],
    max_rows: int,
) -> dict[str, Any]:
    import duckdb

    last_query: dict[str, Any] | None = None
    changed = -1
    for number, text in enumerate(statements, 1):
        try:
            for statement in conn.extract_statements(text):
                names = statement.named_parameters
                missing = sorted(n for n in names if n not in params)
                if missing:
                    shown = ", ".join(f"${n}" for n in missing)
                    raise ActionError(f"duckdb: statement {number} uses {shown}, not in params")
                conn.execute(statement, {n: params[n] for n in names} if names else None)
                if _returns_rows(statement, conn.description):
                    last_query = _fetch(conn, max_rows)
                else:
                    changed = _changed_rows(conn)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            where = f" (statement {number})" if len(statements) > 1 else ""
            raise ActionError(f"duckdb{where}: {exc}") from exc
    if last_query is not None:
        return last_query
    return {"rows": [], "columns": [], "row_count": changed}


def auth_statements(auth: Any) -> list[tuple[str, str]]:
    """(label, SQL) making resolved credential fields usable in DuckDB: ATTACH for
    postgres, CREATE SECRET for s3. The SQL holds secret values: it is executed,
    never logged, and errors about it are masked by the executor."""
    if auth is None or auth == {} or auth == []:
        return []
    items = auth if isinstance(auth, list) else [auth]
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ActionError("duckdb step: `auth` must name a postgres or s3 credential")
        kind = item.get("type")
        name = str(item.get("credential") or item.get("alias") or kind or "auth")
        label = f"auth '{name}'"
        if kind == "postgres":
            from psycopg.conninfo import conninfo_to_dict, make_conninfo

            from replaybook.actions.postgres import postgres_conninfo

            params = conninfo_to_dict(postgres_conninfo({"auth": item}, f"duckdb step {label}"))
            # The connection goes into a (temporary) DuckDB secret, which
            # duckdb_secrets() shows redacted; the ATTACH path, which
            # duckdb_databases() shows, keeps only the options that are not secret.
            parts = ["TYPE postgres"]
            for keyword, option in _PG_SECRET_KEYS.items():
                value = params.pop(keyword, None)
                if value not in (None, ""):
                    parts.append(f"{option} {_literal(str(value))}")
            secret_name = _identifier(f"rb_pg_{name}")
            alias = _identifier(str(item.get("alias") or item.get("as") or name))
            rest = make_conninfo("", **{k: v for k, v in params.items() if v is not None})
            options = f"TYPE postgres, SECRET {secret_name}"
            if item.get("read_only"):
                options += ", READ_ONLY"
            out.append(
                (label, f"CREATE OR REPLACE SECRET {secret_name} ({', '.join(parts)})")
            )
            sql = f"ATTACH IF NOT EXISTS {_literal(rest)} AS {alias} ({options})"
        elif kind == "s3":
            parts = ["TYPE s3"]
            for key in ("key_id", "secret", "region", "endpoint", "session_token",
                        "url_style", "scope"):
                if item.get(key) not in (None, ""):
                    parts.append(f"{key.upper()} {_literal(str(item[key]))}")
            if item.get("use_ssl") is not None:
                use_ssl = str(item["use_ssl"]).lower() in ("1", "true", "yes", "on")
                parts.append(f"USE_SSL {'true' if use_ssl else 'false'}")
            secret_name = _identifier(str(item.get("secret_name") or name))
            sql = f"CREATE OR REPLACE SECRET {secret_name} ({', '.join(parts)})"
        else:
            raise ActionError(
                f"duckdb step {label}: a credential of type {kind} cannot be used by duckdb "
                "(postgres or s3)"
            )
        out.append((label, sql))
    return out


_PG_SECRET_KEYS = {
    "host": "HOST",
    "port": "PORT",
    "dbname": "DATABASE",
    "user": "USER",
    "password": "PASSWORD",
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run_setup(conn: duckdb.DuckDBPyConnection, setup: list[tuple[str, str]]) -> None:
    import duckdb

    for label, sql in setup:
        try:
            conn.execute(sql)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise ActionError(f"duckdb {label}: {exc}") from None


def _returns_rows(statement: duckdb.Statement, description: list[Any] | None) -> bool:
    import duckdb

    if not description:
        return False
    expected = statement.expected_result_type
    if duckdb.ExpectedResultType.CHANGED_ROWS in expected:
        # DDL/DML answer with one `Count` column, unless RETURNING gave rows.
        return not (len(description) == 1 and description[0][0] == "Count")
    return duckdb.ExpectedResultType.QUERY_RESULT in expected


def _changed_rows(conn: duckdb.DuckDBPyConnection) -> int:
    description = conn.description
    if description and len(description) == 1 and description[0][0] == "Count":
        row = conn.fetchone()
        if row is not None and isinstance(row[0], int):
            return row[0]
    return -1


def _fetch(conn: duckdb.DuckDBPyConnection, max_rows: int) -> dict[str, Any]:
    description = conn.description or []
    raw = conn.fetchmany(max_rows + 1)
    if len(raw) > max_rows:
        raise ActionError(
            f"the query result has more than {max_rows} rows (max_rows); write it to a "
            "table instead (CREATE TABLE ... AS SELECT ...) and read it in pieces, "
            "or raise max_rows"
        )
    columns = _unique([str(d[0]) for d in description])
    json_cols = [i for i, d in enumerate(description) if str(d[1]) == "JSON"]
    rows = to_json_value(raw)
    for row in rows:
        for i in json_cols:
            if isinstance(row[i], str):
                row[i] = json.loads(row[i])
    return {
        "rows": [dict(zip(columns, row, strict=True)) for row in rows],
        "columns": columns,
        "row_count": len(rows),
    }


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    import duckdb

    with contextlib.suppress(duckdb.Error):  # raised when no transaction was open
        conn.execute("ROLLBACK")


def _sql_of(spec: Mapping[str, Any]) -> str:
    for name in _SQL_FIELDS:
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ";\n".join(value)
        if isinstance(value, str):
            return value
        raise ActionError(f"duckdb step: `{name}` must be SQL text (or a list of texts)")
    encoded = spec.get("command_b64")
    if encoded is not None:
        try:
            return base64.b64decode(str(encoded)).decode("utf-8")
        except ValueError as exc:
            raise ActionError(f"duckdb step: command_b64 is not base64 UTF-8 text: {exc}") from exc
    raise ActionError("duckdb step needs SQL in `sql` (or command, query, script, command_b64)")


def _max_rows(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    raise ActionError(f"duckdb step: max_rows must be a whole number, not {raw!r}")
