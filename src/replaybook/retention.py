"""Retention: delete finished executions older than a cutoff, with their DuckDB files.

Used by `replaybook executions prune` and by the server's periodic pruning. The store
deletes rows (executions, child executions, events, jobs) in one transaction; the
DuckDB files (`<data dir>/duckdb/<execution id>.duckdb`, see actions/duckdb.py) are
removed afterwards, so a crash in between leaves only orphan files, never rows that
point at missing files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from replaybook.store.base import FINISHED_STATUSES, Store

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `45s` -> a timedelta; ValueError otherwise."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(
            f"bad age {text!r}: use a number and a unit, e.g. '30d', '12h', '90m', '2w'"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])


@dataclass(frozen=True)
class PruneResult:
    before: str  # the cutoff, ISO-8601 UTC
    statuses: tuple[str, ...]
    execution_ids: tuple[str, ...]
    files_removed: int
    dry_run: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "before": self.before,
            "statuses": list(self.statuses),
            "dry_run": self.dry_run,
            "count": len(self.execution_ids),
            "pruned": list(self.execution_ids),
            "duckdb_files_removed": self.files_removed,
        }


def duckdb_files(data_dir: Path, execution_id: str) -> list[Path]:
    base = Path(data_dir) / "duckdb" / f"{execution_id}.duckdb"
    return [base, base.with_name(base.name + ".wal")]


def prune(
    store: Store,
    data_dir: Path | None,
    older_than: timedelta,
    *,
    statuses: Sequence[str] = FINISHED_STATUSES,
    now: datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Prune executions that finished more than `older_than` before `now`."""
    cutoff = (now or datetime.now(UTC)) - older_than
    before = cutoff.astimezone(UTC).isoformat()
    ids = store.prune_executions(before, statuses, dry_run=dry_run)
    removed = 0
    if data_dir is not None:
        for execution_id in ids:
            for path in duckdb_files(data_dir, execution_id):
                if path.exists():
                    if not dry_run:
                        path.unlink(missing_ok=True)
                    removed += 1
    return PruneResult(before, tuple(statuses), tuple(ids), removed, dry_run)
