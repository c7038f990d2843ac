"""A pool of worker threads leasing jobs from the store and running them.

Wake-ups: a worker waits on the engine's condition (notified after every commit in
this process) with a timeout equal to the time until the next delayed job, and polls
at most every `poll_seconds` for work written by other processes. No fixed sleeps.
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
from replaybook.errors import NotFound, StaleLease
from replaybook.playbook.load import task_step
from replaybook.playbook.model import Playbook, Step
from replaybook.runtime.engine import Engine
from replaybook.runtime.executor import JobContext, StepExecutor
from replaybook.store.base import Event, Job, NewEvent

log = logging.getLogger("replaybook.worker")


class WorkerPool:
    def __init__(
        self,
        engine: Engine,
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
        self.engine = engine
        self.store = engine.store
        self.concurrency = concurrency
        self.data_dir = data_dir
        self.services = dict(services or {})
        self.pools = pools
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.executor = StepExecutor()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, tuple[Job, threading.Event]] = {}
        self._running_lock = threading.Lock()
        self._inflight = 0
        self.mark_after = mark_after
        self._marks: dict[int, tuple[float, str, NewEvent]] = {}
        self._marks_lock = threading.Lock()
        self._tasks: dict[tuple[int, str], Step] = {}
        self._slots: ThreadPoolExecutor | None = None
        engine.add_listener(self._on_commit)

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
        self._stop.set()
        with self._running_lock:
            for _, cancelled in self._running.values():
                cancelled.set()
        self.engine.work_available()
        for t in self._threads:
            t.join(timeout)
        if self._slots is not None:
            self._slots.shutdown(wait=True, cancel_futures=True)

    # -- loop ------------------------------------------------------------------
    def _dispatch(self) -> None:
        """One thread leases for the whole pool (one store round trip per wake-up,
        instead of every idle thread racing for the store) and hands jobs to the
        thread pool, never more than there are free slots."""
        assert self._slots is not None
        while not self._stop.is_set():
            free = self.concurrency - self._inflight
            seen = self.engine.generation
            if free <= 0:
                self._wait(seen, self.poll_seconds)
                continue
            try:
                jobs = self.store.lease_jobs(self.worker_id, free, self.lease_seconds, self.pools)
            except Exception:
                log.exception("leasing failed")
                self._stop.wait(self.poll_seconds)
                continue
            if len(jobs) < free:
                # The queue had no more due work: wait for a commit that enqueues
                # some, the next delayed job, or the poll for other processes.
                self._dispatch_jobs(jobs)
                self._wait_for_work(seen)
                continue
            self._dispatch_jobs(jobs)

    def release_slot(self) -> None:
        with self._running_lock:
            self._inflight -= 1
        self.engine.work_available()

    def take_slot(self) -> None:
        with self._running_lock:
            self._inflight += 1

    def _dispatch_jobs(self, jobs: list[Job]) -> None:
        assert self._slots is not None
        for job in jobs:
            with self._running_lock:
                self._inflight += 1
            self._slots.submit(self._run, job)

    def _wait_for_work(self, seen: int) -> None:
        wait = self.store.seconds_until_next_job(self.pools)
        if wait == 0:
            return
        self._wait(seen, self.poll_seconds if wait is None else min(wait, self.poll_seconds))

    def _wait(self, seen: int, timeout: float) -> None:
        with self.engine.work:
            if self.engine.generation == seen and not self._stop.is_set():
                self.engine.work.wait(timeout)

    def _run(self, job: Job | None) -> None:
        """Run a job, then keep this thread's slot for the next one when the job
        enqueued work: in a linear chain the next step runs here without a
        hand-off through the dispatcher."""
        while job is not None:
            self._run_one(job)
            job = None
            if not self._stop.is_set() and getattr(self.engine.last_commit_jobs, "n", 0) == 1:
                self.engine.last_commit_jobs.n = 0
                leased = self.store.lease_jobs(self.worker_id, 1, self.lease_seconds, self.pools)
                job = leased[0] if leased else None
                if job is None:  # e.g. a delayed retry: the dispatcher must time it
                    self.engine.work_available()
        with self._running_lock:
            self._inflight -= 1
            was_full = self._inflight == self.concurrency - 1
        if was_full:
            self.engine.work_available()

    def _run_one(self, job: Job) -> None:
        self.engine.last_commit_jobs.n = 0
        cancelled = threading.Event()
        with self._running_lock:
            self._running[job.id] = (job, cancelled)
        try:
            self._execute(job, cancelled)
        except StaleLease:
            log.info("job %s lost its lease; its outcome is discarded", job.id)
        except Exception:
            log.exception("job %s of %s failed inside the engine", job.id, job.execution_id)
        finally:
            with self._running_lock:
                self._running.pop(job.id, None)

    def _execute(self, job: Job, cancelled: threading.Event) -> None:
        eid = job.execution_id
        try:
            pb = self.engine.playbook_of(eid)
        except NotFound:
            return
        snap = self.engine.snapshot(eid, job.step)
        if snap is None:
            return
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
                self._marks[job.id] = (time.monotonic() + self.mark_after, eid, started)
        jc = JobContext(
            execution_id=eid,
            workload=snap["workload"],
            results=snap["results"],
            execution=snap["execution"],
            env=self.engine.env,
            data_dir=self.data_dir,
            services=self.services,
            cancelled=cancelled,
            names=names,
        )
        if phase == "expand":
            outcome = self.executor.expand(step, job, jc)
        elif phase == "finish":
            it = snap["iteration"] or {"results": [], "failed": None}
            outcome = self.executor.finish(step, job, jc, it["results"], it["failed"])
        else:
            outcome = self.executor.run(step, job, jc)
        with self._marks_lock:  # held by the marker while it writes, so no overtaking
            mark = self._marks.pop(job.id, None)
        if mark is not None:
            outcome.insert(0, mark[2])
        self.engine.commit(eid, outcome, complete=job, wake_above=1)

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
        while not self._stop.wait(self.mark_after / 2):
            now = time.monotonic()
            with self._marks_lock:
                due = [(k, m) for k, m in self._marks.items() if m[0] <= now]
                for k, (_, eid, started) in due:
                    del self._marks[k]
                    try:
                        self.engine.commit(eid, [started], decide_more=False)
                    except Exception:
                        log.exception("could not record the start of job %s", k)

    # -- leases and cancellation ----------------------------------------------
    def _heartbeats(self) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while not self._stop.wait(interval):
            with self._running_lock:
                running = list(self._running.values())
            for job, cancelled in running:
                try:
                    if not self.store.heartbeat(job, self.lease_seconds):
                        cancelled.set()
                except Exception:
                    log.exception("heartbeat failed for job %s", job.id)

    def _on_commit(self, execution_id: str, written: Sequence[Event]) -> None:
        if not any(e.type in ev.TERMINAL_EXECUTION for e in written):
            return
        with self._running_lock:
            for job, cancelled in self._running.values():
                if job.execution_id == execution_id:
                    cancelled.set()
