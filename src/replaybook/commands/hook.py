"""`replaybook hook ...`: webhooks that start a playbook (see replaybook.webhooks).

    hook add NAME --playbook PATH [--secret S] [--auth hmac|token] [--version N]
    hook list
    hook delete NAME

PATH is a playbook file (registered first) or a catalog path. Without `--secret`, a
secret is generated and printed once (on stdout): give it to the sender. The secret
is stored encrypted, as credential `hook.NAME`; no other command shows it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from replaybook.errors import UsageError

app = typer.Typer(no_args_is_help=True, help="Webhooks that start playbooks.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Store URL (sqlite:///path); default $REPLAYBOOK_DB.")
]


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _open(db: str | None) -> tuple[Any, Any]:
    from replaybook.credentials import Credentials
    from replaybook.store import default_data_dir, open_store

    store = open_store(db)
    return store, Credentials(store, data_dir=default_data_dir())


def _hook_dict(hook: Any) -> dict[str, Any]:
    return {
        "name": hook.name,
        "playbook_path": hook.playbook_path,
        "playbook_version": hook.playbook_version,
        "auth": hook.auth,
        "url_path": f"/api/hooks/{hook.name}",
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
    }


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Hook name (the URL is /api/hooks/NAME).")],
    playbook: Annotated[str, typer.Option("--playbook", help="Playbook file or catalog path.")],
    secret: Annotated[
        str | None,
        typer.Option("--secret", help="Shared secret (>= 16 chars); default: generated."),
    ] = None,
    auth: Annotated[
        str, typer.Option("--auth", help="hmac (signed body) or token (header).")
    ] = "hmac",
    version: Annotated[
        int | None, typer.Option("--version", help="Pin a version (default: the latest).")
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Add (or replace) a webhook."""
    from replaybook.commands.schedule import _playbook_path
    from replaybook.webhooks import HookError, add_hook, new_secret

    generated = secret is None
    the_secret = secret or new_secret()
    store, credentials = _open(db)
    try:
        path = _playbook_path(store, playbook, version)
        hook = add_hook(
            store, credentials, name, path, secret=the_secret, auth=auth, playbook_version=version
        )
    except HookError as exc:
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    out = _hook_dict(hook)
    if generated:
        out["secret"] = the_secret  # shown this once
    if as_json:
        _emit(out)
        return
    print(f"hook {name}: POST {out['url_path']} starts {path} ({auth})")
    if generated:
        print(f"secret (shown once): {the_secret}")


@app.command("list")
def list_(as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """List webhooks (never their secrets)."""
    store, _ = _open(db)
    try:
        rows = [_hook_dict(h) for h in store.list_hooks()]
    finally:
        store.close()
    if as_json:
        _emit(rows)
        return
    for r in rows:
        print(f"{r['name']}\t{r['auth']}\t{r['playbook_path']}\t{r['url_path']}")


@app.command("delete")
def delete(name: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Delete a webhook and its secret."""
    from replaybook.webhooks import delete_hook

    store, credentials = _open(db)
    try:
        if not delete_hook(store, credentials, name):
            raise UsageError(f"no hook '{name}'")
    finally:
        store.close()
    if as_json:
        _emit({"name": name, "deleted": True})
    else:
        print(f"hook {name} deleted")
