"""The Store: every durable thing the engine keeps, behind domain operations.

One interface, several backends (SQLite embedded, PostgreSQL scale-out). The contract
test suite in tests/contract runs against each backend.

Guarantees every backend gives:
- `append` writes events (gap-free `seq` per execution, checked against
  `expected_seq` so concurrent writers cannot interleave), enqueues the jobs they
  cause, optionally completes the job that produced them (fenced by its lease token)
  and updates the execution's summary row, all in ONE transaction.
- a leased job is invisible to other workers until its lease expires; an expired
  lease makes the job leasable again with a new token, and the old token is stale.
- catalog registration is idempotent on content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from replaybook.errors import StaleLease


@dataclass(frozen=True)
class NewEvent:
    type: str
    step: str | None = None
    visit: int | None = None
    index: int | None = None
    attempt: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: str
    execution_id: str
    seq: int
    type: str
    at: str  # ISO-8601 UTC with microseconds
    step: str | None
    visit: int | None
    index: int | None
    attempt: int | None
    data: Mapping[str, Any]
    logic_version: int

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "execution_id": self.execution_id,
            "seq": self.seq,
            "type": self.type,
            "at": self.at,
        }
        for k in ("step", "visit", "index", "attempt"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        d["data"] = dict(self.data)
        d["logic_version"] = self.logic_version
        return d


@dataclass(frozen=True)
class NewJob:
    """Work for a worker: one attempt of one step visit (or iterator item)."""

    step: str
    visit: int
    attempt: int
    index: int | None = None
    delay_ms: int = 0  # not leasable before now + delay
    pool: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lessee:
    """Who leases, for how long, from which pools (`None`: every pool)."""

    worker_id: str
    lease_seconds: float
    pools: tuple[str | None, ...] | None = None


@dataclass(frozen=True)
class Job:
    id: int
    execution_id: str
    step: str
    visit: int
    attempt: int
    index: int | None
    pool: str | None
    payload: Mapping[str, Any]
    lease_token: str
    worker_id: str
    leases: int  # how many times this job has been leased (1 = first)


@dataclass(frozen=True)
class ExecutionInfo:
    id: str
    playbook_path: str
    playbook_version: int
    status: str  # running | completed | failed | cancelled
    created_at: str
    updated_at: str
    parent_id: str | None = None
    parent_step: str | None = None
    last_seq: int = 0


@dataclass(frozen=True)
class CatalogEntry:
    path: str
    version: int
    name: str
    content: str
    content_hash: str
    registered_at: str


@dataclass(frozen=True)
class StoredCredential:
    """A named credential as the store keeps it: `data` is ciphertext (the store
    never sees plaintext; encryption happens above it, in replaybook.credentials)."""

    name: str
    type: str
    data: bytes
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class NewSchedule:
    id: str
    playbook_path: str
    cron: str
    timezone: str  # an IANA zone name, e.g. Europe/Berlin
    payload: Mapping[str, Any] = field(default_factory=dict)
    catch_up: str = "last"  # none | last | all
    playbook_version: int | None = None  # None: the latest when a slot fires


@dataclass(frozen=True)
class Schedule:
    id: str
    playbook_path: str
    playbook_version: int | None
    cron: str
    timezone: str
    payload: Mapping[str, Any]
    catch_up: str
    paused: bool
    created_at: str
    updated_at: str
    last_slot: str | None  # the latest slot fired or passed over (ISO-8601 UTC)


@dataclass(frozen=True)
class ScheduleSlot:
    schedule_id: str
    slot: str  # ISO-8601 UTC
    claimed_at: str
    claimed_by: str
    execution_id: str | None


@dataclass(frozen=True)
class Hook:
    """A webhook: its secret is the stored credential `secret_credential`."""

    name: str
    playbook_path: str
    playbook_version: int | None
    auth: str  # hmac | token
    secret_credential: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class QueueStats:
    """Outstanding work at one instant (for metrics)."""

    queued: int
    due: int  # queued and leasable now
    leased: int
    expired: int  # leased, lease expired (a worker died or stalled)
    oldest_due_seconds: float  # how long the longest-waiting due job has waited
    oldest_leased_seconds: float  # how long ago the oldest leased job became available


@dataclass(frozen=True)
class RunningJob:
    """A leased job as an operator sees it (never its lease token)."""

    id: int
    execution_id: str
    step: str
    index: int | None
    attempt: int
    worker_id: str
    lease_left_seconds: float  # negative: the lease has expired


FINISHED_STATUSES = ("completed", "failed", "cancelled")


def jobs_completed(complete: Job | Sequence[Job] | None) -> Sequence[Job]:
    """`append`'s `complete` argument as a sequence of jobs."""
    if complete is None:
        return ()
    return (complete,) if isinstance(complete, Job) else complete


