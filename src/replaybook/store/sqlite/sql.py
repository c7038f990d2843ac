"""The SQLite backend's SQL, read from the package's .sql files once, at import.

- `queries.sql` holds named statements: each section starts with `-- name: <name>`.
- `migrations/NNNN_<label>.sql` are the numbered schema migrations, applied in order.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Final

_PACKAGE: Final = "replaybook.store.sqlite"
_NAME_LINE: Final = re.compile(r"^--\s*name:\s*(\w+)\s*$")
_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` sections into {name: statement}."""
    queries: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []

    def flush() -> None:
        if name is not None:
            sql = "\n".join(body).strip().rstrip(";").strip()
            if not sql:
                raise ValueError(f"query {name!r} is empty")
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice")
            queries[name] = sql

    for line in text.splitlines():
        match = _NAME_LINE.match(line)
        if match:
            flush()
            name, body = match.group(1), []
        elif name is not None and not line.lstrip().startswith("--"):
            body.append(line)
    flush()
    return queries


def split_statements(script: str) -> tuple[str, ...]:
    """Split an SQL script into complete statements (comments-only chunks dropped)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_code(buffer):
        raise ValueError(f"incomplete SQL statement at the end of script: {buffer.strip()!r}")
    return tuple(statements)


def _has_code(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def _load_queries() -> dict[str, str]:
    text = resources.files(_PACKAGE).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_named_queries(text)


def _load_migrations() -> tuple[Migration, ...]:
    folder = resources.files(_PACKAGE).joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if not match:
            continue
        script = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), match.group(2), split_statements(script)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {versions}")
    return tuple(found)


QUERIES: Final[dict[str, str]] = _load_queries()
MIGRATIONS: Final[tuple[Migration, ...]] = _load_migrations()
