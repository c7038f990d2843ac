"""The SQLite Store: the embedded default backend.

One connection per store instance, shared by every thread of the process behind an
RLock; every write is one `BEGIN IMMEDIATE ... COMMIT` transaction, so several
processes can use the same file (WAL mode, busy timeout). Per-call work is kept to
the statements the operation needs: the schema and PRAGMAs are set up once, on open.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from secrets import token_hex
from types import TracebackType
from typing import Any, Final

from replaybook.errors import NotFound, SeqConflict, StoreError
from replaybook.store.base import (
    AppendsByLeasing,
    CatalogEntry,
    ChangeCallback,
    Event,
    ExecutionInfo,
    Job,
    Lessee,
    NewEvent,
    NewJob,
    StoredCredential,
    check_prune_statuses,
    iso_seconds,
    jobs_completed,
    stale_lease,
)
from replaybook.store.sqlite.migrate import apply_migrations, connect
from replaybook.store.sqlite.sql import QUERIES
from replaybook.store.sqlite.triggers import StatsStore, TriggerStore
from replaybook.version import LOGIC_VERSION

_INSERT_EXECUTION: Final = QUERIES["insert_execution"]
_GET_EXECUTION: Final = QUERIES["get_execution"]
_GET_LAST_SEQ: Final = QUERIES["get_last_seq"]
_ADVANCE_EXECUTION: Final = QUERIES["advance_execution"]
_ADVANCE_EXECUTION_WITH_STATUS: Final = QUERIES["advance_execution_with_status"]
_COMPLETE_JOB: Final = QUERIES["complete_job"]
_CANCEL_JOBS: Final = QUERIES["cancel_jobs"]
_INSERT_EVENT: Final = QUERIES["insert_event"]
_INSERT_JOB: Final = QUERIES["insert_job"]
_READ_EVENTS: Final = QUERIES["read_events"]
_DUE_JOBS_ANY_POOL: Final = QUERIES["due_jobs_any_pool"]
_DUE_JOBS_IN_POOLS: Final = QUERIES["due_jobs_in_pools"]
_LEASE_JOB: Final = QUERIES["lease_job"]
_HEARTBEAT: Final = QUERIES["heartbeat"]
_RELEASE: Final = QUERIES["release"]
_NEXT_DUE_ANY_POOL: Final = QUERIES["next_due_any_pool"]
_NEXT_DUE_IN_POOLS: Final = QUERIES["next_due_in_pools"]
_LATEST_PLAYBOOK: Final = QUERIES["latest_playbook"]
_GET_PLAYBOOK_VERSION: Final = QUERIES["get_playbook_version"]
_INSERT_PLAYBOOK: Final = QUERIES["insert_playbook"]
_LIST_PLAYBOOKS: Final = QUERIES["list_playbooks"]
_PLAYBOOK_VERSIONS: Final = QUERIES["playbook_versions"]
_PUT_CREDENTIAL: Final = QUERIES["put_credential"]
_GET_CREDENTIAL: Final = QUERIES["get_credential"]
_LIST_CREDENTIALS: Final = QUERIES["list_credentials"]
_DELETE_CREDENTIAL: Final = QUERIES["delete_credential"]
_PRUNABLE_EXECUTIONS: Final = QUERIES["prunable_executions"]
_PRUNE: Final = (QUERIES["prune_events"], QUERIES["prune_jobs"], QUERIES["prune_executions"])
_LIST_FILTERS: Final = ("status", "playbook_path", "parent_id")

# Key order is kept exactly (never sorted); NaN/Infinity are not JSON, so refused.
_encode_json: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode
_decode_json: Final = json.JSONDecoder().decode

MEMORY: Final = ":memory:"


def iso_utc(t: float) -> str:
    """Unix seconds as ISO-8601 UTC with microseconds: 2024-05-01T12:00:00.000000Z."""
    micros = round(t * 1_000_000)
    secs, frac = divmod(micros, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(secs))}.{frac:06d}Z"


@functools.cache
def _list_executions_query(status: bool, playbook_path: bool, parent_id: bool) -> str:
    used = [
        QUERIES[f"filter_{name}"]
        for name, on in zip(_LIST_FILTERS, (status, playbook_path, parent_id), strict=True)
        if on
    ]
    where = ("WHERE " + " AND ".join(used)) if used else ""
    return QUERIES["list_executions"].replace("{where}", where)


def _json_text(value: Mapping[str, Any], what: str) -> str:
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON: {exc}") from exc


def _job_row(execution_id: str, job: NewJob, now: float) -> tuple[Any, ...]:
    payload = _json_text(job.payload, f"payload of job {job.step!r}") if job.payload else None
    available_at = now + job.delay_ms / 1000
    return (
        execution_id, job.step, job.visit, job.attempt, job.index, job.pool, payload,
        available_at, available_at,  # due_at: a queued job is due when available
    )  # fmt: skip


class SQLiteStore(AppendsByLeasing, TriggerStore, StatsStore):
    """Store on one SQLite file (or ":memory:"); `clock` returns unix seconds and
    drives every timestamp, delay and lease expiry (tests pass a fake clock)."""

    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], float] = time.time,
        *,
        busy_timeout_ms: int = 30_000,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        try:
            if self.path != MEMORY:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path, busy_timeout_ms)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
        try:
            apply_migrations(self._conn)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot migrate SQLite store {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front (no deadlocks
        or stale-snapshot errors between processes)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth reporting

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"SQLite store {self.path}: {exc}")

    # -- executions and events ---------------------------------------------------

    def create_execution(
        self,
        execution_id: str,
        playbook_path: str,
        playbook_version: int,
        parent_id: str | None = None,
        parent_step: str | None = None,
    ) -> None:
        params = {
            "id": execution_id,
            "playbook_path": playbook_path,
            "playbook_version": playbook_version,
            "parent_id": parent_id,
            "parent_step": parent_step,
            "now": iso_utc(self._clock()),
        }
        try:
            with self._write() as conn:
                conn.execute(_INSERT_EXECUTION, params)
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(f"execution {execution_id!r} already exists") from exc
            raise

    def append_and_lease(
        self,
        execution_id: str,
        expected_seq: int,
        events: Sequence[NewEvent],
        jobs: Sequence[NewJob] = (),
        *,
        complete: Job | Sequence[Job] | None = None,
        status: str | None = None,
        cancel_jobs: bool = False,
        lessee: Lessee | None = None,
        limit: int = 0,
    ) -> tuple[list[Event], list[Job]]:
        now = self._clock()
        at = iso_utc(now)
        written: list[Event] = []
        event_rows: list[tuple[Any, ...]] = []
        seq = expected_seq
        for new in events:
            seq += 1
            event_id = uuid.uuid4().hex
            data = _json_text(new.data, f"data of event {new.type!r}")
            event_rows.append(
                (execution_id, seq, event_id, new.type, at, new.step, new.visit,
                 new.index, new.attempt, data, LOGIC_VERSION)
            )  # fmt: skip
            written.append(
                Event(event_id, execution_id, seq, new.type, at, new.step, new.visit,
                      new.index, new.attempt, new.data, LOGIC_VERSION)
            )  # fmt: skip
        job_rows = [_job_row(execution_id, job, now) for job in jobs]
        advance = {
            "id": execution_id,
            "expected_seq": expected_seq,
            "new_seq": seq,
            "now": at,
            "status": status,
        }
        with self._write() as conn:
            sql = _ADVANCE_EXECUTION if status is None else _ADVANCE_EXECUTION_WITH_STATUS
            if conn.execute(sql, advance).rowcount != 1:
                raise self._seq_error(conn, execution_id, expected_seq)
            for done in jobs_completed(complete):
                fence = {
                    "id": done.id,
                    "execution_id": execution_id,
                    "lease_token": done.lease_token,
                }
                if conn.execute(_COMPLETE_JOB, fence).rowcount != 1:
                    raise stale_lease(done, execution_id)
            if cancel_jobs:
                conn.execute(_CANCEL_JOBS, {"execution_id": execution_id})
            if event_rows:
                conn.executemany(_INSERT_EVENT, event_rows)
            if job_rows:
                conn.executemany(_INSERT_JOB, job_rows)
            leased = [] if lessee is None else self._lease(conn, now, lessee, limit)
        return written, leased

    def _seq_error(
        self, conn: sqlite3.Connection, execution_id: str, expected_seq: int
    ) -> StoreError:
        row = conn.execute(_GET_LAST_SEQ, {"id": execution_id}).fetchone()
        if row is None:
            return NotFound(f"execution {execution_id!r} does not exist")
        return SeqConflict(
            f"execution {execution_id!r}: expected last seq {expected_seq}, it is {row[0]}"
        )

    def read_events(
        self, execution_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = {
            "execution_id": execution_id,
            "after_seq": after_seq,
            "limit": -1 if limit is None else limit,
        }
        with self._read() as conn:
            rows = conn.execute(_READ_EVENTS, params).fetchall()
        return [
            Event(r[0], execution_id, r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                  _decode_json(r[8]), r[9])
            for r in rows
        ]  # fmt: skip

    def get_execution(self, execution_id: str) -> ExecutionInfo | None:
        with self._read() as conn:
            row = conn.execute(_GET_EXECUTION, {"id": execution_id}).fetchone()
        return None if row is None else ExecutionInfo(*row)

    def list_executions(
        self,
        status: str | None = None,
        playbook_path: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionInfo]:
        sql = _list_executions_query(
            status is not None, playbook_path is not None, parent_id is not None
        )
        params = {
            "status": status,
            "playbook_path": playbook_path,
            "parent_id": parent_id,
            "limit": limit,
            "offset": offset,
        }
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [ExecutionInfo(*row) for row in rows]

    def prune_executions(
        self, before: str, statuses: Sequence[str], *, dry_run: bool = False
    ) -> list[str]:
        params = {
            "before": iso_utc(iso_seconds(before)),
            "statuses": _encode_json(check_prune_statuses(statuses)),
        }
        with self._write() as conn:
            ids = [row[1] for row in conn.execute(_PRUNABLE_EXECUTIONS, params)]
            if ids and not dry_run:
                for sql in _PRUNE:
                    conn.execute(sql, {"ids": _encode_json(ids)})
        return ids

    # -- queue -------------------------------------------------------------------

    def lease_jobs(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        pools: Sequence[str | None] | None = None,
    ) -> list[Job]:
        lessee = Lessee(worker_id, lease_seconds, None if pools is None else tuple(pools))
        if limit <= 0 or (pools is not None and not pools):
            return []
        with self._write() as conn:
            return self._lease(conn, self._clock(), lessee, limit)

    def _lease(
        self, conn: sqlite3.Connection, now: float, lessee: Lessee, limit: int
    ) -> list[Job]:
        pools = lessee.pools
        if limit <= 0 or (pools is not None and not pools):
            return []
        expires_at = now + lessee.lease_seconds
        params: dict[str, Any] = {"now": now, "limit": limit}
        sql = _DUE_JOBS_ANY_POOL if pools is None else _DUE_JOBS_IN_POOLS
        if pools is not None:
            params.update(_pool_params(pools))
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            return []
        tokens = [token_hex(16) for _ in rows]
        worker_id = lessee.worker_id
        conn.executemany(
            _LEASE_JOB,
            [
                (token, worker_id, expires_at, expires_at, row[0])
                for token, row in zip(tokens, rows, strict=True)
            ],
        )
        return [
            Job(
                id=row[0],
                execution_id=row[1],
                step=row[2],
                visit=row[3],
                attempt=row[4],
                index=row[5],
                pool=row[6],
                payload=_decode_json(row[7]) if row[7] is not None else {},
                lease_token=token,
                worker_id=worker_id,
                leases=row[8] + 1,
            )
            for token, row in zip(tokens, rows, strict=True)
        ]

    def heartbeat(self, job: Job, lease_seconds: float) -> bool:
        params = {
            "id": job.id,
            "lease_token": job.lease_token,
            "expires_at": self._clock() + lease_seconds,
        }
        with self._write() as conn:
            return conn.execute(_HEARTBEAT, params).rowcount == 1

    def release(self, job: Job) -> None:
        with self._write() as conn:
            conn.execute(_RELEASE, {"id": job.id, "lease_token": job.lease_token})

    def seconds_until_next_job(self, pools: Sequence[str | None] | None = None) -> float | None:
        if pools is not None and not pools:
            return None
        with self._read() as conn:
            if pools is None:
                row = conn.execute(_NEXT_DUE_ANY_POOL).fetchone()
            else:
                row = conn.execute(_NEXT_DUE_IN_POOLS, _pool_params(pools)).fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - self._clock())

    # -- catalog -------------------------------------------------------------------

    def register_playbook(self, path: str, name: str, content: str) -> tuple[CatalogEntry, bool]:
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        registered_at = iso_utc(self._clock())
        with self._write() as conn:
            latest = conn.execute(_LATEST_PLAYBOOK, {"path": path}).fetchone()
            if latest is not None and latest[4] == digest:
                return CatalogEntry(*latest), False
            version = 1 if latest is None else int(latest[1]) + 1
            entry = CatalogEntry(path, version, name, content, digest, registered_at)
            conn.execute(
                _INSERT_PLAYBOOK,
                {
                    "path": path,
                    "version": version,
                    "name": name,
                    "content": content,
                    "content_hash": digest,
                    "registered_at": registered_at,
                },
            )
        return entry, True

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None:
        with self._read() as conn:
            if version is None:
                row = conn.execute(_LATEST_PLAYBOOK, {"path": path}).fetchone()
            else:
                params = {"path": path, "version": version}
                row = conn.execute(_GET_PLAYBOOK_VERSION, params).fetchone()
        return None if row is None else CatalogEntry(*row)

    def list_playbooks(self) -> list[CatalogEntry]:
        with self._read() as conn:
            rows = conn.execute(_LIST_PLAYBOOKS).fetchall()
        return [CatalogEntry(*row) for row in rows]

    def playbook_versions(self, path: str) -> list[CatalogEntry]:
        with self._read() as conn:
            rows = conn.execute(_PLAYBOOK_VERSIONS, {"path": path}).fetchall()
        return [CatalogEntry(*row) for row in rows]

    # -- credentials -----------------------------------------------------------------

    def put_credential(self, name: str, type: str, data: bytes) -> None:
        params = {"name": name, "type": type, "data": data, "now": iso_utc(self._clock())}
        with self._write() as conn:
            conn.execute(_PUT_CREDENTIAL, params)

    def get_credential(self, name: str) -> StoredCredential | None:
        with self._read() as conn:
            row = conn.execute(_GET_CREDENTIAL, {"name": name}).fetchone()
        return None if row is None else _credential(row)

    def list_credentials(self) -> list[StoredCredential]:
        with self._read() as conn:
            rows = conn.execute(_LIST_CREDENTIALS).fetchall()
        return [_credential(row) for row in rows]

    def delete_credential(self, name: str) -> bool:
        with self._write() as conn:
            return conn.execute(_DELETE_CREDENTIAL, {"name": name}).rowcount > 0

    def watch(self, on_change: ChangeCallback) -> Callable[[], None] | None:
        return None  # SQLite cannot push across processes: callers poll

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # closed already, or busy: a hint only
                self._conn.execute("PRAGMA optimize")
            self._conn.close()


def _credential(row: Sequence[Any]) -> StoredCredential:
    return StoredCredential(row[0], row[1], bytes(row[2]), row[3], row[4])


def _pool_params(pools: Sequence[str | None]) -> dict[str, Any]:
    names = [pool for pool in pools if pool is not None]
    return {"pools": _encode_json(names), "with_null": int(len(names) != len(pools))}
