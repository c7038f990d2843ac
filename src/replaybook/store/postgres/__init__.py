"""PostgreSQL backend of the Store (many processes, many machines)."""

from replaybook.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
