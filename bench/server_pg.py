"""Server mode on PostgreSQL: `replaybook server --workers 0` and two
`replaybook worker --server URL` processes on this machine.

- Per-step latency on a linear playbook: an N-step chain (default 300) of `python`
  steps, wall time from start to the end divided by N (target <= 5 ms).
- Throughput on a wide fan-out: an async iterator of M items (default 2,000), each a
  `python` task returning its item, items settled per second (target >= 1,000
  steps/s). (An iterator's task needs an action, so the items are python steps.)

A fresh database is made on $REPLAYBOOK_TEST_PG_DSN's server (default: the local one)
and dropped afterwards. Figures are from one run on this machine.

    python bench/server_pg.py [--steps 300] [--items 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linear_steps import chain_yaml

from replaybook.client import ApiClient
from replaybook.server.cluster import LocalCluster

DSN = os.environ.get("REPLAYBOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def fanout_yaml(n: int, kind: str, concurrency: int) -> str:
    task = (
        "      type: python\n"
        "      args: {i: '{{ i }}'}\n"
        "      code: |\n"
        "        def main(i):\n"
        "            return i\n"
    )
    return (
        f"metadata: {{name: fan_{kind}_{n}, path: bench/fan_{kind}_{n}}}\n"
        f"workload: {{n: {n}}}\n"
        "workflow:\n"
        "  - step: start\n"
        "    next: fan\n"
        "  - step: fan\n"
        "    type: iterator\n"
        "    collection: '{{ range(workload.n) | list }}'\n"
        "    element: i\n"
        "    mode: async\n"
        f"    concurrency: {concurrency}\n"
        "    task:\n"
        f"{task}"
        "    next: end\n"
        "  - step: end\n"
    )


def timed_run(api: ApiClient, text: str) -> float:
    entry = api.register(text)
    t0 = time.perf_counter()
    eid = api.start(entry["path"], entry["version"])
    out = api.execution(eid, wait=600)
    took = time.perf_counter() - t0
    assert out["status"] == "completed", out
    return took


def create_database() -> tuple[str, str]:
    import psycopg

    name = f"rb_bench_server_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(DSN)._replace(path=f"/{name}")), name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16, help="slots per worker")
    ap.add_argument("--fan-concurrency", type=int, default=64, help="iterator concurrency")
    args = ap.parse_args()
    url, name = create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="rb-bench-server-") as tmp:
            env = dict(os.environ)
            env["REPLAYBOOK_DATA_DIR"] = str(Path(tmp) / "data")
            with (
                LocalCluster(
                    url,
                    workers=2,
                    worker_concurrency=args.concurrency,
                    env=env,
                    log_dir=Path(tmp) / "logs",
                ) as cluster,
                ApiClient(cluster.url) as api,
            ):
                # Warm-up: python pools of both workers, caches of the server.
                timed_run(api, chain_yaml(4, "python").replace("bench/python_4", "warm/p"))
                timed_run(api, fanout_yaml(50, "python", 32).replace("bench/", "warm/"))
                n = args.steps
                for kind in ("python", "router"):
                    took = timed_run(api, chain_yaml(n, kind))
                    print(
                        f"linear {kind:<6} {n} steps: {took:.2f} s, "
                        f"{took / n * 1000:.2f} ms per step (target <= 5 ms)"
                    )
                m = args.items
                for kind in ("python",):
                    took = timed_run(api, fanout_yaml(m, kind, args.fan_concurrency))
                    print(
                        f"fan-out {kind:<6} {m} items: {took:.2f} s, "
                        f"{m / took:,.0f} steps/s (target >= 1,000)"
                    )
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
