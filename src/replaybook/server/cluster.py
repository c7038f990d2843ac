"""A server and its workers as separate processes on this machine: what the tests,
the benchmark and the server conformance run start.

    with LocalCluster(db_url, workers=2, env=env) as c:
        c.url                      # http://127.0.0.1:<port>
        c.kill_worker(0)           # SIGKILL
        c.restart_server()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalCluster:
    def __init__(
        self,
        db: str,
        *,
        workers: int = 2,
        servers: int = 1,
        worker_concurrency: int = 8,
        server_workers: int = 0,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        lease_seconds: float = 30.0,
        worker_args: Sequence[str] = (),
    ) -> None:
        self.db = db
        self.env = dict(os.environ if env is None else env)
        self.env.pop("REPLAYBOOK_SERVER", None)
        self.log_dir = log_dir
        self.n_workers = workers
        self.n_servers = servers
        self.worker_concurrency = worker_concurrency
        self.server_workers = server_workers
        self.lease_seconds = lease_seconds
        self.worker_args = list(worker_args)
        self.ports = [free_port() for _ in range(servers)]
        self.servers: list[subprocess.Popen[bytes] | None] = [None] * servers
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def _log(self, name: str) -> Any:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop)
        self._logs.append(f)
        return f

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = self._log(name)
        return subprocess.Popen(
            [sys.executable, "-m", "replaybook", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )

    def start_server(self, i: int = 0) -> None:
        args = ["server", "--port", str(self.ports[i]), "--db", self.db]
        args += ["--workers", str(self.server_workers)]
        self.servers[i] = self._spawn(args, f"server{i}")
        self.wait_healthy(i)

    def wait_healthy(self, i: int = 0, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        headers = {}
        token = self.env.get("REPLAYBOOK_API_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        proc = self.servers[i]
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server {i} exited with {proc.returncode}")
            try:
                r = httpx.get(f"{self.urls[i]}/health", timeout=2, headers=headers, trust_env=False)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {i} not healthy after {timeout}s")
            time.sleep(0.1)

    def start_worker(self, server: int | None = None) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        url = self.urls[n % self.n_servers if server is None else server]
        args = ["worker", "--server", url, "--concurrency", str(self.worker_concurrency)]
        args += ["--lease-seconds", str(self.lease_seconds), *self.worker_args]
        proc = self._spawn(args, f"worker{n}")
        self.workers.append(proc)
        return proc

    def start(self) -> LocalCluster:
        for i in range(self.n_servers):
            self.start_server(i)
        for _ in range(self.n_workers):
            self.start_worker()
        return self

    def kill_worker(self, i: int) -> None:
        self.workers[i].send_signal(signal.SIGKILL)
        self.workers[i].wait()

    def stop_server(self, i: int = 0, sig: int = signal.SIGTERM) -> None:
        proc = self.servers[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.servers[i] = None

    def restart_server(self, i: int = 0, sig: int = signal.SIGTERM) -> None:
        self.stop_server(i, sig)
        self.start_server(i)

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        for i in range(self.n_servers):
            self.stop_server(i)
        for f in self._logs:
            f.close()

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
