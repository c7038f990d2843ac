"""The `postgres` action (spec §6.4), on psycopg 3.

    PostgresAction().run(spec, inputs, ctx) -> {rows: [{col: value}], columns, row_count}
    postgres_conninfo(fields, what)          libpq connection string from a step's (or a
                                             save's) connection fields
    PostgresConnections                      idle connections by connection string,
                                             ctx.services["postgres"] if given
        .take(conninfo) -> (conn, reused) / .give_back(conninfo, conn, discard=...)
        .close_all()
    run_transaction(conninfo, ctx, work, error_type=..., label=...)
                                             run `work(tx)` in one transaction on a
                                             pooled connection (timeout, cancel, errors)

Connection fields, first found wins: `auth` (a mapping, the resolved credential: `dsn`
or `connection`, `host`/`db_host`, `port`/`db_port`, `user`/`username`/`db_user`,
`password`/`db_password`, `dbname`/`database`/`db_name`, and libpq options such as
`sslmode`), `connection` (a DSN or URL; `dsn` is an alias), or the `db_host`,
`db_port`, `db_user`, `db_password`, `db_name` fields of the step.

SQL comes from `sql` (aliases `command`, `commands`, `query`, `script`; a list of texts
is joined; `command_b64` is base64) and is split with `split_sql`. All statements run
in ONE transaction (all or nothing). `params` is a mapping bound with psycopg's
`%(name)s` placeholders: each statement gets the names its code uses; a statement
without placeholders is executed without parameters, so a literal `%` needs no
escaping there (with placeholders, psycopg's rule holds: write `%%`). A mapping value
(or a list holding mappings) is sent as jsonb; a list of scalars as an array.

The result is that of the last statement that returns rows (`cursor.description` is
set: SELECT, VALUES, SHOW, DML with RETURNING); with none, `{rows: [], columns: [],
row_count: N}`, N the rowcount of the last statement (-1 if unknown). More than
`max_rows` (10,000) rows fails. Values: numeric -> number (`to_json_value`'s Decimal
rules), date/time/timestamptz -> ISO text (±infinity and other out-of-range values as
PostgreSQL's text), uuid -> text, bytea -> base64, json/jsonb -> parsed JSON, interval
-> seconds, inet/cidr/ranges -> PostgreSQL's text. Repeated column names get a suffix.

Errors become ActionError(type "postgres") "<error class>: <server message>" (e.g.
"UniqueViolation: duplicate key value violates ..."), the password never shown. With
`ctx.timeout`, the transaction's `statement_timeout` is set (SET LOCAL) and a watcher
cancels the running query at the deadline: StepTimeout. A cancelled attempt
(`ctx.cancelled`) has its query cancelled too. Server notices go to the step's log.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from replaybook.actions.base import ActionContext
from replaybook.actions.jsonsafe import to_json_value
from replaybook.actions.sqlsplit import _scan, code_parts, split_sql
from replaybook.errors import ActionError, StepTimeout

if TYPE_CHECKING:
    import psycopg
    from psycopg.errors import Diagnostic

T = TypeVar("T")

DEFAULT_MAX_ROWS = 10_000
DEFAULT_CONNECT_TIMEOUT = 10
_SQL_FIELDS = ("sql", "command", "commands", "query", "script")
_POLL_SECONDS = 0.05
_PLACEHOLDER = re.compile(r"%\(([^)]*)\)[sbt]")

# Connection fields: libpq keyword <- accepted names, in `auth` (first name wins) ...
_AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "host": ("host", "db_host", "hostname"),
    "port": ("port", "db_port"),
    "user": ("user", "username", "db_user"),
    "password": ("password", "db_password"),
    "dbname": ("dbname", "database", "db_name"),
}
# ... and on the step itself.
_STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "host": ("db_host",),
    "port": ("db_port",),
    "user": ("db_user",),
    "password": ("db_password",),
    "dbname": ("db_name",),
}
# Other libpq keywords a credential may carry, passed through as they are.
_LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "options",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
    "gssencmode",
    "hostaddr",
    "passfile",
)
# Types loaded as PostgreSQL's text (psycopg's Python objects are not JSON).
_TEXT_TYPES = (
    "inet",
    "cidr",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "datemultirange",
    "tsmultirange",
    "tstzmultirange",
)
# Types whose out-of-range values (infinity, BC dates, year > 9999) load as text.
_LENIENT_TYPES = ("date", "timestamp", "timestamptz")


# -- connection fields ------------------------------------------------------------


def postgres_conninfo(fields: Mapping[str, Any], what: str = "postgres step") -> str:
    """The libpq connection string for `fields` (a step's or a save's): from `auth`
    (a resolved credential mapping), else `connection` (alias `dsn`: DSN or URL), else
    the `db_*` fields. ActionError (type "postgres") when there are none or they are
    invalid; the message never shows the password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    auth = fields.get("auth")
    base = ""
    params: dict[str, Any] = {}
    if auth is not None and auth != "" and auth != {}:
        if not isinstance(auth, Mapping):
            raise ActionError(
                f"{what}: credential {auth!r} was not resolved to connection fields",
                type="postgres",
            )
        base = _text_field(auth, ("dsn", "connection", "url", "uri"), what)
        params = _named_fields(auth, _AUTH_FIELDS, what)
        for option in _LIBPQ_OPTIONS:
            if auth.get(option) not in (None, ""):
                params[option] = auth[option]
        if not base and not params:
            raise ActionError(
                f"{what}: `auth` has no postgres connection fields "
                "(host, port, user, password, dbname or dsn)",
                type="postgres",
            )
    else:
        connection = fields.get("connection", fields.get("dsn"))
        if isinstance(connection, Mapping):
            return postgres_conninfo({"auth": connection}, what)
        if connection not in (None, ""):
            if not isinstance(connection, str):
                raise ActionError(f"{what}: `connection` must be a DSN text", type="postgres")
            base = connection
        else:
            params = _named_fields(fields, _STEP_FIELDS, what)
            if not params:
                raise ActionError(
                    f"{what} needs connection fields: `auth`, `connection` (a DSN) or "
                    "db_host, db_port, db_user, db_password, db_name",
                    type="postgres",
                )
    try:
        conninfo = make_conninfo(base, **params)
        conninfo_to_dict(conninfo)  # validate now, not at connect time
    except Exception as exc:  # psycopg.ProgrammingError; the text may quote the password
        raise ActionError(
            f"{what}: invalid connection string: {_redact_quoted(str(exc).strip())}",
            type="postgres",
        ) from None
    return conninfo


