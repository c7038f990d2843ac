"""Outcomes the engine cannot store must never leave an execution running for ever:
text that no UTF-8 can hold is repaired where it enters, and an outcome the engine
still fails on (a bug) is recorded as the attempt's failure instead of being retried
each time its lease expires."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replaybook.actions.jsonsafe import clean_text, not_json, to_json_value
from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.runtime.engine import Engine
from replaybook.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(60)  # a hang is the bug these tests guard against

SURROGATE = """
metadata: {name: surro, path: tests/surro}
workflow:
  - step: start
    next: make
  - step: make
    type: python
    code: |
      def main():
          s = "ok" + chr(0xD800) + "end"
          return {"s": s, chr(0xDC00): [s]}
    next: end
  - step: end
    result: "{{ make.s }}"
"""

PLAIN = """
metadata: {name: plain, path: tests/plain}
workflow:
  - step: start
    next: work
  - step: work
    type: python
    code: |
      def main():
          return "poison"
    next: end
  - step: end
"""


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[EmbeddedRunner]:
    store = SQLiteStore(tmp_path / "rb.db")
    with EmbeddedRunner(store, tmp_path / "data", concurrency=2) as r:
        yield r
    store.close()


def run(runner: EmbeddedRunner, tmp_path: Path, text: str) -> Any:
    path = tmp_path / "pb.yaml"
    path.write_text(text)
    pb, version = runner.register_file(path)
    runner.start_workers()
    return runner.run(pb.path, version)


def test_lone_surrogates_are_repaired_not_fatal(runner: EmbeddedRunner, tmp_path: Path) -> None:
    out = run(runner, tmp_path, SURROGATE)
    assert out.status == "completed", out.error
    assert out.result == "ok\ufffdend"


def test_text_helpers() -> None:
    assert clean_text("plain") == "plain"
    assert clean_text("é😀") == "é😀"
    assert clean_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert to_json_value({"\udc00": ["\ud800"]}) == {"\ufffd": ["\ufffd"]}
    assert not_json({"msg": "\ud800"}) == "a lone surrogate in a string at ['msg']"
    assert not_json({"\ud800": 1}) == "a lone surrogate in a key"
    assert not_json({"ok": "é😀"}) is None


def test_an_outcome_the_engine_fails_on_fails_the_attempt(
    runner: EmbeddedRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Engine.commit_completions

    def broken(self: Engine, execution_id: str, outcomes: Any) -> Any:
        for events, _, _ in outcomes:
            for e in events:
                if e.type == "step.completed" and e.data.get("result") == "poison":
                    raise TypeError("an engine bug")
        return real(self, execution_id, outcomes)

    monkeypatch.setattr(Engine, "commit_completions", broken)
    out = run(runner, tmp_path, PLAIN)
    assert out.status == "failed"
    assert out.error["step"] == "work" and out.error["type"] == "internal"
    assert "could not record this attempt: TypeError: an engine bug" in out.error["message"]


def test_start_refuses_a_payload_it_could_not_record(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    from replaybook.errors import UsageError

    path = tmp_path / "pb.yaml"
    path.write_text(PLAIN)
    pb, version = runner.register_file(path)
    for payload in ({"n": float("nan")}, {"s": "\ud800"}, {"d": {1, 2}}):
        with pytest.raises(UsageError, match="payload is not JSON data"):
            runner.engine.start(pb.path, version, payload)
    assert runner.store.list_executions() == []  # nothing left 'running'
