"""A pool of worker threads leasing jobs through a Coordinator and running them.

The coordinator is the engine in this process (`LocalCoordinator`) or a server
(`replaybook.client.RemoteCoordinator`); the pool does not know which. One
dispatcher thread leases for the whole pool, waiting inside `Coordinator.lease` for
work (a condition notified by commits, store pushes, or the server's long poll), and
on its own condition for a free slot. No fixed sleeps.

Shutdown: `stop()` cancels running attempts (their outcome is still recorded);
`drain()` leases nothing more and lets running jobs finish (SIGTERM).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from replaybook.core import events as ev
from replaybook.errors import ReplaybookError, StaleLease
from replaybook.observability.context import job_scope, record_outcome
from replaybook.playbook.load import task_step
from replaybook.playbook.model import Playbook, Step
from replaybook.runtime.coordinator import Coordinator, LocalCoordinator
from replaybook.runtime.engine import Engine
from replaybook.runtime.executor import JobContext, StepExecutor
from replaybook.store.base import Job, Lessee, NewEvent

log = logging.getLogger("replaybook.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerPool:
    def __init__(
        self,
        coordinator: Coordinator | Engine,
        *,
        concurrency: int = 16,
        data_dir: Path,
        services: Mapping[str, Any] | None = None,
        pools: Sequence[str | None] | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        worker_id: str | None = None,
        mark_after: float = 0.1,
    ) -> None:
        self.coordinator: Coordinator = (
            LocalCoordinator(coordinator, poll_seconds=poll_seconds)
            if isinstance(coordinator, Engine)
            else coordinator
        )
        self.concurrency = concurrency
        self.data_dir = data_dir
        self.services = dict(services or {})
        self.pools = None if pools is None else tuple(pools)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or new_worker_id()
        self.lessee = Lessee(self.worker_id, lease_seconds, self.pools)
        self.executor = StepExecutor()
        self._stop = threading.Event()  # lease nothing more
        self._cancel = threading.Event()  # and cancel what runs
        self._threads: list[threading.Thread] = []
        # Keyed by lease token: a job id can come back (SQLite reuses the ids of
        # deleted rows) while an attempt of the old job is still winding down.
        self._running: dict[str, tuple[Job, threading.Event]] = {}
        self._running_lock = threading.Lock()
        self._slot_freed = threading.Condition(self._running_lock)
        self._inflight = 0
        self.mark_after = mark_after
        self._marks: dict[str, tuple[float, str, NewEvent]] = {}
        self._marks_lock = threading.Lock()
        self._tasks: dict[tuple[int, str], Step] = {}
        self._slots: ThreadPoolExecutor | None = None
        self.coordinator.on_finished(self._on_finished)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        # More threads than slots: a parent waiting for a child gives its slot up
        # (release_slot) while its thread stays blocked.
        self._slots = ThreadPoolExecutor(self.concurrency + 64, thread_name_prefix="rb-worker")
        threads = (
            (self._dispatch, "rb-dispatch"),
            (self._heartbeats, "rb-heartbeat"),
            (self._marker, "rb-marker"),
        )
        for target, name in threads:
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop now: running attempts are cancelled (and record that outcome)."""
        self._cancel.set()
        with self._running_lock:
            for _, cancelled in self._running.values():
                cancelled.set()
        self._shutdown(timeout)

    def drain(self, timeout: float | None = None) -> None:
        """Stop leasing, let running jobs finish and report, then stop."""
        self._shutdown(timeout)

    def _shutdown(self, timeout: float | None) -> None:
        self._stop.set()
        self.coordinator.interrupt()
        with self._running_lock:
            self._slot_freed.notify_all()
        others = self._threads[1:]
        if self._threads:
            self._threads[0].join(timeout)  # the dispatcher
        if self._slots is not None:
            self._slots.shutdown(wait=True, cancel_futures=True)
        self._cancel.set()  # the heartbeat and marker threads end with the jobs
        for t in others:
            t.join(timeout)

    def running(self) -> int:
        with self._running_lock:
            return self._inflight

    # -- loop ------------------------------------------------------------------
    def _dispatch(self) -> None:
        """One thread leases for the whole pool (one round trip per wake-up, instead
        of every idle thread racing for the queue) and hands jobs to the thread
        pool, never more than there are free slots."""
        while not self._stop.is_set():
            with self._running_lock:
                free = self.concurrency - self._inflight
                if free <= 0:
                    self._slot_freed.wait(self.poll_seconds)
                    continue
            try:
                jobs = self.coordinator.lease(
                    self.worker_id, free, self.lease_seconds, self.pools, self.poll_seconds * 10
                )
            except ReplaybookError as e:  # the store or server is away: said, not dumped
                log.warning("leasing failed: %s", e)
                self._stop.wait(self.poll_seconds)
                continue
            except Exception:
                log.exception("leasing failed")
                self._stop.wait(self.poll_seconds)
                continue
            if self._stop.is_set() and jobs:
                self.coordinator.release(jobs)
                return
            self._dispatch_jobs(jobs)

    def release_slot(self) -> None:
        with self._running_lock:
            self._inflight -= 1
            self._slot_freed.notify_all()

    def take_slot(self) -> None:
        with self._running_lock:
            self._inflight += 1

    def _dispatch_jobs(self, jobs: list[Job]) -> None:
        assert self._slots is not None
        for job in jobs:
            with self._running_lock:
                self._inflight += 1
            self._slots.submit(self._run, job)

    def _run(self, job: Job | None) -> None:
        """Run a job, then keep this thread's slot for the next one when the job's
        commit leased one for this pool: in a linear chain the next step runs here
        without a hand-off through the dispatcher."""
        while job is not None:
            job = self._run_one(job)
            if job is not None and self._stop.is_set():
                self.coordinator.release([job])
                job = None
        with self._running_lock:
            self._inflight -= 1
            self._slot_freed.notify_all()

    def _run_one(self, job: Job) -> Job | None:
        cancelled = threading.Event()
        with self._running_lock:
            self._running[job.lease_token] = (job, cancelled)
        try:
            with job_scope(job):  # logs and traces inside name the job
                return self._execute(job, cancelled)
        except StaleLease:
            log.info("job %s lost its lease; its outcome is discarded", job.id)
        except ReplaybookError:
            # The store or server is away, say: the lease expires and the job is
            # taken again once they are back.
            log.exception("job %s of %s failed inside the engine", job.id, job.execution_id)
        except Exception as exc:
            log.exception("job %s of %s failed inside the engine", job.id, job.execution_id)
            self._record_engine_failure(job, exc)
        finally:
            with self._running_lock:
                self._running.pop(job.lease_token, None)
        return None

    def _execute(self, job: Job, cancelled: threading.Event) -> Job | None:
        eid = job.execution_id
        got = self.coordinator.context(job)
        if got is None or got.snapshot is None:
            return None
        pb, snap = got.playbook, got.snapshot
        if self._cancel.is_set():
            cancelled.set()
        step = pb.step(job.step)
        phase = None
        names: dict[str, Any] = {}
        if step.type == "iterator":
            phase = "finish" if job.payload.get("phase") == "finish" else "expand"
            if job.index is not None:
                names = self.executor.item_names(step, job)
                step = self._task_step(pb, step)
                phase = None
        if phase is None and step.type is not None:  # routers have no attempt to mark
            started = NewEvent(
                ev.STEP_STARTED,
                step=job.step,
                visit=job.visit,
                index=job.index,
                attempt=job.attempt,
                data={"worker": self.worker_id},
            )
            with self._marks_lock:
                self._marks[job.lease_token] = (time.monotonic() + self.mark_after, eid, started)
        jc = JobContext(
            execution_id=eid,
            workload=snap["workload"],
            results=snap["results"],
            execution=snap["execution"],
            env=self.coordinator.env,
            data_dir=self.data_dir,
            services=self.services,
            cancelled=cancelled,
            names=names,
            secret_steps=self.executor.secret_steps(pb),
        )
        if phase == "expand":
            outcome = self.executor.expand(step, job, jc)
        elif phase == "finish":
            it = snap["iteration"] or {"results": [], "failed": None}
            outcome = self.executor.finish(step, job, jc, it["results"], it["failed"])
        else:
            outcome = self.executor.run(step, job, jc)
        record_outcome(step.type, outcome)  # metrics and the attempt's span
        with self._marks_lock:  # held by the marker while it writes, so no overtaking
            mark = self._marks.pop(job.lease_token, None)
        if mark is not None:
            outcome.insert(0, mark[2])
        chain = None if self._stop.is_set() else self.lessee
        return self.coordinator.complete(job, outcome, chain=chain)

    def _record_engine_failure(self, job: Job, exc: Exception) -> None:
        """Not one of our errors: a bug, or an outcome the engine cannot take. Taking
        the job again would fail again, each time its lease expires, and the
        execution would never end: record the attempt as failed instead."""
        message = f"the engine could not record this attempt: {type(exc).__name__}: {exc}"
        failed = NewEvent(
            ev.STEP_FAILED,
            step=job.step,
            visit=job.visit,
            index=job.index,
            attempt=job.attempt,
            data={
                "error": ev.error_object(job.step, message, "internal", job.attempt),
                "routes": [],
            },
        )
        try:
            self.coordinator.complete(job, [failed], chain=None)
        except Exception:
            log.exception("could not record the failure of job %s; its lease will expire", job.id)

    def _task_step(self, pb: Playbook, step: Step) -> Step:
        key = (id(pb), step.name)
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = task_step(step)
        return task

    # -- started marks -----------------------------------------------------------
    def _marker(self) -> None:
        """Write `step.started` for attempts still running after `mark_after`
        seconds. A quick attempt writes its mark in the same transaction as its
        outcome instead, which saves a commit on the hot path of short steps."""
        while not self._cancel.wait(self.mark_after / 2):
            now = time.monotonic()
            with self._marks_lock:
                due = [(k, m) for k, m in self._marks.items() if m[0] <= now]
                for k, (_, eid, started) in due:
                    del self._marks[k]
                    try:
                        self.coordinator.record(eid, [started])
                    except Exception:
                        log.exception("could not record the start of job %s", k)

    # -- leases and cancellation ----------------------------------------------
    def _heartbeats(self) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while not self._cancel.wait(interval):
            with self._running_lock:
                running = dict(self._running)
            if not running:
                continue
            try:
                lost = self.coordinator.heartbeat(
                    [j for j, _ in running.values()], self.lease_seconds
                )
            except Exception:
                log.exception("heartbeat failed")
                continue
            for token in lost:
                running[token][1].set()

    def _on_finished(self, execution_id: str) -> None:
        with self._running_lock:
            for job, cancelled in self._running.values():
                if job.execution_id == execution_id:
                    cancelled.set()
