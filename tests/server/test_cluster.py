"""A server and worker processes on PostgreSQL, for real: a SIGKILLed worker loses
nothing and a late result from it is refused, a restarted server picks up where it
was, two servers share one execution, SIGTERM drains, pools route jobs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from replaybook.client import ApiClient
from replaybook.server.cluster import LocalCluster

pytestmark = pytest.mark.timeout(240)

ITEMS = 100

FANOUT = f"""
metadata: {{name: fanout, path: tests/fanout}}
workload: {{n: {ITEMS}}}
workflow:
  - step: start
    next: fan
  - step: fan
    type: iterator
    collection: "{{{{ range(workload.n) | list }}}}"
    element: i
    mode: async
    concurrency: 16
    task:
      type: python
      args: {{i: "{{{{ i }}}}"}}
      code: |
        import time
        def main(i):
            time.sleep(0.1)
            return {{"i": i, "sq": i * i}}
    next: end
  - step: end
    result: "{{{{ fan }}}}"
"""

SLOW_CHAIN = """
metadata: {name: chain, path: tests/chain}
workflow:
  - step: start
    next: a
  - step: a
    type: python
    code: |
      import time
      def main():
          time.sleep(1.5)
          return 1
    next: b
  - step: b
    type: python
    args: {x: "{{ a }}"}
    code: |
      import time
      def main(x):
          time.sleep(1.5)
          return x + 1
    next: c
  - step: c
    type: python
    args: {x: "{{ b }}"}
    code: |
      def main(x):
          return x + 1
    next: end
  - step: end
    result: "{{ c }}"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def register(api: ApiClient, path: Path) -> dict[str, Any]:
    out: dict[str, Any] = api.register(path.read_text(), file=str(path))
    return out


def item_completions(events: list[dict[str, Any]], step: str) -> Counter[int]:
    return Counter(
        e["index"]
        for e in events
        if e["type"] == "step.completed" and e.get("step") == step and "index" in e
    )


