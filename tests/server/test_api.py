"""Every endpoint of the API, in process (FastAPI's TestClient) on a SQLite store:
catalog, executions (start, list, get, wait, events, stream, cancel, resume), queue
(lease, complete, record, heartbeat, release), workers, pools, health, metrics; the
OpenAPI document; token authentication and the bind rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from replaybook.server.app import create_app
from replaybook.server.auth import TokenRequired, check_bind
from replaybook.store import open_store

HELLO = """
metadata: {name: hello, path: tests/hello}
workload: {who: world}
workflow:
  - step: start
    next: greet
  - step: greet
    type: python
    args: {who: "{{ workload.who }}"}
    code: |
      def main(who):
          return {"greeting": "hello " + who}
    next: end
  - step: end
    result: {text: "{{ greet.greeting }}"}
"""

FAILS = """
metadata: {name: fails, path: tests/fails}
workflow:
  - step: start
    next: boom
  - step: boom
    type: python
    args: {ok: "{{ workload.ok | default(false) }}"}
    code: |
      def main(ok):
          if not ok:
              raise ValueError("boom")
          return "fine"
    next: end
  - step: end
    result: "{{ boom }}"
"""

SLEEPY = """
metadata: {name: sleepy, path: tests/sleepy}
workflow:
  - step: start
    next: nap
  - step: nap
    type: python
    code: |
      import time
      def main():
          time.sleep(30)
    next: end
  - step: end
