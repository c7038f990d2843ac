"""OpenTelemetry traces: one span per execution, with a child span per step attempt.

Off unless configured: `configure_tracing()` turns it on when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (OTLP over HTTP, the standard variables apply),
tests pass their own exporter. While off, the hooks cost one global check.

Executions span processes (a server, remote workers), so no process holds an
execution's span open. Instead its ids are derived from the execution id: the trace
id is the execution id (128 bits of hex; hashed when it is not), the execution
span's id a hash of it. Each step attempt is a child of that span wherever it runs;
the execution span itself is written when the execution ends (by the process whose
engine records the end), with its real start time. Backends put them together by id.

Needs the `otel` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger("replaybook.tracing")

TRACER: Tracer | None = None
_PROVIDER: Any = None
# (trace id, span id) the next span must take: the execution span's derived ids.
_FORCED: ContextVar[tuple[int, int] | None] = ContextVar("replaybook_span_ids", default=None)

FINISHED = {"execution.completed": "completed", "execution.failed": "failed",
            "execution.cancelled": "cancelled"}  # fmt: skip


def trace_id_of(execution_id: str) -> int:
    try:
        value = int(execution_id, 16)
        if len(execution_id) == 32 and value:
            return value
    except ValueError:
        pass
    return int.from_bytes(hashlib.sha256(execution_id.encode()).digest()[:16], "big") or 1


def span_id_of(execution_id: str) -> int:
    digest = hashlib.sha256(b"span:" + execution_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def configure_tracing(
    exporter: SpanExporter | None = None, *, service_name: str = "replaybook"
) -> bool:
    """Turn tracing on with `exporter`, or with OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
    (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. False when it stays off."""
    global TRACER, _PROVIDER
    if exporter is None and not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk is not "
                    "installed (pip install 'replaybook[otel]'): no traces")  # fmt: skip
        return False

    class _Ids(RandomIdGenerator):
        """Random ids, except for the span `_FORCED` names (an execution's)."""

        def generate_span_id(self) -> int:
            forced = _FORCED.get()
            return forced[1] if forced else super().generate_span_id()

        def generate_trace_id(self) -> int:
            forced = _FORCED.get()
            return forced[0] if forced else super().generate_trace_id()

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), id_generator=_Ids()
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if _PROVIDER is not None:
        _PROVIDER.shutdown()
    _PROVIDER = provider
    TRACER = provider.get_tracer("replaybook")
    return True


def shutdown_tracing() -> None:
    """Flush and turn tracing off."""
    global TRACER, _PROVIDER
    if _PROVIDER is not None:
        _PROVIDER.shutdown()
    TRACER, _PROVIDER = None, None


def _parent(execution_id: str) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    context = SpanContext(
        trace_id_of(execution_id),
        span_id_of(execution_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def start_attempt_span(
    execution_id: str, step: str, attempt: int, index: int | None, visit: int
) -> Any:
    """A step attempt's span (None when tracing is off); ended by end_attempt_span."""
    tracer = TRACER
    if tracer is None:
        return None
    attributes: dict[str, Any] = {
        "replaybook.execution_id": execution_id,
        "replaybook.step": step,
        "replaybook.attempt": attempt,
        "replaybook.visit": visit,
    }
    if index is not None:
        attributes["replaybook.item_index"] = index
    name = f"step {step}" + (f"[{index}]" if index is not None else "")
    return tracer.start_span(name, context=_parent(execution_id), attributes=attributes)


def end_attempt_span(
    span: Any, step_type: str | None, status: str | None, error: str | None
) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("replaybook.step_type", step_type or "router")
    if status is not None:
        span.set_attribute("replaybook.status", status)
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR, error or "step failed"))
    span.end()


def execution_finished(execution_id: str, status: str, info: Any) -> None:
    """Write the execution's span (its derived ids, its real start time)."""
    tracer = TRACER
    if tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    start = _nanos(info.created_at) if info is not None else None
    attributes = {"replaybook.execution_id": execution_id, "replaybook.status": status}
    if info is not None:
        attributes["replaybook.playbook"] = info.playbook_path
        attributes["replaybook.playbook_version"] = info.playbook_version
        if info.parent_id:
            attributes["replaybook.parent_execution_id"] = info.parent_id
    name = f"execution {info.playbook_path if info is not None else execution_id}"
    token = _FORCED.set((trace_id_of(execution_id), span_id_of(execution_id)))
    try:
        from opentelemetry import context as otel_context

        span = tracer.start_span(
            name, context=otel_context.Context(), start_time=start, attributes=attributes
        )
    finally:
        _FORCED.reset(token)
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR, "execution failed"))
    span.end()


def _nanos(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1_000_000_000)


def engine_listener(engine: Any) -> Any:
    """A listener for Engine.add_listener writing execution spans as executions end."""

    def on_commit(execution_id: str, written: Sequence[Any]) -> None:
        if TRACER is None:
            return
        try:
            for event in written:
                status = FINISHED.get(event.type)
                if status is not None:
                    info = engine.store.get_execution(execution_id)
                    execution_finished(execution_id, status, info)
        except Exception:  # tracing never breaks a commit
            log.exception("cannot write the span of execution %s", execution_id)

    return on_commit
