"""Structured logs: `--log-format json` writes one JSON object per record, naming the
execution, step and attempt of the job that logged it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from replaybook.masking import KNOWN, MaskingLogFilter
from replaybook.observability.context import execution_scope, job_scope
from replaybook.observability.logs import JsonFormatter, formatter_for
from replaybook.store.base import Job


def _job(**kw: Any) -> Job:
    base: dict[str, Any] = dict(
        id=1, execution_id="ex1", step="load", visit=1, attempt=2, index=None, pool=None,
        payload={}, lease_token="t", worker_id="w", leases=1,
    )  # fmt: skip
    base.update(kw)
    return Job(**base)


def _record(msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("replaybook.test")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, msg, args, None, extra=extra)


def test_a_record_inside_a_job_names_execution_step_and_attempt() -> None:
    with job_scope(_job(index=3)):
        line = JsonFormatter().format(_record("loaded %d rows", 7))
    out = json.loads(line)
    assert out["message"] == "loaded 7 rows"
    assert (out["execution_id"], out["step"], out["attempt"], out["index"]) == ("ex1", "load", 2, 3)
    assert out["level"] == "INFO" and out["logger"] == "replaybook.test"
    assert out["ts"].endswith("+00:00")


def test_outside_a_job_no_context_fields_and_extra_wins() -> None:
    out = json.loads(JsonFormatter().format(_record("plain")))
    assert "execution_id" not in out and "step" not in out
    with execution_scope("ex9"):
        out = json.loads(JsonFormatter().format(_record("x")))
        assert out["execution_id"] == "ex9" and "step" not in out
        out = json.loads(JsonFormatter().format(_record("x", step="given")))
        assert out["step"] == "given"


def test_only_known_fields_are_written() -> None:
    out = json.loads(JsonFormatter().format(_record("x", password="hunter2")))
    assert "hunter2" not in json.dumps(out)


def test_exceptions_and_masking() -> None:
    KNOWN.add_all(["s3cr3t-value"])
    try:
        raise RuntimeError("boom with s3cr3t-value")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed: %s", ("s3cr3t-value",), sys.exc_info()
        )
    MaskingLogFilter().filter(record)  # the handler's filter runs before the formatter
    out = json.loads(JsonFormatter().format(record))
    assert "s3cr3t-value" not in json.dumps(out)
    assert "RuntimeError" in out["exc"]


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        formatter_for("xml")


PLAYBOOK = """metadata: {name: t}
workflow:
  - step: start
    next: work
  - step: work
    type: python
    code: |
      def main():
          return 1
    retry: {max_attempts: 1}
    next: end
  - step: end
"""


@pytest.mark.parametrize("how", ["option", "env"])
def test_cli_log_format_json(tmp_path: Path, how: str) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ)
    env.update(
        REPLAYBOOK_DATA_DIR=str(tmp_path / "data"),
        REPLAYBOOK_DB=str(tmp_path / "rb.db"),
        REPLAYBOOK_LOG_LEVEL="DEBUG",
    )
    args = [sys.executable, "-m", "replaybook"]
    if how == "option":
        args += ["--log-format", "json"]
    else:
        env["REPLAYBOOK_LOG_FORMAT"] = "json"
    p = subprocess.run(
        [*args, "run", str(playbook), "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    execution_id = json.loads(p.stdout)["execution_id"]
    lines = [json.loads(line) for line in p.stderr.splitlines() if line.strip()]
    assert lines, "no log records at DEBUG"
    work = [r for r in lines if r.get("step") == "work"]
    assert work and all(r["execution_id"] == execution_id and r["attempt"] == 1 for r in work)


def test_cli_rejects_an_unknown_log_format(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "replaybook", "--log-format", "xml", "validate", "x.yaml"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2
    assert "xml" in p.stderr and "Traceback" not in p.stderr