def _text_field(source: Mapping[str, Any], names: tuple[str, ...], what: str) -> str:
    for name in names:
        value = source.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise ActionError(f"{what}: `{name}` must be a DSN text", type="postgres")
        return value
    return ""


def _named_fields(
    source: Mapping[str, Any], names: Mapping[str, tuple[str, ...]], what: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword, aliases in names.items():
        for alias in aliases:
            value = source.get(alias)
            if value in (None, ""):
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ActionError(f"{what}: `{alias}` must be text", type="postgres")
            out[keyword] = str(value)
            break
    return out


def _redact_quoted(text: str) -> str:
    return re.sub(r'"[^"]*"', '"***"', text)


def scrub(text: str, conninfo: str) -> str:
    """`text` without the password of `conninfo` (nor any URL or key=value password)."""
    from psycopg.conninfo import conninfo_to_dict

    with contextlib.suppress(Exception):
        password = conninfo_to_dict(conninfo).get("password")
        if isinstance(password, str) and password:
            text = text.replace(password, "***")
    text = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text)


# -- connections ------------------------------------------------------------------


class PostgresConnections:
    """Idle psycopg connections by connection string. A connection serves one step at
    a time: `take` one, `give_back` it after. Broken ones and ones left in a
    transaction are closed, and so are the oldest idle ones beyond `max_idle_per_dsn`
    per connection string or `max_idle` in all. Thread-safe."""

    def __init__(self, max_idle_per_dsn: int = 4, max_idle: int = 32) -> None:
        self.max_idle_per_dsn = max_idle_per_dsn
        self.max_idle = max_idle
        # conninfo -> idle connections (oldest first); least recently used conninfo first
        self._idle: OrderedDict[str, list[psycopg.Connection[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, conninfo: str, *, fresh: bool = False) -> tuple[psycopg.Connection[Any], bool]:
        """A connection for `conninfo` and whether it was used before (a new one is
        opened when none is idle, or `fresh`). ActionError (type "postgres") if it
        cannot."""
        stale: list[psycopg.Connection[Any]] = []
        found: psycopg.Connection[Any] | None = None
        with self._lock:
            idle = self._idle.get(conninfo, [])
            while idle and not fresh:
                conn = idle.pop()
                if not conn.closed and not conn.broken:
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            _close_quietly(conn)
        if found is not None:
            return found, True
        return _connect(conninfo), False

    def give_back(
        self, conninfo: str, conn: psycopg.Connection[Any], *, discard: bool = False
    ) -> None:
        import psycopg

        reusable = (
            not discard
            and not conn.closed
            and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        evicted = [conn]
        if reusable:
            with self._lock:
                idle = self._idle.setdefault(conninfo, [])
                self._idle.move_to_end(conninfo)
                idle.append(conn)
                evicted = idle[: max(0, len(idle) - self.max_idle_per_dsn)]
                del idle[: len(evicted)]
                evicted += self._trim()
        for old in evicted:
            _close_quietly(old)

    def _trim(self) -> list[psycopg.Connection[Any]]:
        """Drop the oldest idle connections beyond max_idle (lock held)."""
        out: list[psycopg.Connection[Any]] = []
        total = sum(len(idle) for idle in self._idle.values())
        for key in list(self._idle):
            idle = self._idle[key]
            while idle and total > self.max_idle:
                out.append(idle.pop(0))
                total -= 1
            if not idle:
                del self._idle[key]
        return out

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(idle) for idle in self._idle.values())

    def close_all(self) -> None:
        """Close every idle connection (the object stays usable)."""
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            _close_quietly(conn)


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    extra: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(conninfo):
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    try:
        conn = psycopg.connect(conninfo, autocommit=False, prepare_threshold=None, **extra)
    except psycopg.Error as exc:
        message = f"{type(exc).__name__}: {str(exc).strip()}"
        raise ActionError(scrub(message, conninfo), type="postgres") from None
    _register_loaders(conn)
    return conn


def _register_loaders(conn: psycopg.Connection[Any]) -> None:
    from psycopg.adapt import Loader
    from psycopg.pq import Format
    from psycopg.types.string import TextLoader

    adapters = conn.adapters
    for name in _TEXT_TYPES:
        with contextlib.suppress(Exception):
            adapters.register_loader(name, TextLoader)
    for name in _LENIENT_TYPES:
        info = adapters.types.get(name)
        if info is None:
            continue
        inner: type[Any] = adapters.get_loader(info.oid, Format.TEXT) or TextLoader

        class Lenient(Loader):
            _inner_cls: ClassVar[type[Any]] = inner

            def __init__(self, oid: int, context: Any = None) -> None:
                super().__init__(oid, context)
                self._inner = self._inner_cls(oid, context)

            def load(self, data: Any) -> Any:
                import psycopg

                try:
                    return self._inner.load(data)
                except psycopg.DataError:  # infinity, BC, year > 9999
                    return bytes(data).decode("utf-8", "replace")

        adapters.register_loader(info.oid, Lenient)


_default: PostgresConnections | None = None
_default_lock = threading.Lock()


def default_connections() -> PostgresConnections:
    """The process-wide connections, used when ctx.services has no "postgres"."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            _default = PostgresConnections()
            atexit.register(_default.close_all)
        return _default


def connections_for(ctx: ActionContext) -> PostgresConnections:
    conns = ctx.services.get("postgres")
    return conns if isinstance(conns, PostgresConnections) else default_connections()


# -- one transaction ----------------------------------------------------------------


@dataclass
class Transaction:
    """What `run_transaction` hands its work: the cursor (use `execute` and
    `executemany` here, so a dead pooled connection can be retried), and `where`,
    which the work sets to say where an error happened ("statement 2 of 3")."""

    cursor: psycopg.Cursor[Any]
    ctx: ActionContext
    deadline: float | None
    where: str = ""
    sent: bool = field(default=False)

    def check(self) -> None:
        """Raise when the attempt was cancelled or its time is up."""
        _check(self.deadline, self.ctx)

    def execute(self, query: Any, params: Any = None) -> psycopg.Cursor[Any]:
        self.check()
        self.cursor.execute(query, params)
        self.sent = True
        return self.cursor

    def executemany(self, query: Any, params_seq: list[Any]) -> None:
        self.check()
        self.cursor.executemany(query, params_seq)
        self.sent = True


class _StaleConnection(Exception):
    """A pooled connection turned out dead before anything ran on it."""


def run_transaction(
    conninfo: str,
    ctx: ActionContext,
    work: Callable[[Transaction], T],
    *,
    error_type: str = "postgres",
    label: str = "",
) -> T:
    """Run `work` in one transaction on a connection for `conninfo`, commit, return
    its value. psycopg errors become ActionError(error_type) "<label>: <class>:
    <message>" (label omitted when empty); a query cancelled for the deadline raises
    StepTimeout, for `ctx.cancelled` ActionError(type "cancelled")."""
    deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout
    conns = connections_for(ctx)
    # A pooled connection found dead before use is replaced; after a few, a new one.
    for tries in range(conns.max_idle_per_dsn + 2):
        _check(deadline, ctx)
        try:
            conn, reused = conns.take(conninfo, fresh=tries > conns.max_idle_per_dsn)
        except ActionError as exc:
            raise _relabel(exc, error_type, label) from None
        try:
            return _run_on(conns, conninfo, conn, reused, ctx, deadline, work, error_type, label)
        except _StaleConnection:
            continue
    raise AssertionError("unreachable: the last try uses a new connection")


def _relabel(exc: ActionError, error_type: str, label: str) -> ActionError:
    message = f"{label}: {exc.message}" if label else exc.message
    return ActionError(message, type=error_type, status_code=exc.status_code, details=exc.details)


def _run_on(
    conns: PostgresConnections,
    conninfo: str,
    conn: psycopg.Connection[Any],
    reused: bool,
    ctx: ActionContext,
    deadline: float | None,
    work: Callable[[Transaction], T],
    error_type: str,
    label: str,
) -> T:
    import psycopg

    watch = _Watch(conn, deadline, ctx)
    discard = False

    def notice(diag: Diagnostic) -> None:
        with contextlib.suppress(Exception):
            ctx.log(f"{diag.severity or 'NOTICE'}: {diag.message_primary or ''}")

    conn.add_notice_handler(notice)
    watch.start()
    tx: Transaction | None = None
    try:
        with conn.cursor() as cursor:
            tx = Transaction(cursor, ctx, deadline)
            if deadline is not None:
                ms = max(1, int((deadline - time.monotonic()) * 1000))
                tx.execute("SELECT set_config('statement_timeout', %s, true)", [f"{ms}ms"])
            result = work(tx)
        conn.commit()
        return result
    except psycopg.Error as exc:
        _rollback(conn)
        discard = watch.fired or conn.broken
        if reused and conn.broken and (tx is None or not tx.sent):
            raise _StaleConnection from None
        if isinstance(exc, psycopg.errors.QueryCanceled):
            if ctx.cancelled.is_set():
                raise ActionError("cancelled", type="cancelled") from None
            if deadline is not None and (watch.fired or time.monotonic() >= deadline - 0.05):
                raise StepTimeout(ctx.timeout or 0) from None
        where = f"\n({tx.where})" if tx is not None and tx.where else ""
        message = scrub(f"{type(exc).__name__}: {str(exc).strip()}{where}", conninfo)
        raise ActionError(
            f"{label}: {message}" if label else message,
            type=error_type,
            details={"sqlstate": exc.sqlstate} if exc.sqlstate else None,
        ) from None
    except BaseException:
        _rollback(conn)  # give_back keeps the connection only if this worked
        raise
    finally:
        watch.stop()
        discard = discard or watch.fired
        with contextlib.suppress(Exception):
            conn.remove_notice_handler(notice)
        conns.give_back(conninfo, conn, discard=discard)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(Exception):
        conn.rollback()


class _Watch:
    """Cancels the connection's running query when the attempt is cancelled or its
    deadline passes; `stop` (which waits for a cancel in progress) ends it."""

    def __init__(
        self, conn: psycopg.Connection[Any], deadline: float | None, ctx: ActionContext
    ) -> None:
        self.conn = conn
        self.deadline = deadline
        self.ctx = ctx
        self.guard = threading.Lock()
        self.running = True
        self.fired = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="postgres-watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.guard:
            self.running = False
        self.done.set()

    def _run(self) -> None:
        while True:
            wait = _POLL_SECONDS
            if self.deadline is not None:
                wait = min(wait, self.deadline - time.monotonic())
            if self.done.wait(max(0.0, wait)):
                return
            late = self.deadline is not None and time.monotonic() >= self.deadline
            if self.ctx.cancelled.is_set() or late:
                with self.guard:
                    if self.running:
                        self.fired = True
                        self._cancel()
                return

    def _cancel(self) -> None:
        cancel_safe = getattr(self.conn, "cancel_safe", None)
        with contextlib.suppress(Exception):
            if cancel_safe is not None:
                cancel_safe(timeout=5.0)
            else:
                self.conn.cancel()


def _check(deadline: float | None, ctx: ActionContext) -> None:
    if ctx.cancelled.is_set():
        raise ActionError("cancelled", type="cancelled")
    if deadline is not None and time.monotonic() >= deadline:
        raise StepTimeout(ctx.timeout or 0)


# -- values -----------------------------------------------------------------------


def adapt_value(value: Any) -> Any:
    """A parameter value for psycopg: mappings (and lists holding mappings) as jsonb;
    everything else as psycopg adapts it (lists of scalars become arrays)."""
    from psycopg.types.json import Jsonb

    if isinstance(value, Mapping):
        return Jsonb(to_json_value(value))
    if isinstance(value, list | tuple) and any(
        isinstance(v, Mapping | list | tuple) and not _scalar_list(v) for v in value
    ):
        return Jsonb(to_json_value(value))
    return value


def _scalar_list(value: Any) -> bool:
    """A (nested) list of scalars: a valid (multi-dimensional) array value."""
    if isinstance(value, Mapping):
        return False
    if isinstance(value, list | tuple):
        return all(_scalar_list(v) for v in value)
    return True


# -- the action -------------------------------------------------------------------


class PostgresAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        statements = split_sql(_sql_of(spec))
        if not statements:
            raise ActionError("postgres step has no SQL statement", type="postgres")
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise ActionError(
                "postgres step: `params` must be a mapping of %(name)s values", type="postgres"
            )
        max_rows = _max_rows(spec.get("max_rows", DEFAULT_MAX_ROWS))
        conninfo = postgres_conninfo(spec)
        plan = [_bind(text, params, n, len(statements)) for n, text in enumerate(statements, 1)]

        def work(tx: Transaction) -> dict[str, Any]:
            last_query: dict[str, Any] | None = None
            changed = -1
            for number, (text, bound) in enumerate(plan, 1):
                if len(plan) > 1:
                    tx.where = f"statement {number} of {len(plan)}"
                cursor = tx.execute(text, bound)
                if cursor.description is not None:
                    last_query = _fetch(cursor, max_rows)
                else:
                    changed = cursor.rowcount
            if last_query is not None:
                return last_query
            return {"rows": [], "columns": [], "row_count": changed}

        return run_transaction(conninfo, ctx, work, error_type="postgres")


def _bind(
    text: str, params: Mapping[str, Any], number: int, total: int
) -> tuple[str, dict[str, Any] | None]:
    """Statement `number` as sent and the parameters it uses (None when its code has
    no placeholder: then `%` needs no escaping); ActionError when one is missing from
    `params`. With parameters, `%` in comments is doubled (psycopg reads them too)."""
    used = {m.group(1) for part in code_parts(text) for m in _PLACEHOLDER.finditer(part)}
    if not used:
        return text, None
    missing = sorted(n for n in used if n not in params)
    if missing:
        shown = ", ".join(f"%({n})s" for n in missing)
        where = f"statement {number} uses" if total > 1 else "the statement uses"
        raise ActionError(f"postgres step: {where} {shown}, not in params", type="postgres")
    # psycopg also reads placeholders inside literals: give those too when known.
    text = "".join(
        text[s:e].replace("%", "%%") if kind == "comment" else text[s:e]
        for kind, s, e in _scan(text)
    )
    names = used | {m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) in params}
    return text, {n: adapt_value(params[n]) for n in sorted(names)}


def _fetch(cursor: psycopg.Cursor[Any], max_rows: int) -> dict[str, Any]:
    description = cursor.description or []
    raw = cursor.fetchmany(max_rows + 1)
    if len(raw) > max_rows:
        raise ActionError(
            f"the query result has more than {max_rows} rows (max_rows); write it to a "
            "table instead (CREATE TABLE ... AS SELECT ...) and read it in pieces, "
            "or raise max_rows",
            type="postgres",
        )
    columns = _unique([str(d.name) for d in description])
    rows = to_json_value(raw)
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


def _sql_of(spec: Mapping[str, Any]) -> str:
    for name in _SQL_FIELDS:
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ";\n".join(value)
        if isinstance(value, str):
            return value
        raise ActionError(
            f"postgres step: `{name}` must be SQL text (or a list of texts)", type="postgres"
        )
    encoded = spec.get("command_b64")
    if encoded is not None:
        try:
            return base64.b64decode(str(encoded)).decode("utf-8")
        except ValueError as exc:
            raise ActionError(
                f"postgres step: command_b64 is not base64 UTF-8 text: {exc}", type="postgres"
            ) from exc
    raise ActionError(
        "postgres step needs SQL in `sql` (or command, query, script, command_b64)",
        type="postgres",
    )


def _max_rows(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    raise ActionError(
        f"postgres step: max_rows must be a whole number, not {raw!r}", type="postgres"
    )
