"""The CLI as a user runs it: real subprocesses, a real SQLite file, no server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["REPLAYBOOK_DATA_DIR"] = str(tmp_path / "data")
    e["REPLAYBOOK_DB"] = str(tmp_path / "rb.db")
    return e


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replaybook", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def one_step(code: str, extra: str = "") -> str:
    body = "\n".join("      " + line for line in code.strip().splitlines())
    return f"""metadata: {{name: t}}
workflow:
  - step: start
    next: work
  - step: work
    type: python
{extra}    code: |
{body}
    next: end
  - step: end
"""


def run_json(env: dict[str, str], path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    p = cli(env, "run", str(path), "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout), p.stderr


def test_completed_run_and_inspection_commands(tmp_path: Path, env: dict[str, str]) -> None:
    pb = write(
        tmp_path,
        "ok.yaml",
        one_step(
            "def main(n):\n    print('hello log')\n    return n * 2",
            "    args: {n: '{{ workload.n }}'}\n",
        ),
    )
    code, out, _ = run_json(env, pb, "--payload", '{"n": 21}')
    assert code == 0 and out["status"] == "completed"
    assert out["result"] == {"work": 42}
    eid = out["execution_id"]

    listed = json.loads(cli(env, "executions", "list", "--json").stdout)
    assert [r["execution_id"] for r in listed] == [eid]
    shown = json.loads(cli(env, "executions", "show", eid, "--json").stdout)
    assert shown["status"] == "completed" and shown["result"] == {"work": 42}
    events = json.loads(cli(env, "executions", "events", eid, "--json").stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    logs = [e for e in events if e["type"] == "step.log"]
    assert logs and logs[0]["data"]["lines"] == ["hello log"]
    assert all(e["logic_version"] == 1 for e in events)


def test_set_parses_values_as_yaml(tmp_path: Path, env: dict[str, str]) -> None:
    pb = write(
        tmp_path,
        "set.yaml",
        one_step(
            "def main(a, b):\n    return [a, b]",
            "    args: {a: '{{ workload.x.y }}', b: '{{ workload.z }}'}\n",
        ),
    )
    code, out, _ = run_json(env, pb, "--set", "x.y=3", "--set", "z=hello")
    assert code == 0 and out["result"] == {"work": [3, "hello"]}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "metadata: {name: t}\nworkflow:\n  - step: start\n    next: end\n"
            "  - step: end\n    x: [1, 2\n",
            "yaml",
        ),
        (
            "metadata: {name: t}\nworkflow:\n  - step: start\n    type: pythn\n    next: end\n"
            "  - step: end\n",
            "pythn",
        ),
    ],
)
def test_invalid_playbooks_exit_2(
    tmp_path: Path, env: dict[str, str], text: str, needle: str
) -> None:
    pb = write(tmp_path, "bad.yaml", text)
    p = cli(env, "run", str(pb), "--json")
    assert p.returncode == 2
    out = json.loads(p.stdout)
    assert out["status"] == "invalid"
    assert any(needle in e["message"].lower() for e in out["errors"])
    assert all(e["line"] >= 1 for e in out["errors"])
    human = cli(env, "validate", str(pb))
    assert human.returncode == 2 and "bad.yaml" in human.stderr and "Traceback" not in human.stderr


def test_missing_file_and_bad_payload(tmp_path: Path, env: dict[str, str]) -> None:
    missing = tmp_path / "nope.yaml"
    p = cli(env, "run", str(missing))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    # No line 0 (lines count from 1): the human form names the file alone, and the
    # JSON form keeps its "line" key, null.
    assert p.stderr == f"error: {missing}: playbook file not found: '{missing}'\n"
    p = cli(env, "run", str(missing), "--json")
    [error] = json.loads(p.stdout)["errors"]
    assert p.returncode == 2 and error["line"] is None and error["path"] == ""
    pb = write(tmp_path, "ok.yaml", one_step("def main():\n    return 1"))
    p = cli(env, "run", str(pb), "--payload", "{not json")
    assert p.returncode == 2 and "--payload" in p.stderr and "Traceback" not in p.stderr
    p = cli(env, "run", str(pb), "--payload", "@" + str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "missing.json" in p.stderr


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("import sys\ndef main():\n    sys.exit(3)", "sys.exit"),
        ("import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGSEGV)", "died"),
        ("def main():\n    raise ValueError('bad input x')", "ValueError: bad input x"),
    ],
)
def test_python_failures_are_recorded(
    tmp_path: Path, env: dict[str, str], code: str, needle: str
) -> None:
    pb = write(tmp_path, "fail.yaml", one_step(code))
    rc, out, _ = run_json(env, pb)
    assert rc == 1 and out["status"] == "failed"
    assert out["error"]["step"] == "work" and needle in out["error"]["message"]
    assert out["steps"]["work"]["status"] == "failed"


def test_http_to_closed_port_fails_cleanly(tmp_path: Path, env: dict[str, str]) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    pb = write(
        tmp_path,
        "http.yaml",
        f"""metadata: {{name: h}}
