"""Human progress output for `run` and `executions` on stderr (never stdout)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from replaybook.core import events as ev
from replaybook.playbook.model import Playbook
from replaybook.store.base import Event

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "yellow",
    "retrying": "magenta",
    "skipped": "dim",
    "cancelled": "red dim",
    "scheduled": "cyan",
}


class Progress:
    """Live table of steps on a terminal; one line per settled step otherwise."""

    def __init__(self, pb: Playbook) -> None:
        self.pb = pb
        self.console = Console(stderr=True)
        self.live_mode = self.console.is_terminal
        self.steps: dict[str, dict[str, Any]] = {}
        self.items: dict[str, list[int]] = {}
        self.execution_id = ""
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None

    def begin(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.console.print(
            f"[bold]{escape(self.pb.path)}[/] execution [cyan]{escape(execution_id)}[/]",
            highlight=False,
        )
        if self.live_mode:
            self._live = Live(
                self._table(), console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()

    def on_events(self, execution_id: str, events: Iterable[Event]) -> None:
        if self.execution_id and execution_id != self.execution_id:
            return
        with self._lock:
            for e in events:
                self._apply(e)
            if self._live is not None:
                self._live.update(self._table())

    def _apply(self, e: Event) -> None:
        if not e.step:
            return
        rec = self.steps.setdefault(e.step, {"status": "pending", "attempts": 0, "visits": 0})
        kind = e.type.split(".", 1)[1] if e.type.startswith("step.") else ""
        if kind == "scheduled":
            rec.update(status="scheduled", visits=e.visit or 1)
        elif kind == "started":
            rec.update(status="running", attempts=e.attempt or 1)
        elif kind in ("completed", "failed", "skipped", "cancelled", "retrying"):
            rec["status"] = kind
            if not self.live_mode and kind != "retrying":
                style = STATUS_STYLE.get(kind, "")
                extra = ""
                if kind == "failed":
                    extra = " " + str((e.data.get("error") or {}).get("message", ""))[:200]
                line = Text.assemble("  ", (f"{kind:<9}", style), f" {e.step}{extra}")
                self.console.print(line, highlight=False, soft_wrap=True)
        elif e.type == ev.STEP_LOG and not self.live_mode:
            for line in e.data.get("lines", [])[:20]:
                # Text, not markup: a log line is shown as written ("[x]" included).
                text = Text(f"    {e.step}: {line}", style="dim")
                self.console.print(text, highlight=False, soft_wrap=True)  # lines kept whole

    def _table(self) -> Table:
        elapsed = time.monotonic() - self.started
        table = Table(title=f"{self.pb.path}  {elapsed:.1f}s", show_edge=False)
        table.add_column("step")
        table.add_column("status")
        table.add_column("visits", justify="right")
        table.add_column("attempts", justify="right")
        for step in self.pb.steps:
            rec = self.steps.get(step.name)
            if rec is None:
                continue
            style = STATUS_STYLE.get(rec["status"], "")
            table.add_row(
                Text(step.name),
                Text(rec["status"], style=style),
                str(rec["visits"]),
                str(rec["attempts"]),
            )
        return table

    def finish(self, outcome: Any) -> None:
        if self._live is not None:
            self._live.stop()
        print_outcome(outcome.as_dict(), self.console, time.monotonic() - self.started)


def print_outcome(
    out: dict[str, Any], console: Console | None = None, seconds: float | None = None
) -> None:
    console = console or Console(stderr=True)
    steps = out.get("steps") or {}
    table = Table("step", "status", "visits", "attempts", show_edge=False)
    for name, s in steps.items():
        style = STATUS_STYLE.get(s["status"], "")
        table.add_row(
            Text(name), Text(s["status"], style=style), str(s["visits"]), str(s["attempts"])
        )
    console.print(table)
    status = out.get("status")
    style = STATUS_STYLE.get(str(status), "")
    took = f" in {seconds:.2f}s" if seconds is not None else ""
    console.print(
        Text.assemble(
            (str(status), f"bold {style}"), f"{took}  execution {out.get('execution_id')}"
        ),
        highlight=False,
    )
    if out.get("error"):
        err = out["error"]
        console.print(
            f"error in step {err.get('step')} (attempt {err.get('attempt')}): {err.get('message')}",
            style="red",
            markup=False,
            highlight=False,
        )
    result = json.dumps(out.get("result"), ensure_ascii=False, indent=2)
    if len(result) > 4000:
        result = result[:4000] + "\n..."
    console.print("result:", highlight=False)
    sys.stderr.write(result + "\n")
