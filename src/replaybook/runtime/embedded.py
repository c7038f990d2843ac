"""The embedded runner: store, engine and a worker pool in one process.

This is what `replaybook run FILE` uses when no server is configured: SQLite for the
log and queue, DuckDB files for data, worker threads for concurrency and a pool of
python processes for `python` steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replaybook.errors import NotFound
from replaybook.playbook.load import load_file, load_playbook
from replaybook.playbook.model import Playbook
from replaybook.runtime.engine import Engine
from replaybook.runtime.worker import WorkerPool
from replaybook.store.base import Event, Store


@dataclass
class Outcome:
    execution_id: str
    status: str
    result: Any
    error: dict[str, Any] | None
    steps: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "steps": self.steps,
        }


def catalog_loader(store: Store) -> Callable[[str, int], Playbook]:
    def load(path: str, version: int) -> Playbook:
        entry = store.get_playbook(path, version)
        if entry is None:
            raise NotFound(f"playbook '{path}' version {version} is not in the catalog")
        pb, _ = load_playbook(entry.content, file=f"{path}@{version}")
        return pb

    return load


def make_services(concurrency: int, *, shared_files: bool = False) -> dict[str, Any]:
    """What a worker pool's actions share. `shared_files`: other worker processes may
    use the same data directory (see DuckDBConnections)."""
    from replaybook.actions.duckdb import DuckDBConnections
    from replaybook.actions.postgres import PostgresConnections
    from replaybook.actions.python import PythonPool

    return {
        "python_pool": PythonPool(max_size=concurrency),
        "duckdb": DuckDBConnections(shared=shared_files),
        "postgres": PostgresConnections(),
    }


def close_services(services: Mapping[str, Any]) -> None:
    pool = services.get("python_pool")
    if pool is not None:
        pool.close()
    for name in ("duckdb", "postgres"):
        conns = services.get(name)
        if conns is not None:
            conns.close_all()


class EmbeddedRunner:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        concurrency: int = 16,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.engine = Engine(store, catalog_loader(store), env=env)
        self.services = make_services(concurrency)
        from replaybook.credentials import Credentials

        # `auth` and secrets steps read credentials through this (key loaded lazily).
        self.services["credentials"] = Credentials(store, data_dir=data_dir)
        self.pool = WorkerPool(
            self.engine,
            concurrency=concurrency,
            data_dir=data_dir,
            services=self.services,
        )
        from replaybook.runtime.children import ChildRunner

        children = ChildRunner(self.engine, self.pool.release_slot, self.pool.take_slot)
        self.services["children"] = self.pool.services["children"] = children
        self.engine.add_listener(self._on_commit)
        self._started = False

    def __enter__(self) -> EmbeddedRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_commit(self, execution_id: str, written: Iterable[Event]) -> None:
        """Close a finished execution's default DuckDB file (its connection would
        otherwise stay open for the life of the process)."""
        from replaybook.core.events import TERMINAL_EXECUTION

        if any(e.type in TERMINAL_EXECUTION for e in written):
            duck = self.services.get("duckdb")
            if duck is not None:
                duck.close(duck.default_path(self.data_dir, execution_id))

    def register_file(self, path: str | Path, strict: bool = False) -> tuple[Playbook, int]:
        pb, _ = load_file(path, strict=strict)
        entry, _ = self.store.register_playbook(pb.path, pb.name, pb.source)
        return pb, entry.version

    def register_dir(self, folder: str | Path, strict: bool = False) -> list[tuple[Playbook, int]]:
        out = []
        for f in sorted(Path(folder).rglob("*.y*ml")):
            out.append(self.register_file(f, strict=strict))
        return out

    def start_workers(self) -> None:
        if not self._started:
            self.pool.start()
            self._started = True

    def add_listener(self, fn: Callable[[str, Iterable[Event]], None]) -> None:
        self.engine.add_listener(fn)

    def start(self, path: str, version: int, payload: Mapping[str, Any] | None = None) -> str:
        self.start_workers()
        return self.engine.start(path, version, payload)

    def wait(self, execution_id: str, timeout: float | None = None) -> Outcome:
        self.engine.wait_finished(execution_id, timeout)
        return self.outcome(execution_id)

    def outcome(self, execution_id: str) -> Outcome:
        st = self.engine.state(execution_id)
        return Outcome(execution_id, st.status, st.result, st.error, st.step_summary())

    def run(self, path: str, version: int, payload: Mapping[str, Any] | None = None) -> Outcome:
        return self.wait(self.start(path, version, payload))

    def close(self) -> None:
        if self._started:
            self.pool.stop()
        close_services(self.services)


def default_concurrency() -> int:
    value = os.environ.get("REPLAYBOOK_CONCURRENCY")
    return int(value) if value else 16
