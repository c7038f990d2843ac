"""The `replaybook` command line (see shared/spec/CLI.md for the contract).

Output discipline: with `--json`, stdout carries exactly one JSON document; progress,
logs and warnings go to stderr. Exit codes: 0 success, 1 failed, 2 invalid input.
No command ends in a traceback: every error is turned into a message here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from replaybook.commands.credential import app as _credential_app
from replaybook.commands.db import app as _db_app
from replaybook.commands.hook import app as _hook_app
from replaybook.commands.log_format import log_format_option as _log_format_option
from replaybook.commands.prune import prune as _prune_command
from replaybook.commands.schedule import app as _schedule_app
from replaybook.commands.schema import schema as _schema_command
from replaybook.errors import PlaybookInvalid, Problem, ReplaybookError, UsageError
from replaybook.masking import env_masker

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Replaybook: run declarative YAML playbooks, durably.",
    pretty_exceptions_enable=False,
)
executions_app = typer.Typer(no_args_is_help=True, help="Inspect and operate executions.")
catalog_app = typer.Typer(no_args_is_help=True, help="Browse registered playbooks.")
app.add_typer(executions_app, name="executions")
app.add_typer(catalog_app, name="catalog")
app.add_typer(_credential_app, name="credential")
app.add_typer(_db_app, name="db")
app.command("schema")(_schema_command)
executions_app.command("prune")(_prune_command)
app.callback()(_log_format_option)
app.add_typer(_schedule_app, name="schedule")
app.add_typer(_hook_app, name="hook")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Store URL (sqlite:///path); default $REPLAYBOOK_DB.")
]


ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Server URL; default $REPLAYBOOK_SERVER (none: embedded)."),
]


def _api(server: str | None) -> Any:
    """An API client when a server is named (--server or $REPLAYBOOK_SERVER)."""
    from replaybook.commands.remote import api_for

    return api_for(server)


def _emit(obj: Any) -> None:
    obj = env_masker(os.environ).mask(obj)  # secrets never reach the output (spec §10)
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _err(msg: str) -> None:
    msg = env_masker(os.environ).mask_text(msg)
    sys.stderr.write(msg.rstrip("\n") + "\n")


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


def _invalid(problems: list[Problem], as_json: bool) -> NoReturn:
    if as_json:
        _emit({"status": "invalid", "errors": [p.as_dict() for p in problems]})
    else:
        for p in problems:
            _err(f"error: {p}")
    _exit(2)


def _open_store(db: str | None) -> Any:
    from replaybook.store import open_store

    return open_store(db)


def _data_dir() -> Path:
    from replaybook.store import default_data_dir

    return default_data_dir()


# -- payload parsing -----------------------------------------------------------
_NO_JSON_FORM = "NaN and infinities have no JSON form"


def parse_payload(payload: str | None, sets: list[str] | None) -> dict[str, Any]:
    """The payload of --payload (JSON object or @file) and --set key.path=value (the
    value parsed as YAML, as a playbook's values are: a date stays its text). Raises
    UsageError for anything that is not JSON data (NaN, infinities), naming the option,
    before anything is recorded."""
    from replaybook.actions.jsonsafe import not_json

    data: dict[str, Any] = {}
    if payload:
        text = payload
        if payload.startswith("@"):
            path = Path(payload[1:])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise UsageError(f"--payload: cannot read {path}: {e.strerror}") from e
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(
                f"--payload: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
            ) from e
        if not isinstance(loaded, dict):
            raise UsageError("--payload: must be a JSON object")
        bad = not_json(loaded)
        if bad:
            raise UsageError(f"--payload: not JSON data: {bad} ({_NO_JSON_FORM})")
        data = loaded
    for item in sets or []:
        from replaybook.playbook.load import load_value

        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected key=value")
        try:
            value = load_value(raw) if raw else ""
        except ValueError:
            value = raw
        bad = not_json(value)
        if bad:
            raise UsageError(f"--set {key}: {raw!r} is not JSON data: {bad} ({_NO_JSON_FORM})")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return data


# -- run -------------------------------------------------------------------------
@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Playbook YAML file.")],
    payload: Annotated[str | None, typer.Option(help="JSON object, or @file.json.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="key.path=value (value parsed as YAML).")
    ] = None,
    catalog: Annotated[
        list[Path] | None, typer.Option(help="Register this folder's playbooks first.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once.")] = 16,
    strict: Annotated[bool, typer.Option(help="Unknown keys are errors.")] = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """Run a playbook to its end (embedded: SQLite + DuckDB; or on a server)."""
    from replaybook.commands.signals import sigterm_as_interrupt

    with sigterm_as_interrupt():  # SIGTERM cancels the execution, as Ctrl-C does
        _run(file, payload, set_, catalog, concurrency, strict, as_json, db, server)


def _run(
    file: Path,
    payload: str | None,
    set_: list[str] | None,
    catalog: list[Path] | None,
    concurrency: int,
    strict: bool,
    as_json: bool,
    db: str | None,
    server: str | None,
) -> None:
    from replaybook.playbook.load import load_file

    try:
        pb, warnings = load_file(file, strict=strict)
    except PlaybookInvalid as e:
        _invalid(e.problems, as_json)
    for w in warnings:
        _err(f"warning: {w}")
    data = parse_payload(payload, set_)
    api = _api(server)
    if api is not None:
        from replaybook.commands.execute import run_on_server

        def invalid(e: PlaybookInvalid) -> NoReturn:
            _invalid(e.problems, as_json)

        run_on_server(api, pb, file, data, catalog, as_json, invalid)
    store = _open_store(db)
    from replaybook.runtime.embedded import EmbeddedRunner

    with EmbeddedRunner(store, _data_dir(), concurrency=concurrency) as runner:
        for folder in catalog or []:
            if folder.is_dir():
                try:
                    runner.register_dir(folder)
                except PlaybookInvalid as e:
                    _invalid(e.problems, as_json)
        entry, _ = store.register_playbook(pb.path, pb.name, pb.source)
        progress = None
        if not as_json:
            from replaybook.progress import Progress

            progress = Progress(pb)
            runner.add_listener(progress.on_events)
        try:
            eid = runner.start(pb.path, entry.version, data)
        except ReplaybookError as e:
            _err(f"error: {e}")
            _exit(1)
        if progress is not None:
            progress.begin(eid)
        try:
            outcome = runner.wait(eid)
        except KeyboardInterrupt:
            runner.engine.cancel(eid, "interrupted")
            outcome = runner.outcome(eid)
        if progress is not None:
            progress.finish(outcome)
    if as_json:
        _emit(outcome.as_dict())
    _exit(0 if outcome.status == "completed" else 1)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Playbook files.")],
    strict: Annotated[bool, typer.Option(help="Unknown keys are errors.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check playbooks without running them."""
    from replaybook.playbook.load import load_file

    report = []
    ok = True
    for f in files:
        try:
            _, warnings = load_file(f, strict=strict)
            report.append(
                {"file": str(f), "status": "valid", "warnings": [w.as_dict() for w in warnings]}
            )
            if not as_json:
                for w in warnings:
                    _err(f"warning: {w}")
                print(f"{f}: valid")
        except PlaybookInvalid as e:
            ok = False
            report.append(
                {"file": str(f), "status": "invalid", "errors": [p.as_dict() for p in e.problems]}
            )
            if not as_json:
                for p in e.problems:
                    _err(f"error: {p}")
                print(f"{f}: invalid ({len(e.problems)} problem(s))")
    if as_json:
        _emit(report[0] if len(report) == 1 else report)
    _exit(0 if ok else 2)


# -- executions ------------------------------------------------------------------
def _embedded(db: str | None, concurrency: int = 16) -> Any:
    from replaybook.runtime.embedded import EmbeddedRunner

    return EmbeddedRunner(_open_store(db), _data_dir(), concurrency=concurrency)


EXECUTION_STATUSES = ("running", "completed", "failed", "cancelled")


def _check_status(value: str | None) -> str | None:
    if value is not None and value not in EXECUTION_STATUSES:
        raise typer.BadParameter(
            f"{value!r} is not a status; use one of {', '.join(EXECUTION_STATUSES)}"
        )
    return value


def _require(store: Any, execution_id: str) -> Any:
    info = store.get_execution(execution_id)
    if info is None:
        raise UsageError(f"no execution '{execution_id}'")
    return info


@executions_app.command("list")
def executions_list(
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Filter by status: {', '.join(EXECUTION_STATUSES)}.", callback=_check_status
        ),
    ] = None,
    playbook: Annotated[str | None, typer.Option(help="Filter by playbook path.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """List executions, newest first."""
    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        return remote.executions_list(api, status, playbook, limit, offset, as_json)
    store = _open_store(db)
    rows = store.list_executions(status=status, playbook_path=playbook, limit=limit, offset=offset)
    if as_json:
        _emit([_info_dict(r) for r in rows])
        return
    from replaybook.commands.tables import print_table

    print_table(
        ("execution", "playbook", "status", "started", "updated"),
        [
            (r.id, f"{r.playbook_path}@{r.playbook_version}", r.status, r.created_at, r.updated_at)
            for r in rows
        ],
        keep=("status",),
    )


def _info_dict(r: Any) -> dict[str, Any]:
    return {
        "execution_id": r.id,
        "playbook": r.playbook_path,
        "version": r.playbook_version,
        "status": r.status,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "parent_id": r.parent_id,
    }


@executions_app.command("show")
def executions_show(
    execution_id: str, as_json: JsonOpt = False, db: DbOpt = None, server: ServerOpt = None
) -> None:
    """Show an execution's status, result, error and steps."""
    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        return remote.executions_show(api, execution_id, as_json)
    runner = _embedded(db, 1)
    try:
        info = _require(runner.store, execution_id)
        out = runner.outcome(execution_id).as_dict()
        out["playbook"] = info.playbook_path
        out["version"] = info.playbook_version
    finally:
        runner.close()
    if as_json:
        _emit(out)
    else:
        from replaybook.progress import print_outcome

        print_outcome(out)


@executions_app.command("events")
def executions_events(
    execution_id: str,
    after: Annotated[int, typer.Option(help="Only events after this seq.")] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", help="Print new events until it ends (--json: lines).")
    ] = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """Print an execution's event log."""
    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        if follow:
            remote.require_execution(api, execution_id)
            from replaybook.commands.events import follow_remote

            return follow_remote(api, execution_id, after, as_json)
        return remote.executions_events(api, execution_id, after, as_json)
    store = _open_store(db)
    _require(store, execution_id)
    if follow:
        from replaybook.commands.events import follow_local

        return follow_local(store, execution_id, after, as_json)
    events = [e.as_dict() for e in store.read_events(execution_id, after_seq=after)]
    if as_json:
        _emit(events)
        return
    for e in events:
        where = e.get("step") or ""
        if "visit" in e:
            where += f"#{e['visit']}"
        if "attempt" in e:
            where += f" attempt {e['attempt']}"
        data = json.dumps(e["data"], ensure_ascii=False)[:200]
        print(f"{e['seq']:>5} {e['at']} {e['type']:<20} {where} {data}")


@executions_app.command("cancel")
def executions_cancel(
    execution_id: str, as_json: JsonOpt = False, db: DbOpt = None, server: ServerOpt = None
) -> None:
    """Cancel a running execution."""
    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        return remote.executions_cancel(api, execution_id, as_json)
    runner = _embedded(db, 1)
    try:
        _require(runner.store, execution_id)
        changed = runner.engine.cancel(execution_id)
        out = runner.outcome(execution_id).as_dict()
    finally:
        runner.close()
    if as_json:
        _emit(out)
    else:
        from replaybook.commands.recover import cancel_message

        print(cancel_message(execution_id, changed, out["status"]))


@executions_app.command("resume")
def executions_resume(
    execution_id: str,
    from_: Annotated[str | None, typer.Option("--from", help="Re-run from this step.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once.")] = 16,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """Resume a failed or cancelled execution and run it to its end."""
    from replaybook.commands.recover import say_already_completed, still_running
    from replaybook.commands.signals import sigterm_as_interrupt

    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        with sigterm_as_interrupt():
            remote.executions_resume(api, execution_id, from_, as_json)
    runner = _embedded(db, concurrency)
    try:
        _require(runner.store, execution_id)
        pb = runner.engine.playbook_of(execution_id)
        if from_ is not None and not pb.has_step(from_):
            raise UsageError(f"--from {from_}: no step '{from_}' in {pb.path}")
        status = runner.engine.state(execution_id).status
        if status == "running":
            raise still_running(execution_id)
        if status == "completed" and from_ is None:
            say_already_completed(execution_id)
            outcome = runner.outcome(execution_id)
        else:
            with sigterm_as_interrupt():
                runner.start_workers()
                try:
                    runner.engine.resume(execution_id, from_)
                except ValueError as e:  # started running meanwhile
                    raise UsageError(str(e)) from e
                try:
                    outcome = runner.wait(execution_id)
                except KeyboardInterrupt:  # Ctrl-C or SIGTERM: cancel, as `run` does
                    runner.engine.cancel(execution_id, "interrupted")
                    outcome = runner.outcome(execution_id)
    finally:
        runner.close()
    if as_json:
        _emit(outcome.as_dict())
    else:
        from replaybook.progress import print_outcome

        print_outcome(outcome.as_dict())
    _exit(0 if outcome.status == "completed" else 1)


# -- catalog -----------------------------------------------------------------------
@app.command()
def register(
    paths: Annotated[list[Path], typer.Argument(help="Playbook files or folders.")],
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """Register playbooks in the catalog (identical content keeps its version)."""
    from replaybook.playbook.load import load_file

    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        got = remote.register(api, paths, as_json)
        if isinstance(got, PlaybookInvalid):
            _invalid(got.problems, as_json)
        return

    store = _open_store(db)
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.rglob("*.y*ml")) if p.is_dir() else [p])
    out = []
    for f in files:
        try:
            pb, _ = load_file(f)
        except PlaybookInvalid as e:
            _invalid(e.problems, as_json)
        entry, new = store.register_playbook(pb.path, pb.name, pb.source)
        out.append({"path": entry.path, "version": entry.version, "new": new, "file": str(f)})
        if not as_json:
            print(f"{entry.path} version {entry.version}{'' if new else ' (unchanged)'}")
    if as_json:
        _emit(out)


@catalog_app.command("list")
def catalog_list(as_json: JsonOpt = False, db: DbOpt = None, server: ServerOpt = None) -> None:
    """List registered playbooks (latest versions)."""
    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        return remote.catalog_list(api, as_json)
    store = _open_store(db)
    rows = [
        {"path": e.path, "name": e.name, "version": e.version, "registered_at": e.registered_at}
        for e in store.list_playbooks()
    ]
    if as_json:
        _emit(rows)
        return
    for r in rows:
        print(f"{r['path']}  v{r['version']}  {r['registered_at']}")


@catalog_app.command("show")
def catalog_show(
    path: str,
    version: Annotated[int | None, typer.Option(help="Default: latest.")] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """Print a registered playbook's YAML."""
    api = _api(server)
    if api is not None:
        from replaybook.commands import remote

        return remote.catalog_show(api, path, version, as_json)
    store = _open_store(db)
    entry = store.get_playbook(path, version)
    if entry is None:
        raise UsageError(f"no playbook '{path}'" + (f" version {version}" if version else ""))
    if as_json:
        _emit(
            {
                "path": entry.path,
                "name": entry.name,
                "version": entry.version,
                "content": entry.content,
            }
        )
    else:
        sys.stdout.write(entry.content)


# -- services and remote starts ------------------------------------------------------
@app.command()
def execute(
    path: Annotated[str, typer.Argument(help="Catalog path of a registered playbook.")],
    version: Annotated[int | None, typer.Option(help="Default: the latest.")] = None,
    payload: Annotated[str | None, typer.Option(help="JSON object, or @file.json.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="key.path=value (value parsed as YAML).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the end; exit 0 only if completed.")] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Embedded --wait: jobs run at once.")
    ] = 16,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    server: ServerOpt = None,
) -> None:
    """Start a registered playbook (on the server, or in the local store)."""
    from replaybook.commands.execute import execute_embedded, execute_on_server
    from replaybook.commands.signals import sigterm_as_interrupt

    data = parse_payload(payload, set_)
    with sigterm_as_interrupt():
        api = _api(server)
        if api is not None:
            execute_on_server(api, path, version, data, wait, as_json)
        store = _open_store(db)
        execute_embedded(store, _data_dir(), path, version, data, wait, as_json, concurrency)


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to bind (non-loopback needs a token).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8082,
    workers: Annotated[
        int, typer.Option(min=0, help="Worker slots in this process (0: none).")
    ] = 0,
    db: DbOpt = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs), /health and /metrics."""
    from replaybook.client import token_from_env
    from replaybook.commands.server import serve

    serve(host, port, db, workers, token_from_env())


@app.command()
def worker(
    db: DbOpt = None,
    server: ServerOpt = None,
    pool: Annotated[
        list[str] | None,
        typer.Option(help="Pool to lease from (repeatable; 'default', '*' for all)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once.")] = 16,
    lease_seconds: Annotated[float, typer.Option(help="Lease length; heartbeats renew it.")] = 30.0,
) -> None:
    """Lease and run jobs from a store (--db) or a server (--server) until SIGTERM."""
    from replaybook.client import server_from_env, token_from_env
    from replaybook.commands.worker import run_worker

    url = None if db else server_from_env(server)
    run_worker(
        db=db,
        server=url,
        token=token_from_env(),
        pools=pool,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        data_dir=_data_dir(),
    )


def main() -> None:
    """Entry point: maps every error to a message and an exit code."""
    import logging

    logging.basicConfig(
        level=os.environ.get("REPLAYBOOK_LOG_LEVEL", "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from replaybook.masking import install_log_masking

    install_log_masking()
    try:
        # Without standalone mode click returns the code of a typer.Exit.
        rc = app(standalone_mode=False, prog_name="replaybook")
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except UsageError as e:
        _err(f"error: {e}")
        sys.exit(2)
    except PlaybookInvalid as e:
        for p in e.problems:
            _err(f"error: {p}")
        sys.exit(2)
    except ReplaybookError as e:
        _err(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except Exception as e:  # click usage errors and anything unexpected
        click_errors, aborts = _click_exception_types()
        if isinstance(e, click_errors):
            # Usage errors (missing argument, bad option value, unknown command) show
            # click's usage line and exit 2; other click errors carry their own code.
            e.show()
            sys.exit(getattr(e, "exit_code", 2))
        if isinstance(e, aborts):
            sys.exit(130)
        _err(f"internal error: {type(e).__name__}: {e}")
        sys.exit(1)


def _click_exception_types() -> tuple[tuple[type[BaseException], ...], tuple[type, ...]]:
    """Click's exception classes: typer >= 0.2x raises those of its vendored click
    (`typer._click`), older typer those of `click` itself; accept both."""
    errors: list[type[BaseException]] = []
    aborts: list[type] = [typer.Abort]
    try:
        from typer._click import exceptions as vendored

        errors.append(vendored.ClickException)  # its Abort is typer.Abort
    except ImportError:
        pass
    try:
        import click

        errors.append(click.ClickException)
        aborts.append(click.exceptions.Abort)
    except ImportError:
        pass
    return tuple(errors), tuple(aborts)


if __name__ == "__main__":
    main()
