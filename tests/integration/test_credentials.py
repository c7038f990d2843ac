"""Stored credentials (spec §10): typed fields, encryption at rest in a real SQLite
file, the key (env or a 0600 key file), wrong keys, rotation, and the
`replaybook credential` commands as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from replaybook.credentials import (
    KEY_ENV,
    CredentialError,
    Credentials,
    KeyMismatch,
    Keyring,
    generate_key,
    resolve_auth,
    validate_fields,
)
from replaybook.masking import SecretScope
from replaybook.store import open_store

PASSWORD = "pg-Pa55word-7f3a91"
TOKEN = "bearer-tok-c0ffee-4411"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = open_store(str(tmp_path / "rb.db"))
    yield s
    s.close()


def test_round_trip_and_types(store: Any) -> None:
    creds = Credentials(store, Keyring([generate_key()], "test"))
    creds.put("pg", "postgres", {"host": "db", "port": "5432", "user": "u", "password": PASSWORD})
    creds.put("api", "http_bearer", {"token": TOKEN})
    got = creds.get("pg")
    assert got.type == "postgres"
    assert got.fields == {"host": "db", "port": 5432, "user": "u", "password": PASSWORD}
    assert got.masked() == {"host": "db", "port": 5432, "user": "u", "password": "***"}
    assert [(c.name, c.type) for c in creds.list()] == [("api", "http_bearer"), ("pg", "postgres")]
    assert creds.delete("api") and not creds.delete("api")
    with pytest.raises(CredentialError, match="no credential named 'api'"):
        creds.get("api")


@pytest.mark.parametrize(
    ("type_name", "fields", "message"),
    [
        ("nope", {"a": "b"}, "credential 'c': unknown type 'nope'"),
        ("http_bearer", {}, "credential 'c' (http_bearer): missing field 'token'"),
        ("http_basic", {"username": "u"}, "missing field 'password'"),
        ("postgres", {"host": "h"}, "missing field 'user' or 'dsn'"),
        ("postgres", {"user": "u", "port": "x"}, "field 'port' must be a number"),
        ("http_header", {"name": "X", "value": "v", "colour": "red"}, "unknown field 'colour'"),
        ("s3", {"key_id": "k"}, "missing field 'secret'"),
        ("generic", {}, "needs at least one field"),
    ],
)
def test_fields_are_checked_per_type(type_name: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(CredentialError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_fields(type_name, fields, "c")


def test_aliases_are_renamed() -> None:
    got = validate_fields("postgres", {"username": "u", "database": "d"}, "c")
    assert got == {"user": "u", "dbname": "d"}
    assert validate_fields("http_header", {"header": "X-K", "value": "v"}, "c") == {
        "name": "X-K",
        "value": "v",
    }


def test_database_file_holds_no_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "raw.db"
    store = open_store(str(path))
    creds = Credentials(store, Keyring([generate_key()], "test"))
    creds.put("pg", "postgres", {"user": "u", "password": PASSWORD})
    creds.put("api", "http_bearer", {"token": TOKEN})
    creds.put("g", "generic", {"api_key": "generic-value-998877"})
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.db"))
    assert b"pg" in raw  # the names are there...
    for secret in (PASSWORD, TOKEN, "generic-value-998877"):
        assert secret.encode() not in raw  # ...the values are not


def test_wrong_key_is_a_clear_error(store: Any) -> None:
    Credentials(store, Keyring([generate_key()], "first")).put(
        "api", "http_bearer", {"token": TOKEN}
    )
    other = Credentials(store, Keyring([generate_key()], "$REPLAYBOOK_SECRET_KEY"))
    with pytest.raises(CredentialError) as info:
        other.get("api")
    message = str(info.value)
    assert "credential 'api' cannot be decrypted" in message
    assert "wrong key" in message and TOKEN not in message


def test_put_checks_the_key_against_a_stored_credential(store: Any) -> None:
    first = Credentials(store, Keyring([generate_key()], "first"))
    first.put("api", "http_bearer", {"token": TOKEN})
    other = Credentials(store, Keyring([generate_key()], "$REPLAYBOOK_SECRET_KEY"))
    with pytest.raises(KeyMismatch, match="credential 'api' does not decrypt with it"):
        other.put("new", "generic", {"a": "b"})
    # Replacing the only credential there is mixes nothing: allowed (a lost key's way out).
    other.put("api", "http_bearer", {"token": TOKEN})
    assert other.get("api").fields == {"token": TOKEN}
    # An empty store takes any key.
    store.delete_credential("api")
    Credentials(store, Keyring([generate_key()], "third")).put("x", "generic", {"a": "b"})


def test_ciphertext_moved_to_another_name_is_refused(store: Any) -> None:
    creds = Credentials(store, Keyring([generate_key()], "test"))
    creds.put("a", "http_bearer", {"token": TOKEN})
    row = store.get_credential("a")
    store.put_credential("b", "http_bearer", row.data)
    with pytest.raises(CredentialError, match="credential 'b': stored data belongs to"):
        creds.get("b")


def test_key_file_is_created_0600_on_first_use(
    tmp_path: Path, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    creds = Credentials(store, data_dir=data_dir)
    monkeypatch.delenv(KEY_ENV, raising=False)
    creds.list()  # listing needs no key: no file yet
    assert not (data_dir / "secret.key").exists()
    creds.put("api", "http_bearer", {"token": TOKEN})
    key_file = data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A new process (a new Credentials) reads the same key.
    assert Credentials(store, data_dir=data_dir).get("api").fields["token"] == TOKEN


def test_passphrase_keys(store: Any) -> None:
    creds = Credentials(store, Keyring(["a long passphrase, not a fernet key"], "test"))
    creds.put("api", "http_bearer", {"token": TOKEN})
    again = Credentials(store, Keyring(["a long passphrase, not a fernet key"], "test"))
    assert again.get("api").fields["token"] == TOKEN
    with pytest.raises(CredentialError, match="at least 16 characters"):
        Credentials(store, Keyring(["short"], "test")).get("api")


def test_rotation_re_encrypts_everything(store: Any) -> None:
    old, new = generate_key(), generate_key()
    creds = Credentials(store, Keyring([old], "old"))
    creds.put("a", "http_bearer", {"token": TOKEN})
    creds.put("b", "postgres", {"user": "u", "password": PASSWORD})
    assert creds.rotate(Keyring([new], "new")) == 2
    assert Credentials(store, Keyring([new], "new")).get("b").fields["password"] == PASSWORD
    with pytest.raises(CredentialError, match="cannot be decrypted"):
        Credentials(store, Keyring([old], "old")).get("a")
    # "new,old" in REPLAYBOOK_SECRET_KEY reads both (a rotation being rolled out).
    assert Credentials(store, Keyring([generate_key(), new], "both")).get("a").fields


def test_resolve_auth_forms(store: Any) -> None:
    creds = Credentials(store, Keyring([generate_key()], "test"))
    creds.put("pg", "postgres", {"host": "h", "user": "u", "password": PASSWORD})
    scope = SecretScope()
    got = resolve_auth("pg", creds, scope, "step 'q'", expect=("postgres",))
    assert got == {
        "host": "h",
        "user": "u",
        "password": PASSWORD,
        "type": "postgres",
        "credential": "pg",
    }
    assert scope.mask_text(f"pw={PASSWORD}") == "pw=***"
    over = resolve_auth({"key": "pg", "dbname": "other"}, creds, None, "step 'q'")
    assert over is not None and over["dbname"] == "other"
    with pytest.raises(
        CredentialError, match="step 'q': credential 'pg' is of type postgres, not s3"
    ):
        resolve_auth({"credential": "pg", "type": "s3"}, creds, None, "step 'q'")
    with pytest.raises(CredentialError, match="expected http_bearer or http_basic"):
        resolve_auth("pg", creds, None, "step 'q'", expect=("http_bearer", "http_basic"))
    with pytest.raises(CredentialError, match="no credential named 'zz'"):
        resolve_auth("zz", creds, None, "step 'q'")


# -- the CLI -----------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    e["REPLAYBOOK_DATA_DIR"] = str(tmp_path / "data")
    e["REPLAYBOOK_DB"] = str(tmp_path / "cli.db")
    return e


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replaybook", "credential", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_add_list_show_delete(tmp_path: Path, env: dict[str, str]) -> None:
    outputs: list[str] = []

    def ok(*args: str) -> str:
        p = cli(env, *args)
        outputs.extend([p.stdout, p.stderr])
        assert p.returncode == 0, p.stderr
        return p.stdout

    ok(
        "add",
        "pg",
        "--type",
        "postgres",
        "--field",
        "host=127.0.0.1",
        "--field",
        "user=u",
        "--field",
        f"password={PASSWORD}",
    )
    spec = tmp_path / "api.json"
    spec.write_text(json.dumps({"type": "http_bearer", "fields": {"token": TOKEN}}))
    added = json.loads(ok("add", "api", "--from-file", str(spec), "--json"))
    assert added == {"name": "api", "type": "http_bearer", "fields": {"token": "***"}}
    listed = json.loads(ok("list", "--json"))
    assert [(r["name"], r["type"]) for r in listed] == [("api", "http_bearer"), ("pg", "postgres")]
    shown = json.loads(ok("show", "pg", "--json"))
    assert shown["fields"] == {"host": "127.0.0.1", "user": "u", "password": "***"}
    assert "password: ***" in ok("show", "pg")
    ok("list")
    key_file = Path(env["REPLAYBOOK_DATA_DIR"]) / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(ok("delete", "api", "--json")) == {"name": "api", "deleted": True}
    assert [r["name"] for r in json.loads(ok("list", "--json"))] == ["pg"]
    for text in outputs:
        assert PASSWORD not in text and TOKEN not in text


def test_cli_bad_input(tmp_path: Path, env: dict[str, str]) -> None:
    p = cli(env, "add", "x", "--type", "http_bearer")
    assert p.returncode == 2 and "credential 'x' (http_bearer): missing field 'token'" in p.stderr
    p = cli(env, "add", "x", "--field", "token=abc")
    assert p.returncode == 2 and "--type is required" in p.stderr
    p = cli(env, "add", "x", "--type", "nope", "--field", "a=b")
    assert p.returncode == 2 and "unknown type 'nope'" in p.stderr
    p = cli(env, "add", "x", "--type", "generic", "--field", "novalue")
    assert p.returncode == 2 and "expected key=value" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    p = cli(env, "add", "x", "--type", "generic", "--from-file", str(bad))
    assert p.returncode == 2 and "invalid JSON at line 1" in p.stderr
    p = cli(env, "show", "missing")
    assert p.returncode == 2 and "no credential named 'missing'" in p.stderr
    p = cli(env, "delete", "missing")
    assert p.returncode == 2 and "no credential named 'missing'" in p.stderr
    p = cli(env, "add", "bad name", "--type", "generic", "--field", "a=b")
    assert p.returncode == 2 and "credential name 'bad name'" in p.stderr


def test_cli_wrong_key(env: dict[str, str]) -> None:
    env[KEY_ENV] = generate_key()
    assert (
        cli(env, "add", "api", "--type", "http_bearer", "--field", f"token={TOKEN}").returncode == 0
    )
    env[KEY_ENV] = generate_key()
    p = cli(env, "show", "api")
    assert p.returncode == 1
    assert (
        "credential 'api' cannot be decrypted with the key from $REPLAYBOOK_SECRET_KEY" in p.stderr
    )
    assert TOKEN not in p.stdout + p.stderr
    assert "Traceback" not in p.stderr


def test_cli_add_with_another_key_is_refused(env: dict[str, str]) -> None:
    """Credentials stored with the key file, then `add` with a REPLAYBOOK_SECRET_KEY
    that cannot open them: refused, so the store never holds two keys (after which
    rotate-key could not open everything)."""
    add = ("add", "mixed", "--type", "generic", "--field", "a=b")
    p = cli(env, "add", "api", "--type", "http_bearer", "--field", f"token={TOKEN}")
    assert p.returncode == 0, p.stderr
    env[KEY_ENV] = "another-passphrase-99999"
    p = cli(env, *add)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "cannot save credential 'mixed'" in p.stderr
    assert "credential 'api' does not decrypt with it" in p.stderr
    assert "$REPLAYBOOK_SECRET_KEY" in p.stderr and TOKEN not in p.stderr
    del env[KEY_ENV]
    assert [r["name"] for r in json.loads(cli(env, "list", "--json").stdout)] == ["api"]
    # With the right key, adding (and replacing) works, and rotation opens everything.
    assert cli(env, *add).returncode == 0
    assert cli(env, *add).returncode == 0
    assert json.loads(cli(env, "rotate-key", "--json").stdout)["rotated"] == 2


def test_cli_rotate_key_file(env: dict[str, str]) -> None:
    assert (
        cli(env, "add", "api", "--type", "http_bearer", "--field", f"token={TOKEN}").returncode == 0
    )
    key_file = Path(env["REPLAYBOOK_DATA_DIR"]) / "secret.key"
    before = key_file.read_text()
    p = cli(env, "rotate-key", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["rotated"] == 1 and "new_key" not in out
    after = key_file.read_text()
    assert after != before and len(after.split()) == 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(cli(env, "show", "api", "--json").stdout)["fields"] == {"token": "***"}
    # The old key no longer opens it.
    env[KEY_ENV] = before.strip()
    assert "cannot be decrypted" in cli(env, "show", "api").stderr


def test_cli_rotate_env_key(env: dict[str, str]) -> None:
    old = generate_key()
    env[KEY_ENV] = old
    assert (
        cli(env, "add", "api", "--type", "http_bearer", "--field", f"token={TOKEN}").returncode == 0
    )
    p = cli(env, "rotate-key", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["rotated"] == 1 and "REPLAYBOOK_SECRET_KEY" in out["key_stored_in"]
    new = out["new_key"]  # generated and shown once
    env[KEY_ENV] = new
    assert cli(env, "show", "api").returncode == 0
    env[KEY_ENV] = old
    assert cli(env, "show", "api").returncode == 1
    # A supplied key is used, not printed.
    env[KEY_ENV] = new
    chosen = generate_key()
    p = cli(env, "rotate-key", "--new-key", chosen)
    assert p.returncode == 0 and chosen not in p.stdout
    env[KEY_ENV] = chosen
    assert cli(env, "show", "api").returncode == 0
