"""What the running code is working on, for logs and traces: the execution, step,
attempt and item of the job this thread runs. Set by the worker around each job
(`job_scope`); read by the JSON log formatter and the tracer.

A context variable, not thread state passed around: it costs one set and one reset
per job, and code that logs needs no argument to say where it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class JobContext:
    execution_id: str
    step: str | None = None
    attempt: int | None = None
    index: int | None = None
    visit: int | None = None


class JobLike(Protocol):
    @property
    def execution_id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def index(self) -> int | None: ...
    @property
    def visit(self) -> int: ...


log = logging.getLogger("replaybook.job")

CURRENT: ContextVar[JobContext | None] = ContextVar("replaybook_job", default=None)


def current() -> JobContext | None:
    return CURRENT.get()


@contextmanager
def execution_scope(execution_id: str) -> Iterator[None]:
    """Logs inside name the execution (no step): starting, cancelling, resuming."""
    token = CURRENT.set(JobContext(execution_id))
    try:
        yield
    finally:
        CURRENT.reset(token)


@contextmanager
def job_scope(job: JobLike) -> Iterator[None]:
    """Logs and traces inside name this job's execution, step, attempt and item."""
    token = CURRENT.set(JobContext(job.execution_id, job.step, job.attempt, job.index, job.visit))
    start = time.perf_counter()
    try:
        yield
    finally:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job of step %s done in %.3fs", job.step, time.perf_counter() - start)
        CURRENT.reset(token)
