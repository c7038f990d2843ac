"""What a worker pool needs from the rest of the system, and its in-process form.

A `WorkerPool` leases jobs, asks for what a job needs to run (its playbook and a
snapshot of the execution), runs it and reports the outcome. Those calls form the
`Coordinator` protocol. `LocalCoordinator` answers them with an `Engine` and its
`Store` in this process (embedded runs, `replaybook worker --db`, and the server's
queue endpoints); `replaybook.client.RemoteCoordinator` answers them over HTTP from a
server (`replaybook worker --server`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from replaybook.core import events as ev
from replaybook.errors import NotFound
from replaybook.playbook.model import Playbook
from replaybook.runtime.engine import Engine
from replaybook.store.base import Event, Job, Lessee, NewEvent

log = logging.getLogger("replaybook.coordinator")

# How long after one of our appends its store notification is expected.
OWN_NOTICE_SECONDS = 1.0

# Called with an execution id when that execution reached a terminal status.
FinishedCallback = Callable[[str], None]


@dataclass(frozen=True)
class JobContext:
    """What a job needs before it runs: its playbook and the execution's snapshot
    (None once the execution has finished: the job is then dropped)."""

    playbook: Playbook
    snapshot: Mapping[str, Any] | None


class Coordinator(Protocol):
    env: Mapping[str, str]

    def lease(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        pools: Sequence[str | None] | None,
        wait: float,
    ) -> list[Job]:
        """Lease up to `limit` due jobs; when none is due, wait up to `wait` seconds
        for one (0: return at once)."""
        ...

    def context(self, job: Job) -> JobContext | None:
        """The job's playbook and snapshot; None when its execution is gone."""
        ...

    def complete(self, job: Job, events: Sequence[NewEvent], *, chain: Lessee | None) -> Job | None:
        """Record a job's outcome (fenced by its lease: StaleLease when lost). With
        `chain`, lease one of the jobs the outcome enqueued (if any is due) for
        `chain` in the same commit and return it, so a linear chain runs without a
        hand-off."""
        ...

    def record(self, execution_id: str, events: Sequence[NewEvent]) -> None:
        """Append events that decide nothing (a `step.started` mark)."""
        ...

    def heartbeat(self, jobs: Sequence[Job], lease_seconds: float) -> set[str]:
        """Extend the leases of `jobs`; returns the lease tokens of those whose lease
        is lost."""
        ...

    def release(self, jobs: Sequence[Job]) -> None:
        """Give leased jobs back to the queue at once (graceful shutdown)."""
        ...

    def on_finished(self, fn: FinishedCallback) -> None:
        """Call `fn` when an execution ends, as soon as this side learns of it."""
        ...

    def interrupt(self) -> None:
        """Wake every `lease` waiting in this process (shutdown)."""
        ...