"""


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rb.db'}"


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A server with two worker slots of its own."""
    app = create_app(store_url, workers=2, data_dir=tmp_path / "data", poll_seconds=0.1)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def bare(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A server without workers: jobs wait in the queue for the test to lease them."""
    app = create_app(store_url, workers=0, data_dir=tmp_path / "data", poll_seconds=0.1)
    with TestClient(app) as c:
        yield c


def register(c: TestClient, text: str) -> dict[str, Any]:
    r = c.post("/api/catalog", json={"content": text, "file": "x.yaml"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def start(c: TestClient, path: str, payload: dict[str, Any] | None = None) -> str:
    r = c.post("/api/executions", json={"path": path, "payload": payload or {}})
    assert r.status_code == 201, r.text
    return str(r.json()["execution_id"])


def finished(c: TestClient, eid: str) -> dict[str, Any]:
    r = c.get(f"/api/executions/{eid}", params={"wait": 30})
    assert r.status_code == 200
    out: dict[str, Any] = r.json()
    assert out["status"] in ("completed", "failed", "cancelled"), out
    return out


# -- system -----------------------------------------------------------------------
def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    register(client, HELLO)
    finished(client, start(client, "tests/hello"))
    text = client.get("/metrics").text
    assert "replaybook_executions_started_total 1.0" in text
    assert 'replaybook_http_requests_total{method="POST",route="/api/catalog",status="201"}' in text


def test_openapi_document_validates(client: TestClient) -> None:
    from openapi_spec_validator import validate

    doc = client.get("/openapi.json").json()
    validate(doc)
    paths = set(doc["paths"])
    for p in (
        "/api/catalog",
        "/api/catalog/{path}",
        "/api/catalog/{path}/versions",
        "/api/executions",
        "/api/executions/{execution_id}",
        "/api/executions/{execution_id}/events",
        "/api/executions/{execution_id}/stream",
        "/api/executions/{execution_id}/cancel",
        "/api/executions/{execution_id}/resume",
        "/api/queue/lease",
        "/api/queue/complete",
        "/api/queue/record",
        "/api/queue/heartbeat",
        "/api/queue/release",
        "/api/workers",
        "/api/pools",
        "/health",
        "/metrics",
    ):
        assert p in paths, p
    assert client.get("/docs").status_code == 200


# -- catalog ----------------------------------------------------------------------
def test_catalog_register_list_get_versions(client: TestClient) -> None:
    first = register(client, HELLO)
    assert (first["path"], first["version"], first["new"]) == ("tests/hello", 1, True)
    assert register(client, HELLO)["new"] is False
    second = register(client, HELLO.replace("who: world", "who: there"))
    assert second["version"] == 2
    listed = client.get("/api/catalog").json()
    assert [(e["path"], e["version"]) for e in listed] == [("tests/hello", 2)]
    got = client.get("/api/catalog/tests/hello", params={"version": 1}).json()
    assert got["content"] == HELLO
    assert client.get("/api/catalog/tests/hello").json()["version"] == 2
    versions = client.get("/api/catalog/tests/hello/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get("/api/catalog/nope").status_code == 404
    assert client.get("/api/catalog/nope/versions").status_code == 404


def test_register_invalid_playbook_names_the_problem(client: TestClient) -> None:
    r = client.post(
        "/api/catalog", json={"content": "workflow:\n  - step: start\n    next: nowhere\n"}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["status"] == "invalid"
    assert any("nowhere" in e["message"] for e in body["errors"])
    assert all({"message", "line", "path"} <= set(e) for e in body["errors"])


# -- executions ---------------------------------------------------------------------
def test_start_get_and_events(client: TestClient) -> None:
    register(client, HELLO)
    eid = start(client, "tests/hello", {"who": "api"})
    out = finished(client, eid)
    assert out["status"] == "completed"
    assert out["result"] == {"text": "hello api"}
    assert out["steps"]["greet"] == {"status": "completed", "attempts": 1, "visits": 1}
    assert "results" not in out
    with_results = client.get(f"/api/executions/{eid}", params={"results": True}).json()
    assert with_results["results"]["greet"] == {"greeting": "hello api"}
    events = client.get(f"/api/executions/{eid}/events").json()
    assert events[0]["type"] == "execution.started"
    assert events[-1]["type"] == "execution.completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    page = client.get(f"/api/executions/{eid}/events", params={"after": 2, "limit": 2}).json()
    assert [e["seq"] for e in page] == [3, 4]
    assert client.get("/api/executions/nope").status_code == 404
    assert client.get("/api/executions/nope/events").status_code == 404


def test_start_errors(client: TestClient) -> None:
    r = client.post("/api/executions", json={"path": "missing"})
    assert r.status_code == 404 and "not in the catalog" in r.json()["detail"]
    register(
        client,
        HELLO.replace("workload: {who: world}", 'workload: {who: "{{ nope.nope }}"}'),
    )
    r = client.post("/api/executions", json={"path": "tests/hello"})
    assert r.status_code == 422 and r.json()["type"] == "template"
    r = client.post("/api/executions", json={"payload": {}})
    assert r.status_code == 422


@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-Infinity", "1e400", "[1, NaN]", '"a \\ud800 lone surrogate"']
)
def test_start_with_a_payload_that_is_not_json_is_422_and_records_nothing(
    client: TestClient, value: str
) -> None:
    # Python's JSON parser reads these; no execution could record them.
    register(client, HELLO)
    body = '{"path": "tests/hello", "payload": {"n": VALUE}}'.replace("VALUE", value)
    r = client.post(
        "/api/executions", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert "payload is not JSON data" in r.json()["detail"] and "['n']" in r.json()["detail"]
    assert client.get("/api/executions").json() == []


def test_out_of_range_numbers_and_unknown_statuses_are_400(client: TestClient) -> None:
    register(client, HELLO)
    eid = start(client, "tests/hello")
    for url in (
        "/api/executions?offset=9223372036854775808",
        "/api/executions?offset=-1",
        "/api/executions?limit=0",
        "/api/executions?status=bogus",
        f"/api/executions/{eid}/events?after=99999999999999999999999",
        f"/api/executions/{eid}/events?after=-1",
        f"/api/executions/{eid}/stream?after=99999999999999999999999",
    ):
        r = client.get(url)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["type"] == "usage"
    assert "one of running, completed, failed, cancelled" in client.get(
        "/api/executions?status=bogus"
    ).json()["detail"]


def test_list_filters_and_paging(client: TestClient) -> None:
    register(client, HELLO)
    register(client, FAILS)
    ok = [start(client, "tests/hello") for _ in range(3)]
    bad = start(client, "tests/fails")
    for eid in [*ok, bad]:
        finished(client, eid)
    rows = client.get("/api/executions").json()
    assert len(rows) == 4
    failed = client.get("/api/executions", params={"status": "failed"}).json()
    assert [r["execution_id"] for r in failed] == [bad]
    by_pb = client.get("/api/executions", params={"playbook": "tests/hello"}).json()
    assert sorted(r["execution_id"] for r in by_pb) == sorted(ok)
    page1 = client.get("/api/executions", params={"limit": 2}).json()
    page2 = client.get("/api/executions", params={"limit": 2, "offset": 2}).json()
    assert len(page1) == 2 and len(page2) == 2
    assert {r["execution_id"] for r in page1 + page2} == {*ok, bad}
    assert client.get("/api/executions", params={"parent": "x"}).json() == []
    assert client.get("/api/executions", params={"limit": 0}).status_code == 400


def test_stream_sends_every_event_then_end(client: TestClient) -> None:
    register(client, HELLO)
    eid = start(client, "tests/hello")
    messages = _read_stream(client, eid)
    kinds = [k for k, _ in messages]
    assert kinds[-1] == "end" and messages[-1][1] == {"status": "completed"}
    seqs = [d["seq"] for k, d in messages if k == "event"]
    assert seqs == list(range(1, len(seqs) + 1))
    # From a seq on, and for a finished execution: the tail, then end.
    tail = _read_stream(client, eid, after=seqs[-2])
    assert [d["seq"] for k, d in tail if k == "event"] == seqs[-1:]
    assert client.get("/api/executions/nope/stream").status_code == 404


def _read_stream(c: TestClient, eid: str, after: int = 0) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    kind = "message"
    with c.stream("GET", f"/api/executions/{eid}/stream", params={"after": after}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                out.append((kind, json.loads(line[5:])))
    return out


def test_cancel_and_resume(client: TestClient) -> None:
    register(client, SLEEPY)
    eid = start(client, "tests/sleepy")
    r = client.post(f"/api/executions/{eid}/cancel", json={"reason": "test"})
    assert r.status_code == 200 and r.json()["changed"] is True
    assert finished(client, eid)["status"] == "cancelled"
    again = client.post(f"/api/executions/{eid}/cancel").json()
    assert again["changed"] is False and again["status"] == "cancelled"
    assert client.post("/api/executions/nope/cancel").status_code == 404

    register(client, FAILS)
    bad = start(client, "tests/fails")
    assert finished(client, bad)["status"] == "failed"
    r = client.post(f"/api/executions/{bad}/resume", json={"from_step": "nowhere"})
    assert r.status_code == 404
    r = client.post(f"/api/executions/{bad}/resume", json={"from_step": "boom"})
    assert r.status_code == 200, r.text
    assert r.json()["resumed_after_seq"] > 0
    assert finished(client, bad)["status"] == "failed"  # it fails again, for real

    register(client, HELLO)
    done = start(client, "tests/hello")
    before = finished(client, done)
    assert before["status"] == "completed"
    r = client.post(f"/api/executions/{done}/resume")
    assert r.status_code == 400 and "already completed" in r.json()["detail"]
    assert finished(client, done)["last_seq"] == before["last_seq"]  # nothing written
    r = client.post(f"/api/executions/{done}/resume", json={"from_step": "greet"})
    assert r.status_code == 200, r.text  # re-running a step of a completed one is fine
    assert finished(client, done)["status"] == "completed"


def test_resume_of_a_running_execution_is_refused(bare: TestClient) -> None:
    register(bare, HELLO)
    eid = start(bare, "tests/hello")
    r = bare.post(f"/api/executions/{eid}/resume", json={})
    assert r.status_code == 400 and "still running" in r.json()["detail"]


# -- queue --------------------------------------------------------------------------
def test_queue_lease_record_heartbeat_complete_release(bare: TestClient) -> None:
    register(bare, HELLO)
    eid = start(bare, "tests/hello")
    body = {"worker_id": "w1", "limit": 5, "lease_seconds": 30, "pools": [None], "wait": 1}
    leased = bare.post("/api/queue/lease", json=body).json()["jobs"]
    assert len(leased) == 1
    job = leased[0]["job"]
    assert job["step"] == "start" and job["execution_id"] == eid
    assert leased[0]["playbook"] == {"path": "tests/hello", "version": 1}
    assert leased[0]["snapshot"]["workload"] == {"who": "world"}
    # Nothing more is due: the long poll answers empty after its wait.
    assert bare.post("/api/queue/lease", json={**body, "wait": 0.2}).json()["jobs"] == []

    started = {
        "type": "step.started",
        "step": "start",
        "visit": 1,
        "attempt": 1,
        "data": {"worker": "w1"},
    }
    r = bare.post("/api/queue/record", json={"execution_id": eid, "events": [started]})
    assert r.status_code == 204
    hb = bare.post("/api/queue/heartbeat", json={"worker_id": "w1", "jobs": [job]}).json()
    assert hb == {"lost": []}

    done = {
        "type": "step.completed",
        "step": "start",
        "visit": 1,
        "attempt": 1,
        "data": {"result": None, "routes": [{"step": "greet", "data": {}}]},
    }
    chain = {"worker_id": "w1", "lease_seconds": 30, "pools": [None]}
    r = bare.post("/api/queue/complete", json={"job": job, "events": [done], "chain": chain})
    assert r.status_code == 200, r.text
    nxt = r.json()["next"]
    assert nxt["job"]["step"] == "greet"
    # A second completion of the same job is refused: its lease is gone.
    r = bare.post("/api/queue/complete", json={"job": job, "events": [done]})
    assert r.status_code == 409
    hb = bare.post("/api/queue/heartbeat", json={"worker_id": "w1", "jobs": [job]}).json()
    assert hb == {"lost": [job["lease_token"]]}
    # Released, greet is leasable again at once, by anyone.
    assert bare.post("/api/queue/release", json={"jobs": [nxt["job"]]}).status_code == 204
    again = bare.post("/api/queue/lease", json={**body, "worker_id": "w2"}).json()["jobs"]
    assert [j["job"]["step"] for j in again] == ["greet"]
    assert again[0]["job"]["lease_token"] != nxt["job"]["lease_token"]

    workers = {w["worker_id"]: w for w in bare.get("/api/workers").json()}
    assert set(workers) == {"w1", "w2"} and workers["w1"]["alive"] is True
    pools = bare.get("/api/pools").json()
    assert pools == [{"pool": "default", "workers": 2, "alive": 2, "running": 0}]



def test_the_servers_own_worker_slots_count_in_pools(client: TestClient) -> None:
    # `--workers N` leases in process, never over /api/queue: not a remote worker, but
    # the default pool has something alive, so a client knows its execution will run.
    assert client.get("/api/workers").json() == []
    assert client.get("/api/pools").json() == [
        {"pool": "default", "workers": 1, "alive": 1, "running": 0, "in_process": 2}
    ]


FORK = """
metadata: {name: fork, path: tests/fork}
workflow:
  - step: start
    next: [a, b]
  - step: a
    next: end
  - step: b
    next: end
  - step: end
    result: done
"""


def _routed(job: dict[str, Any], to: str) -> dict[str, Any]:
    return {
        "type": "step.completed",
        "step": job["step"],
        "visit": 1,
        "attempt": 1,
        "data": {"result": None, "routes": [{"step": to, "data": {}}]},
    }


def test_complete_many_commits_outcomes_together_and_refuses_a_stale_one(
    bare: TestClient,
) -> None:
    register(bare, FORK)
    eid = start(bare, "tests/fork")
    body = {"worker_id": "w1", "limit": 5, "lease_seconds": 30, "wait": 1}
    (first,) = bare.post("/api/queue/lease", json=body).json()["jobs"]
    r = bare.post("/api/queue/complete", json={"job": first["job"], "events": [
        _routed(first["job"], "a"), ]})  # fmt: skip
    assert r.status_code == 200, r.text
    # `start` routed to a only (its outcome says so): a is due; b is dead-path.
    (a,) = bare.post("/api/queue/lease", json=body).json()["jobs"]
    assert a["job"]["step"] == "a"
    forged = {**a["job"], "lease_token": "not-the-token"}
    chain = {"worker_id": "w1", "lease_seconds": 30, "pools": None}
    r = bare.post(
        "/api/queue/complete-many",
        json={
            "completions": [
                {"job": forged, "events": [_routed(a["job"], "end")]},
                {"job": a["job"], "events": [_routed(a["job"], "end")]},
            ],
            "chain": chain,
        },
    )
    assert r.status_code == 200, r.text
    stale, ok = r.json()["results"]
    assert stale["error"]["type"] == "stale_lease"
    assert ok["next"]["job"]["step"] == "end"  # the follow-up, leased for w1
    done = _routed(ok["next"]["job"], "end")
    done["data"] = {"result": "done", "routes": []}
    r = bare.post(
        "/api/queue/complete-many",
        json={"completions": [{"job": ok["next"]["job"], "events": [done]}]},
    )
    assert r.json()["results"] == [{"next": None}]
    out = bare.get(f"/api/executions/{eid}").json()
    assert out["status"] == "completed", out
    completed = [
        e["step"] for e in bare.get(f"/api/executions/{eid}/events").json()
        if e["type"] == "step.completed"
    ]  # fmt: skip
    assert completed.count("a") == 1  # the refused outcome wrote nothing


def test_lease_of_another_pool_gets_nothing(bare: TestClient) -> None:
    register(bare, HELLO)
    start(bare, "tests/hello")
    body = {"worker_id": "g", "limit": 5, "pools": ["gpu"], "wait": 0.1}
    assert bare.post("/api/queue/lease", json=body).json()["jobs"] == []
    assert len(bare.post("/api/queue/lease", json={**body, "pools": None}).json()["jobs"]) == 1


def test_bad_queue_requests_are_422(bare: TestClient) -> None:
    assert bare.post("/api/queue/lease", json={"limit": 1}).status_code == 422
    assert bare.post("/api/queue/lease", json={"worker_id": "w", "limit": 0}).status_code == 422


# -- authentication -----------------------------------------------------------------
def test_token_is_required_when_configured(store_url: str, tmp_path: Path) -> None:
    app = create_app(store_url, token="s3cret-token", data_dir=tmp_path / "data")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200  # the one open path
        for method, path in (
            ("GET", "/api/executions"),
            ("GET", "/api/catalog"),
            ("POST", "/api/queue/lease"),
            ("GET", "/metrics"),
            ("GET", "/docs"),
            ("GET", "/openapi.json"),
        ):
            r = c.request(method, path)
            assert r.status_code == 401, (method, path)
            assert "s3cret" not in r.text
        wrong = c.get("/api/executions", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = c.get("/api/executions", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json() == []


def test_binding_beyond_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(TokenRequired, match="REPLAYBOOK_API_TOKEN"):
        check_bind("0.0.0.0", None)


def test_server_shares_the_store_with_other_processes(store_url: str, tmp_path: Path) -> None:
    """What another process registers and starts, the server serves."""
    other = open_store(store_url)
    entry, _ = other.register_playbook("tests/x", "x", HELLO.replace("tests/hello", "tests/x"))
    other.close()
    app = create_app(store_url, workers=1, data_dir=tmp_path / "data", poll_seconds=0.1)
    with TestClient(app) as c:
        assert c.get("/api/catalog/tests/x").json()["version"] == entry.version
        assert finished(c, start(c, "tests/x"))["status"] == "completed"
