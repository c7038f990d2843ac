"""Server time of the web UI's heaviest pages on a big store.

Seeds a SQLite store directly (through the Store interface, no workers) with 10,000
executions of a few playbooks in mixed statuses, plus one completed 1,000-step linear
execution whose log looks like a real one (each step scheduled, started, logged and
completed with its inputs, result and duration: 4,000+ events). Then starts
`replaybook server` on it and times GETs over loopback: the executions list (first
page, a deep page at offset 9,000, a filtered page), the detail page of the
1,000-step execution and one of its step panels. Also prints the query plans of the
list queries (they must walk an index, not sort the table).

    python bench/ui_pages.py [--executions 10000] [--steps 1000] [--repeat 5]

Target: under 1 s for each page on this machine.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from replaybook.core import events as ev
from replaybook.server.cluster import LocalCluster
from replaybook.store import open_store
from replaybook.store.base import NewEvent, Store

SMALL = """
metadata: {{name: {name}, path: bench/{name}}}
workflow:
  - step: start
    next: work
  - step: work
    type: python
    code: "def main(): return 1"
    next: end
  - step: end
"""


def chain_yaml(n: int) -> str:
    lines = ["metadata: {name: chain, path: bench/chain}", "workflow:"]
    lines += ["  - step: start", "    next: s0"]
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "end"
        lines += [
            f"  - step: s{i}",
            "    type: python",
            f"    args: {{i: {i}}}",
            "    code: |",
            "      def main(i):",
            "          return {'i': i, 'rows': i * 10}",
            f"    next: {nxt}",
        ]
    lines.append("  - step: end")
    return "\n".join(lines) + "\n"


def started(path: str, version: int) -> NewEvent:
    return NewEvent(
        ev.EXECUTION_STARTED,
        data={
            "playbook": {"path": path, "version": version, "name": path.split("/")[-1]},
            "workload": {"day": "2024-05-01"},
            "payload": {},
            "parent": None,
        },
    )


def seed_many(store: Store, count: int) -> None:
    names = ["ingest", "report", "score", "export", "cleanup"]
    for name in names:
        store.register_playbook(f"bench/{name}", name, SMALL.format(name=name))
    for i in range(count):
        path = f"bench/{names[i % len(names)]}"
        eid = uuid.uuid4().hex
        store.create_execution(eid, path, 1)
        if i % 50 == 7:  # a few still running
            store.append(eid, 0, [started(path, 1)], status="running")
            continue
        status, end = (
            ("failed", NewEvent(ev.EXECUTION_FAILED, data={"error": {"message": "boom"}}))
            if i % 7 == 3
            else ("completed", NewEvent(ev.EXECUTION_COMPLETED, data={"result": {"n": i}}))
        )
        store.append(eid, 0, [started(path, 1), end], status=status)


def seed_chain(store: Store, n: int) -> str:
    entry, _ = store.register_playbook("bench/chain", "chain", chain_yaml(n))
    eid = uuid.uuid4().hex
    store.create_execution(eid, entry.path, entry.version)
    out: list[NewEvent] = [started(entry.path, entry.version)]
    names = ["start", *(f"s{i}" for i in range(n)), "end"]
    for k, name in enumerate(names):
        nxt = names[k + 1] if k + 1 < len(names) else None
        routes = [ev.route(nxt)] if nxt else []
        out.append(ev.scheduled(name, 1, {}, [names[k - 1]] if k else []))
        if name in ("start", "end"):
            out.append(
                NewEvent(ev.STEP_COMPLETED, name, 1, None, 1, {"result": None, "routes": routes})
            )
            continue
        i = k - 1
        out.append(NewEvent(ev.STEP_STARTED, name, 1, None, 1, {"worker": "bench-worker"}))
        out.append(NewEvent(ev.STEP_LOG, name, 1, None, 1, {"lines": [f"step {i} ran"]}))
        data: dict[str, Any] = {
            "result": {"i": i, "rows": i * 10},
            "routes": routes,
            "duration_ms": 3.2,
            "inputs": {"i": i},
        }
        out.append(NewEvent(ev.STEP_COMPLETED, name, 1, None, 1, data))
    out.append(NewEvent(ev.EXECUTION_COMPLETED, data={"result": None}))
    store.append(eid, 0, out, status="completed")
    return eid


def query_plans(db_file: Path) -> None:
    from replaybook.store.sqlite.store import _list_executions_query

    conn = sqlite3.connect(db_file)
    params = {"status": "failed", "playbook_path": "bench/ingest", "parent_id": None}
    params.update(limit=51, offset=9000)
    for label, flags in (
        ("no filter", (False, False, False)),
        ("status", (True, False, False)),
        ("playbook", (False, True, False)),
        ("status + playbook", (True, True, False)),
    ):
        plan = conn.execute("EXPLAIN QUERY PLAN " + _list_executions_query(*flags), params)
        print(f"  plan, {label:18s}: " + "; ".join(row[3] for row in plan))
    conn.close()


def timed(client: httpx.Client, url: str, repeat: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
        size = len(r.content)
    return min(times), statistics.median(times), size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executions", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_file = Path(tmp) / "rb.db"
        store = open_store(f"sqlite:///{db_file}")
        t0 = time.perf_counter()
        seed_many(store, args.executions)
        big = seed_chain(store, args.steps)
        store.close()
        seeded = args.executions + 1
        print(f"seeded {seeded:,} executions in {time.perf_counter() - t0:.1f} s")
        query_plans(db_file)
        env = dict(
            os.environ, REPLAYBOOK_DATA_DIR=str(Path(tmp) / "data"), REPLAYBOOK_SCHEDULER="0"
        )
        env.pop("REPLAYBOOK_API_TOKEN", None)
        with LocalCluster(f"sqlite:///{db_file}", workers=0, server_workers=0, env=env) as c:
            pages = [
                ("executions list, first page", "/ui/executions"),
                ("executions list, offset 9,000", "/ui/executions?offset=9000"),
                (
                    "executions list, failed, offset 1,000",
                    "/ui/executions?status=failed&offset=1000",
                ),
                (f"execution detail, {args.steps} steps", f"/ui/executions/{big}"),
                ("step panel of that execution", f"/ui/executions/{big}/panel?step=s500"),
            ]
            with httpx.Client(base_url=c.url, trust_env=False, timeout=60) as client:
                for label, url in pages:
                    # The first request of a page also loads (parses) the playbook
                    # version and lays its graph out; both are cached after.
                    first, _, _ = timed(client, url, 1)
                    best, median, size = timed(client, url, args.repeat)
                    print(
                        f"  {label:40s} first {first * 1000:7.1f} ms  min {best * 1000:7.1f} ms"
                        f"  median {median * 1000:7.1f} ms  ({size / 1024:,.0f} KiB)"
                    )


if __name__ == "__main__":
    main()
