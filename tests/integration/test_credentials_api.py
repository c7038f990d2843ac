"""Credentials over the API, and a run on the server's own workers that uses them:
no API response carries a secret value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from replaybook.credentials import KEY_ENV, generate_key
from replaybook.server.app import create_app
from replaybook.store.sqlite import SQLiteStore

TOKEN = "api-tok-5e5e5e5e5e"
HIDDEN = "hidden-word-31337"

PLAYBOOK = """metadata: {name: api_secrets, path: t/api_secrets}
workload: {url: ""}
workflow:
  - step: start
    next: word
  - step: word
    type: secrets
    provider: env
    name: RB_API_HIDDEN
    next: call
  - step: call
    type: http
    url: "{{ workload.url }}"
    auth: api
    params: {w: "{{ word.value }}"}
    next: end
  - step: end
    result: {echo: "{{ call.data }}"}
"""


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv(KEY_ENV, generate_key())
    store = SQLiteStore(tmp_path / "rb.db")
    app = create_app(
        store,
        workers=2,
        data_dir=tmp_path / "data",
        env={"RB_API_HIDDEN": HIDDEN},
        close_store=True,
    )
    with TestClient(app) as c:
        yield c


def test_credentials_api_never_returns_a_value(client: TestClient) -> None:
    texts: list[str] = []

    def call(method: str, url: str, **kw: Any) -> httpx.Response:
        r = client.request(method, url, **kw)
        texts.append(r.text)
        return r

    r = call(
        "PUT", "/api/credentials/api", json={"type": "http_bearer", "fields": {"token": TOKEN}}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "api", "type": "http_bearer", "fields": {"token": "***"}}
    r = call("GET", "/api/credentials")
    assert [(c["name"], c["type"]) for c in r.json()] == [("api", "http_bearer")]
    r = call("GET", "/api/credentials/api")
    assert r.json()["fields"] == {"token": "***"}
    r = call("PUT", "/api/credentials/bad", json={"type": "http_bearer", "fields": {}})
    assert r.status_code == 400
    assert "credential 'bad' (http_bearer): missing field 'token'" in r.json()["detail"]
    assert call("GET", "/api/credentials/nope").status_code == 404
    assert call("DELETE", "/api/credentials/nope").status_code == 404
    for text in texts:
        assert TOKEN not in text


def test_put_with_a_key_that_does_not_open_the_store_is_409(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"type": "http_bearer", "fields": {"token": TOKEN}}
    assert client.put("/api/credentials/api", json=body).status_code == 200
    monkeypatch.setenv(KEY_ENV, generate_key())  # now another key: it cannot open 'api'
    r = client.put("/api/credentials/other", json=body)
    assert r.status_code == 409, r.text
    assert r.json()["type"] == "credential_key"
    assert "credential 'api' does not decrypt with it" in r.json()["detail"]
    assert [c["name"] for c in client.get("/api/credentials").json()] == ["api"]


def test_a_run_on_the_server_keeps_secrets_out_of_every_response(
    client: TestClient, httpserver: HTTPServer
) -> None:
    def handler(request: Request) -> Response:
        ok = request.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = {"auth": request.headers.get("Authorization"), "w": request.args.get("w")}
        return Response(json.dumps(body), 200 if ok else 401, content_type="application/json")

    httpserver.expect_request("/echo").respond_with_handler(handler)
    client.put("/api/credentials/api", json={"type": "http_bearer", "fields": {"token": TOKEN}})
    reg = client.post("/api/catalog", json={"content": PLAYBOOK})
    assert reg.status_code == 201, reg.text
    started = client.post(
        "/api/executions",
        json={"path": "t/api_secrets", "payload": {"url": httpserver.url_for("/echo")}},
    )
    eid = started.json()["execution_id"]
    done = client.get(f"/api/executions/{eid}", params={"wait": 30, "results": True})
    assert done.json()["status"] == "completed", done.text
    assert done.json()["result"] == {"echo": {"auth": "Bearer ***", "w": "***"}}
    texts = [
        started.text,
        done.text,
        client.get(f"/api/executions/{eid}/events").text,
        client.get("/api/executions").text,
        client.get("/api/credentials").text,
        client.get("/api/credentials/api").text,
    ]
    for text in texts:
        assert TOKEN not in text and HIDDEN not in text
