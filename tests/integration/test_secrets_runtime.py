"""Secrets on the embedded runner, in process: iterators of secrets, `auth` on save
blocks and workbook actions, environment secrets in the workload, and the engine's
choke point (every event written is masked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from replaybook.credentials import KEY_ENV, Credentials, generate_key
from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.store.sqlite import SQLiteStore

TOKEN = "rt-token-0a1b2c3d4e"
ENV_TOKEN = "env-token-9z8y7x"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedRunner]:
    monkeypatch.setenv(KEY_ENV, generate_key())  # no key file in the user's data dir
    store = SQLiteStore(tmp_path / "rb.db")
    env = {
        "RB_RT_API_TOKEN": ENV_TOKEN,
        "RB_RT_WORD_A": "word-aaaa-1",
        "RB_RT_WORD_B": "word-bbbb-2",
    }
    with EmbeddedRunner(store, tmp_path / "data", concurrency=4, env=env) as r:
        creds = r.services["credentials"]
        assert isinstance(creds, Credentials)
        creds.put("api", "http_bearer", {"token": TOKEN})
        yield r
    store.close()


def run(runner: EmbeddedRunner, tmp_path: Path, text: str, payload: Any = None) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    pb, version = runner.register_file(path)
    return runner.run(pb.path, version, payload)


def log_text(runner: EmbeddedRunner, execution_id: str) -> str:
    return json.dumps([e.as_dict() for e in runner.store.read_events(execution_id)])


def test_iterator_of_secrets_then_a_step_using_them(runner: EmbeddedRunner, tmp_path: Path) -> None:
    outcome = run(
        runner,
        tmp_path,
        """metadata: {name: it_secrets, path: t/it_secrets}
workload: {names: [RB_RT_WORD_A, RB_RT_WORD_B]}
workflow:
  - step: start
    next: words
  - step: words
    type: iterator
    collection: "{{ workload.names }}"
    element: n
    task: {type: secrets, provider: env, name: "{{ n }}"}
    next: use
  - step: use
    type: python
    args: {a: "{{ words[0].value }}", b: "{{ words[1].value }}"}
    code: |
      def main(a, b):
          return {"both": a + "+" + b, "ok": a == "word-aaaa-1" and b == "word-bbbb-2"}
    next: end
  - step: end
    result: {both: "{{ use.both }}", ok: "{{ use.ok }}"}
""",
    )
    assert outcome.status == "completed", outcome.error
    assert outcome.result == {"both": "***+***", "ok": True}
    text = log_text(runner, outcome.execution_id)
    assert "word-aaaa-1" not in text and "word-bbbb-2" not in text


def test_save_to_http_and_workbook_auth(
    runner: EmbeddedRunner, tmp_path: Path, httpserver: HTTPServer
) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("Authorization") or "")
        return Response(
            json.dumps({"echo": request.headers.get("Authorization")}),
            200,
            content_type="application/json",
        )

    httpserver.expect_request("/api").respond_with_handler(handler)
    url = httpserver.url_for("/api")
    outcome = run(
        runner,
        tmp_path,
        """metadata: {name: save_auth, path: t/save_auth}
workload: {url: ""}
workbook:
  - name: call_api
    type: http
    url: "{{ workload.url }}"
    auth: api
workflow:
  - step: start
    next: fetch
  - step: fetch
    type: workbook
    name: call_api
    save:
      storage: http
      url: "{{ workload.url }}"
      auth: {credential: api}
      data: {got: "{{ result.data.echo }}"}
    next: end
  - step: end
    result: {echo: "{{ fetch.data.echo }}"}
""",
        {"url": url},
    )
    assert outcome.status == "completed", outcome.error
    assert seen == [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]
    assert outcome.result == {"echo": "Bearer ***"}
    assert TOKEN not in log_text(runner, outcome.execution_id)


def test_environment_secrets_are_masked_at_the_engine(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    """The workload is rendered and recorded by the engine itself: what it records
    is masked, so steps see the mask (use `{{ env.X }}` in the step instead)."""
    outcome = run(
        runner,
        tmp_path,
        """metadata: {name: env_wl, path: t/env_wl}
workload: {header: "Bearer {{ env.RB_RT_API_TOKEN }}"}
workflow:
  - step: start
    next: s
  - step: s
    type: python
    args: {direct: "{{ env.RB_RT_API_TOKEN }}", via: "{{ workload.header }}"}
    code: |
      def main(direct, via):
          print("direct", direct)
          return {"direct_len": len(direct), "via": via, "direct": direct}
    next: end
  - step: end
""",
    )
    assert outcome.status == "completed", outcome.error
    assert outcome.result == {
        "s": {"direct_len": len(ENV_TOKEN), "via": "Bearer ***", "direct": "***"}
    }
    text = log_text(runner, outcome.execution_id)
    assert ENV_TOKEN not in text
    assert '"direct ***"' in text  # the print, masked in the step's log


def test_a_secret_shorter_than_the_mask_threshold_is_still_hidden_in_its_result(
    runner: EmbeddedRunner, tmp_path: Path
) -> None:
    runner.engine.env["RB_RT_SHORT"] = "ab"
    outcome = run(
        runner,
        tmp_path,
        """metadata: {name: short, path: t/short}
workflow:
  - step: start
    next: s
  - step: s
    type: secrets
    provider: env
    name: RB_RT_SHORT
    next: end
  - step: end
    result: {n: "{{ s.value | length }}"}
""",
    )
    assert outcome.status == "completed", outcome.error
    assert outcome.result == {"n": 2}
    completed = [
        e
        for e in runner.store.read_events(outcome.execution_id)
        if e.type == "step.completed" and e.step == "s"
    ]
    assert completed[0].data["result"]["value"] == "***"