workflow:
  - step: start
    next: get
  - step: get
    type: http
    url: http://127.0.0.1:{port}/x
    next: end
  - step: end
""",
    )
    rc, out, _ = run_json(env, pb)
    assert rc == 1 and out["error"]["step"] == "get"
    assert str(port) in out["error"]["message"]


def test_resume_reruns_the_failed_step(tmp_path: Path, env: dict[str, str]) -> None:
    flag = tmp_path / "flag.txt"
    pb = write(
        tmp_path,
        "resume.yaml",
        f"""metadata: {{name: r}}
workflow:
  - step: start
    next: first
  - step: first
    type: python
    code: |
      import time
      def main():
          return time.time()
    next: needs_file
  - step: needs_file
    type: python
    code: |
      def main():
          return open({str(flag)!r}).read()
    next: end
  - step: end
    result:
      first: "{{{{ first }}}}"
      text: "{{{{ needs_file }}}}"
""",
    )
    rc, out, _ = run_json(env, pb)
    assert rc == 1 and out["error"]["step"] == "needs_file"
    first = out_first = None
    events = json.loads(cli(env, "executions", "events", out["execution_id"], "--json").stdout)
    for e in events:
        if e["type"] == "step.completed" and e["step"] == "first":
            out_first = e["data"]["result"]
    flag.write_text("now it exists")
    p = cli(env, "executions", "resume", out["execution_id"], "--json")
    assert p.returncode == 0, p.stderr
    resumed = json.loads(p.stdout)
    assert resumed["status"] == "completed"
    first = resumed["result"]["first"]
    assert first == out_first  # the completed step kept its result
    assert resumed["result"]["text"] == "now it exists"
    assert resumed["steps"]["first"]["visits"] == 1
    assert resumed["steps"]["needs_file"]["visits"] == 2


def test_cancel_from_another_process(tmp_path: Path, env: dict[str, str]) -> None:
    pb = write(tmp_path, "slow.yaml", one_step("import time\ndef main():\n    time.sleep(60)"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "replaybook", "run", str(pb), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        eid = None
        deadline = time.monotonic() + 30
        while eid is None and time.monotonic() < deadline:
            rows = json.loads(cli(env, "executions", "list", "--json").stdout or "[]")
            eid = rows[0]["execution_id"] if rows else None
            time.sleep(0.2)
        assert eid is not None
        c = cli(env, "executions", "cancel", eid)
        assert c.returncode == 0, c.stderr
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    result = json.loads(out)
    assert proc.returncode == 1
    assert result["status"] == "cancelled"
    assert result["steps"]["work"]["status"] == "cancelled"


def test_output_below_print_is_captured_and_masked(tmp_path: Path, env: dict[str, str]) -> None:
    """What a python step writes to fds 1 and 2 itself (os.system, subprocess, os.write)
    joins its log lines, masked; it never reaches the CLI's stdout or stderr."""
    secret = "s3cr3t-value-123"
    pb = write(
        tmp_path,
        "leak.yaml",
        """metadata: {name: leak}
workflow:
  - step: start
    next: tok
  - step: tok
    type: secrets
    provider: env
    name: MY_TOKEN
    next: a
  - step: a
    type: python
    args: {t: "{{ tok.value }}"}
    code: |
      import os, subprocess
      def main(t):
          print("printed", t)
          os.system("echo via-os-system $MY_TOKEN")
          subprocess.run(["echo", "via-subprocess", t])
          subprocess.run(["sh", "-c", "echo via-stderr $0 >&2", t])
          os.write(1, ("via-fd1 " + t + "\\n").encode())
          os.write(2, ("via-fd2 " + t + "\\n").encode())
          return 1
    next: end
  - step: end
""",
    )
    env["MY_TOKEN"] = secret
    for args in (["--json"], []):
        p = cli(env, "run", str(pb), *args)
        assert p.returncode == 0, p.stderr
        assert secret not in p.stdout and secret not in p.stderr
    eid = json.loads(cli(env, "executions", "list", "--json").stdout)[0]["execution_id"]
    events = cli(env, "executions", "events", eid, "--json").stdout
    assert secret not in events
    lines = [
        line
        for e in json.loads(events)
        if e["type"] == "step.log" and e["step"] == "a"
        for line in e["data"]["lines"]
    ]
    assert lines == [
        "printed ***",
        "via-os-system ***",
        "via-subprocess ***",
        "via-stderr ***",
        "via-fd1 ***",
        "via-fd2 ***",
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run"], "Missing argument"),
        (["bogus"], "No such command 'bogus'"),
        (["executions", "list", "--limit", "abc"], "'--limit'"),
        (["run", "x.yaml", "--concurrency", "abc"], "'--concurrency'"),
        (["run", "x.yaml", "--concurrency", "0"], "'--concurrency'"),
        (["run", "x.yaml", "--concurrency", "-2"], "'--concurrency'"),
        (["executions", "resume", "x", "--concurrency", "0"], "'--concurrency'"),
        (["worker", "--concurrency", "0"], "'--concurrency'"),
        (["validate"], "Missing argument"),
        (["executions", "prune", "--dry-run"], "Missing option '--older-than'"),
        (
            ["executions", "list", "--status", "bogus"],
            "use one of running, completed, failed, cancelled",
        ),
    ],
)
def test_usage_errors_exit_2_with_click_usage(
    env: dict[str, str], args: list[str], needle: str
) -> None:
    p = cli(env, *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    assert "Usage: replaybook" in p.stderr and needle in p.stderr, p.stderr
    assert p.stdout == ""


def test_schema_to_an_unwritable_path(tmp_path: Path, env: dict[str, str]) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.json"
    p = cli(env, "schema", "-o", str(target))
    assert p.returncode == 2 and "internal error" not in p.stderr
    assert p.stderr.startswith("error: --output: cannot write ") and str(target) in p.stderr
    p = cli(env, "schema", "-o", str(tmp_path))  # a directory
    assert p.returncode == 2 and str(tmp_path) in p.stderr


def test_output_not_on_a_terminal(tmp_path: Path, env: dict[str, str]) -> None:
    """Piped: log lines are shown as written (no Rich markup leaking, brackets kept),
    and tables never cut an execution id."""
    line = "x" * 150 + " [x] [dim]kept[/]"
    pb = write(tmp_path, "log.yaml", one_step(f"def main():\n    print({line!r})\n    return 1"))
    env["COLUMNS"] = "80"
    p = cli(env, "run", str(pb))
    assert p.returncode == 0, p.stderr
    assert f"    work: {line}\n" in p.stderr
    assert "[/]" not in p.stderr.replace(line, "")
    eid = json.loads(cli(env, "executions", "list", "--json").stdout)[0]["execution_id"]
    listed = cli(env, "executions", "list")
    assert listed.returncode == 0 and eid in listed.stdout and "…" not in listed.stdout
    assert "completed" in listed.stdout


def test_payload_values_that_are_not_json(tmp_path: Path, env: dict[str, str]) -> None:
    """A --set date is its text, as in a workload; NaN and infinities are invalid
    input (exit 2, naming the option) and nothing is recorded."""
    pb = write(
        tmp_path,
        "p.yaml",
        "metadata: {name: p}\nworkflow:\n  - step: start\n    next: end\n"
        "  - step: end\n    result: {n: '{{ workload.n }}'}\n",
    )
    rc, out, _ = run_json(env, pb, "--set", "n=2024-01-01")
    assert rc == 0 and out["result"] == {"n": "2024-01-01"}
    rc, out, _ = run_json(env, pb, "--set", "n=2024-01-01 10:00:00")
    assert rc == 0 and out["result"] == {"n": "2024-01-01 10:00:00"}
    bad = [
        (["--set", "n=.inf"], "--set n"),
        (["--set", "n=.nan"], "--set n"),
        (["--set", "a.b=[1, -.inf]"], "--set a.b"),
        (["--payload", '{"n": 1e400}'], "--payload"),
        (["--payload", '{"n": NaN}'], "--payload"),
    ]
    for args, needle in bad:
        for command in (["run", str(pb)], ["execute", "p"], ["execute", "p", "--wait"]):
            p = cli(env, *command, *args)
            assert p.returncode == 2, (args, p.stderr)
            assert p.stderr.startswith(f"error: {needle}:") and "NaN" in p.stderr, p.stderr
    text = pb.read_text().replace("workflow:", "workload: {n: .inf}\nworkflow:")
    workload = write(tmp_path, "w.yaml", text)
    p = cli(env, "run", str(workload), "--json")
    assert p.returncode == 2 and json.loads(p.stdout)["errors"][0]["path"] == "workload.n"
    rows = json.loads(cli(env, "executions", "list", "--json").stdout)
    assert [r["status"] for r in rows] == ["completed", "completed"]


def _start_and_wait_until_running(
    env: dict[str, str], pb: Path, step: str, *args: str
) -> tuple[subprocess.Popen[str], str]:
    """Start `replaybook run` (progress on stderr, whose first line names the
    execution) and return once `step` has started, read from `events --follow`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "replaybook", "run", str(pb), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert " execution " in first, first
    eid = first.split()[-1]
    follow = subprocess.Popen(
        [sys.executable, "-m", "replaybook", "executions", "events", eid, "--follow", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        for line in follow.stdout:
            e = json.loads(line)
            if e["type"] == "step.started" and e["step"] == step:
                break
        else:
            raise AssertionError(f"{step} never started")
    finally:
        follow.kill()
        follow.wait()
    return proc, eid


SLOW_UNLESS_FLAG = """import os, time
def main():
    if os.path.exists({flag!r}):
        return "flag"
    time.sleep(60)"""


def test_sigterm_cancels_an_embedded_run(tmp_path: Path, env: dict[str, str]) -> None:
    pb = write(tmp_path, "slow.yaml", one_step("import time\ndef main():\n    time.sleep(60)"))
    proc, eid = _start_and_wait_until_running(env, pb, "work")
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    shown = json.loads(cli(env, "executions", "show", eid, "--json").stdout)
    assert shown["status"] == "cancelled" and shown["steps"]["work"]["status"] == "cancelled"


def test_resume_messages_and_recovery_after_sigkill(tmp_path: Path, env: dict[str, str]) -> None:
    flag = tmp_path / "flag"
    pb = write(tmp_path, "slow.yaml", one_step(SLOW_UNLESS_FLAG.format(flag=str(flag))))
    proc, eid = _start_and_wait_until_running(env, pb, "work")
    proc.kill()  # SIGKILL: nothing can be cleaned up
    proc.communicate(timeout=30)
    p = cli(env, "executions", "resume", eid)
    assert p.returncode == 2
    assert f"execution {eid} is still running;" in p.stderr
    assert f"replaybook executions cancel {eid}" in p.stderr and "replaybook worker" in p.stderr
    p = cli(env, "executions", "resume", eid, "--from", "nosuch")
    assert p.returncode == 2 and "no step 'nosuch'" in p.stderr
    # The way out the message gives: cancel, then resume.
    p = cli(env, "executions", "cancel", eid)
    assert p.returncode == 0 and p.stdout == f"{eid}: cancelled\n"
    p = cli(env, "executions", "cancel", eid)
    assert p.returncode == 0 and p.stdout == f"{eid}: already cancelled, nothing to cancel\n"
    flag.write_text("x")
    p = cli(env, "executions", "resume", eid, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["result"] == {"work": "flag"}, p.stderr
    events_before = len(json.loads(cli(env, "executions", "events", eid, "--json").stdout))
    p = cli(env, "executions", "resume", eid, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "completed"
    assert f"execution {eid} is already completed: nothing to resume" in p.stderr
    events_after = len(json.loads(cli(env, "executions", "events", eid, "--json").stdout))
    assert events_after == events_before  # nothing was recorded


def test_run_on_a_server_without_workers_warns_and_waits(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """`replaybook server` runs no workers by default: `run` says so (one line on
    stderr, --json stdout untouched), keeps waiting, and completes once one connects."""
    from replaybook.server.cluster import LocalCluster

    pb = write(tmp_path, "ok.yaml", one_step("def main():\n    return 7"))
    with LocalCluster(f"sqlite:///{tmp_path / 'server.db'}", workers=0, env=env) as cluster:
        env = {**env, "REPLAYBOOK_SERVER": cluster.url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "replaybook", "run", str(pb), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            warning = proc.stderr.readline()
            assert warning == (
                f"warning: no workers are connected to {cluster.url}: the execution waits "
                f"until one is (replaybook worker --server {cluster.url})\n"
            )
            cluster.start_worker()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        done = json.loads(out)  # exactly one JSON object
        assert done["status"] == "completed" and done["result"] == {"work": 7}
        assert "warning" not in err
        # With a live worker, no warning; resume says a completed execution is done.
        rc, again, err = run_json(env, pb)
        assert rc == 0 and "warning" not in err
        p = cli(env, "executions", "resume", again["execution_id"])
        assert p.returncode == 0 and "is already completed: nothing to resume" in p.stderr
        p = cli(env, "executions", "resume", again["execution_id"], "--from", "nosuch")
        assert p.returncode == 2 and "no step 'nosuch'" in p.stderr
        p = cli(env, "executions", "cancel", again["execution_id"])
        assert p.stdout.endswith("already completed, nothing to cancel\n")


def test_run_on_a_server_with_its_own_worker_slots_does_not_warn(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from replaybook.server.cluster import LocalCluster

    pb = write(tmp_path, "ok.yaml", one_step("def main():\n    return 7"))
    db = f"sqlite:///{tmp_path / 'server.db'}"
    with LocalCluster(db, workers=0, server_workers=1, env=env) as cluster:
        rc, out, err = run_json({**env, "REPLAYBOOK_SERVER": cluster.url}, pb)
    assert rc == 0 and out["result"] == {"work": 7}
    assert "warning" not in err
