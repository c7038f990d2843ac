"""The workers this server has heard from (a cache: each server knows the workers
that talk to it; they announce themselves on every lease and heartbeat)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# A worker not heard from for this long is no longer listed.
FORGET_AFTER_SECONDS = 120.0


@dataclass
class WorkerSeen:
    worker_id: str
    pools: list[str | None]
    first_seen: float
    last_seen: float
    running: int = 0
    concurrency: int | None = None
    leased: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, now: float, lease_seconds: float = 30.0) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "pools": self.pools,
            "first_seen": iso_utc(self.first_seen),
            "last_heartbeat": iso_utc(self.last_seen),
            "seconds_since_heartbeat": round(now - self.last_seen, 3),
            "alive": now - self.last_seen < lease_seconds,
            "running": self.running,
            "concurrency": self.concurrency,
            "jobs_leased": self.leased,
        }


class WorkerRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, WorkerSeen] = {}

    def seen(
        self,
        worker_id: str,
        pools: Sequence[str | None] | None,
        *,
        running: int | None = None,
        concurrency: int | None = None,
        leased: int = 0,
    ) -> None:
        now = time.time()
        with self._lock:
            w = self._seen.get(worker_id)
            if w is None:
                w = self._seen[worker_id] = WorkerSeen(worker_id, [], now, now)
            if pools is not None:  # None: as last announced
                w.pools = list(pools)
            w.last_seen = now
            w.leased += leased
            if running is not None:
                w.running = running
            if concurrency is not None:
                w.concurrency = concurrency

    def all(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            for k in [k for k, w in self._seen.items() if now - w.last_seen > FORGET_AFTER_SECONDS]:
                del self._seen[k]
            return [w.as_dict(now) for w in sorted(self._seen.values(), key=lambda w: w.worker_id)]

    def pools(self) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for w in self.all():
            for p in w["pools"]:
                name = "default" if p is None else p
                rec = out.setdefault(name, {"pool": name, "workers": 0, "alive": 0, "running": 0})
                rec["workers"] += 1
                rec["alive"] += int(w["alive"])
                rec["running"] += w["running"]
        return sorted(out.values(), key=lambda r: str(r["pool"]))
