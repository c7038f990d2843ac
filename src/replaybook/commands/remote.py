"""`executions`, `catalog` and `register` against a server: the same output as the
embedded commands in cli.py, read from the API instead of the local store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from replaybook.client import ApiClient, server_from_env, token_from_env
from replaybook.commands.execute import OUTCOME_KEYS, follow, outcome_of, warn_if_no_workers
from replaybook.commands.recover import cancel_message, say_already_completed, still_running
from replaybook.errors import NotFound, PlaybookInvalid, UsageError


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def api_for(server: str | None) -> ApiClient | None:
    """A client when a server is named by --server or $REPLAYBOOK_SERVER."""
    url = server_from_env(server)
    return None if url is None else ApiClient(url, token_from_env())


def require_execution(api: ApiClient, execution_id: str) -> dict[str, Any]:
    try:
        out: dict[str, Any] = api.execution(execution_id)
    except NotFound:
        raise UsageError(f"no execution '{execution_id}'") from None
    return out


def executions_list(
    api: ApiClient,
    status: str | None,
    playbook: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    rows = api.executions(status=status, playbook=playbook, limit=limit, offset=offset)
    keys = ("execution_id", "playbook", "version", "status", "created_at", "updated_at")
    rows = [{**{k: r[k] for k in keys}, "parent_id": r["parent_id"]} for r in rows]
    if as_json:
        _emit(rows)
        return
    from replaybook.commands.tables import print_table

    print_table(
        ("execution", "playbook", "status", "started", "updated"),
        [
            (
                r["execution_id"],
                f"{r['playbook']}@{r['version']}",
                r["status"],
                r["created_at"],
                r["updated_at"],
            )
            for r in rows
        ],
        keep=("status",),
    )


def executions_show(api: ApiClient, execution_id: str, as_json: bool) -> None:
    got = require_execution(api, execution_id)
    out = {k: got[k] for k in OUTCOME_KEYS}
    out["playbook"] = got["playbook"]
    out["version"] = got["version"]
    if as_json:
        _emit(out)
    else:
        from replaybook.progress import print_outcome

        print_outcome(out)


def executions_events(api: ApiClient, execution_id: str, after: int, as_json: bool) -> None:
    require_execution(api, execution_id)
    events = api.all_events(execution_id, after)
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


def executions_cancel(api: ApiClient, execution_id: str, as_json: bool) -> None:
    require_execution(api, execution_id)
    got = api.cancel(execution_id)
    out = {k: got[k] for k in OUTCOME_KEYS}
    if as_json:
        _emit(out)
    else:
        print(cancel_message(execution_id, bool(got["changed"]), out["status"]))


def executions_resume(
    api: ApiClient, execution_id: str, from_step: str | None, as_json: bool
) -> NoReturn:
    got = require_execution(api, execution_id)
    if got["status"] == "running":
        raise still_running(execution_id, server=True)
    if got["status"] == "completed" and from_step is None:
        say_already_completed(execution_id)
        outcome = outcome_of(got)
    else:
        try:
            api.resume(execution_id, from_step)
        except NotFound as e:  # no such step (the execution itself was found)
            raise UsageError(f"--from {from_step}: {e}") from None
        warn_if_no_workers(api)
        outcome = follow(api, execution_id, None)
    if as_json:
        _emit(outcome.as_dict())
    else:
        from replaybook.progress import print_outcome

        print_outcome(outcome.as_dict())
    raise typer.Exit(0 if outcome.status == "completed" else 1)


def register(api: ApiClient, paths: list[Path], as_json: bool) -> list[Any] | PlaybookInvalid:
    """Validate here, register there; returns the report (or the first invalid file)."""
    from replaybook.playbook.load import load_file

    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.rglob("*.y*ml")) if p.is_dir() else [p])
    out = []
    for f in files:
        try:
            pb, _ = load_file(f)
        except PlaybookInvalid as e:
            return e
        entry = api.register(pb.source, file=str(f))
        out.append(
            {
                "path": entry["path"],
                "version": entry["version"],
                "new": entry["new"],
                "file": str(f),
            }
        )
        if not as_json:
            same = "" if entry["new"] else " (unchanged)"
            print(f"{entry['path']} version {entry['version']}{same}")
    if as_json:
        _emit(out)
    return out


def catalog_list(api: ApiClient, as_json: bool) -> None:
    keys = ("path", "name", "version", "registered_at")
    rows = [{k: e[k] for k in keys} for e in api.catalog_list()]
    if as_json:
        _emit(rows)
        return
    for r in rows:
        print(f"{r['path']}  v{r['version']}  {r['registered_at']}")


def catalog_show(api: ApiClient, path: str, version: int | None, as_json: bool) -> None:
    try:
        entry = api.catalog_get(path, version)
    except NotFound:
        raise UsageError(
            f"no playbook '{path}'" + (f" version {version}" if version else "")
        ) from None
    if as_json:
        _emit({k: entry[k] for k in ("path", "name", "version", "content")})
    else:
        sys.stdout.write(entry["content"])
