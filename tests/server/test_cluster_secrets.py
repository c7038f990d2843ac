"""Credentials with a server and a remote worker process (`replaybook worker
--server`), on PostgreSQL: the worker reads the credential's ciphertext from the
API and decrypts it with its own key; a secrets step's value is resolved again by
reference; nothing secret is in any API response or in the processes' logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from replaybook.client import ApiClient
from replaybook.credentials import KEY_ENV, generate_key
from replaybook.server.cluster import LocalCluster

pytestmark = pytest.mark.timeout(240)

TOKEN = "cluster-tok-7c7c7c7c"
HIDDEN = "cluster-hidden-4242"

PLAYBOOK = """
metadata: {name: cluster_secrets, path: tests/cluster_secrets}
workload: {url: ""}
workflow:
  - step: start
    next: word
  - step: word
    type: secrets
    provider: env
    name: RB_CLUSTER_HIDDEN
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


def test_remote_worker_resolves_credentials_and_secrets(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str], httpserver: HTTPServer
) -> None:
    def handler(request: Request) -> Response:
        ok = request.headers.get("Authorization") == f"Bearer {TOKEN}"
        ok = ok and request.args.get("w") == HIDDEN
        body = {"auth": request.headers.get("Authorization"), "w": request.args.get("w")}
        return Response(json.dumps(body), 200 if ok else 401, content_type="application/json")

    httpserver.expect_request("/echo").respond_with_handler(handler)
    proc_env[KEY_ENV] = generate_key()  # the server and the worker share the key
    proc_env["RB_CLUSTER_HIDDEN"] = HIDDEN
    logs = tmp_path / "logs"
    texts: list[str] = []
    with (
        LocalCluster(pg_url, workers=1, env=proc_env, log_dir=logs) as cluster,
        ApiClient(cluster.url) as api,
    ):
        put = {"type": "http_bearer", "fields": {"token": TOKEN}}
        texts.append(json.dumps(api.request("PUT", "/api/credentials/api", json_body=put)))
        entry = api.register(PLAYBOOK)
        eid = api.start(entry["path"], entry["version"], {"url": httpserver.url_for("/echo")})
        out = api.execution(eid, wait=60, results=True)
        texts += [json.dumps(out), json.dumps(api.all_events(eid))]
        texts.append(json.dumps(api.request("GET", "/api/credentials/api")))
    assert out["status"] == "completed", out
    assert out["result"] == {"echo": {"auth": "Bearer ***", "w": "***"}}
    texts += [f.read_text(errors="replace") for f in logs.iterdir()]
    for text in texts:
        assert TOKEN not in text and HIDDEN not in text
