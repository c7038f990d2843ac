"""SQLite backend of the Store (the embedded default)."""

from replaybook.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
