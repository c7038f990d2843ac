"""Webhooks: `POST /api/hooks/{name}` starts the hook's playbook only for a request
that proves the hook's secret (HMAC-SHA256 signature or token); the CLI manages them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from replaybook.credentials import Credentials
from replaybook.server.app import create_app
from replaybook.store import open_store
from replaybook.store.base import Store
from replaybook.webhooks import HookError, add_hook, sign

DEPLOY = """metadata: {name: deploy, path: flows/deploy}
workload: {ref: none}
workflow:
  - step: start
    next: end
  - step: end
"""
SECRET = "s3cret-hook-value-0123456789"
API_TOKEN = "api-token-for-the-test-server"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("REPLAYBOOK_SECRET_KEY", "a-test-key-of-sufficient-length")
    s = open_store(str(tmp_path / "rb.db"))
    s.register_playbook("flows/deploy", "deploy", DEPLOY)
    creds = Credentials(s)
    add_hook(s, creds, "deploy", "flows/deploy", secret=SECRET)
    add_hook(s, creds, "deploy-token", "flows/deploy", secret=SECRET, auth="token")
    yield s
    s.close()


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(store, token=API_TOKEN, data_dir=tmp_path, scheduler=False,
                     close_store=False)  # fmt: skip
    with TestClient(app) as c:
        yield c


BODY = json.dumps({"ref": "refs/heads/main", "n": 3}).encode()


def started(store: Store) -> int:
    return len(store.list_executions(playbook_path="flows/deploy"))


def test_a_signed_request_starts_the_playbook_with_the_body_as_payload(
    client: TestClient, store: Store
) -> None:
    r = client.post(
        "/api/hooks/deploy", content=BODY, headers={"X-Replaybook-Signature": sign(SECRET, BODY)}
    )
    assert r.status_code == 202, r.text
    eid = r.json()["execution_id"]
    events = store.read_events(eid)
    assert SECRET not in json.dumps([e.as_dict() for e in events])
    started_event = events[0].as_dict()
    assert "refs/heads/main" in json.dumps(started_event)
    github = client.post(
        "/api/hooks/deploy", content=BODY, headers={"X-Hub-Signature-256": sign(SECRET, BODY)}
    )
    assert github.status_code == 202
    assert started(store) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Replaybook-Signature": sign("another-secret-entirely", BODY)},
        {"X-Replaybook-Signature": sign(SECRET, BODY + b" ")},  # signed another body
        {"X-Replaybook-Signature": "sha256=00"},
        {"X-Replaybook-Token": SECRET},  # the hmac hook takes no token
        {"Authorization": f"Bearer {API_TOKEN}"},  # nor the API token
    ],
)
def test_a_wrong_signature_is_401_and_starts_nothing(
    client: TestClient, store: Store, headers: dict[str, str]
) -> None:
    r = client.post("/api/hooks/deploy", content=BODY, headers=headers)
    assert r.status_code == 401
    assert SECRET not in r.text and sign(SECRET, BODY) not in r.text
    assert started(store) == 0


def test_token_hooks(client: TestClient, store: Store) -> None:
    assert (
        client.post(
            "/api/hooks/deploy-token",
            content=BODY,
            headers={"X-Replaybook-Token": "wrong-token-value-x"},
        ).status_code
        == 401
    )
    assert started(store) == 0
    ok = client.post("/api/hooks/deploy-token", content=BODY,
                     headers={"X-Replaybook-Token": SECRET})  # fmt: skip
    assert ok.status_code == 202
    bearer = client.post("/api/hooks/deploy-token", content=BODY,
                         headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip
    assert bearer.status_code == 202
    assert started(store) == 2


def test_unknown_hooks_and_bad_bodies(client: TestClient, store: Store) -> None:
    assert client.post("/api/hooks/nope", content=b"{}").status_code == 404
    body = b"[1, 2]"
    r = client.post("/api/hooks/deploy", content=body,
                    headers={"X-Replaybook-Signature": sign(SECRET, body)})  # fmt: skip
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]
    assert started(store) == 0
    for body in (b'{"n": NaN}', b'{"n": 1e400}'):  # Python reads them; no log could hold them
        r = client.post("/api/hooks/deploy", content=body,
                        headers={"X-Replaybook-Signature": sign(SECRET, body)})  # fmt: skip
        assert r.status_code == 400 and "NaN" in r.json()["detail"]
    assert started(store) == 0
    # The rest of the API still needs the API token.
    assert client.get("/api/executions").status_code == 401


def test_hook_definitions_are_checked(store: Store) -> None:
    creds = Credentials(store)
    for name, kwargs, message in [
        ("bad name!", {}, "hook name"),
        ("ok", {"auth": "basic"}, "hook auth 'basic'"),
        ("ok", {"secret": "short"}, "at least 16"),
    ]:
        args = {"secret": SECRET, **kwargs}
        with pytest.raises(HookError, match=message):
            add_hook(store, creds, name, "flows/deploy", **args)  # type: ignore[arg-type]


def test_hook_cli(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(REPLAYBOOK_DATA_DIR=str(tmp_path / "data"), REPLAYBOOK_DB=str(tmp_path / "rb.db"))
    env.pop("REPLAYBOOK_SECRET_KEY", None)
    playbook = tmp_path / "deploy.yaml"
    playbook.write_text(DEPLOY)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "replaybook", "hook", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    added = cli("add", "deploy", "--playbook", str(playbook), "--json")
    assert added.returncode == 0, added.stderr
    out = json.loads(added.stdout)
    secret = out["secret"]
    assert len(secret) >= 32 and out["url_path"] == "/api/hooks/deploy"
    listed = cli("list", "--json")
    assert secret not in listed.stdout and json.loads(listed.stdout)[0]["auth"] == "hmac"
    assert secret.encode() not in (tmp_path / "rb.db").read_bytes()  # encrypted at rest
    given = cli("add", "other", "--playbook", "flows/deploy", "--secret", "x" * 20, "--auth",
                "token")  # fmt: skip
    assert given.returncode == 0 and "x" * 20 not in given.stdout
    bad = cli("add", "bad", "--playbook", "flows/deploy", "--auth", "basic")
    assert bad.returncode == 2 and "hook auth 'basic'" in bad.stderr
    assert cli("delete", "deploy").returncode == 0
    gone = cli("delete", "deploy")
    assert gone.returncode == 2 and "no hook 'deploy'" in gone.stderr
