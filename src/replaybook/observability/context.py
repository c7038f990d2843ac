"""What the running code is working on, for logs and traces: the execution, step,
attempt and item of the job this thread runs. Set by the worker around each job
(`job_scope`); read by the JSON log formatter and the tracer.

A context variable, not thread state passed around: it costs one set and one reset
per job, and code that logs needs no argument to say where it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol


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


class Attempt:
    """What the worker learns while running a job: its step type and outcome."""

    __slots__ = ("error", "recorded", "status", "step_type")

    def __init__(self) -> None:
        self.recorded = False
        self.step_type: str | None = None
        self.status: str | None = None
        self.error: str | None = None


ATTEMPT: ContextVar[Attempt | None] = ContextVar("replaybook_attempt", default=None)


def record_outcome(step_type: str | None, outcome: Sequence[Any]) -> None:
    """Called by the worker with the events an attempt produced (for metrics and the
    attempt's span)."""
    attempt = ATTEMPT.get()
    if attempt is not None:
        from replaybook.observability.metrics import attempt_status

        attempt.recorded = True
        attempt.step_type = step_type
        attempt.status, attempt.error = attempt_status(outcome)


@contextmanager
def job_scope(job: JobLike) -> Iterator[None]:
    """Logs, metrics and traces inside name this job's execution, step, attempt and
    item. The span is only made when tracing is on (tracing.TRACER)."""
    from replaybook.observability import tracing
    from replaybook.observability.metrics import observe_attempt

    token = CURRENT.set(JobContext(job.execution_id, job.step, job.attempt, job.index, job.visit))
    attempt = Attempt()
    attempt_token = ATTEMPT.set(attempt)
    span = None
    if tracing.TRACER is not None:
        span = tracing.start_attempt_span(
            job.execution_id, job.step, job.attempt, job.index, job.visit
        )
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        if attempt.recorded:
            observe_attempt(attempt.step_type or "router", attempt.status or "done", seconds)
        if span is not None:
            tracing.end_attempt_span(span, attempt.step_type, attempt.status, attempt.error)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job of step %s done in %.3fs", job.step, seconds)
        ATTEMPT.reset(attempt_token)
        CURRENT.reset(token)
