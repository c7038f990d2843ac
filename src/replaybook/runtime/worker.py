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
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from replaybook.core import events as ev
from replaybook.errors import NotFound, StaleLease
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
        engine.add_listener(self._on_commit)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"rb-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        hb = threading.Thread(target=self._heartbeats, name="rb-heartbeat", daemon=True)
        hb.start()
        self._threads.append(hb)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._running_lock:
            for _, cancelled in self._running.values():
                cancelled.set()
        with self.engine.changed:
            self.engine.changed.notify_all()
        for t in self._threads:
            t.join(timeout)

    # -- loop ------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.store.lease_jobs(self.worker_id, 1, self.lease_seconds, self.pools)
            except Exception:
                log.exception("leasing failed")
                self._stop.wait(self.poll_seconds)
                continue
            if not jobs:
                self._wait_for_work()
                continue
            for job in jobs:
                self._run(job)

    def _wait_for_work(self) -> None:
        wait = self.store.seconds_until_next_job(self.pools)
        if wait == 0:
            return
        timeout = self.poll_seconds if wait is None else min(wait, self.poll_seconds)
        with self.engine.changed:
            if not self._stop.is_set():
                self.engine.changed.wait(timeout)

    def _run(self, job: Job) -> None:
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
        snap = self.engine.snapshot(eid)
        if snap is None:
            return
        step = pb.step(job.step)
        self.engine.commit(
            eid,
            [
                NewEvent(
                    ev.STEP_STARTED,
                    step=job.step,
                    visit=job.visit,
                    attempt=job.attempt,
                    data={"worker": self.worker_id},
                )
            ],
            decide_more=False,
        )
        jc = JobContext(
            execution_id=eid,
            workload=snap["workload"],
            results=snap["results"],
            execution=snap["execution"],
            env=self.engine.env,
            data_dir=self.data_dir,
            services=self.services,
            cancelled=cancelled,
        )
        outcome = self.executor.run(step, job, jc)
        self.engine.commit(eid, outcome, complete=job)

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
