"""Iterators and sub-playbooks on the embedded runner: ordering, concurrency of
children, resume of unfinished items only, and cancel reaching running children."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replaybook.core import events as ev
from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.store.sqlite import SQLiteStore


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[EmbeddedRunner]:
    store = SQLiteStore(tmp_path / "rb.db")
    with EmbeddedRunner(store, tmp_path / "data", concurrency=8) as r:
        yield r
    store.close()


def register(runner: EmbeddedRunner, folder: Path, name: str, text: str) -> tuple[str, int]:
    path = folder / name
    path.write_text(text)
    pb, version = runner.register_file(path)
    return pb.path, version


def events_of(runner: EmbeddedRunner, execution_id: str) -> list[Any]:
    return runner.store.read_events(execution_id)


def item_events(runner: EmbeddedRunner, execution_id: str, type_: str, step: str) -> list[int]:
    return [
        e.index
        for e in events_of(runner, execution_id)
        if e.type == type_ and e.step == step and e.index is not None
    ]


def test_items_finishing_out_of_order_keep_collection_order(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    path, version = register(
        runner,
        tmp_path,
        "ooo.yaml",
        """metadata: {name: ooo, path: t/ooo}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: [0, 1, 2, 3]
    element: n
    mode: async
    concurrency: 4
    task:
      type: python
      args: {n: "{{ n }}"}
      code: |
        import time
        def main(n):
            time.sleep(0.15 * (3 - n))
            return n * 10
    next: end
  - step: end
    result: "{{ each }}"
""",
    )
    out = runner.run(path, version)
    assert out.status == "completed", out.error
    assert out.result == [0, 10, 20, 30]
    finished = item_events(runner, out.execution_id, ev.STEP_COMPLETED, "each")
    assert finished == [3, 2, 1, 0]  # the last item finished first


CHILD_SLEEPER = """metadata: {name: sleeper, path: t/sleeper}
workload: {n: 0, log: ""}
workflow:
  - step: start
    next: work
  - step: work
    type: python
    args: {n: "{{ workload.n }}", log: "{{ workload.log }}"}
    code: |
      import json, time
      def main(n, log):
          started = time.time()
          time.sleep(0.4)
          with open(log, "a") as f:
              f.write(json.dumps([n, started, time.time()]) + "\\n")
          return {"n": n}
    next: end
  - step: end
    result: "{{ work }}"
"""


def test_async_iterator_of_three_subplaybooks_runs_two_at_a_time(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    register(runner, tmp_path, "sleeper.yaml", CHILD_SLEEPER)
    log = tmp_path / "children.log"
    path, version = register(
        runner,
        tmp_path,
        "parent.yaml",
        f"""metadata: {{name: parent, path: t/parent}}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: [1, 2, 3]
    element: n
    mode: async
    concurrency: 2
    task:
      type: playbook
      path: t/sleeper
      args: {{n: "{{{{ n }}}}", log: "{log}"}}
    next: end
  - step: end
    result: "{{{{ each }}}}"
""",
    )
    out = runner.run(path, version)
    assert out.status == "completed", out.error
    assert out.result == [{"n": 1}, {"n": 2}, {"n": 3}]
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(n for n, _, _ in spans) == [1, 2, 3]
    # At most two children ran at any moment, and two did overlap.
    points = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans])
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    children = runner.store.list_executions(parent_id=out.execution_id)
    assert len(children) == 3
    assert {c.status for c in children} == {"completed"}
    assert {c.parent_step for c in children} == {"each"}


def resumable(tmp_path: Path, mode: str) -> str:
    return f"""metadata: {{name: resumable, path: t/resumable}}
workload:
  marker: "{tmp_path / "broken"}"
  log: "{tmp_path / "ran.log"}"
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: [0, 1, 2, 3, 4, 5]
    element: n
    mode: {mode}
    concurrency: 3
    task:
      type: python
      args: {{n: "{{{{ n }}}}", marker: "{{{{ workload.marker }}}}", log: "{{{{ workload.log }}}}"}}
      code: |
        import os, time
        def main(n, marker, log):
            with open(log, "a") as f:
                f.write(f"{{n}}\\n")
            if n == 2 and os.path.exists(marker):
                raise RuntimeError("item 2 is broken")
            if n > 2:
                time.sleep(0.05)
            return n * n
    next: after
  - step: after
    type: python
    args: {{squares: "{{{{ each }}}}", log: "{{{{ workload.log }}}}"}}
    code: |
      def main(squares, log):
          with open(log, "a") as f:
              f.write("after\\n")
          return sum(squares)
    next: end
  - step: end
    result: {{squares: "{{{{ each }}}}", total: "{{{{ after }}}}"}}