def stale_lease(job: Job, execution_id: str) -> StaleLease:
    return StaleLease(
        f"job {job.id} ({job.step!r} of execution {execution_id!r})"
        f" is no longer leased with token {job.lease_token}"
    )


def check_prune_statuses(statuses: Sequence[str]) -> list[str]:
    """The statuses to prune, refusing any that is not finished (never `running`)."""
    bad = [s for s in statuses if s not in FINISHED_STATUSES]
    if bad or not statuses:
        raise ValueError(
            f"cannot prune executions with status {', '.join(map(repr, bad)) or '(none)'}: "
            f"use {', '.join(FINISHED_STATUSES)}"
        )
    return list(dict.fromkeys(statuses))


def iso_seconds(instant: str) -> float:
    """Unix seconds of an ISO-8601 instant (one without a zone is taken as UTC)."""
    parsed = datetime.fromisoformat(instant)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# Called with an execution id when another process appended events to it, and with
# how many jobs that append enqueued.
ChangeCallback = Callable[[str, int], None]


class Store(Protocol):
    # -- executions and events -------------------------------------------------
    def create_execution(
        self,
        execution_id: str,
        playbook_path: str,
        playbook_version: int,
        parent_id: str | None = None,
        parent_step: str | None = None,
    ) -> None: ...

    def append(
        self,
        execution_id: str,
        expected_seq: int,
        events: Sequence[NewEvent],
        jobs: Sequence[NewJob] = (),
        *,
        complete: Job | Sequence[Job] | None = None,
        status: str | None = None,
        cancel_jobs: bool = False,
    ) -> list[Event]:
        """Atomically append `events` after `expected_seq`, enqueue `jobs`, mark
        `complete` (one job, or several whose outcomes are committed together) done
        and set the execution's `status`. With `cancel_jobs` every
        queued or leased job of the execution is removed (its leases become stale).

        Raises SeqConflict when the execution's last seq is not `expected_seq`
        (nothing is written), StaleLease when the lease of a job in `complete` is
        no longer held (nothing is written)."""
        ...

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
        """`append`, then in the same transaction lease up to `limit` due jobs for
        `lessee`: a worker whose outcome enqueued its own next job takes it without
        a second transaction."""
        ...

    def read_events(
        self, execution_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]: ...

    def get_execution(self, execution_id: str) -> ExecutionInfo | None: ...

    def list_executions(
        self,
        status: str | None = None,
        playbook_path: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionInfo]: ...

    def prune_executions(
        self, before: str, statuses: Sequence[str], *, dry_run: bool = False
    ) -> list[str]:
        """Delete finished top-level executions whose status is in `statuses` and
        that last changed before `before` (ISO-8601 UTC), with their child executions,
        events and jobs, in one transaction. A tree with a running execution in it is
        never touched. Returns the ids deleted (with `dry_run`, that would be), roots
        and children, sorted by root. Raises ValueError for a status that is not a
        finished one (completed, failed, cancelled)."""
        ...

    # -- queue -----------------------------------------------------------------
    def lease_jobs(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        pools: Sequence[str | None] | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs (queued and available, or whose lease
        expired), oldest first. `pools=None` leases from every pool."""
        ...

    def heartbeat(self, job: Job, lease_seconds: float) -> bool:
        """Extend the lease; False when the lease is lost (expired and re-leased,
        cancelled or completed)."""
        ...

    def release(self, job: Job) -> None:
        """Give a leased job back to the queue at once (graceful shutdown)."""
        ...

    def seconds_until_next_job(self, pools: Sequence[str | None] | None = None) -> float | None:
        """0 if a job is due now, the wait until the earliest delayed job or lease
        expiry, None if the queue is empty."""
        ...

    # -- catalog ---------------------------------------------------------------
    def register_playbook(self, path: str, name: str, content: str) -> tuple[CatalogEntry, bool]:
        """Store `content` as the next version of `path`; if the latest version has
        the same content, return it instead. The bool says whether it is new."""
        ...

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None: ...

    def list_playbooks(self) -> list[CatalogEntry]:
        """The latest version of every path."""
        ...

    def playbook_versions(self, path: str) -> list[CatalogEntry]: ...

    # -- credentials (ciphertext only) --------------------------------------------
    def put_credential(self, name: str, type: str, data: bytes) -> None:
        """Create or replace credential `name` (created_at kept on replace)."""
        ...

    def get_credential(self, name: str) -> StoredCredential | None: ...

    def list_credentials(self) -> list[StoredCredential]:
        """Every credential, by name."""
        ...

    def delete_credential(self, name: str) -> bool:
        """False when there was no such credential."""
        ...

    # -- schedules (see replaybook.scheduling) -----------------------------------------
    def create_schedule(self, schedule: NewSchedule) -> Schedule:
        """Raises StoreError when the id exists. Its cursor starts at creation."""
        ...

    def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    def list_schedules(self) -> list[Schedule]:
        """Oldest first."""
        ...

    def set_schedule_paused(self, schedule_id: str, paused: bool) -> bool:
        """False when there is no such schedule. Resuming moves the cursor to now:
        slots that passed while paused are not caught up."""
        ...

    def delete_schedule(self, schedule_id: str) -> bool: ...

    def claim_schedule_slot(self, schedule_id: str, slot: str, claimed_by: str) -> bool:
        """Claim `slot` (ISO-8601 UTC) of an active schedule: True for exactly one
        caller, however many race; False when the slot was claimed already, is not
        after the cursor (fired or passed over), or the schedule is paused or gone."""
        ...

    def skip_schedule_slots(self, schedule_id: str, up_to: str) -> None:
        """Move the cursor to `up_to` (never backwards): slots up to it will not fire."""
        ...

    def set_slot_execution(self, schedule_id: str, slot: str, execution_id: str) -> None: ...

    def schedule_slots(self, schedule_id: str, limit: int = 20) -> list[ScheduleSlot]:
        """The latest fired slots, newest first."""
        ...

    def unstarted_slots(self, claimed_before: str) -> list[ScheduleSlot]:
        """Claimed slots without an execution, claimed before `claimed_before`."""
        ...

    # -- stats (metrics) ---------------------------------------------------------------
    def executions_by_status(self) -> dict[str, int]: ...

    def queue_stats(self) -> QueueStats: ...

    def running_jobs(self, limit: int = 200) -> list[RunningJob]:
        """Leased jobs, by worker, at most `limit` of them."""
        ...

    # -- webhooks ----------------------------------------------------------------------
    def put_hook(
        self,
        name: str,
        playbook_path: str,
        playbook_version: int | None,
        auth: str,
        secret_credential: str,
    ) -> Hook: ...

    def get_hook(self, name: str) -> Hook | None: ...

    def list_hooks(self) -> list[Hook]: ...

    def delete_hook(self, name: str) -> bool: ...

    # -- cross-process wake-ups --------------------------------------------------
    def watch(self, on_change: ChangeCallback) -> Callable[[], None] | None:
        """Push notifications of appends made by any process (PostgreSQL: LISTEN/
        NOTIFY). Returns a function that stops watching, or None when the backend
        cannot push (SQLite): callers then poll."""
        ...

    def close(self) -> None: ...


class AppendsByLeasing:
    """`append` for a store whose `append_and_lease` does the work (both backends)."""

    def append(
        self,
        execution_id: str,
        expected_seq: int,
        events: Sequence[NewEvent],
        jobs: Sequence[NewJob] = (),
        *,
        complete: Job | Sequence[Job] | None = None,
        status: str | None = None,
        cancel_jobs: bool = False,
    ) -> list[Event]:
        written, _ = self.append_and_lease(
            execution_id,
            expected_seq,
            events,
            jobs,
            complete=complete,
            status=status,
            cancel_jobs=cancel_jobs,
        )
        return written

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
        raise NotImplementedError