class LocalCoordinator:
    """The coordinator over an Engine in this process.

    `shared` says that other processes write to the same store (a server, workers
    on `--db`): a snapshot then re-reads the log's tail, because the engine's cached
    state may lag behind commits made elsewhere. Wake-ups for work enqueued by other
    processes come from `Store.watch` when the backend can push, else from polling
    every `poll_seconds`.
    """

    def __init__(self, engine: Engine, *, shared: bool = False, poll_seconds: float = 1.0) -> None:
        self.engine = engine
        self.store = engine.store
        self.env: Mapping[str, str] = engine.env
        self.shared = shared
        self.poll_seconds = poll_seconds
        self._closed = False
        self._finished: list[FinishedCallback] = []
        self._unwatch: Callable[[], None] | None = None
        self._watch_lock = threading.Lock()
        self._change_listeners: list[Callable[[str, int], None]] = []
        # When this process's own appends were made, per execution, to recognise
        # their notifications (see _on_change).
        self._own: dict[str, deque[float]] = {}
        self._own_lock = threading.Lock()
        engine.add_listener(self._on_commit)
        if shared:
            self._watch()

    # -- wake-ups ------------------------------------------------------------------
    def _watch(self) -> None:
        with self._watch_lock:
            if self._unwatch is None:
                self._unwatch = self.store.watch(self._on_change)

    @property
    def pushes(self) -> bool:
        """Whether other processes' appends are pushed to us (else: poll)."""
        return self._unwatch is not None

    def add_change_listener(self, fn: Callable[[str, int], None]) -> None:
        """`fn(execution_id, jobs)` for appends made by other processes (pushed only)."""
        self._change_listeners.append(fn)

    def _on_change(self, execution_id: str, jobs: int) -> None:
        # The store announces our own appends too. Waking the waiters for those
        # would let another worker's long poll race the committing worker for the
        # job it is about to chain to (an extra hand-off per step); the commit
        # itself already woke whoever was needed. So a notice that matches one of
        # our appends of the last second is not a wake-up. (A notice that arrives
        # before its commit is recorded here wakes once, harmlessly.)
        if self._is_own(execution_id):
            return
        if jobs > 0:
            self.engine.work_available()
        for fn in self._change_listeners:
            try:
                fn(execution_id, jobs)
            except Exception:
                log.exception("change listener failed")

    def _is_own(self, execution_id: str) -> bool:
        now = time.monotonic()
        with self._own_lock:
            pending = self._own.get(execution_id)
            while pending and pending[0] < now - OWN_NOTICE_SECONDS:
                pending.popleft()
            if not pending:
                self._own.pop(execution_id, None)
                return False
            pending.popleft()
            return True

    def _on_commit(self, execution_id: str, written: Sequence[Event]) -> None:
        if self._unwatch is not None and written:
            with self._own_lock:
                self._own.setdefault(execution_id, deque()).append(time.monotonic())
        if any(e.type in ev.TERMINAL_EXECUTION for e in written):
            for fn in self._finished:
                fn(execution_id)

    def on_finished(self, fn: FinishedCallback) -> None:
        self._finished.append(fn)

    def interrupt(self) -> None:
        self._closed = True
        self.engine.work_available()

    def close(self) -> None:
        self.interrupt()
        with self._watch_lock:
            unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()

    # -- the protocol --------------------------------------------------------------
    def lease(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        pools: Sequence[str | None] | None,
        wait: float,
    ) -> list[Job]:
        deadline = time.monotonic() + wait
        # Without pushes, the poll bounds the wait; with them it is only a safety net.
        poll = self.poll_seconds * (5 if self.pushes else 1)
        engine = self.engine
        while True:
            seen = engine.generation
            jobs = self.store.lease_jobs(worker_id, limit, lease_seconds, pools)
            left = deadline - time.monotonic()
            if jobs or left <= 0 or self._closed:
                return jobs
            due = self.store.seconds_until_next_job(pools)
            if due == 0:
                continue  # taken by someone else between the two queries, or just due
            timeout = min(left, poll if due is None else min(due, poll))
            with engine.work:
                # `seen` is compared under the lock, so a commit between the lease
                # query and this wait cannot be missed.
                if engine.generation == seen and not self._closed:
                    engine.work.wait(timeout)

    def context(self, job: Job, *, chained: bool = False) -> JobContext | None:
        """`chained`: the job was enqueued by a commit this process just made, so
        the cached state is current and the log need not be re-read."""
        try:
            pb = self.engine.playbook_of(job.execution_id)
        except NotFound:
            return None
        snap = self.engine.snapshot(job.execution_id, job.step, refresh=self.shared and not chained)
        return JobContext(pb, snap)

    def complete(self, job: Job, events: Sequence[NewEvent], *, chain: Lessee | None) -> Job | None:
        (done,) = self.engine.commit_completions(job.execution_id, [(events, job, chain)])
        if done.error is not None:
            raise done.error
        return done.next

    def complete_many(
        self, outcomes: Sequence[tuple[Job, Sequence[NewEvent]]], *, chain: Lessee | None
    ) -> list[Job | Exception | None]:
        """`complete` for several jobs at once (a remote worker's batch): the
        outcomes of each execution are committed together. Answers, per outcome,
        the job leased for it, None, or its error (StaleLease when its lease was
        lost)."""
        by_execution: dict[str, list[int]] = {}
        for i, (job, _) in enumerate(outcomes):
            by_execution.setdefault(job.execution_id, []).append(i)
        answers: list[Job | Exception | None] = [None] * len(outcomes)
        for eid, idxs in by_execution.items():
            try:
                done = self.engine.commit_completions(
                    eid, [(outcomes[i][1], outcomes[i][0], chain) for i in idxs]
                )
            except Exception as e:  # the execution is gone, say
                for i in idxs:
                    answers[i] = e
                continue
            for i, c in zip(idxs, done, strict=True):
                if c.error is not None and not isinstance(c.error, Exception):
                    raise c.error  # an interrupt, not an outcome's fault
                answers[i] = c.error if c.error is not None else c.next
        return answers

    def record(self, execution_id: str, events: Sequence[NewEvent]) -> None:
        self.engine.commit(execution_id, events, decide_more=False)

    def heartbeat(self, jobs: Sequence[Job], lease_seconds: float) -> set[str]:
        lost: set[str] = set()
        for job in jobs:
            if not self.store.heartbeat(job, lease_seconds):
                lost.add(job.lease_token)
        return lost

    def release(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.store.release(job)
        if jobs:
            self.engine.work_available()
