"""`replaybook worker`: a process of worker slots leasing from a store or a server.

SIGTERM (and Ctrl-C) drain: nothing more is leased, running jobs finish and report,
then the process exits. SIGKILL loses nothing either: the leases of the killed
worker's jobs expire and another worker takes them.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from replaybook.errors import UsageError


def parse_pools(names: Sequence[str] | None) -> list[str | None] | None:
    """`--pool` values: none given = the default pool; `default` names it; `*` = all."""
    if not names:
        return [None]
    if "*" in names:
        return None
    return [None if n == "default" else n for n in names]


def run_worker(
    *,
    db: str | None,
    server: str | None,
    token: str | None,
    pools: Sequence[str] | None,
    concurrency: int,
    lease_seconds: float,
    data_dir: Path,
) -> None:
    from replaybook.runtime.embedded import close_services, make_services
    from replaybook.runtime.worker import WorkerPool

    if concurrency < 1:
        raise UsageError("--concurrency must be 1 or more")
    if lease_seconds <= 0:
        raise UsageError("--lease-seconds must be more than 0")
    if db and server:
        raise UsageError("give --db or --server, not both")
    services = make_services(concurrency, shared_files=True)
    pool_names = parse_pools(pools)
    closers: list[Any] = []
    if server:
        from replaybook.client import ApiClient, RemoteChildRunner, RemoteCoordinator

        api = ApiClient(server, token, max_connections=concurrency + 8)
        api.health()  # fail now, clearly, if the server is not there
        closers.append(api)
        remote = RemoteCoordinator(api, concurrency=concurrency)
        pool = WorkerPool(
            remote,
            concurrency=concurrency,
            data_dir=data_dir,
            services=services,
            pools=pool_names,
            lease_seconds=lease_seconds,
        )
        remote.running = pool.running
        pool.services["children"] = RemoteChildRunner(api, pool.release_slot, pool.take_slot)
        from replaybook.credentials import Credentials, SealedOverApi

        # `auth`: ciphertext from the server, decrypted here with this worker's key.
        pool.services["credentials"] = Credentials(SealedOverApi(api), data_dir=data_dir)
        where = server
    else:
        from replaybook.runtime.children import ChildRunner
        from replaybook.runtime.coordinator import LocalCoordinator
        from replaybook.runtime.embedded import catalog_loader
        from replaybook.runtime.engine import Engine
        from replaybook.store import open_store

        store = open_store(db)
        engine = Engine(store, catalog_loader(store))
        local = LocalCoordinator(engine, shared=True)
        closers.extend([local, store])
        pool = WorkerPool(
            local,
            concurrency=concurrency,
            data_dir=data_dir,
            services=services,
            pools=pool_names,
            lease_seconds=lease_seconds,
        )
        pool.services["children"] = ChildRunner(engine, pool.release_slot, pool.take_slot)
        try:
            from replaybook.credentials import Credentials

            pool.services["credentials"] = Credentials(store)
        except ImportError:
            pass
        where = repr(store)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pool.start()
    shown = "all" if pool_names is None else ", ".join(p or "default" for p in pool_names)
    sys.stderr.write(
        f"replaybook worker {pool.worker_id} on {where}: pools {shown}, {concurrency} slots\n"
    )
    sys.stderr.flush()
    while not stop.wait(1.0):
        pass
    sys.stderr.write(f"worker {pool.worker_id}: draining {pool.running()} running job(s)\n")
    sys.stderr.flush()
    pool.drain()
    close_services(services)
    for c in closers:
        c.close()
