"""Traces and step metrics of a real run (embedded runner, SQLite, python child
processes): an execution span with one child span per step attempt, exported to the
OpenTelemetry in-memory exporter; step attempt counters and duration histograms."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from replaybook.observability import tracing
from replaybook.observability.metrics import REGISTRY
from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.store.sqlite import SQLiteStore

PLAYBOOK = """metadata: {name: traced, path: tests/traced}
workflow:
  - step: start
    next: flaky
  - step: flaky
    type: python
    retry: {max_attempts: 3, initial_delay: 0}
    code: |
      import os
      def main():
          marker = os.environ.get("RB_TRACE_MARK", "")
          if marker and not os.path.exists(marker):
              open(marker, "w").close()
              raise RuntimeError("first attempt fails")
          return 7
    next: end
  - step: end
    result: {value: "{{ flaky }}"}
"""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.configure_tracing(spans)
    yield spans
    tracing.shutdown_tracing()


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[EmbeddedRunner]:
    store = SQLiteStore(tmp_path / "rb.db")
    with EmbeddedRunner(store, tmp_path / "data", concurrency=2) as r:
        yield r
    store.close()


def _spans(exporter: InMemorySpanExporter, until: Any) -> Any:
    """The finished spans once `until(spans)` holds: the last attempt's span ends just
    after the commit that ended the execution, which is what run() returned on."""
    deadline = time.monotonic() + 10
    spans = exporter.get_finished_spans()
    while not until(spans) and time.monotonic() < deadline:
        time.sleep(0.01)
        spans = exporter.get_finished_spans()
    return spans


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_an_execution_span_with_a_child_span_per_attempt(
    exporter: InMemorySpanExporter,
    runner: EmbeddedRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RB_TRACE_MARK", str(tmp_path / "mark"))
    path = tmp_path / "p.yaml"
    path.write_text(PLAYBOOK)
    pb, version = runner.register_file(path)
    failed_before = _sample("replaybook_step_attempts_total", type="python", status="retrying")
    outcome = runner.run(pb.path, version)
    assert outcome.status == "completed", outcome.as_dict()
    eid = outcome.execution_id

    spans = _spans(exporter, lambda spans: any(s.name == "step end" for s in spans))
    [execution] = [s for s in spans if s.name.startswith("execution")]
    assert execution.context.trace_id == int(eid, 16)
    assert execution.context.span_id == tracing.span_id_of(eid)
    assert execution.attributes["replaybook.status"] == "completed"
    assert execution.start_time < execution.end_time
    attempts = [s for s in spans if s.name.startswith("step")]
    flaky = sorted(
        (s for s in attempts if s.attributes["replaybook.step"] == "flaky"),
        key=lambda s: s.attributes["replaybook.attempt"],
    )
    assert [s.attributes["replaybook.attempt"] for s in flaky] == [1, 2]
    assert [s.attributes["replaybook.status"] for s in flaky] == ["retrying", "completed"]
    assert flaky[0].attributes["replaybook.step_type"] == "python"
    assert {s.attributes["replaybook.step"] for s in attempts} == {"start", "flaky", "end"}
    for span in attempts:
        assert span.context.trace_id == execution.context.trace_id
        assert span.parent is not None and span.parent.span_id == execution.context.span_id
        # The last attempt's span ends just after the commit that ended the execution.
        assert execution.start_time <= span.start_time <= span.end_time
    assert flaky[1].status.status_code != StatusCode.ERROR

    after = _sample("replaybook_step_attempts_total", type="python", status="retrying")
    assert after == failed_before + 1
    assert _sample("replaybook_step_attempt_seconds_count", type="python") >= 2


def test_a_failed_execution_is_an_error_span(
    exporter: InMemorySpanExporter, runner: EmbeddedRunner, tmp_path: Path
) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        PLAYBOOK.replace("tests/traced", "tests/failing").replace("return 7", "raise ValueError")
    )
    pb, version = runner.register_file(path)
    outcome = runner.run(pb.path, version)
    assert outcome.status == "failed"
    spans = _spans(
        exporter,
        lambda spans: any(s.attributes.get("replaybook.status") == "failed" for s in spans),
    )
    [execution] = [s for s in spans if s.name.startswith("execution")]
    assert execution.status.status_code == StatusCode.ERROR
    failed = [s for s in spans if s.attributes.get("replaybook.status") == "failed"]
    assert failed and all(s.status.status_code == StatusCode.ERROR for s in failed)


def test_tracing_stays_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.configure_tracing() is False
    assert tracing.TRACER is None
    assert tracing.start_attempt_span("e", "s", 1, None, 1) is None


def test_the_cli_exports_spans_over_otlp_when_an_endpoint_is_set(
    tmp_path: Path, httpserver: Any
) -> None:
    import os
    import subprocess
    import sys

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    httpserver.expect_request("/v1/traces", method="POST").respond_with_data("")
    path = tmp_path / "p.yaml"
    path.write_text(PLAYBOOK)
    env = dict(os.environ)
    env.update(
        REPLAYBOOK_DATA_DIR=str(tmp_path / "data"),
        REPLAYBOOK_DB=str(tmp_path / "rb.db"),
        OTEL_EXPORTER_OTLP_ENDPOINT=httpserver.url_for("/").rstrip("/"),
    )
    p = subprocess.run([sys.executable, "-m", "replaybook", "run", str(path), "--json"],
                       env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    names = []
    for request, _ in httpserver.log:
        sent = ExportTraceServiceRequest()
        sent.ParseFromString(request.get_data())
        names += [s.name for rs in sent.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert "execution tests/traced" in names
    assert {"step start", "step flaky", "step end"} <= set(names)
