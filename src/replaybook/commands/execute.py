"""`run` on a server, and `execute` (start a registered playbook, here or there).

`run --server` prints exactly what the embedded run prints: the same progress on
stderr (fed by the server's live event stream), the same `--json` object and exit
codes. The file is validated here first, so an invalid playbook is reported the same
way without a round trip.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import typer

from replaybook.client import ApiClient
from replaybook.errors import PlaybookInvalid, ReplaybookError, UsageError
from replaybook.playbook.model import Playbook
from replaybook.runtime.embedded import Outcome
from replaybook.server.wire import event_from_json

OUTCOME_KEYS = ("execution_id", "status", "result", "error", "steps")
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


def outcome_of(out: Mapping[str, Any]) -> Outcome:
    return Outcome(out["execution_id"], out["status"], out["result"], out["error"], out["steps"])


def register_folder(
    api: ApiClient, folder: Path, invalid: Callable[[PlaybookInvalid], NoReturn]
) -> None:
    """Validate every playbook of `folder` here, then register it on the server."""
    from replaybook.playbook.load import load_file

    for f in sorted(folder.rglob("*.y*ml")):
        try:
            pb, _ = load_file(f)
        except PlaybookInvalid as e:
            invalid(e)
        api.register(pb.source, file=str(f))


def follow(
    api: ApiClient, execution_id: str, on_events: Callable[[str, list[Any]], None] | None
) -> Outcome:
    """Stream the execution's events until it ends; return its outcome. Ctrl-C
    cancels it (as the embedded run does)."""
    try:
        for kind, data in api.stream(execution_id):
            if kind == "event" and on_events is not None:
                on_events(execution_id, [event_from_json(data)])
    except KeyboardInterrupt:
        api.cancel(execution_id, "interrupted")
    out = api.execution(execution_id)
    while out["status"] not in TERMINAL:  # an interrupted stream: wait it out
        out = api.execution(execution_id, wait=30)
    return outcome_of(out)


def warn_if_no_workers(api: ApiClient) -> None:
    """One line on stderr when the server knows no live worker (GET /api/pools counts
    remote workers and its own --workers slots): the execution would wait, silently,
    until one connects (`replaybook server` runs none by default)."""
    try:
        pools = api.pools()
    except Exception:  # an older server, a network hiccup: no warning, go on
        return
    if isinstance(pools, list) and not any(isinstance(p, dict) and p.get("alive") for p in pools):
        url = api.base_url
        _err(
            f"warning: no workers are connected to {url}: the execution waits until one is "
            f"(replaybook worker --server {url})"
        )


def run_on_server(
    api: ApiClient,
    pb: Playbook,
    file: Path,
    data: Mapping[str, Any],
    catalog: list[Path] | None,
    as_json: bool,
    invalid: Callable[[PlaybookInvalid], NoReturn],
) -> NoReturn:
    for folder in catalog or []:
        if folder.is_dir():
            register_folder(api, folder, invalid)
    entry = api.register(pb.source, file=str(file))
    progress = None
    if not as_json:
        from replaybook.progress import Progress

        progress = Progress(pb)
    try:
        eid = api.start(entry["path"], entry["version"], data)
    except (ReplaybookError, UsageError) as e:
        _err(f"error: {e}")
        _exit(1)
    if progress is not None:
        progress.begin(eid)
    warn_if_no_workers(api)
    outcome = follow(api, eid, None if progress is None else progress.on_events)
    if progress is not None:
        progress.finish(outcome)
    if as_json:
        _emit(outcome.as_dict())
    _exit(0 if outcome.status == "completed" else 1)


def execute_on_server(
    api: ApiClient,
    path: str,
    version: int | None,
    data: Mapping[str, Any],
    wait: bool,
    as_json: bool,
) -> NoReturn:
    eid = api.start(path, version, data)
    warn_if_no_workers(api)
    if not wait:
        out = api.execution(eid)
        _report_started(out, as_json)
        _exit(0)
    outcome = follow(api, eid, None)
    _report_outcome(outcome, as_json)


def execute_embedded(
    store: Any,
    data_dir: Path,
    path: str,
    version: int | None,
    data: Mapping[str, Any],
    wait: bool,
    as_json: bool,
    concurrency: int,
) -> NoReturn:
    """Start a registered playbook in the local store. Without `wait` it stays
    queued for `replaybook worker --db` (or a later `run`/`resume`) to work on."""
    from replaybook.runtime.embedded import EmbeddedRunner

    entry = store.get_playbook(path, version)
    if entry is None:
        which = f"'{path}'" + (f" version {version}" if version is not None else "")
        raise UsageError(f"no playbook {which} in the catalog")
    with EmbeddedRunner(store, data_dir, concurrency=max(1, concurrency)) as runner:
        if not wait:
            eid = runner.engine.start(entry.path, entry.version, data)
            info = store.get_execution(eid)
            _report_started(
                {
                    "execution_id": eid,
                    "status": info.status if info else "running",
                    "playbook": entry.path,
                    "version": entry.version,
                },
                as_json,
            )
            _exit(0)
        eid = runner.start(entry.path, entry.version, data)
        try:
            outcome = runner.wait(eid)
        except KeyboardInterrupt:
            runner.engine.cancel(eid, "interrupted")
            outcome = runner.outcome(eid)
    _report_outcome(outcome, as_json)


def _report_started(out: Mapping[str, Any], as_json: bool) -> None:
    shown = {
        "execution_id": out["execution_id"],
        "status": out["status"],
        "playbook": out.get("playbook"),
        "version": out.get("version"),
    }
    if as_json:
        _emit(shown)
    else:
        print(shown["execution_id"])


def _report_outcome(outcome: Outcome, as_json: bool) -> NoReturn:
    if as_json:
        _emit(outcome.as_dict())
    else:
        from replaybook.progress import print_outcome

        print_outcome(outcome.as_dict())
    _exit(0 if outcome.status == "completed" else 1)