"""


@pytest.mark.parametrize("mode", ["sequential", "async"])
def test_resume_after_a_failed_item_reruns_only_unfinished_items(
    runner: EmbeddedRunner, tmp_path: Path, mode: str
) -> None:
    (tmp_path / "broken").write_text("x")
    path, version = register(runner, tmp_path, "resumable.yaml", resumable(tmp_path, mode))
    out = runner.run(path, version)
    assert out.status == "failed"
    assert out.error is not None and out.error["step"] == "each"
    first_run = (tmp_path / "ran.log").read_text().split()
    assert "after" not in first_run
    done_before = set(item_events(runner, out.execution_id, ev.STEP_COMPLETED, "each"))
    assert 2 not in done_before
    if mode == "sequential":
        assert first_run == ["0", "1", "2"]  # fail-fast: nothing after the failure

    (tmp_path / "broken").unlink()
    runner.engine.resume(out.execution_id)
    again = runner.wait(out.execution_id, timeout=60)
    assert again.status == "completed", again.error
    assert again.result == {"squares": [0, 1, 4, 9, 16, 25], "total": 55}

    ran = (tmp_path / "ran.log").read_text().split()
    second_run = ran[len(first_run) :]
    # Only the failed item and the ones that never ran, then what follows.
    expected = {str(n) for n in range(6)} - {str(n) for n in done_before}
    assert sorted(second_run[:-1]) == sorted(expected)
    assert second_run[-1] == "after"
    completed = item_events(runner, out.execution_id, ev.STEP_COMPLETED, "each")
    assert sorted(completed) == list(range(6))  # every item recorded done exactly once
    assert again.steps["each"]["visits"] == 1


def test_resume_from_the_iterator_reruns_every_item(runner: EmbeddedRunner, tmp_path: Path) -> None:
    (tmp_path / "broken").write_text("x")
    path, version = register(runner, tmp_path, "resumable.yaml", resumable(tmp_path, "sequential"))
    out = runner.run(path, version)
    assert out.status == "failed"
    (tmp_path / "broken").unlink()
    runner.engine.resume(out.execution_id, from_step="each")
    again = runner.wait(out.execution_id, timeout=60)
    assert again.status == "completed", again.error
    ran = (tmp_path / "ran.log").read_text().split()
    assert ran == ["0", "1", "2", "0", "1", "2", "3", "4", "5", "after"]
    assert again.steps["each"]["visits"] == 2


def test_cancel_of_a_parent_cancels_its_running_child(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    started = tmp_path / "child-started"
    register(
        runner,
        tmp_path,
        "slow.yaml",
        f"""metadata: {{name: slow, path: t/slow}}
workflow:
  - step: start
    next: wait
  - step: wait
    type: python
    code: |
      import time
      def main():
          open({str(started)!r}, "w").close()
          time.sleep(60)
    next: end
  - step: end
""",
    )
    path, version = register(
        runner,
        tmp_path,
        "parent.yaml",
        """metadata: {name: parent, path: t/cancel_parent}
workflow:
  - step: start
    next: child
  - step: child
    type: playbook
    path: t/slow
    next: end
  - step: end
""",
    )
    eid = runner.start(path, version)
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    (child,) = runner.store.list_executions(parent_id=eid)
    assert child.status == "running"

    t0 = time.monotonic()
    assert runner.engine.cancel(eid)
    out = runner.wait(eid, timeout=30)
    child_out = runner.wait(child.id, timeout=30)
    assert time.monotonic() - t0 < 10  # the 60 s sleep was interrupted
    assert out.status == "cancelled"
    assert child_out.status == "cancelled"
    child_events = [e.type for e in events_of(runner, child.id)]
    assert ev.EXECUTION_CANCELLED in child_events
    assert ev.STEP_COMPLETED not in [
        e.type for e in events_of(runner, child.id) if e.step == "wait"
    ]
    # Nothing is left in the queue for either execution.
    assert runner.store.seconds_until_next_job() is None


def test_resume_after_cancel_runs_only_items_that_did_not_finish(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    log = tmp_path / "ran.log"
    path, version = register(
        runner,
        tmp_path,
        "gated.yaml",
        f"""metadata: {{name: gated, path: t/gated}}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: [0, 1, 2, 3]
    element: n
    task:
      type: python
      args: {{n: "{{{{ n }}}}"}}
      code: |
        import os, time
        def main(n):
            with open({str(log)!r}, "a") as f:
                f.write(f"{{n}}\\n")
            while n == 2 and not os.path.exists({str(gate)!r}):
                time.sleep(0.02)
            return n
    next: end
  - step: end
    result: "{{{{ each }}}}"
""",
    )
    eid = runner.start(path, version)
    deadline = time.monotonic() + 30
    while "2" not in (log.read_text().split() if log.exists() else []):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runner.engine.cancel(eid)
    assert runner.wait(eid, timeout=30).status == "cancelled"
    gate.write_text("open")
    runner.engine.resume(eid)
    out = runner.wait(eid, timeout=60)
    assert out.status == "completed", out.error
    assert out.result == [0, 1, 2, 3]
    assert log.read_text().split() == ["0", "1", "2", "2", "3"]


def test_three_thousand_python_items_complete_in_order(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    """3,000 python items finish, in order, well within a minute."""
    path, version = register(
        runner,
        tmp_path,
        "many.yaml",
        """metadata: {name: many, path: t/many}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: "{{ range(3000) | list }}"
    element: n
    mode: async
    concurrency: 8
    task:
      type: python
      args: {n: "{{ n }}"}
      code: |
        def main(n):
            return {"n": n}
    next: end
  - step: end
    result: "{{ [each | length, each[2999]] }}"
""",
    )
    t0 = time.monotonic()
    out = runner.run(path, version)
    assert out.status == "completed", out.error
    assert out.result == [3000, {"n": 2999}]
    assert time.monotonic() - t0 < 60


def test_a_running_execution_keeps_the_version_it_started_with(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"

    def version_text(label: str) -> str:
        return f"""metadata: {{name: versioned, path: t/versioned}}
workflow:
  - step: start
    next: wait
  - step: wait
    type: python
    code: |
      import os, time
      def main():
          while not os.path.exists({str(gate)!r}):
              time.sleep(0.02)
          return "{label}"
    next: end
  - step: end
    result: "{{{{ wait }}}}"
"""

    path, v1 = register(runner, tmp_path, "v.yaml", version_text("one"))
    eid = runner.start(path, v1)
    _, v2 = register(runner, tmp_path, "v.yaml", version_text("two"))
    assert v2 == v1 + 1
    gate.write_text("go")
    assert runner.wait(eid, timeout=30).result == "one"
    later = runner.run(path, v2)
    assert later.result == "two"
    info = runner.store.get_execution(eid)
    assert info is not None and info.playbook_version == v1
