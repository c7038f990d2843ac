"""`replaybook schedule ...` as a user runs it: subprocesses on a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOK = """metadata: {name: report, path: flows/report}
workflow:
  - step: start
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
        [sys.executable, "-m", "replaybook", "schedule", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_add_list_pause_resume_show_delete(tmp_path: Path, env: dict[str, str]) -> None:
    playbook = tmp_path / "report.yaml"
    playbook.write_text(PLAYBOOK)
    added = cli(
        env, "add", str(playbook), "--cron", "0 6 * * *", "--tz", "Europe/Berlin",
        "--payload", '{"region": "eu"}', "--id", "morning", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    out = json.loads(added.stdout)
    assert out["id"] == "morning" and out["playbook_path"] == "flows/report"
    assert out["payload"] == {"region": "eu"} and out["catch_up"] == "last"
    assert out["next_slot"].endswith(("04:00:00.000000Z", "05:00:00.000000Z"))  # 06:00 Berlin

    by_path = cli(env, "add", "flows/report", "--cron", "*/5 * * * *", "--catch-up", "none")
    assert by_path.returncode == 0, by_path.stderr
    listed = json.loads(cli(env, "list", "--json").stdout)
    assert listed[0]["id"] == "morning" and len(listed) == 2

    assert cli(env, "pause", "morning").returncode == 0
    shown = json.loads(cli(env, "show", "morning", "--json").stdout)
    assert shown["paused"] is True and shown["next_slot"] is None and shown["fired"] == []
    assert cli(env, "resume", "morning").returncode == 0
    assert json.loads(cli(env, "show", "morning", "--json").stdout)["paused"] is False
    table = cli(env, "list")
    assert table.returncode == 0 and "morning" in table.stdout

    assert cli(env, "delete", "morning").returncode == 0
    gone = cli(env, "delete", "morning")
    assert gone.returncode == 2 and "no schedule 'morning'" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "bad cron expression '61 * * * *'"),
        (["--cron", "0 6 * * *", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["--cron", "0 6 * * *", "--catch-up", "some"], "bad catch_up 'some'"),
        (["--cron", "0 6 * * *", "--payload", "[1]"], "--payload: must be a JSON object"),
    ],
)
def test_bad_options_are_clear_errors(
    tmp_path: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    playbook = tmp_path / "report.yaml"
    playbook.write_text(PLAYBOOK)
    p = cli(env, "add", str(playbook), *args)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr


def test_unknown_playbook_and_schedule(env: dict[str, str]) -> None:
    p = cli(env, "add", "flows/nothing", "--cron", "0 6 * * *")
    assert p.returncode == 2 and "flows/nothing" in p.stderr
    for command in ("pause", "resume", "show"):
        p = cli(env, command, "nope")
        assert p.returncode == 2 and "no schedule 'nope'" in p.stderr
