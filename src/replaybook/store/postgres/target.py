"""What a `postgresql://` store URL names: the libpq connection string, and the
store's own settings carried in the URL's query (removed before libpq sees it).

    postgresql://user:pass@host:5432/db?schema=NAME&pool_size=N&sslmode=...

- `schema`: keep Replaybook's tables in this schema (created when missing) instead of
  the connection's default search path; notifications are scoped to it too.
- `pool_size`: most connections one store instance holds (default 16).
Every other query parameter is passed to libpq unchanged. `postgres://` and
SQLAlchemy-style `postgresql+psycopg://` are accepted too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import make_conninfo

from replaybook.errors import StoreError

DEFAULT_POOL_SIZE: Final = 16
DEFAULT_CHANNEL: Final = "replaybook"
# A channel name is an identifier (at most 63 bytes), and "replaybook." is 11 of them.
_SCHEMA_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,51}$")
_OWN_PARAMS: Final = ("schema", "pool_size")


@dataclass(frozen=True)
class PostgresTarget:
    conninfo: str  # what libpq gets
    schema: str | None
    pool_size: int
    display: str  # the URL with any password masked, for messages

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this store's appends."""
        return DEFAULT_CHANNEL if self.schema is None else f"{DEFAULT_CHANNEL}.{self.schema}"

    @property
    def lock_scope(self) -> str:
        return self.schema or ""

    def connection_string(self, **extra: str | int) -> str:
        """The conninfo for libpq, with Replaybook's defaults (the URL's own win)
        and `extra` parameters."""
        given = dict(parse_qsl(urlsplit(self.conninfo).query))
        params: dict[str, str | int] = {
            "application_name": given.get("application_name", "replaybook")
        }
        if "connect_timeout" not in given:
            params["connect_timeout"] = 10
        if self.schema is not None:
            options = given.get("options", "")
            params["options"] = f"{options} -c search_path={self.schema}".strip()
        params.update(extra)
        return make_conninfo(self.conninfo, **params)


def parse_url(url: str) -> PostgresTarget:
    """Split a store URL into the libpq URL and the store's settings."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StoreError(f"invalid PostgreSQL URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
        raise StoreError(f"not a PostgreSQL URL (postgresql://...): {_mask(parts)}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in _OWN_PARAMS]
    clean = parts._replace(scheme="postgresql", query=urlencode(rest))
    schema = own.get("schema") or None
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise StoreError(
            f"schema {schema!r} in {_mask(clean)}: use letters, digits and _ "
            "(at most 52, not starting with a digit)"
        )
    pool_size = DEFAULT_POOL_SIZE
    if "pool_size" in own:
        try:
            pool_size = int(own["pool_size"])
        except ValueError:
            pool_size = 0
        if pool_size < 1:
            raise StoreError(f"pool_size must be a positive integer, not {own['pool_size']!r}")
    return PostgresTarget(urlunsplit(clean), schema, pool_size, _mask(parts))


def _mask(parts: SplitResult) -> str:
    """The URL with its password replaced by ***."""
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not (at and ":" in userinfo):
        return urlunsplit(parts)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostport}"))
