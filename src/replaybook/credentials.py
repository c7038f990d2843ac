"""Named, typed credentials, encrypted at rest (spec §10), above the Store.

    Keyring.load(data_dir=None) -> Keyring       the keys from REPLAYBOOK_SECRET_KEY or
                                                 the key file (created 0600 if missing)
    Credentials(store, keyring=None)             typed access to the store's ciphertext
        .put(name, type, fields) / .get(name) -> Credential / .list() / .delete(name)
        .rotate(new_keyring) -> int              re-encrypt every credential
    validate_fields(type, fields, name)          the checked fields of a credential type
    resolve_auth(auth, credentials, what)        a step's or save's `auth` -> fields
    CredentialError                              a bad, unknown or undecryptable credential

Types and their fields (required marked *; `secret` fields are masked when shown and
wherever their values appear once a job has used them):

    postgres      host, port, user*, password, dbname (alias database), sslmode and
                  other libpq options; or dsn* alone. secret: password, dsn, sslpassword
    http_bearer   token*                          secret: token
    http_basic    username*, password*            secret: password (and user:password
                                                  as sent, base64)
    http_header   name* (alias header), value*    secret: value
    s3            key_id*, secret*, region, endpoint, session_token, url_style, use_ssl,
                  scope                           secret: key_id, secret, session_token
    generic       any fields (at least one)       secret: every value

Encryption: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`). The plaintext
is JSON `{"name", "type", "fields"}`; on decryption the name and type must match the
row's, so a ciphertext copied onto another credential's row is refused.

Keys. `REPLAYBOOK_SECRET_KEY` holds one key, or several separated by commas (the first
encrypts, all decrypt: that is how a rotation is rolled out). A key is a Fernet key
(`Fernet.generate_key()`, 44 url-safe base64 characters) or any other text of 16
characters or more, from which a key is derived with scrypt. Without the variable,
`<data dir>/secret.key` is used: created with mode 0600 (in a 0700 directory) the
first time a credential is encrypted; one key per line, first encrypts.

Rotation (`replaybook credential rotate-key`): with the key file, a new key is
written as the file's first line (the old ones kept below it, so an interrupted
rotation can still read everything), every credential re-encrypted with it, then the
file is rewritten with the new key alone. With REPLAYBOOK_SECRET_KEY, the new key
comes from `--new-key` / `REPLAYBOOK_NEW_SECRET_KEY` or is generated and printed
once; every credential is re-encrypted with it, and the operator then sets
`REPLAYBOOK_SECRET_KEY` to the new key (to "new,old" while workers are updated).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from replaybook.errors import ActionError, ReplaybookError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from replaybook.masking import SecretScope
    from replaybook.store.base import StoredCredential

KEY_ENV = "REPLAYBOOK_SECRET_KEY"
NEW_KEY_ENV = "REPLAYBOOK_NEW_SECRET_KEY"
KEY_FILE_NAME = "secret.key"
_SCRYPT_SALT = b"replaybook-credentials-v1"


class CredentialError(ActionError):
    """A credential is unknown, malformed, of the wrong type, or cannot be decrypted.
    The message names the credential; it never holds a secret value."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="credential")


class KeyMismatch(CredentialError):
    """The store's credentials were encrypted with another key than the current one:
    adding one now would leave the store with two keys (and `rotate-key` failing)."""


# -- types ------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialType:
    name: str
    required: tuple[tuple[str, ...], ...]  # each: one of these names must be there
    fields: frozenset[str]  # known field names (None check skipped for generic)
    secret: frozenset[str]  # fields whose values are secret ("*": all)
    aliases: Mapping[str, str]  # alias -> canonical field name


_PG_OPTIONS = frozenset(
    {
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
    }
)

TYPES: dict[str, CredentialType] = {
    t.name: t
    for t in (
        CredentialType(
            "postgres",
            (("user", "dsn"),),
            frozenset({"host", "port", "user", "password", "dbname", "dsn"}) | _PG_OPTIONS,
            frozenset({"password", "dsn", "sslpassword"}),
            {"database": "dbname", "db_name": "dbname", "username": "user", "db_user": "user",
             "db_host": "host", "db_port": "port", "db_password": "password"},
        ),
        CredentialType(
            "http_bearer", (("token",),), frozenset({"token"}), frozenset({"token"}), {}
        ),
        CredentialType(
            "http_basic",
            (("username",), ("password",)),
            frozenset({"username", "password"}),
            frozenset({"password"}),
            {"user": "username"},
        ),
        CredentialType(
            "http_header",
            (("name",), ("value",)),
            frozenset({"name", "value"}),
            frozenset({"value"}),
            {"header": "name"},
        ),
        CredentialType(
            "s3",
            (("key_id",), ("secret",)),
            frozenset(
                {"key_id", "secret", "region", "endpoint", "session_token", "url_style",
                 "use_ssl", "scope"}
            ),
            frozenset({"key_id", "secret", "session_token"}),
            {"access_key_id": "key_id", "secret_access_key": "secret"},
        ),
        CredentialType("generic", (), frozenset(), frozenset({"*"}), {}),
    )
}


