"""The shared conformance suite against a server with two separate worker processes.

Starts `replaybook server --db <PostgreSQL> --workers 0` and two
`replaybook worker --server URL`, sets REPLAYBOOK_SERVER, and runs the suite through
scripts/conformance.py (held to conformance-pending.txt like the embedded run).

The database is a fresh one made for this run and dropped after, on the server of
$REPLAYBOOK_TEST_PG_DSN (default: the local one); `--db URL` uses a given store
instead (e.g. sqlite:////tmp/x.db when PostgreSQL is not there).

The server and the workers get the environment the runner gives the CLI (the case
variables, without secret-named ones): on a server, steps run in the workers and the
workload renders in the server, so that is where the cases' variables must be.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import uuid
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT.parent / "shared" / "spec" / "conformance" / "run.py"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pg_database() -> tuple[str, str] | None:
    """(url, name) of a new database, or None when PostgreSQL is not reachable."""
    dsn = os.environ.get("REPLAYBOOK_TEST_PG_DSN", DEFAULT_DSN)
    try:
        import psycopg

        name = f"rb_conf_server_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"conformance-server: PostgreSQL not usable at {dsn}: {exc}", file=sys.stderr)
        return None
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}")), name


def _drop(name: str) -> None:
    import psycopg

    dsn = os.environ.get("REPLAYBOOK_TEST_PG_DSN", DEFAULT_DSN)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="store URL (default: a new PostgreSQL database)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--concurrency", type=int, default=16, help="slots per worker")
    ap.add_argument("--logs", type=Path, help="folder for the server's and workers' logs")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the suite runner")
    args = ap.parse_args()
    if not RUNNER.exists():
        print(f"no conformance suite at {RUNNER}; skipped")
        return 0
    sys.path.insert(0, str(ROOT / "src"))
    from replaybook.server.cluster import LocalCluster

    runner = _load(RUNNER, "rb_conformance_runner")
    conformance = _load(ROOT / "scripts" / "conformance.py", "rb_conformance")
    made = None
    db = args.db
    if db is None:
        made = _pg_database()
        if made is None:
            if os.environ.get("REPLAYBOOK_REQUIRE_PG", "") not in ("", "0"):
                return 1
            print("conformance-server: skipped (no PostgreSQL; pass --db to use another store)")
            return 0
        db = made[0]
    try:
        with tempfile.TemporaryDirectory(prefix="rb-conf-server-") as tmp:
            env = runner.child_env()
            env["REPLAYBOOK_DATA_DIR"] = str(Path(tmp) / "data")
            cluster = LocalCluster(
                db,
                workers=args.workers,
                worker_concurrency=args.concurrency,
                env=env,
                log_dir=args.logs,
            )
            with cluster:
                os.environ["REPLAYBOOK_SERVER"] = cluster.url
                print(f"conformance-server: server {cluster.url} on {made[1] if made else db}, "
                      f"{args.workers} workers", flush=True)
                sys.argv = [sys.argv[0], *args.rest]
                rc: int = conformance.main()
                return rc
    finally:
        if made is not None:
            _drop(made[1])


if __name__ == "__main__":
    sys.exit(main())
