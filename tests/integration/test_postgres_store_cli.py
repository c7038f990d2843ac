"""The CLI end to end with its store on PostgreSQL: `replaybook run --db postgresql://`
runs a playbook (python steps, an async iterator, routing) in a real subprocess, and
the executions commands read it back from the same database.

The server is $REPLAYBOOK_TEST_PG_DSN (default: the local trust-auth server); the
test makes its own database and drops it. Without a server it skips (fails under
REPLAYBOOK_REQUIRE_PG=1).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

DSN = os.environ.get("REPLAYBOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("REPLAYBOOK_REQUIRE_PG", "") not in ("", "0")

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

PLAYBOOK = """\
metadata: {name: squares, path: tests/pg/squares}
workload: {numbers: [1, 2, 3, 4, 5, 6]}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: "{{ workload.numbers }}"
    element: n
    mode: async
    concurrency: 3
    task:
      type: python
      args: {n: "{{ n }}"}
      code: |
        def main(n):
            return n * n
    next: total
  - step: total
    type: python
    args: {squares: "{{ each }}"}
    code: |
      def main(squares):
          return {"sum": sum(squares)}
    next:
      - when: "{{ total.sum > 50 }}"
        then: big
      - else: small
  - step: big
    next: end
  - step: small
    next: end
  - step: end
    result: {squares: "{{ each }}", sum: "{{ total.sum }}"}
"""


def _admin() -> Any:
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = f"PostgreSQL is not reachable at {DSN} (set REPLAYBOOK_TEST_PG_DSN): {exc}"
        if REQUIRED:
            pytest.fail(f"REPLAYBOOK_REQUIRE_PG=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def db_url() -> Iterator[str]:
    name = f"rb_pg_cli_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(DSN)._replace(path=f"/{name}"))
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REPLAYBOOK_DATA_DIR": str(data_dir)}
    env.pop("REPLAYBOOK_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "replaybook", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_run_on_postgres_and_read_it_back(db_url: str, tmp_path: Path) -> None:
    playbook = tmp_path / "squares.yaml"
    playbook.write_text(PLAYBOOK)
    data = tmp_path / "data"

    run = cli("run", str(playbook), "--db", db_url, "--json", data_dir=data)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "completed", out
    assert out["result"] == {"squares": [1, 4, 9, 16, 25, 36], "sum": 91}
    execution_id = out["execution_id"]

    # a second run with a payload takes the other branch, in the same database
    small = cli(
        "run", str(playbook), "--db", db_url, "--json", "--payload", '{"numbers": [1, 2]}',
        data_dir=data,
    )  # fmt: skip
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["result"] == {"squares": [1, 4], "sum": 5}

    listed = cli("executions", "list", "--db", db_url, "--json", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert rows[1]["execution_id"] == execution_id  # newest first
    assert rows[1]["playbook"] == "tests/pg/squares"

    show = cli("executions", "show", execution_id, "--db", db_url, "--json", data_dir=data)
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["result"] == out["result"]

    shown = cli("executions", "events", execution_id, "--db", db_url, "--json", data_dir=data)
    assert shown.returncode == 0, shown.stderr
    events = json.loads(shown.stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "execution.completed"
    assert all(ISO_UTC.match(e["at"]) for e in events)
    # six items, each completed exactly once
    items = [e["index"] for e in events if e["type"] == "step.completed" and "index" in e]
    assert sorted(items) == [0, 1, 2, 3, 4, 5]