def validate_fields(type_name: str, fields: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The fields of credential `name` checked against its type, aliases renamed.
    CredentialError naming the credential and the field otherwise."""
    kind = TYPES.get(type_name)
    if kind is None:
        known = ", ".join(TYPES)
        raise CredentialError(f"credential '{name}': unknown type {type_name!r} (known: {known})")
    if not isinstance(fields, Mapping):
        raise CredentialError(f"credential '{name}': fields must be a mapping")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not key:
            raise CredentialError(f"credential '{name}': field names must be text")
        canonical = kind.aliases.get(key, key)
        if kind.fields and canonical not in kind.fields:
            allowed = ", ".join(sorted(kind.fields))
            raise CredentialError(
                f"credential '{name}' ({type_name}): unknown field '{key}' (allowed: {allowed})"
            )
        if value is None:
            continue
        if not isinstance(value, str | int | float | bool) and type_name != "generic":
            raise CredentialError(
                f"credential '{name}' ({type_name}): field '{key}' must be text or a number"
            )
        out[canonical] = value
    for choices in kind.required:
        if not any(out.get(c) not in (None, "") for c in choices):
            what = " or ".join(f"'{c}'" for c in choices)
            raise CredentialError(f"credential '{name}' ({type_name}): missing field {what}")
    if type_name == "generic" and not out:
        raise CredentialError(f"credential '{name}' (generic): needs at least one field")
    if "port" in out:
        try:
            port = int(out["port"])
        except (TypeError, ValueError):
            raise CredentialError(
                f"credential '{name}' ({type_name}): field 'port' must be a number"
            ) from None
        if not 0 < port < 65536:
            raise CredentialError(f"credential '{name}' ({type_name}): port out of range")
        out["port"] = port
    return out


@dataclass(frozen=True)
class Credential:
    name: str
    type: str
    fields: Mapping[str, Any]
    created_at: str = ""
    updated_at: str = ""

    def secret_values(self) -> list[Any]:
        """The values to mask once this credential is used."""
        secret = TYPES[self.type].secret
        values = [v for k, v in self.fields.items() if "*" in secret or k in secret]
        if self.type == "http_basic":
            pair = f"{self.fields['username']}:{self.fields['password']}".encode()
            values.append(base64.b64encode(pair).decode("ascii"))
        if self.type == "postgres" and isinstance(self.fields.get("dsn"), str):
            values.extend(_dsn_passwords(self.fields["dsn"]))
        return values

    def masked(self) -> dict[str, Any]:
        """The fields as shown to people: secret values as `***`."""
        secret = TYPES[self.type].secret
        return {
            k: "***" if ("*" in secret or k in secret) else v for k, v in self.fields.items()
        }


def _dsn_passwords(dsn: str) -> list[str]:
    with contextlib.suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
        if isinstance(password, str) and password:
            return [password]
    return []


# -- keys -----------------------------------------------------------------------------


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def _as_fernet_key(text: str) -> bytes:
    raw = text.strip().encode("utf-8")
    with contextlib.suppress(binascii.Error, ValueError):
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    if len(raw) < 16:
        raise CredentialError(
            "the secret key must be a Fernet key (44 url-safe base64 characters) or a "
            "passphrase of at least 16 characters"
        )
    import hashlib

    derived = hashlib.scrypt(raw, salt=_SCRYPT_SALT, n=2**14, r=8, p=1, dklen=32)
    return base64.urlsafe_b64encode(derived)


class Keyring:
    """The keys credentials are encrypted with: the first encrypts, all decrypt."""

    def __init__(self, keys: list[str], source: str, key_file: Path | None = None) -> None:
        if not keys:
            raise CredentialError(f"no secret key in {source}")
        self.keys = keys
        self.source = source
        self.key_file = key_file
        self._fernet: MultiFernet | None = None

    @classmethod
    def from_env_or_file(
        cls, data_dir: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Keyring:
        """Keys from REPLAYBOOK_SECRET_KEY; else from the key file in the data dir,
        created (0600) when missing."""
        env = os.environ if env is None else env
        configured = env.get(KEY_ENV)
        if configured:
            keys = [k.strip() for k in configured.split(",") if k.strip()]
            return cls(keys, f"${KEY_ENV}")
        path = key_file_path(data_dir)
        return cls(read_or_create_key_file(path), f"key file {path}", key_file=path)

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            from cryptography.fernet import Fernet, MultiFernet

            self._fernet = MultiFernet([Fernet(_as_fernet_key(k)) for k in self.keys])
        return self._fernet

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.fernet.encrypt(plaintext)

    def decrypt(self, token: bytes, name: str) -> bytes:
        from cryptography.fernet import InvalidToken

        try:
            return self.fernet.decrypt(token)
        except InvalidToken:
            raise CredentialError(
                f"credential '{name}' cannot be decrypted with the key from {self.source}: "
                f"wrong key? (it was stored with another {KEY_ENV} or key file)"
            ) from None


def key_file_path(data_dir: Path | None = None) -> Path:
    if data_dir is None:
        from replaybook.store import default_data_dir

        data_dir = default_data_dir()
    return data_dir / KEY_FILE_NAME


def read_or_create_key_file(path: Path) -> list[str]:
    """The keys in `path` (one a line); a new file with one new key when missing,
    created atomically with mode 0600 so no other user can ever read it."""
    try:
        return _read_keys(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_keys(path)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return [key]


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace `path` with `keys` atomically (a 0600 temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("".join(k + "\n" for k in keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_keys(path: Path) -> list[str]:
    keys = [line.strip() for line in path.read_text(encoding="ascii").splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise CredentialError(f"key file {path} holds no key")
    return keys


# -- the credential store ---------------------------------------------------------------


@dataclass(frozen=True)
class CredentialInfo:
    name: str
    type: str
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class CredentialSource(Protocol):
    """The part of a Store credentials live in (a Store has all four)."""

    def put_credential(self, name: str, type: str, data: bytes) -> None: ...
    def get_credential(self, name: str) -> StoredCredential | None: ...
    def list_credentials(self) -> list[StoredCredential]: ...
    def delete_credential(self, name: str) -> bool: ...


class SealedOverApi:
    """Credentials read from a server (`GET /api/credentials/{name}/sealed`), for a
    worker that has no store: the server sends ciphertext, the worker decrypts it
    with its own key. Read-only."""

    def __init__(self, api: Any) -> None:
        self.api = api  # a replaybook.client.ApiClient (anything with .request)

    def get_credential(self, name: str) -> StoredCredential | None:
        from urllib.parse import quote

        from replaybook.errors import NotFound
        from replaybook.store.base import StoredCredential

        try:
            doc = self.api.request("GET", f"/api/credentials/{quote(name, safe='')}/sealed")
        except NotFound:
            return None
        except ReplaybookError as exc:
            raise CredentialError(
                f"credential '{name}': cannot read it from the server: {exc}"
            ) from None
        return StoredCredential(
            doc["name"],
            doc["type"],
            base64.b64decode(doc["data"]),
            doc.get("created_at", ""),
            doc.get("updated_at", ""),
        )

    def list_credentials(self) -> list[StoredCredential]:
        raise CredentialError("credentials from the server are read-only here")

    def put_credential(self, name: str, type: str, data: bytes) -> None:
        raise CredentialError("credentials from the server are read-only here")

    def delete_credential(self, name: str) -> bool:
        raise CredentialError("credentials from the server are read-only here")


class Credentials:
    """Typed, encrypted credentials in a Store. The key is loaded on first use, so a
    process that never touches a credential never creates a key file."""

    def __init__(
        self,
        store: CredentialSource,
        keyring: Keyring | None = None,
        *,
        data_dir: Path | None = None,
    ) -> None:
        self.store = store
        self._keyring = keyring
        self._data_dir = data_dir
        self._lock = threading.Lock()

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            with self._lock:
                if self._keyring is None:
                    self._keyring = Keyring.from_env_or_file(self._data_dir)
        return self._keyring

    def put(self, name: str, type_name: str, fields: Mapping[str, Any]) -> Credential:
        """Add or replace a credential. Raises KeyMismatch when another stored
        credential does not decrypt with the current key (one is checked)."""
        check_name(name)
        checked = validate_fields(type_name, fields, name)
        self._check_key(name)
        plaintext = json.dumps(
            {"name": name, "type": type_name, "fields": checked}, ensure_ascii=False
        ).encode("utf-8")
        self.store.put_credential(name, type_name, self.keyring.encrypt(plaintext))
        return Credential(name, type_name, checked)

    def _check_key(self, adding: str) -> None:
        """One stored credential (other than the one being replaced) must decrypt with
        the current key; one is enough, since every one was written with one key."""
        other = next((c for c in self.store.list_credentials() if c.name != adding), None)
        if other is None:
            return
        try:
            self.keyring.decrypt(other.data, other.name)
        except CredentialError:
            source = self.keyring.source
            raise KeyMismatch(
                f"cannot save credential '{adding}': the stored credentials were encrypted "
                f"with another key than the one from {source} (credential '{other.name}' "
                f"does not decrypt with it), and saving it would mix two keys in one store; "
                f"use the key they were stored with (set {KEY_ENV} to it, or unset it to use "
                f"the key file), then `replaybook credential rotate-key` to change keys"
            ) from None

    def get(self, name: str) -> Credential:
        row = self.store.get_credential(name)
        if row is None:
            raise CredentialError(f"no credential named '{name}'")
        return self._open(row.name, row.type, row.data, row.created_at, row.updated_at)

    def _open(
        self, name: str, type_name: str, data: bytes, created: str = "", updated: str = ""
    ) -> Credential:
        plaintext = self.keyring.decrypt(data, name)
        try:
            doc = json.loads(plaintext)
            fields = doc["fields"]
            stored_as = (doc["name"], doc["type"])
        except (ValueError, KeyError, TypeError):
            raise CredentialError(f"credential '{name}': stored data is not a credential") from None
        if stored_as != (name, type_name):
            raise CredentialError(
                f"credential '{name}': stored data belongs to credential '{stored_as[0]}'"
            )
        return Credential(name, type_name, fields, created, updated)

    def list(self) -> list[CredentialInfo]:
        return [
            CredentialInfo(c.name, c.type, c.created_at, c.updated_at)
            for c in self.store.list_credentials()
        ]

    def delete(self, name: str) -> bool:
        return self.store.delete_credential(name)

    def rotate(self, new: Keyring) -> int:
        """Re-encrypt every credential with `new`'s first key; returns how many. Every
        credential is decrypted first, so a wrong current key changes nothing."""
        opened = [self._open(c.name, c.type, c.data) for c in self.store.list_credentials()]
        for cred in opened:
            plaintext = json.dumps(
                {"name": cred.name, "type": cred.type, "fields": dict(cred.fields)},
                ensure_ascii=False,
            ).encode("utf-8")
            self.store.put_credential(cred.name, cred.type, new.encrypt(plaintext))
        self._keyring = new
        return len(opened)


def check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}", name or ""):
        raise CredentialError(
            f"credential name {name!r}: use letters, digits, '_', '-' and '.' (at most 128)"
        )


# -- `auth` --------------------------------------------------------------------------


def resolve_auth(
    auth: Any,
    credentials: Credentials | None,
    scope: SecretScope | None,
    what: str,
    *,
    expect: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """`auth: NAME` or `{credential: NAME, ...overrides}` (`key` is an alias of
    `credential`; a `type` there must match the credential's) -> the credential's
    fields with the overrides over them and `type`, its secret values added to
    `scope`. A mapping without `credential` is returned as it is (inline fields).
    `expect` lists the credential types the caller can use."""
    if auth is None or auth == "" or auth == {}:
        return None
    overrides: dict[str, Any] = {}
    if isinstance(auth, str):
        name = auth
    elif isinstance(auth, Mapping):
        overrides = dict(auth)
        ref = overrides.pop("credential", None)
        alias = overrides.pop("key", None)
        ref = ref if ref is not None else alias
        if ref is None:
            return dict(auth)  # inline connection fields, no stored credential
        if not isinstance(ref, str) or not ref:
            raise CredentialError(f"{what}: `auth.credential` must be a credential name")
        name = ref
    else:
        raise CredentialError(f"{what}: `auth` must be a credential name or a mapping")
    if credentials is None:
        raise CredentialError(f"{what}: credential '{name}' cannot be read: no credential store")
    try:
        cred = credentials.get(name)
    except CredentialError as exc:
        raise CredentialError(f"{what}: {exc.message}") from None
    wanted = overrides.pop("type", None)
    if wanted is not None and wanted != cred.type:
        raise CredentialError(
            f"{what}: credential '{name}' is of type {cred.type}, not {wanted}"
        )
    if expect and cred.type not in expect:
        raise CredentialError(
            f"{what}: credential '{name}' is of type {cred.type}; "
            f"expected {' or '.join(expect)}"
        )
    if scope is not None:
        scope.add(cred.secret_values())
        secret = TYPES[cred.type].secret
        scope.add([v for k, v in overrides.items() if "*" in secret or k in secret])
    fields = dict(cred.fields)
    fields.update(overrides)
    fields["type"] = cred.type
    fields["credential"] = name
    return fields
