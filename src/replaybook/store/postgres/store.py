"""The PostgreSQL Store: the backend for many processes on many machines.

A connection pool serves every thread of the process (each call borrows one
connection for its statements). The semantics are the SQLite store's, operation for
operation; what differs is how they are made safe between processes:

- `append` locks the execution's row (the guarded UPDATE of its last_seq), then
  fences the completed job, writes events and jobs and sends a notification. All of
  it is pipelined: one round trip for the statements and one for the COMMIT.
- `lease_jobs` is one statement walking the due jobs with FOR UPDATE SKIP LOCKED, so
  concurrent leasers never wait for each other nor get the same job.
- `watch` LISTENs for the notifications of appends (see watch.py).

Every timestamp and lease expiry comes from the `clock` given (never the database
server's now()), so the store behaves the same under a test's fake clock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

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
from replaybook.store.postgres.migrate import Connection, apply_migrations, connect
from replaybook.store.postgres.sql import QUERIES
from replaybook.store.postgres.target import PostgresTarget, parse_url
from replaybook.store.postgres.triggers import StatsStore, TriggerStore
from replaybook.store.postgres.watch import ChangeWatcher
from replaybook.version import LOGIC_VERSION

_INSERT_EXECUTION: Final = QUERIES["insert_execution"]
_GET_EXECUTION: Final = QUERIES["get_execution"]
_GET_LAST_SEQ: Final = QUERIES["get_last_seq"]
_ADVANCE_EXECUTION: Final = QUERIES["advance_execution"]
_ADVANCE_EXECUTION_WITH_STATUS: Final = QUERIES["advance_execution_with_status"]
_COMPLETE_JOBS: Final = QUERIES["complete_jobs"]
_CANCEL_JOBS: Final = QUERIES["cancel_jobs"]
_INSERT_EVENTS: Final = QUERIES["insert_events"]
_INSERT_JOBS: Final = QUERIES["insert_jobs"]
_NOTIFY: Final = QUERIES["notify"]
_READ_EVENTS: Final = QUERIES["read_events"]
_LEASE_ANY_POOL: Final = QUERIES["lease_jobs_any_pool"]
_LEASE_IN_POOLS: Final = QUERIES["lease_jobs_in_pools"]
_HEARTBEAT: Final = QUERIES["heartbeat"]
_RELEASE: Final = QUERIES["release"]
_NEXT_DUE_ANY_POOL: Final = QUERIES["next_due_any_pool"]
_NEXT_DUE_IN_POOLS: Final = QUERIES["next_due_in_pools"]
_LOCK_CATALOG_PATH: Final = QUERIES["lock_catalog_path"]
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

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(t: float) -> datetime:
    """Unix seconds as an aware datetime, rounded to the microsecond exactly like the
    SQLite store's ISO strings (so a written `at` reads back identical)."""
    return _EPOCH + timedelta(microseconds=round(t * 1_000_000))


def _iso(instant: datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%S.%f}Z"


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


def _job_json(n: int, job: NewJob) -> dict[str, Any]:
    payload = _json_text(job.payload, f"payload of job {job.step!r}") if job.payload else None
    return {
        "step": job.step,
        "visit": job.visit,
        "attempt": job.attempt,
        "idx": job.index,
        "pool": job.pool,
        "payload": payload,
        "delay_ms": job.delay_ms or 0,
        "n": n,
    }


class _Rejected(Exception):
    """The guarded UPDATE of the execution matched nothing: roll back, then find out
    whether the execution is missing or another writer appended first."""


class PostgresStore(AppendsByLeasing, TriggerStore, StatsStore):
    """Store on a PostgreSQL database named by a `postgresql://` URL (see target.py for
    its `schema` and `pool_size` parameters); `clock` returns unix seconds and drives
    every timestamp, delay and lease expiry (tests pass a fake clock)."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self._target: PostgresTarget = parse_url(url)
        self._clock = clock
        self._watchers: list[ChangeWatcher] = []
        self._lock = threading.Lock()
        self._closed = False
        self._checking = False
        with connect(self._target) as conn:
            try:
                apply_migrations(conn, self._target)
            except psycopg.Error as exc:
                raise StoreError(f"cannot migrate {self}: {exc}") from exc
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            self._target.connection_string(),
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self._target.pool_size,
            open=False,
            name="replaybook-store",
            num_workers=1,
        )
        try:
            self._pool.open(wait=True, timeout=30)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"cannot open a connection pool on {self}: {exc}") from exc

    def __repr__(self) -> str:
        return f"PostgresStore({self._target.display!r})"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def channel(self) -> str:
        """The NOTIFY channel appends are announced on."""
        return self._target.channel

    # -- connections ---------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A pooled connection (autocommit: single statements need no BEGIN); driver
        errors become StoreError."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                self._check_pool_soon()
            raise StoreError(f"{self}: {exc}") from exc

    def _fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement. A read is safe to repeat, so one that
        finds its pooled connection dead (the server restarted) is tried again on a
        fresh connection instead of failing."""
        for attempt in (1, 2):
            conn: Connection | None = None
            try:
                with self._pool.connection() as conn:
                    return conn.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    self._check_pool_soon()
                    if attempt == 1 and conn is not None and conn.broken and not self._closed:
                        continue
                raise StoreError(f"{self}: {exc}") from exc
        raise AssertionError("unreachable")

    def _fetch_one(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        rows = self._fetch(sql, params)
        return rows[0] if rows else None

    def _check_pool_soon(self) -> None:
        """After a connection error, test the idle pooled connections in the
        background, so the ones the same outage broke are replaced before use."""
        with self._lock:
            if self._checking or self._closed:
                return
            self._checking = True

        def check() -> None:
            try:
                self._pool.check()
            except psycopg.Error:
                pass  # a hint only; the next use reports what is wrong
            finally:
                with self._lock:
                    self._checking = False

        threading.Thread(target=check, name="replaybook-pg-pool-check", daemon=True).start()

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
            "now": _instant(self._clock()),
        }
        with self._connection() as conn:
            try:
                conn.execute(_INSERT_EXECUTION, params)
            except pg_errors.UniqueViolation as exc:
                raise StoreError(f"execution {execution_id!r} already exists") from exc

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
        instant = _instant(now)
        at = _iso(instant)
        written: list[Event] = []
        seq = expected_seq
        for new in events:
            seq += 1
            written.append(
                Event(uuid.uuid4().hex, execution_id, seq, new.type, at, new.step, new.visit,
                      new.index, new.attempt, new.data, LOGIC_VERSION)
            )  # fmt: skip
        event_rows = [
            {
                "seq": e.seq,
                "id": e.id,
                "type": e.type,
                "step": e.step,
                "visit": e.visit,
                "idx": e.index,
                "attempt": e.attempt,
                "data": _json_text(e.data, f"data of event {e.type!r}"),
            }
            for e in written
        ]
        event_cols = {
            "execution_id": execution_id,
            "at": instant,
            "logic_version": LOGIC_VERSION,
            "rows": json.dumps(event_rows),
        }
        job_cols = {
            "execution_id": execution_id,
            "now": instant,
            "rows": json.dumps([_job_json(n, j) for n, j in enumerate(jobs)]),
        }
        advance = {
            "id": execution_id,
            "expected_seq": expected_seq,
            "new_seq": seq,
            "now": instant,
            "status": status,
        }
        notify = {"channel": self._target.channel, "message": f"{execution_id}:{len(jobs)}"}
        with self._connection() as conn:
            try:
                with conn.pipeline() as pipeline, conn.transaction():
                    sql = _ADVANCE_EXECUTION if status is None else _ADVANCE_EXECUTION_WITH_STATUS
                    advanced = conn.execute(sql, advance)
                    done = jobs_completed(complete)
                    fenced = None
                    if done:
                        fence = {
                            "ids": [job.id for job in done],
                            "tokens": [job.lease_token for job in done],
                            "execution_id": execution_id,
                        }
                        fenced = conn.execute(_COMPLETE_JOBS, fence)
                    if cancel_jobs:
                        conn.execute(_CANCEL_JOBS, {"execution_id": execution_id})
                    if written:
                        conn.execute(_INSERT_EVENTS, event_cols)
                    if jobs:
                        conn.execute(_INSERT_JOBS, job_cols)
                    lease = None if lessee is None else self._lease_query(now, lessee, limit)
                    took = None if lease is None else conn.execute(*lease)
                    conn.execute(_NOTIFY, notify)
                    pipeline.sync()
                    if advanced.rowcount != 1:
                        raise _Rejected
                    if fenced is not None:
                        still_leased = {row[0] for row in fenced.fetchall()}
                        for job in done:
                            if job.id not in still_leased:
                                raise stale_lease(job, execution_id)
                    leased = [] if took is None else self._leased(took.fetchall(), lessee)
            except (_Rejected, pg_errors.IntegrityError) as exc:
                # A stale expected_seq makes the UPDATE match nothing, or the events
                # collide with the ones already written; an unknown execution fails
                # the UPDATE and the foreign keys. The rollback is done: find out which.
                raise self._seq_error(conn, execution_id, expected_seq, exc) from None
        return written, leased

    def _seq_error(
        self, conn: Connection, execution_id: str, expected_seq: int, cause: Exception
    ) -> StoreError:
        row = conn.execute(_GET_LAST_SEQ, {"id": execution_id}).fetchone()
        if row is None:
            return NotFound(f"execution {execution_id!r} does not exist")
        if row[0] != expected_seq:
            return SeqConflict(
                f"execution {execution_id!r}: expected last seq {expected_seq}, it is {row[0]}"
            )
        return StoreError(f"{self}: append to execution {execution_id!r} failed: {cause}")

    def read_events(
        self, execution_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = {"execution_id": execution_id, "after_seq": after_seq, "limit": limit}
        rows = self._fetch(_READ_EVENTS, params)
        return [
            Event(r[0], execution_id, r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                  _decode_json(r[8]), r[9])
            for r in rows
        ]  # fmt: skip

    def get_execution(self, execution_id: str) -> ExecutionInfo | None:
        row = self._fetch_one(_GET_EXECUTION, {"id": execution_id})
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
        return [ExecutionInfo(*row) for row in self._fetch(sql, params)]

    def prune_executions(
        self, before: str, statuses: Sequence[str], *, dry_run: bool = False
    ) -> list[str]:
        params = {
            "before": _instant(iso_seconds(before)),
            "statuses": check_prune_statuses(statuses),
        }
        with self._connection() as conn, conn.transaction():
            ids = [row[1] for row in conn.execute(_PRUNABLE_EXECUTIONS, params).fetchall()]
            if ids and not dry_run:
                for sql in _PRUNE:
                    conn.execute(sql, {"ids": ids})
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
        query = self._lease_query(self._clock(), lessee, limit)
        if query is None:
            return []
        with self._connection() as conn:
            rows = conn.execute(*query).fetchall()
        return self._leased(rows, lessee)

    def _lease_query(
        self, now: float, lessee: Lessee, limit: int
    ) -> tuple[str, dict[str, Any]] | None:
        pools = lessee.pools
        if limit <= 0 or (pools is not None and not pools):
            return None
        params: dict[str, Any] = {
            "now": _instant(now),
            "expires_at": _instant(now + lessee.lease_seconds),
            "limit": limit,
            "worker_id": lessee.worker_id,
        }
        if pools is None:
            return _LEASE_ANY_POOL, params
        params.update(_pool_params(pools))
        return _LEASE_IN_POOLS, params

    def _leased(self, rows: list[Any], lessee: Lessee | None) -> list[Job]:
        assert lessee is not None or not rows
        rows.sort(key=lambda row: (row[10], row[0]))  # oldest due first
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
                lease_token=row[9],
                worker_id=lessee.worker_id if lessee else "",
                leases=row[8],
            )
            for row in rows
        ]

    def heartbeat(self, job: Job, lease_seconds: float) -> bool:
        params = {
            "id": job.id,
            "lease_token": job.lease_token,
            "expires_at": _instant(self._clock() + lease_seconds),
        }
        with self._connection() as conn:
            return conn.execute(_HEARTBEAT, params).rowcount == 1

    def release(self, job: Job) -> None:
        params = {"id": job.id, "lease_token": job.lease_token, "channel": self._target.channel}
        with self._connection() as conn:
            conn.execute(_RELEASE, params)

    def seconds_until_next_job(self, pools: Sequence[str | None] | None = None) -> float | None:
        if pools is not None and not pools:
            return None
        params: dict[str, Any] = {"now": _instant(self._clock())}
        if pools is None:
            sql = _NEXT_DUE_ANY_POOL
        else:
            sql = _NEXT_DUE_IN_POOLS
            params.update(_pool_params(pools))
        row = self._fetch_one(sql, params)
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]))

    # -- catalog -------------------------------------------------------------------

    def register_playbook(self, path: str, name: str, content: str) -> tuple[CatalogEntry, bool]:
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        instant = _instant(self._clock())
        with self._connection() as conn, conn.transaction():
            conn.execute(_LOCK_CATALOG_PATH, {"path": path})
            latest = conn.execute(_LATEST_PLAYBOOK, {"path": path}).fetchone()
            if latest is not None and latest[4] == digest:
                return CatalogEntry(*latest), False
            version = 1 if latest is None else int(latest[1]) + 1
            conn.execute(
                _INSERT_PLAYBOOK,
                {
                    "path": path,
                    "version": version,
                    "name": name,
                    "content": content,
                    "content_hash": digest,
                    "registered_at": instant,
                },
            )
        return CatalogEntry(path, version, name, content, digest, _iso(instant)), True

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None:
        if version is None:
            row = self._fetch_one(_LATEST_PLAYBOOK, {"path": path})
        else:
            row = self._fetch_one(_GET_PLAYBOOK_VERSION, {"path": path, "version": version})
        return None if row is None else CatalogEntry(*row)

    def list_playbooks(self) -> list[CatalogEntry]:
        return [CatalogEntry(*row) for row in self._fetch(_LIST_PLAYBOOKS)]

    def playbook_versions(self, path: str) -> list[CatalogEntry]:
        return [CatalogEntry(*row) for row in self._fetch(_PLAYBOOK_VERSIONS, {"path": path})]

    # -- credentials -----------------------------------------------------------------

    def put_credential(self, name: str, type: str, data: bytes) -> None:
        params = {"name": name, "type": type, "data": data, "now": _instant(self._clock())}
        with self._connection() as conn:
            conn.execute(_PUT_CREDENTIAL, params)

    def get_credential(self, name: str) -> StoredCredential | None:
        row = self._fetch_one(_GET_CREDENTIAL, {"name": name})
        return None if row is None else _credential(row)

    def list_credentials(self) -> list[StoredCredential]:
        return [_credential(row) for row in self._fetch(_LIST_CREDENTIALS)]

    def delete_credential(self, name: str) -> bool:
        with self._connection() as conn:
            return conn.execute(_DELETE_CREDENTIAL, {"name": name}).rowcount > 0

    # -- cross-process wake-ups ------------------------------------------------------

    def watch(self, on_change: ChangeCallback) -> Callable[[], None] | None:
        """Call `on_change(execution_id, jobs)` for every append committed to this
        store's database by any process, this one included, until the returned
        function is called (or the store is closed)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"{self} is closed")
            watcher = ChangeWatcher(self._target, on_change)
            self._watchers.append(watcher)
        watcher.start()

        def stop() -> None:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)
            watcher.stop()

        return stop

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher.stop()
        self._pool.close()


def _credential(row: Sequence[Any]) -> StoredCredential:
    return StoredCredential(row[0], row[1], bytes(row[2]), row[3], row[4])


def _pool_params(pools: Sequence[str | None]) -> dict[str, Any]:
    names = [pool for pool in pools if pool is not None]
    return {"pools": names, "with_null": len(names) != len(pools)}
