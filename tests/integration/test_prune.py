"""`replaybook executions prune`: real subprocesses, a real SQLite store and real
DuckDB files under the data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOK = """metadata: {name: prune_me}
workflow:
  - step: start
    next: load
  - step: load
    type: duckdb
    sql: create table t as select 42 as x
    next: end
  - step: end
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["REPLAYBOOK_DATA_DIR"] = str(tmp_path / "data")
    e["REPLAYBOOK_DB"] = str(tmp_path / "rb.db")
    return e


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replaybook", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prune_deletes_old_executions_and_their_duckdb_files(
    tmp_path: Path, env: dict[str, str]
) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK)
    ids = []
    for _ in range(2):
        run = cli(env, "run", str(playbook), "--json")
        assert run.returncode == 0, run.stderr
        ids.append(json.loads(run.stdout)["execution_id"])
    duck = tmp_path / "data" / "duckdb"
    assert {f"{i}.duckdb" for i in ids} <= {p.name for p in duck.iterdir()}

    kept = cli(env, "executions", "prune", "--older-than", "30d", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["count"] == 0

    dry = cli(env, "executions", "prune", "--older-than", "0s", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    out = json.loads(dry.stdout)
    assert sorted(out["pruned"]) == sorted(ids) and out["dry_run"] is True
    assert out["duckdb_files_removed"] == 2
    assert all((duck / f"{i}.duckdb").exists() for i in ids)

    failed_only = cli(env, "executions", "prune", "--older-than", "0s", "--status", "failed")
    assert failed_only.returncode == 0 and failed_only.stdout == ""

    done = cli(env, "executions", "prune", "--older-than", "0s", "--status", "completed")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(ids)
    assert "pruned 2 execution(s)" in done.stderr
    assert not any((duck / f"{i}.duckdb").exists() for i in ids)
    shown = cli(env, "executions", "show", ids[0])
    assert shown.returncode != 0
    listed = cli(env, "executions", "list", "--json")
    assert ids[0] not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "--older-than: bad age 'soon'"),
        (["--older-than", "1d", "--status", "running"], "--status 'running'"),
    ],
)
def test_prune_rejects_bad_options(env: dict[str, str], args: list[str], message: str) -> None:
    p = cli(env, "executions", "prune", *args)
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr
