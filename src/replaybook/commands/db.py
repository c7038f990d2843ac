"""`replaybook db ...`: the store's database.

    db upgrade [--db URL] [--json]    apply pending schema migrations

Works for every backend (`sqlite:///path`, a file path, `postgresql://...`). Opening
a store applies its migrations too; this command lets a deployment run them once, up
front, and see what was applied. Concurrent upgrades apply each migration once.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from replaybook.errors import StoreError

app = typer.Typer(no_args_is_help=True, help="Manage the store's database.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Store URL (sqlite:///path or postgresql://...); default $REPLAYBOOK_DB."
    ),
]


@app.command("upgrade")
def upgrade(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Apply the store's pending schema migrations."""
    from replaybook.store import upgrade_store

    try:
        applied, version = upgrade_store(db)
    except StoreError as exc:
        if as_json:
            sys.stdout.write(json.dumps({"status": "failed", "error": str(exc)}) + "\n")
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps({"status": "ok", "applied": applied, "version": version}))
        sys.stdout.write("\n")
    elif applied:
        listed = ", ".join(str(v) for v in applied)
        plural = "s" if len(applied) > 1 else ""
        print(f"applied migration{plural} {listed}; schema version {version}")
    else:
        print(f"up to date; schema version {version}")
