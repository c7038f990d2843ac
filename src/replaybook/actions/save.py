"""A step's `save` block (spec §7).

    run_save(save, ctx) -> summary dict | None

`save` is the block already rendered by the caller (templates done, `result` in their
context). None is returned for an empty block (nothing to save). Fields:

- `storage`: `event_log` (default; alias `event`) | `postgres` | `duckdb` | `http`;
  `storage: {type: postgres, ...fields}` is the same as the flat form (its fields win).
- `data` (alias `args`): a mapping is one row, a list of mappings is rows.
- `mode`: `insert` (default) | `upsert` with `key` (a column name or a list).
- `table`: used as written, may be schema-qualified (`public.results`): each
  dot-separated part (a part already in double quotes is kept whole) and each column
  name is quoted as an identifier, so names are case-sensitive.
- `statement`: custom SQL run once per row (once with no binds when there is no
  `data`); `:name` binds `data.name` (`::` casts, literals and comments are left
  alone). Values are always bound, never spliced into the SQL.

Values keep their types: None -> NULL, numbers stay numbers, text stays text,
mappings and lists -> JSON (postgres: jsonb parameters, which a json or text column
also accepts; duckdb: JSON text). Connection fields are those of the storage's step
type: postgres `auth` (a resolved credential mapping) / `connection` / `db_*` (see
`postgres_conninfo`); duckdb `database` (default: the execution's DuckDB file, the
duckdb action's connections); http `url` (alias `endpoint`), `method` (POST),
`headers`, `auth`, `timeout`, `verify`, with `data` sent as the JSON body.

Returns {"storage": "event_log", "data": data} for the event log (the caller records
it in the step's event) and {"storage", "table", "mode", "rows"} for tables
({"storage": "http", "url", "status_code", "rows"} for http). A failing save raises
ActionError(type "save"); running out of time raises StepTimeout, a cancel
ActionError(type "cancelled"), as the actions do.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replaybook.actions.base import ActionContext
from replaybook.actions.jsonsafe import to_json_value
from replaybook.actions.sqlsplit import _scan, split_sql
from replaybook.errors import ActionError, StepTimeout

if TYPE_CHECKING:
    from replaybook.actions.postgres import Transaction

_STORAGES = {
    "event_log": "event_log",
    "event": "event_log",
    "events": "event_log",
    "postgres": "postgres",
    "postgresql": "postgres",
    "duckdb": "duckdb",
    "http": "http",
}
_BIND = re.compile(r"(?<![:\w]):(?!:)([A-Za-z_][A-Za-z0-9_]*)")
_POLL_SECONDS = 0.05


def run_save(save: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any] | None:
    """Save the data of a rendered `save` block; return a small summary (see the
    module docstring). ActionError (type "save") when the save fails."""
    if not save:
        return None
    fields, storage = _fields(save)
    data = fields["data"] if fields.get("data") is not None else fields.get("args")
    if storage == "event_log":
        try:
            return {"storage": "event_log", "data": to_json_value(data)}
        except ActionError as exc:
            raise ActionError(f"save to event_log: {exc.message}", type="save") from None
    try:
        if storage == "http":
            return _save_http(fields, data, ctx)
        rows = _rows(data, storage)
        plan = _plan(fields, rows, storage)
        if storage == "postgres":
            return _save_postgres(fields, plan, ctx)
        return _save_duckdb(fields, plan, ctx)
    except StepTimeout:
        raise
    except ActionError as exc:
        if exc.type in ("cancelled", "save"):
            raise
        message = exc.message
        if not message.startswith("save"):
            message = f"save to {storage}: {message}"
        raise ActionError(
            message,
            type="save",
            status_code=exc.status_code,
            details=exc.details,
        ) from None


def _fields(save: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    fields = dict(save)
    storage: Any = fields.pop("storage", None)
    if isinstance(storage, Mapping):
        nested = dict(storage)
        storage = nested.pop("type", None) or nested.pop("kind", None)
        fields.update(nested)
    if storage is None or storage == "":
        storage = fields.pop("type", None) or "event_log"
    if not isinstance(storage, str) or storage.lower() not in _STORAGES:
        known = "event_log, postgres, duckdb, http"
        raise ActionError(f"save: unknown storage {storage!r} (known: {known})", type="save")
    return fields, _STORAGES[storage.lower()]


def _rows(data: Any, storage: str) -> list[Mapping[str, Any]] | None:
    """The rows of `data` (None when there is no data)."""
    if data is None:
        return None
    if isinstance(data, Mapping):
        rows: list[Any] = [data]
    elif isinstance(data, list | tuple):
        rows = list(data)
    else:
        raise ActionError(
            f"save to {storage}: `data` must be a mapping (one row) or a list of "
            f"mappings, not {type(data).__name__}",
            type="save",
        )
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ActionError(
                f"save to {storage}: data row {i} is a {type(row).__name__}, not a mapping",
                type="save",
            )
        for name in row:
            if not isinstance(name, str) or not name:
                raise ActionError(
                    f"save to {storage}: data row {i} has a column name {name!r} that is not text",
                    type="save",
                )
    return rows


# -- SQL building (shared by postgres and duckdb) ------------------------------------


class _Plan:
    """The SQL of a table save: either a custom statement (its statements, each with
    the names it binds) or inserts of row groups with the same columns."""

    def __init__(
        self,
        table: str | None,
        mode: str,
        rows: list[Mapping[str, Any]],
        statements: list[tuple[str, list[str]]] | None,
        groups: list[tuple[tuple[str, ...], str, list[Mapping[str, Any]]]],
        count: int,
    ) -> None:
        self.table = table
        self.mode = mode
        self.rows = rows  # a statement runs once per row
        self.statements = statements
        self.groups = groups
        self.count = count  # rows of data saved

    def summary(self, storage: str) -> dict[str, Any]:
        return {"storage": storage, "table": self.table, "mode": self.mode, "rows": self.count}


def _plan(fields: Mapping[str, Any], rows: list[Mapping[str, Any]] | None, storage: str) -> _Plan:
    style = "pyformat" if storage == "postgres" else "dollar"
    table = fields.get("table")
    if table is not None and (not isinstance(table, str) or not table.strip()):
        raise ActionError(f"save to {storage}: `table` must be a table name", type="save")
    statement = fields.get("statement")
    if statement is not None:
        if not isinstance(statement, str) or not statement.strip():
            raise ActionError(f"save to {storage}: `statement` must be SQL text", type="save")
        texts = split_sql(statement)
        if not texts:
            raise ActionError(f"save to {storage}: `statement` has no SQL", type="save")
        translated = [translate_binds(text, style) for text in texts]
        the_rows = rows if rows is not None else [{}]
        for _, names in translated:
            for i, row in enumerate(the_rows):
                missing = [n for n in names if n not in row]
                if missing:
                    shown = ", ".join(f":{n}" for n in missing)
                    where = f"data row {i}" if rows is not None else "the save (it has no data)"
                    raise ActionError(
                        f"save to {storage}: the statement uses {shown}, not in {where}",
                        type="save",
                    )
        count = len(rows) if rows is not None else 0
        return _Plan(table, "statement", the_rows, translated, [], count)
    if table is None:
        raise ActionError(f"save to {storage} needs a `table` (or a `statement`)", type="save")
    if rows is None:
        raise ActionError(f"save to {storage} table {table}: `data` is missing", type="save")
    mode = str(fields.get("mode") or "insert").lower()
    if mode not in ("insert", "upsert"):
        raise ActionError(
            f"save to {storage}: mode must be insert or upsert, not {mode!r}", type="save"
        )
    keys = _keys(fields.get("key"), storage) if mode == "upsert" else []
    if mode == "upsert" and not keys:
        raise ActionError(f"save to {storage}: mode upsert needs a `key`", type="save")
    target = quote_table(table)
    groups: list[tuple[tuple[str, ...], str, list[Mapping[str, Any]]]] = []
    for columns, group in itertools.groupby(rows, key=_columns_of):
        missing = [k for k in keys if k not in columns]
        if missing:
            raise ActionError(
                f"save to {storage}: upsert key {', '.join(missing)} is not in the data",
                type="save",
            )
        sql = _insert_sql(target, columns, keys, style)
        groups.append((columns, sql, list(group)))
    return _Plan(table, mode, rows, None, groups, len(rows))


def _columns_of(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(row)


def _keys(raw: Any, storage: str) -> list[str]:
    if isinstance(raw, str):
        return [k.strip() for k in raw.split(",") if k.strip()]
    if isinstance(raw, list | tuple) and all(isinstance(k, str) and k for k in raw):
        return list(raw)
    if raw is None:
        return []
    raise ActionError(
        f"save to {storage}: `key` must be a column name or a list of them", type="save"
    )


def _insert_sql(target: str, columns: tuple[str, ...], keys: list[str], style: str) -> str:
    if not columns:
        return f"INSERT INTO {target} DEFAULT VALUES"  # run without parameters
    mark = "?"
    if style == "pyformat":  # psycopg reads every `%`: double those in names
        mark = "%s"
        target = target.replace("%", "%%")
        columns = tuple(c.replace("%", "%%") for c in columns)
        keys = [k.replace("%", "%%") for k in keys]
    names = ", ".join(quote_ident(c) for c in columns)
    values = ", ".join(mark for _ in columns)
    sql = f"INSERT INTO {target} ({names}) VALUES ({values})"
    if keys:
        conflict = ", ".join(quote_ident(k) for k in keys)
        updates = [
            f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in columns if c not in keys
        ]
        action = "DO UPDATE SET " + ", ".join(updates) if updates else "DO NOTHING"
        sql += f" ON CONFLICT ({conflict}) {action}"
    return sql


def quote_ident(name: str) -> str:
    """`name` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    """A table name as written, each dot-separated part quoted (`public.results` ->
    `"public"."results"`); a part already in double quotes is kept whole."""
    text = table.strip()
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if text.startswith('"', i):
            j, name = i + 1, []
            while j < n and not (text[j] == '"' and not text.startswith('""', j)):
                name.append(text[j])
                j += 2 if text.startswith('""', j) else 1
            if j >= n:
                raise ActionError(f"save: table name {table!r} is not valid", type="save")
            parts.append("".join(name))
            i = j + 1
        else:
            j = text.find(".", i)
            j = n if j < 0 else j
            part = text[i:j].strip()
            if not part:
                raise ActionError(f"save: table name {table!r} is not valid", type="save")
            parts.append(part)
            i = j
        if i >= n:
            break
        if text[i] != "." or i + 1 >= n:
            raise ActionError(f"save: table name {table!r} is not valid", type="save")
        i += 1
    return ".".join(quote_ident(p) for p in parts)


