"""Prometheus metrics of the step attempts this process runs (its worker slots).

A process-wide registry, because the attempts run in the worker pool, which knows no
server: `replaybook server --workers N` adds these families to its /metrics (see
server/observe.py); a remote worker's attempts are counted by the server it reports
to (`replaybook_steps_total`), their durations here in the worker's process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY: Final = CollectorRegistry()
STEP_ATTEMPTS: Final = Counter(
    "replaybook_step_attempts",
    "Step attempts run by this process's workers, by step type and outcome",
    ["type", "status"],
    registry=REGISTRY,
)
STEP_SECONDS: Final = Histogram(
    "replaybook_step_attempt_seconds",
    "Duration of step attempts run by this process's workers, by step type",
    ["type"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

# Outcome events, most telling first: the attempt's status is the first found.
_STATUS_OF: Final = (
    ("step.failed", "failed"),
    ("step.retrying", "retrying"),
    ("step.cancelled", "cancelled"),
    ("step.completed", "completed"),
    ("step.skipped", "skipped"),
)


def attempt_status(outcome: Sequence[Any]) -> tuple[str, str | None]:
    """(status, error) of an attempt from the events it produced; `done` when none
    of them settles the step (an iterator's expansion)."""
    types = {getattr(e, "type", None): e for e in outcome}
    for event_type, status in _STATUS_OF:
        event = types.get(event_type)
        if event is not None:
            error = event.data.get("error") if status in ("failed", "retrying") else None
            return status, _error_text(error)
    return "done", None


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error)


def observe_attempt(step_type: str, status: str, seconds: float) -> None:
    STEP_ATTEMPTS.labels(step_type, status).inc()
    STEP_SECONDS.labels(step_type).observe(seconds)
