"""`/metrics` parses with the Prometheus client parser and moves as a run progresses:
executions by status, queue depth and lease age, step outcomes, step attempt
durations by type, worker count."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from replaybook.server.app import create_app

GATED = """metadata: {name: gated, path: tests/gated}
workflow:
  - step: start
    next: wait_gate
  - step: wait_gate
    type: python
    args: {gate: "{{ workload.gate }}"}
    code: |
      import os, time
      def main(gate):
          while not os.path.exists(gate):
              time.sleep(0.02)
          return "open"
    next: end
  - step: end
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(c: TestClient) -> Samples:
    r = c.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(str(tmp_path / "rb.db"), workers=1, data_dir=tmp_path / "data",
                     poll_seconds=0.05, scheduler=False)  # fmt: skip
    with TestClient(app) as c:
        yield c


def test_metrics_move_as_a_run_progresses(client: TestClient, tmp_path: Path) -> None:
    assert client.post("/api/catalog", json={"content": GATED}).status_code == 201
    before = scrape(client)
    assert value(before, "replaybook_executions", status="running") == 0
    python_before = value(before, "replaybook_step_attempt_seconds_count", type="python")

    gate = tmp_path / "gate"
    r = client.post("/api/executions", json={"path": "tests/gated", "payload": {"gate": str(gate)}})
    assert r.status_code == 201
    eid = r.json()["execution_id"]
    deadline = time.monotonic() + 30
    during = scrape(client)
    while value(during, "replaybook_queue_jobs", state="leased") < 1:
        assert time.monotonic() < deadline, "the gated step was never leased"
        time.sleep(0.02)
        during = scrape(client)
    assert value(during, "replaybook_executions", status="running") == 1
    assert value(during, "replaybook_lease_oldest_age_seconds") >= 0
    assert value(during, "replaybook_steps_total", status="completed") >= 1  # start

    gate.touch()
    done = client.get(f"/api/executions/{eid}", params={"wait": 30}).json()
    assert done["status"] == "completed"
    after = scrape(client)
    # The worker times an attempt until its job scope closes, just after the commit
    # that ended the execution (which is what the wait above returned on).
    while value(after, "replaybook_step_attempt_seconds_count", type="python") == python_before:
        assert time.monotonic() < deadline, "the python attempt was never timed"
        time.sleep(0.01)
        after = scrape(client)
    assert value(after, "replaybook_executions", status="running") == 0
    assert value(after, "replaybook_executions", status="completed") == 1
    assert value(after, "replaybook_queue_jobs", state="queued") == 0
    assert value(after, "replaybook_queue_jobs", state="leased") == 0
    assert value(after, "replaybook_executions_finished_total", status="completed") == 1
    assert value(after, "replaybook_steps_total", status="completed") >= 3
    assert value(after, "replaybook_step_attempt_seconds_count", type="python") == python_before + 1
    assert value(after, "replaybook_step_attempts_total", type="python", status="completed") >= 1
    assert ("replaybook_workers", ()) in after
