"""`replaybook executions prune --older-than 30d [--status S]... [--dry-run] [--json]`:
delete finished executions (with their children, events, jobs and DuckDB files) that
ended before the cutoff. Running executions are never pruned."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from replaybook.errors import UsageError
from replaybook.store.base import FINISHED_STATUSES


def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age cutoff: e.g. 30d, 12h, 90m, 2w.")
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only executions with this status (repeatable; default: completed, "
            "failed and cancelled).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be pruned; delete nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Store URL (sqlite:///path); default $REPLAYBOOK_DB."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where DuckDB files live; default the data dir."),
    ] = None,
) -> None:
    """Delete finished executions older than --older-than (never running ones)."""
    from replaybook.retention import parse_age
    from replaybook.retention import prune as run_prune
    from replaybook.store import default_data_dir, open_store

    statuses = status or list(FINISHED_STATUSES)
    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    bad = [s for s in statuses if s not in FINISHED_STATUSES]
    if bad:
        raise UsageError(
            f"--status {bad[0]!r}: only finished executions are pruned "
            f"({', '.join(FINISHED_STATUSES)})"
        )
    store = open_store(db)
    try:
        result = run_prune(
            store, data_dir or default_data_dir(), age, statuses=statuses, dry_run=dry_run
        )
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
        return
    verb = "would prune" if dry_run else "pruned"
    sys.stderr.write(
        f"{verb} {len(result.execution_ids)} execution(s) finished before {result.before} "
        f"({', '.join(statuses)}); DuckDB files: {result.files_removed}\n"
    )
    for execution_id in result.execution_ids:
        sys.stdout.write(execution_id + "\n")