def translate_binds(statement: str, style: str) -> tuple[str, list[str]]:
    """`statement` with `:name` binds (in SQL code, not in literals or comments, not
    `::` casts) turned into the driver's placeholders: `%(name)s` ("pyformat", and
    every other `%` doubled) or `$name` ("dollar"). Returns the text and the names in
    order of first use."""
    names: list[str] = []
    out: list[str] = []

    def bind(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in names:
            names.append(name)
        return f"%({name})s" if style == "pyformat" else f"${name}"

    for kind, start, end in _scan(statement):
        piece = statement[start:end]
        if style == "pyformat":
            piece = piece.replace("%", "%%")
        if kind == "code":
            piece = _BIND.sub(bind, piece)
        out.append(piece)
    if not names:
        return statement, []  # run without parameters: `%` stays as written
    return "".join(out), names


# -- postgres -----------------------------------------------------------------------


def _save_postgres(fields: Mapping[str, Any], plan: _Plan, ctx: ActionContext) -> dict[str, Any]:
    from replaybook.actions.postgres import postgres_conninfo, run_transaction

    conninfo = postgres_conninfo(fields, "save to postgres")
    label = f"save to postgres table {plan.table}" if plan.table else "save to postgres"

    def work(tx: Transaction) -> None:
        if plan.statements is not None:
            for text, names in plan.statements:
                binds = [{n: _pg_value(row[n]) for n in names} for row in plan.rows]
                if not names:
                    for _ in binds:
                        tx.execute(text)
                elif len(binds) == 1:
                    tx.execute(text, binds[0])
                elif binds:
                    tx.executemany(text, binds)
            return
        for columns, sql, group in plan.groups:
            values = [tuple(_pg_value(row[c]) for c in columns) for row in group]
            if len(values) == 1:
                tx.execute(sql, values[0] if columns else None)
            else:
                tx.executemany(sql, values)

    run_transaction(conninfo, ctx, work, error_type="save", label=label)
    return plan.summary("postgres")


def _pg_value(value: Any) -> Any:
    """Mappings and lists as jsonb (a json or text column takes it too); the rest as
    psycopg sends it (text as "unknown", so the column's type decides)."""
    if isinstance(value, Mapping | list | tuple):
        from psycopg.types.json import Jsonb

        return Jsonb(to_json_value(value))
    return value


# -- duckdb -------------------------------------------------------------------------


def _save_duckdb(fields: Mapping[str, Any], plan: _Plan, ctx: ActionContext) -> dict[str, Any]:
    import duckdb

    from replaybook.actions.duckdb import DuckDBConnections, default_connections

    conns = ctx.services.get("duckdb")
    if not isinstance(conns, DuckDBConnections):
        conns = default_connections()
    database = fields.get("database") or DuckDBConnections.default_path(
        ctx.data_dir, ctx.execution_id
    )
    if not isinstance(database, str | Path):
        raise ActionError("save to duckdb: `database` must be a path", type="save")
    label = f"save to duckdb table {plan.table}" if plan.table else "save to duckdb"
    deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout
    with conns.using(database, deadline, ctx) as db:
        _check(deadline, ctx)
        conn = db.conn
        try:
            conn.execute("BEGIN TRANSACTION")
            try:
                _duckdb_work(conn, plan)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    conn.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            raise ActionError(f"{label}: {exc}", type="save") from None
    return plan.summary("duckdb")


def _duckdb_work(conn: Any, plan: _Plan) -> None:
    if plan.statements is not None:
        for text, names in plan.statements:
            binds = [{n: _duckdb_value(row[n]) for n in names} for row in plan.rows]
            if not names:
                for _ in binds:
                    conn.execute(text)
            elif len(binds) == 1:
                conn.execute(text, binds[0])
            elif binds:
                conn.executemany(text, binds)
        return
    for columns, sql, group in plan.groups:
        values = [[_duckdb_value(row[c]) for c in columns] for row in group]
        if not columns:
            for _ in values:
                conn.execute(sql)
        elif len(values) == 1:
            conn.execute(sql, values[0])
        else:
            conn.executemany(sql, values)


def _duckdb_value(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(to_json_value(value), ensure_ascii=False, separators=(",", ":"))
    return value


def _check(deadline: float | None, ctx: ActionContext) -> None:
    if ctx.cancelled.is_set():
        raise ActionError("cancelled", type="cancelled")
    if deadline is not None and time.monotonic() >= deadline:
        raise StepTimeout(ctx.timeout or 0)


# -- http ---------------------------------------------------------------------------


def _save_http(fields: Mapping[str, Any], data: Any, ctx: ActionContext) -> dict[str, Any]:
    from replaybook.actions.registry import get_action

    url = fields.get("url") or fields.get("endpoint")
    if not isinstance(url, str) or not url:
        raise ActionError("save to http needs a `url` (text)", type="save")
    headers = fields.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ActionError("save to http: `headers` must be a mapping", type="save")
    headers = {str(k): v for k, v in headers.items()}
    if not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = "application/json"
    body = json.dumps(to_json_value(data), ensure_ascii=False, separators=(",", ":"))
    spec: dict[str, Any] = {
        "method": str(fields.get("method") or "POST").upper(),
        "url": url,
        "headers": headers,
        "body": body,
        "fail_on_status": True,
    }
    for name in ("auth", "timeout", "verify", "follow_redirects"):
        if fields.get(name) is not None:
            spec[name] = fields[name]
    result = get_action("http").run(spec, {}, ctx)
    count = len(data) if isinstance(data, list) else 0 if data is None else 1
    return {
        "storage": "http",
        "url": url,
        "status_code": result.get("status_code") if isinstance(result, Mapping) else None,
        "rows": count,
    }
