"""Secrets end to end (spec §6.7, §10), as a user runs them: the CLI in real
processes, a real PostgreSQL role with a password, a real local HTTP server.

The done-when scan: after a run that authenticates to PostgreSQL and to an HTTP API
through stored credentials, reads a secret in a `secrets` step and echoes it from a
python step, none of the secret values is in the event log, the worker's logs
(stderr at DEBUG), any CLI output, or the raw bytes of the SQLite file.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from replaybook.credentials import KEY_ENV, Credentials, Keyring, generate_key
from replaybook.store import open_store

psycopg = pytest.importorskip("psycopg")

DSN = os.environ.get("REPLAYBOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_unreachable() -> str | None:
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL is not reachable at {DSN}: {exc}"


_PG_DOWN = _pg_unreachable()
needs_pg = pytest.mark.skipif(_PG_DOWN is not None, reason=_PG_DOWN or "")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # Secret-named variables of the test machine would be masked too: keep them out
    # so that expected values cannot be rewritten by chance.
    e = {
        k: v
        for k, v in os.environ.items()
        if not any(w in k.upper() for w in ("TOKEN", "SECRET", "PASSWORD", "KEY"))
    }
    e["REPLAYBOOK_DATA_DIR"] = str(tmp_path / "data")
    e["REPLAYBOOK_DB"] = str(tmp_path / "rb.db")
    e[KEY_ENV] = generate_key()
    e["REPLAYBOOK_LOG_LEVEL"] = "DEBUG"
    return e


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replaybook", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def credentials(env: dict[str, str]) -> Credentials:
    return Credentials(open_store(env["REPLAYBOOK_DB"]), Keyring([env[KEY_ENV]], "test"))


@pytest.fixture
def pg_role() -> Iterator[dict[str, str]]:
    """A login role with a password and a schema it owns; dropped after."""
    name = f"rb_sec_{uuid.uuid4().hex[:10]}"
    password = "pw-" + pysecrets.token_hex(12)
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE SCHEMA {name} AUTHORIZATION {name}")
    host = psycopg.conninfo.conninfo_to_dict(DSN)
    try:
        yield {
            "user": name,
            "password": password,
            "host": str(host.get("host") or "127.0.0.1"),
            "port": str(host.get("port") or 5432),
            "dbname": str(host.get("dbname") or "postgres"),
        }
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE IF EXISTS {name}")


DONE_WHEN = """
metadata: {name: secrets_done, path: tests/secrets_done}
workload: {base_url: "", schema: ""}
workflow:
  - step: start
    next: who
  - step: who
    type: postgres
    auth: pg_cred
    sql: select current_user as u
    next: call
  - step: call
    type: http
    url: "{{ workload.base_url }}/check"
    auth: api_cred
    next: tok
  - step: tok
    type: secrets
    provider: credential
    name: api_cred
    next: echo
  - step: echo
    type: python
    args: {t: "{{ tok.value }}", p: "{{ env.RB_SEC_DB_PASSWORD }}"}
    code: |
      def main(t, p):
          print("token is " + t + ", password " + p)
          return {"said": "token=" + t, "len": len(t), "plen": len(p)}
    save:
      storage: postgres
      auth: {credential: pg_cred}
      table: "{{ workload.schema }}.saved"
      data: {said: "{{ result.said }}"}
    next: end
  - step: end
    result:
      user: "{{ who.rows[0].u }}"
      status: "{{ call.status_code }}"
      echoed: "{{ call.data.auth }}"
      said: "{{ echo.said }}"
      len: "{{ echo.len }}"
      plen: "{{ echo.plen }}"
