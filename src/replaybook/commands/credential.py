"""`replaybook credential ...`: stored credentials (see replaybook.credentials).

    credential add NAME --type T --field k=v... | --from-file F.json
    credential list                 names, types and dates; never a value
    credential show NAME            fields with secret values as ***
    credential delete NAME
    credential rotate-key [--new-key KEY]

`--from-file` takes a JSON object: its fields, or `{"type": T, "fields": {...}}`
(then `--type` may be left out). `--field` values are text; `port` is checked as a
number. No command prints a secret value, and errors name the credential, not what
it holds.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from replaybook.errors import UsageError

app = typer.Typer(no_args_is_help=True, help="Manage stored credentials (encrypted at rest).")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Store URL (sqlite:///path); default $REPLAYBOOK_DB.")
]


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _credentials(db: str | None) -> Any:
    from replaybook.credentials import Credentials
    from replaybook.store import default_data_dir, open_store

    return Credentials(open_store(db), data_dir=default_data_dir())


def _parse_fields(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--field {key or pair!r}: expected key=value")
        fields[key] = value
    return fields


def _read_file(path: Path) -> tuple[str | None, dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"--from-file: cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UsageError(
            f"--from-file {path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise UsageError(f"--from-file {path}: must be a JSON object")
    if isinstance(doc.get("fields"), dict):
        kind = doc.get("type")
        return (str(kind) if kind is not None else None), doc["fields"]
    return None, doc


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Credential name.")],
    type_: Annotated[
        str | None,
        typer.Option("--type", help="postgres, http_bearer, http_basic, http_header, s3, generic"),
    ] = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", help="key=value (repeat for each field).")
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="JSON object with the fields.")
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Add or replace a credential."""
    if from_file is not None and field:
        raise UsageError("give either --field or --from-file, not both")
    file_type: str | None = None
    if from_file is not None:
        file_type, fields = _read_file(from_file)
    else:
        fields = _parse_fields(field or [])
    kind = type_ or file_type
    if not kind:
        raise UsageError(f"credential '{name}': --type is required")
    if type_ and file_type and type_ != file_type:
        raise UsageError(f"credential '{name}': --type {type_} but the file says {file_type}")
    from replaybook.credentials import CredentialError

    creds = _credentials(db)
    try:
        cred = creds.put(name, kind, fields)
    except CredentialError as e:
        raise UsageError(str(e)) from None
    if as_json:
        _emit({"name": cred.name, "type": cred.type, "fields": cred.masked()})
    else:
        print(f"credential '{cred.name}' ({cred.type}) saved")


@app.command("list")
def list_(as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """List credentials: names and types, never values."""
    rows = [c.as_dict() for c in _credentials(db).list()]
    if as_json:
        _emit(rows)
        return
    for r in rows:
        print(f"{r['name']}  {r['type']}  {r['updated_at']}")


@app.command("show")
def show(name: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Show a credential's fields, secret values masked."""
    from replaybook.credentials import CredentialError

    try:
        cred = _credentials(db).get(name)
    except CredentialError as e:
        if "no credential named" in str(e):
            raise UsageError(str(e)) from None
        raise
    out = {
        "name": cred.name,
        "type": cred.type,
        "fields": cred.masked(),
        "created_at": cred.created_at,
        "updated_at": cred.updated_at,
    }
    if as_json:
        _emit(out)
        return
    print(f"{cred.name} ({cred.type})")
    for key, value in out["fields"].items():
        print(f"  {key}: {value}")


@app.command("delete")
def delete(name: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Delete a credential."""
    deleted = _credentials(db).delete(name)
    if not deleted:
        raise UsageError(f"no credential named '{name}'")
    if as_json:
        _emit({"name": name, "deleted": True})
    else:
        print(f"credential '{name}' deleted")


@app.command("rotate-key")
def rotate_key(
    new_key: Annotated[
        str | None,
        typer.Option(
            "--new-key",
            help="The new key (default: $REPLAYBOOK_NEW_SECRET_KEY, else a generated one).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Re-encrypt every credential with a new key.

    With the key file (no $REPLAYBOOK_SECRET_KEY) the file is updated. With
    $REPLAYBOOK_SECRET_KEY, set it to the new key afterwards: a generated key is
    printed once, on stdout."""
    from replaybook.credentials import (
        KEY_ENV,
        NEW_KEY_ENV,
        Keyring,
        generate_key,
        write_key_file,
    )

    creds = _credentials(db)
    current = creds.keyring
    supplied = new_key or os.environ.get(NEW_KEY_ENV)
    key = supplied or generate_key()
    if current.key_file is not None:
        # The new key first, the old ones kept until every credential is re-encrypted.
        write_key_file(current.key_file, [key, *current.keys])
        count = creds.rotate(Keyring([key], f"key file {current.key_file}", current.key_file))
        write_key_file(current.key_file, [key])
        where = f"key file {current.key_file}"
    else:
        count = creds.rotate(Keyring([key], "the new key"))
        where = f"${KEY_ENV}: set it to the new key now"
    shown = key if (current.key_file is None and not supplied) else None
    if as_json:
        out: dict[str, Any] = {"rotated": count, "key_stored_in": where}
        if shown:
            out["new_key"] = shown
        _emit(out)
        return
    print(f"{count} credential(s) re-encrypted; new key in {where}")
    if shown:
        print(f"new key (shown once): {shown}")
