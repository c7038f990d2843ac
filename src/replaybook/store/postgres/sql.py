"""The PostgreSQL backend's SQL, read from the package's .sql files once, at import.

- `queries.sql` holds named statements: each section starts with `-- name: <name>`.
- `migrations/NNNN_<label>.sql` are the numbered schema migrations, applied in order;
  each file runs as one script (the server splits it into statements).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

from replaybook.store.sqlite.sql import parse_named_queries

_PACKAGE: Final = "replaybook.store.postgres"
_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    script: str


def _load_queries() -> dict[str, str]:
    text = resources.files(_PACKAGE).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_named_queries(text)


def _load_migrations() -> tuple[Migration, ...]:
    folder = resources.files(_PACKAGE).joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            script = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match.group(1)), match.group(2), script))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {versions}")
    return tuple(found)


QUERIES: Final[dict[str, str]] = _load_queries()
MIGRATIONS: Final[tuple[Migration, ...]] = _load_migrations()