"""


@needs_pg
def test_done_when_no_secret_anywhere(
    tmp_path: Path, env: dict[str, str], pg_role: dict[str, str], httpserver: HTTPServer
) -> None:
    token = "tok-" + pysecrets.token_hex(12)
    env_password = "envpw-" + pysecrets.token_hex(8)
    env["RB_SEC_DB_PASSWORD"] = env_password
    creds = credentials(env)
    creds.put("pg_cred", "postgres", pg_role)
    creds.put("api_cred", "http_bearer", {"token": token})
    creds.store.close()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {pg_role['user']}.saved (said text)")
        conn.execute(f"ALTER TABLE {pg_role['user']}.saved OWNER TO {pg_role['user']}")

    def check(request: Request) -> Response:
        auth = request.headers.get("Authorization")
        if auth != f"Bearer {token}":
            return Response("unauthorised", status=401)
        return Response(json.dumps({"auth": auth}), content_type="application/json")

    httpserver.expect_request("/check").respond_with_handler(check)
    pb = tmp_path / "done.yaml"
    pb.write_text(DONE_WHEN)
    payload = json.dumps(
        {"base_url": httpserver.url_for("").rstrip("/"), "schema": pg_role["user"]}
    )
    outputs: list[str] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        p = cli(env, *args)
        outputs.extend([p.stdout, p.stderr])
        return p

    p = run("run", str(pb), "--payload", payload, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["result"] == {
        "user": pg_role["user"],  # authenticated as the credential's role
        "status": 200,  # the server saw the right bearer token
        "echoed": "Bearer ***",  # ...and its echo of it is masked
        "said": "token=***",
        "len": len(token),  # the python step got the real value
        "plen": len(env_password),
    }
    with psycopg.connect(DSN) as conn:  # the save used the real result
        saved = conn.execute(f"SELECT said FROM {pg_role['user']}.saved").fetchall()
    assert saved == [(f"token={token}",)]
    eid = out["execution_id"]
    events = run("executions", "events", eid, "--json")
    assert events.returncode == 0
    logs = [e for e in json.loads(events.stdout) if e["type"] == "step.log"]
    assert logs and logs[0]["data"]["lines"][0] == "token is ***, password ***"
    run("executions", "events", eid)
    run("executions", "show", eid, "--json")
    run("credential", "list", "--json")
    run("credential", "show", "pg_cred")
    run("credential", "show", "api_cred", "--json")
    # Without --json: the progress view and its log lines.
    p = run("run", str(pb), "--payload", payload)
    assert p.returncode == 0, p.stderr
    secrets_ = [token, pg_role["password"], env_password, env[KEY_ENV]]
    for text in outputs:
        for s in secrets_:
            assert s not in text
    db = Path(env["REPLAYBOOK_DB"])
    raw = b"".join(f.read_bytes() for f in db.parent.iterdir() if f.name.startswith(db.name))
    for s in secrets_:
        assert s.encode() not in raw


FLAKY = """
metadata: {name: secrets_resume, path: tests/secrets_resume}
workload: {base_url: ""}
workflow:
  - step: start
    next: tok
  - step: tok
    type: secrets
    provider: env
    name: RB_SEC_HIDDEN
    next: call
  - step: call
    type: http
    url: "{{ workload.base_url }}/flaky"
    headers: {Authorization: "Bearer {{ tok.value }}", X-Len: "{{ tok.value | length }}"}
    next: end
  - step: end
    result: {status: "{{ call.status_code }}", seen: "{{ call.data }}"}
"""


def test_a_later_process_uses_the_secret_by_reference(
    tmp_path: Path, env: dict[str, str], httpserver: HTTPServer
) -> None:
    """The log holds a reference, never the value; `executions resume` in a new
    process (it only has the log and its own environment) reads the secret again."""
    hidden = "hidden-" + pysecrets.token_hex(10)
    env["RB_SEC_HIDDEN"] = hidden  # an ordinary name: masked because a secrets step read it
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("Authorization") or "")
        if len(seen) == 1:
            return Response(f"try again, {hidden}", status=503)
        return Response(request.headers.get("Authorization") or "", status=200)

    httpserver.expect_request("/flaky").respond_with_handler(handler)
    pb = tmp_path / "flaky.yaml"
    pb.write_text(FLAKY)
    base = httpserver.url_for("").rstrip("/")
    first = cli(env, "run", str(pb), "--set", f"base_url={base}", "--json")
    assert first.returncode == 1
    failed = json.loads(first.stdout)
    assert "HTTP 503" in failed["error"]["message"]
    assert hidden not in first.stdout + first.stderr
    assert "***" in failed["error"]["message"]  # the body quoted in the error, masked
    resumed = cli(env, "executions", "resume", failed["execution_id"], "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["result"] == {"status": 200, "seen": "Bearer ***"}
    assert seen == [f"Bearer {hidden}", f"Bearer {hidden}"]
    events = cli(env, "executions", "events", failed["execution_id"], "--json").stdout
    assert hidden not in events and hidden not in resumed.stdout + resumed.stderr
    tok = [e for e in json.loads(events) if e["type"] == "step.completed" and e["step"] == "tok"]
    assert tok[0]["data"]["result"] == {
        "value": "***",
        "secret_ref": {"provider": "env", "name": "RB_SEC_HIDDEN"},
    }


PROVIDERS = """
metadata: {name: providers, path: tests/providers}
workflow:
  - step: start
    next: [from_file, from_cred, from_field, from_plugin]
  - step: from_file
    type: secrets
    provider: file
    path: "{{ workload.file }}"
    next: end
  - step: from_cred
    type: secrets
    provider: credential
    name: basic
    next: end
  - step: from_field
    type: secrets
    provider: credential
    name: basic
    field: username
    next: end
  - step: from_plugin
    type: secrets
    provider: reverse
    name: olleh-dlrow
    next: end
  - step: end
    type: python
    args:
      f: "{{ from_file.value }}"
      c: "{{ from_cred.value }}"
      u: "{{ from_field.value }}"
      r: "{{ from_plugin.value }}"
    code: |
      def main(f, c, u, r):
          print(f, c, r)
          return {"lens": [len(f), len(c), len(r)], "u": u, "joined": f + "|" + c + "|" + r}