def test_sigkilled_worker_loses_nothing(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    pb = write(tmp_path, "fanout.yaml", FANOUT)
    with (
        LocalCluster(
            pg_url,
            workers=2,
            worker_concurrency=8,
            env=proc_env,
            log_dir=tmp_path / "logs",
            lease_seconds=2.0,
        ) as cluster,
        ApiClient(cluster.url) as api,
    ):
        # A worker still starting (slow on a loaded machine) would do none of the
        # work, and killing it would prove nothing.
        wait_for(lambda: len(api.workers()) == 2, what="both workers polling")
        entry = register(api, pb)
        eid = api.start(entry["path"], entry["version"])

        # Both workers are busy before one of them dies.
        def both_working() -> bool:
            started = [e for e in api.all_events(eid) if e["type"] == "step.completed"]
            return len(started) >= 20

        wait_for(both_working, what="20 items done")
        cluster.kill_worker(0)
        out = api.execution(eid, wait=120)
        assert out["status"] == "completed", out
        events = api.all_events(eid)
    result = out["result"]
    assert [r["i"] for r in result] == list(range(ITEMS))
    assert [r["sq"] for r in result] == [i * i for i in range(ITEMS)]
    done = item_completions(events, "fan")
    assert sorted(done) == list(range(ITEMS))
    assert max(done.values()) == 1, [i for i, n in done.items() if n > 1]
    workers = {e["data"].get("worker") for e in events if e["type"] == "step.started"}
    assert len(workers - {None}) == 2  # the killed one did some of the work


def test_late_completion_of_a_lost_lease_is_refused(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    pb = write(tmp_path, "chain.yaml", SLOW_CHAIN)
    with LocalCluster(pg_url, workers=0, env=proc_env) as cluster, ApiClient(cluster.url) as api:
        entry = register(api, pb)
        eid = api.start(entry["path"], entry["version"])
        lease = {"worker_id": "w-old", "limit": 1, "lease_seconds": 0.5, "wait": 5}
        first = api.request("POST", "/api/queue/lease", json_body=lease)["jobs"][0]
        assert first["job"]["step"] == "start"
        time.sleep(0.7)  # the lease expires
        lease2 = {**lease, "worker_id": "w-new", "lease_seconds": 30}
        again = api.request("POST", "/api/queue/lease", json_body=lease2)["jobs"][0]
        assert again["job"]["id"] == first["job"]["id"]
        assert again["job"]["lease_token"] != first["job"]["lease_token"]
        late = {"job": first["job"], "events": _start_outcome(first["job"])}
        r = httpx.post(f"{cluster.url}/api/queue/complete", json=late, trust_env=False)
        assert r.status_code == 409
        ok = {"job": again["job"], "events": _start_outcome(again["job"])}
        r = httpx.post(f"{cluster.url}/api/queue/complete", json=ok, trust_env=False)
        assert r.status_code == 200, r.text
        events = api.all_events(eid)
    assert sum(1 for e in events if e["type"] == "step.completed" and e["step"] == "start") == 1


def _start_outcome(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "step.completed",
            "step": job["step"],
            "visit": job["visit"],
            "attempt": job["attempt"],
            "data": {"result": None, "routes": [{"step": "a", "data": {}}]},
        }
    ]


def test_server_restart_mid_execution(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    pb = write(tmp_path, "chain.yaml", SLOW_CHAIN)
    with LocalCluster(pg_url, workers=2, env=proc_env, log_dir=tmp_path / "logs") as cluster:
        with ApiClient(cluster.url) as api:
            entry = register(api, pb)
            eid = api.start(entry["path"], entry["version"])
            wait_for(
                lambda: any(
                    e["type"] == "step.started" and e["step"] == "a" for e in api.all_events(eid)
                ),
                what="step a started",
            )
        cluster.stop_server(0)
        time.sleep(1.0)  # the server is down while step a runs and wants to report
        cluster.start_server(0)
        with ApiClient(cluster.url) as api:
            out = api.execution(eid, wait=60)
            events = api.all_events(eid)
    assert out["status"] == "completed", out
    assert out["result"] == 3
    assert [e["step"] for e in events if e["type"] == "step.completed"] == [
        "start",
        "a",
        "b",
        "c",
        "end",
    ]


def test_two_servers_serve_one_execution(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    pb = write(tmp_path, "fanout.yaml", FANOUT.replace(f"n: {ITEMS}", "n: 40"))
    with LocalCluster(
        pg_url,
        workers=2,
        servers=2,
        worker_concurrency=4,
        env=proc_env,
        log_dir=tmp_path / "logs",
    ) as cluster:
        a, b = ApiClient(cluster.urls[0]), ApiClient(cluster.urls[1])
        entry = register(a, pb)
        eid = a.start(entry["path"], entry["version"])
        # Followed live through the other server, to its end.
        kinds = [kind for kind, _ in b.stream(eid)]
        assert kinds[-1] == "end"
        out = b.execution(eid)
        assert out["status"] == "completed"
        assert [r["i"] for r in out["result"]] == list(range(40))
        # Each server recorded completions from its own worker.
        for api in (a, b):
            text = httpx.get(f"{api.base_url}/metrics", trust_env=False).text
            assert _metric(text, "replaybook_jobs_completed_total") > 0
        assert item_completions(a.all_events(eid), "fan") == Counter(range(40))
        a.close()
        b.close()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_sigterm_drains_running_jobs(tmp_path: Path, pg_url: str, proc_env: dict[str, str]) -> None:
    pb = write(tmp_path, "chain.yaml", SLOW_CHAIN)
    with (
        LocalCluster(pg_url, workers=1, env=proc_env, log_dir=tmp_path / "logs") as cluster,
        ApiClient(cluster.url) as api,
    ):
        entry = register(api, pb)
        eid = api.start(entry["path"], entry["version"])
        wait_for(
            lambda: any(
                e["type"] == "step.started" and e["step"] == "a" for e in api.all_events(eid)
            ),
            what="step a started",
        )
        first = cluster.workers[0]
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        events = api.all_events(eid)
        # Step a finished and was recorded by the draining worker; b was not leased.
        done = [e["step"] for e in events if e["type"] == "step.completed"]
        assert done == ["start", "a"]
        cluster.start_worker()
        out = api.execution(eid, wait=60)
    assert out["status"] == "completed"
    assert out["result"] == 3


def test_steps_run_in_their_pool(tmp_path: Path, pg_url: str, proc_env: dict[str, str]) -> None:
    pb = write(
        tmp_path,
        "pools.yaml",
        """
metadata: {name: pools, path: tests/pools}
workflow:
  - step: start
    next: cpu
  - step: cpu
    type: python
    code: |
      import os
      def main():
          return os.getpid()
    next: gpu
  - step: gpu
    type: python
    pool: gpu
    code: |
      import os
      def main():
          return os.getpid()
    next: end
  - step: end
""",
    )
    with LocalCluster(pg_url, workers=1, env=proc_env, log_dir=tmp_path / "logs") as cluster:
        gpu = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replaybook",
                "worker",
                "--server",
                cluster.url,
                "--pool",
                "gpu",
                "--concurrency",
                "2",
            ],
            env=proc_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with ApiClient(cluster.url) as api:
                entry = register(api, pb)
                eid = api.start(entry["path"], entry["version"])
                out = api.execution(eid, wait=60)
                events = api.all_events(eid)
                pools = {p["pool"] for p in api.pools()}
        finally:
            gpu.send_signal(signal.SIGTERM)
            _, err = gpu.communicate(timeout=30)
    assert out["status"] == "completed", out
    by_step = {e["step"]: e["data"]["worker"] for e in events if e["type"] == "step.started"}
    assert by_step["cpu"] != by_step["gpu"]
    assert f"-{gpu.pid}-" in by_step["gpu"]
    assert {"default", "gpu"} <= pools
    assert "pools gpu" in err


def test_cli_against_the_server(tmp_path: Path, pg_url: str, proc_env: dict[str, str]) -> None:
    pb = write(
        tmp_path,
        "hello.yaml",
        """
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
""",
    )
    with LocalCluster(pg_url, workers=2, env=proc_env, log_dir=tmp_path / "logs") as cluster:
        env = {
            **proc_env,
            "REPLAYBOOK_SERVER": cluster.url,
            "REPLAYBOOK_DB": str(tmp_path / "unused.db"),
        }

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "replaybook", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        run = cli("run", str(pb), "--set", "who=server", "--json")
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["result"] == {"text": "hello server"}
        assert set(out) == {"execution_id", "status", "result", "error", "steps"}
        eid = out["execution_id"]
        # Embedded gives the same object (but its own id).
        embedded = {**proc_env, "REPLAYBOOK_DB": str(tmp_path / "embedded.db")}
        local = subprocess.run(
            [sys.executable, "-m", "replaybook", "run", str(pb), "--set", "who=server", "--json"],
            env=embedded,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert {**json.loads(local.stdout), "execution_id": eid} == out

        shown = json.loads(cli("executions", "show", eid, "--json").stdout)
        assert shown["result"] == out["result"] and shown["playbook"] == "tests/hello"
        listed = json.loads(cli("executions", "list", "--json", "--status", "completed").stdout)
        assert eid in [r["execution_id"] for r in listed]
        events = json.loads(cli("executions", "events", eid, "--json").stdout)
        assert events[0]["type"] == "execution.started"
        assert events[-1]["type"] == "execution.completed"
        cat = json.loads(cli("catalog", "list", "--json").stdout)
        assert [c["path"] for c in cat] == ["tests/hello"]
        shown_pb = cli("catalog", "show", "tests/hello")
        assert shown_pb.stdout == pb.read_text()
        reg = json.loads(cli("register", str(pb), "--json").stdout)
        assert reg[0]["new"] is False

        started = cli("execute", "tests/hello", "--payload", '{"who": "x"}', "--json")
        assert started.returncode == 0, started.stderr
        second = json.loads(started.stdout)["execution_id"]
        waited = cli("execute", "tests/hello", "--wait", "--json")
        assert json.loads(waited.stdout)["result"] == {"text": "hello world"}
        assert json.loads(cli("executions", "show", second, "--json").stdout)["status"] in (
            "running",
            "completed",
        )

        missing = cli("executions", "show", "nope", "--json")
        assert missing.returncode == 2 and "no execution 'nope'" in missing.stderr
        bad = write(tmp_path, "bad.yaml", "workflow: [{step: start, next: nowhere}]\n")
        invalid = cli("run", str(bad), "--json")
        assert invalid.returncode == 2
        assert json.loads(invalid.stdout)["status"] == "invalid"


def test_workers_on_the_database_and_execute(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    """`replaybook worker --db` processes (no server) work on what `execute` queues."""
    pb = write(tmp_path, "fanout.yaml", FANOUT.replace(f"n: {ITEMS}", "n: 30"))
    env = {**proc_env, "REPLAYBOOK_DB": pg_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replaybook", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert cli("register", str(pb)).returncode == 0
    started = cli("execute", "tests/fanout", "--json")
    assert started.returncode == 0, started.stderr
    eid = json.loads(started.stdout)["execution_id"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "replaybook", "worker", "--db", pg_url, "--concurrency", "4"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        followed = cli("executions", "events", eid, "--follow", "--json")
        kinds = [json.loads(line)["type"] for line in followed.stdout.splitlines()]
        assert kinds[0] == "execution.started" and kinds[-1] == "execution.completed"
        from replaybook.store import open_store

        store = open_store(pg_url)
        try:
            wait_for(
                lambda: (info := store.get_execution(eid)) is not None and info.status != "running",
                what="the execution's end",
            )
            events = [e.as_dict() for e in store.read_events(eid)]
        finally:
            store.close()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.communicate(timeout=30)
    shown = json.loads(cli("executions", "show", eid, "--json").stdout)
    assert shown["status"] == "completed"
    assert [r["i"] for r in shown["result"]] == list(range(30))
    assert item_completions(events, "fan") == Counter(range(30))
    by = {e["data"].get("worker") for e in events if e["type"] == "step.started"} - {None}
    assert len(by) == 2
    assert all(w.returncode == 0 for w in workers)


def test_cancel_and_resume_through_the_cli(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    pb = write(tmp_path, "chain.yaml", SLOW_CHAIN)
    with LocalCluster(pg_url, workers=1, env=proc_env, log_dir=tmp_path / "logs") as cluster:
        env = {**proc_env, "REPLAYBOOK_SERVER": cluster.url}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "replaybook", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        assert cli("register", str(pb)).returncode == 0
        first = json.loads(cli("execute", "tests/chain", "--json").stdout)["execution_id"]
        followed = cli("executions", "events", first, "--follow", "--json")
        lines = [json.loads(line) for line in followed.stdout.splitlines()]
        assert lines[0]["type"] == "execution.started"
        assert lines[-1]["type"] == "execution.completed"
        assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
        eid = json.loads(cli("execute", "tests/chain", "--json").stdout)["execution_id"]
        cancelled = cli("executions", "cancel", eid, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout)["status"] == "cancelled"
        resumed = cli("executions", "resume", eid, "--json")
        assert resumed.returncode == 0, resumed.stderr
        out = json.loads(resumed.stdout)
        assert out["status"] == "completed" and out["result"] == 3
        again = cli("executions", "resume", eid, "--from", "nowhere", "--json")
        assert again.returncode == 2 and "nowhere" in again.stderr  # invalid input


def test_server_with_its_own_worker_slots(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    pb = write(tmp_path, "fanout.yaml", FANOUT.replace(f"n: {ITEMS}", "n: 10"))
    with (
        LocalCluster(
            pg_url, workers=0, server_workers=2, env=proc_env, log_dir=tmp_path / "logs"
        ) as cluster,
        ApiClient(cluster.url) as api,
    ):
        entry = register(api, pb)
        out = api.execution(api.start(entry["path"], entry["version"]), wait=60)
        assert out["status"] == "completed"
        assert [r["i"] for r in out["result"]] == list(range(10))
        assert api.workers() == []  # in-process slots are not remote workers


DUCKDB_SPREAD = """
metadata: {name: duck_spread, path: tests/duck_spread}
workflow:
  - step: start
    next: load
  - step: load
    type: duckdb
    sql: CREATE TABLE n AS SELECT range AS i FROM range(100)
    next: reads
  - step: reads
    type: iterator
    collection: "{{ range(12) | list }}"
    element: k
    mode: async
    concurrency: 12
    task:
      type: duckdb
      params: {k: "{{ k }}"}
      # Long enough (a few ms) that the items spread over the processes.
      sql: |
        SELECT count(*) AS c, $k AS k FROM n WHERE i >= $k
          AND (SELECT count(*) FROM range(2000000)) > 0
    next: write
  - step: write
    type: duckdb
    sql: CREATE TABLE done AS SELECT 1 AS ok
    next: end
  - step: end
    result: "{{ reads | map(attribute='rows') | map('first') | map(attribute='c') | list }}"
"""


def test_duckdb_steps_of_one_execution_spread_over_worker_processes(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    # Two workers and the server's slots share one data directory on this host: each
    # step takes the execution's DuckDB file in turn (one process at a time may hold
    # it) instead of failing on the other process's lock.
    pb = write(tmp_path, "duck.yaml", DUCKDB_SPREAD)
    with (
        LocalCluster(
            pg_url,
            workers=2,
            worker_concurrency=4,
            server_workers=2,
            env=proc_env,
            log_dir=tmp_path / "logs",
        ) as cluster,
        ApiClient(cluster.url) as api,
    ):
        wait_for(lambda: len(api.workers()) == 2, what="both workers polling")
        entry = register(api, pb)
        eid = api.start(entry["path"], entry["version"])
        out = api.execution(eid, wait=120)
        assert out["status"] == "completed", out["error"]
        assert out["result"] == [100 - k for k in range(12)]
        workers = {
            e["data"].get("worker")
            for e in api.all_events(eid)
            if e["type"] == "step.started" and e["data"].get("worker")
        }
        assert len(workers) >= 2, workers  # the steps really ran in several processes


def test_run_follows_through_a_server_restart(
    tmp_path: Path, pg_url: str, proc_env: dict[str, str]
) -> None:
    """`run --server` keeps following the execution when the server restarts."""
    pb = write(tmp_path, "chain.yaml", SLOW_CHAIN)
    with LocalCluster(pg_url, workers=1, env=proc_env, log_dir=tmp_path / "logs") as cluster:
        env = {**proc_env, "REPLAYBOOK_SERVER": cluster.url}
        run = subprocess.Popen(
            [sys.executable, "-m", "replaybook", "run", str(pb), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with ApiClient(cluster.url) as api:
                wait_for(lambda: api.executions(status="running"), what="a running execution")
            cluster.restart_server(0)
            out, err = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["result"] == 3