"""

PLUGIN = """
class Reverse:
    def get(self, name, options, services):
        return name[::-1] + "-from-plugin"
"""


def test_file_credential_and_plugin_providers(tmp_path: Path, env: dict[str, str]) -> None:
    site = tmp_path / "site"
    dist = site / "rb_reverse-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "rb_reverse.py").write_text(PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rb-reverse\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[replaybook.secret_providers]\nreverse = rb_reverse:Reverse\n"
    )
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("file-secret-0042\n")
    creds = credentials(env)
    creds.put("basic", "http_basic", {"username": "alice-user", "password": "basic-pw-7788"})
    creds.store.close()
    pb = tmp_path / "providers.yaml"
    pb.write_text(PROVIDERS)
    p = cli(env, "run", str(pb), "--set", f"file={secret_file}", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(p.stdout)["result"]
    assert result == {
        "lens": [16, 13, len("world-hello-from-plugin")],
        "u": "***",  # any value a secrets step returns is secret, a user name too
        "joined": "***|***|***",
    }
    eid = json.loads(p.stdout)["execution_id"]
    events = cli(env, "executions", "events", eid, "--json").stdout
    for s in ("file-secret-0042", "basic-pw-7788", "world-hello-from-plugin", "alice-user"):
        assert s not in events and s not in p.stdout + p.stderr


ERRORS = """
metadata: {name: secret_errors, path: tests/secret_errors}
workflow:
  - step: start
    next: [missing_env, unknown_provider, no_cred, wrong_type]
  - step: missing_env
    type: secrets
    provider: env
    name: RB_SEC_NOT_SET
    next: end
    on_error: end
  - step: unknown_provider
    type: secrets
    provider: nowhere
    name: x
    next: end
    on_error: end
  - step: no_cred
    type: postgres
    auth: missing_cred
    sql: select 1
    next: end
    on_error: end
  - step: wrong_type
    type: http
    url: http://127.0.0.1:9/
    auth: {credential: basic_cred, type: http_bearer}
    next: end
    on_error: end
  - step: end
"""


def test_errors_name_the_step_and_credential(tmp_path: Path, env: dict[str, str]) -> None:
    creds = credentials(env)
    creds.put("basic_cred", "http_basic", {"username": "u", "password": "pw-0000-1111"})
    creds.store.close()
    pb = tmp_path / "errors.yaml"
    pb.write_text(ERRORS)
    p = cli(env, "run", str(pb), "--json")
    assert p.returncode == 0, p.stdout + p.stderr  # every failure went on to `end`
    eid = json.loads(p.stdout)["execution_id"]
    events = json.loads(cli(env, "executions", "events", eid, "--json").stdout)
    errors = {e["step"]: e["data"]["error"] for e in events if e["type"] == "step.failed"}
    assert "environment variable 'RB_SEC_NOT_SET' is not set" in errors["missing_env"]["message"]
    assert "unknown provider 'nowhere'" in errors["unknown_provider"]["message"]
    assert errors["no_cred"]["type"] == "credential"
    assert "no credential named 'missing_cred'" in errors["no_cred"]["message"]
    assert (
        "credential 'basic_cred' is of type http_basic, not http_bearer"
        in (errors["wrong_type"]["message"])
    )
    assert "step 'wrong_type'" in errors["wrong_type"]["message"]


WRONG_KEY = """
metadata: {name: wrong_key, path: tests/wrong_key}
workflow:
  - step: start
    next: call
  - step: call
    type: http
    url: http://127.0.0.1:9/
    auth: api
  - step: end
"""


def test_wrong_key_fails_the_step_clearly(tmp_path: Path, env: dict[str, str]) -> None:
    creds = credentials(env)
    creds.put("api", "http_bearer", {"token": "tok-wrong-key-5555"})
    creds.store.close()
    env[KEY_ENV] = generate_key()
    pb = tmp_path / "wrong.yaml"
    pb.write_text(WRONG_KEY)
    p = cli(env, "run", str(pb), "--json")
    assert p.returncode == 1
    error = json.loads(p.stdout)["error"]
    assert error["step"] == "call" and error["type"] == "credential"
    assert "credential 'api' cannot be decrypted" in error["message"]
    assert "wrong key" in error["message"]


def test_duckdb_auth_sql_and_masked_failure(tmp_path: Path) -> None:
    from replaybook.actions.duckdb import auth_statements

    pg = {
        "type": "postgres",
        "credential": "wh",
        "host": "db.example",
        "port": 5432,
        "user": "u",
        "password": "p'w-secret",
        "dbname": "sales",
        "sslmode": "require",
    }
    s3 = {
        "type": "s3",
        "credential": "lake",
        "key_id": "AKIAEXAMPLE",
        "secret": "s3-secret-value",
        "region": "eu-west-1",
        "use_ssl": "false",
    }
    assert auth_statements([pg, s3]) == [
        (
            "auth 'wh'",
            "CREATE OR REPLACE SECRET \"rb_pg_wh\" (TYPE postgres, HOST 'db.example', "
            "PORT '5432', DATABASE 'sales', USER 'u', PASSWORD 'p''w-secret')",
        ),
        (
            "auth 'wh'",
            'ATTACH IF NOT EXISTS \'sslmode=require\' AS "wh" (TYPE postgres, SECRET "rb_pg_wh")',
        ),
        (
            "auth 'lake'",
            "CREATE OR REPLACE SECRET \"lake\" (TYPE s3, KEY_ID 'AKIAEXAMPLE', "
            "SECRET 's3-secret-value', REGION 'eu-west-1', USE_SSL false)",
        ),
    ]
    assert auth_statements({**pg, "alias": "w2", "read_only": True})[1][1].endswith(
        'AS "w2" (TYPE postgres, SECRET "rb_pg_wh", READ_ONLY)'
    )
    from replaybook.errors import ActionError

    with pytest.raises(ActionError, match="type http_bearer cannot be used by duckdb"):
        auth_statements({"type": "http_bearer", "credential": "x", "token": "t"})


DUCK = """
metadata: {name: duck_auth, path: tests/duck_auth}
workflow:
  - step: start
    next: q
  - step: q
    type: duckdb
    auth: [lake]
    sql: select 42 as answer
    next: end
  - step: end
    result: {answer: "{{ q.rows[0].answer }}"}
"""


def test_duckdb_s3_secret_through_a_run(tmp_path: Path, env: dict[str, str]) -> None:
    """CREATE SECRET needs DuckDB's httpfs extension: where it cannot be installed
    (offline), the step fails with an error naming the auth, and the secret values
    appear nowhere."""
    creds = credentials(env)
    creds.put("lake", "s3", {"key_id": "AKIA-duck-0001", "secret": "duck-s3-secret-9999"})
    creds.store.close()
    pb = tmp_path / "duck.yaml"
    pb.write_text(DUCK)
    p = cli(env, "run", str(pb), "--json")
    out = json.loads(p.stdout)
    if p.returncode == 0:
        assert out["result"] == {"answer": 42}
    else:
        assert out["error"]["step"] == "q"
        assert "duckdb auth 'lake'" in out["error"]["message"]
    events = cli(env, "executions", "events", out["execution_id"], "--json").stdout
    for s in ("AKIA-duck-0001", "duck-s3-secret-9999"):
        assert s not in events and s not in p.stdout + p.stderr
