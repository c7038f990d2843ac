"""What the pages show, built from the store: an execution's steps with their
attempts, logs, inputs and iterator progress (one pass over its log, on top of the
engine's own fold for statuses), and a playbook's graph with its layout.

Nothing here is cached per execution: pages read the log like any other reader.
Graphs are cached per (path, version), which never changes once registered.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from replaybook.core import events as ev
from replaybook.core.state import ExecutionState
from replaybook.core.topology import Topology
from replaybook.playbook.model import Playbook, Step
from replaybook.server.ui.layout import Layout, layered_layout
from replaybook.store.base import Event, ExecutionInfo, iso_seconds

# -- graphs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    name: str
    type: str  # action type, or "router" / "start" / "end"
    desc: str
    join: bool  # waits for more than one forward predecessor
    x: float
    y: float


@dataclass(frozen=True)
class EdgeView:
    source: str
    target: str
    kind: str  # next | error | back
    label: str  # the arc's condition, shown as a tooltip
    path: str


@dataclass(frozen=True)
class GraphView:
    nodes: list[NodeView]
    edges: list[EdgeView]
    width: float
    height: float
    node_w: float
    node_h: float


def step_kind(step: Step) -> str:
    if step.type is not None:
        return step.type
    return step.name if step.name in ("start", "end") else "router"


def _arc_labels(pb: Playbook) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, target) -> (kind, label) of the first arc joining them."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for step in pb.steps:
        for kind, routing in (("next", step.next), ("error", step.on_error)):
            for arc in routing.arcs:
                label = "else" if arc.is_else else (f"when {arc.when}" if arc.when else "")
                if kind == "error":
                    label = ("on_error " + label).strip()
                out.setdefault((step.name, arc.target), (kind, label))
    return out


def build_graph(pb: Playbook, topology: Topology) -> GraphView:
    names = [s.name for s in pb.steps]
    labels = _arc_labels(pb)
    laid: Layout = layered_layout(names, list(labels), topology.back_edges)
    nodes = [
        NodeView(
            name=s.name,
            type=step_kind(s),
            desc=s.desc or "",
            join=len(topology.predecessors.get(s.name, ())) > 1,
            x=laid.nodes[s.name].x,
            y=laid.nodes[s.name].y,
        )
        for s in pb.steps
    ]
    edges = []
    for e in laid.edges:
        kind, label = labels.get((e.source, e.target), ("next", ""))
        edges.append(EdgeView(e.source, e.target, "back" if e.back else kind, label, e.path))
    sz = laid.sizes
    return GraphView(nodes, edges, laid.width, laid.height, sz.node_w, sz.node_h)


class GraphCache:
    """Layouts by (path, version): a registered version never changes."""

    def __init__(self, limit: int = 128) -> None:
        self._graphs: OrderedDict[tuple[str, int], GraphView] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, path: str, version: int, pb: Playbook, topology: Topology) -> GraphView:
        key = (path, version)
        with self._lock:
            got = self._graphs.get(key)
            if got is not None:
                self._graphs.move_to_end(key)
                return got
        graph = build_graph(pb, topology)
        with self._lock:
            self._graphs[key] = graph
            if len(self._graphs) > self._limit:
                self._graphs.popitem(last=False)
        return graph


# -- executions -----------------------------------------------------------------------


@dataclass
class AttemptView:
    step: str
    visit: int
    attempt: int
    scheduled_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: float | None = None
    status: str = "running"  # running | completed | failed | retrying | cancelled
    error: dict[str, Any] | None = None
    worker: str | None = None
    inputs: Any = None

    def start(self) -> str | None:
        """When the attempt began: its end less its measured duration when the
        worker measured it (a quick attempt's start mark is written at its end),
        else its start mark, else when it was scheduled (routers)."""
        if self.ended_at and self.duration_ms is not None:
            from replaybook.server.ui.render import iso_from_seconds

            return iso_from_seconds(iso_seconds(self.ended_at) - self.duration_ms / 1000)
        return self.started_at or self.scheduled_at

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "visit": self.visit,
            "attempt": self.attempt,
            "start": self.start(),
            "end": self.ended_at,
            "status": self.status,
        }


@dataclass
class ItemsView:
    total: int = 0
    outcome: dict[int, str] = field(default_factory=dict)  # index -> completed | failed

    @property
    def done(self) -> int:
        return len(self.outcome)

    @property
    def failed(self) -> int:
        return sum(1 for v in self.outcome.values() if v == "failed")


@dataclass
class LogGroup:
    visit: int
    attempt: int | None  # None: an iterator's item logs of that visit
    status: str | None  # the attempt's outcome
    started: str | None
    lines: list[tuple[str, str]]  # (label, line)

    @property
    def title(self) -> str:
        if self.attempt is None:
            return f"visit {self.visit} · items"
        return f"visit {self.visit} · attempt {self.attempt}"


@dataclass
class StepView:
    name: str
    type: str
    desc: str
    status: str = "pending"
    visits: int = 0
    attempts: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    scheduled_inputs: Any = None
    attempt_list: list[AttemptView] = field(default_factory=list)
    logs: list[tuple[int, int, int | None, list[str]]] = field(default_factory=list)
    items: ItemsView | None = None
    item_values: list[Any] | None = None  # an iterator's collection, as its last visit began
    # Child executions this step started (playbook steps and tasks), by id: the item
    # index (None outside an iterator), visit and attempt, from the log line the
    # child runner writes ("started child execution ID (...)").
    child_of: dict[str, tuple[int | None, int, int]] = field(default_factory=dict)

    @property
    def inputs(self) -> Any:
        """The last attempt's rendered inputs, else the edge data it was given."""
        for a in reversed(self.attempt_list):
            if a.inputs is not None:
                return a.inputs
        return self.scheduled_inputs

    def log_groups(self) -> list[LogGroup]:
        """The logs by visit and attempt, newest first (an iterator's item logs by
        visit, each line labelled with its item and the item's attempt)."""
        groups: dict[tuple[int, int | None], LogGroup] = {}
        outcome = {(a.visit, a.attempt): a for a in self.attempt_list}
        for visit, attempt, index, lines in self.logs:
            key = (visit, None if index is not None else attempt)
            g = groups.get(key)
            if g is None:
                a = outcome.get((visit, attempt)) if index is None else None
                g = groups[key] = LogGroup(
                    visit, key[1], a.status if a else None, a.start() if a else None, []
                )
            label = f"#{index} a{attempt}" if index is not None else f"v{visit} a{attempt}"
            g.lines.extend((label, line) for line in lines)
        return sorted(groups.values(), key=lambda g: (g.visit, g.attempt or 0), reverse=True)

    @property
    def duration_s(self) -> float | None:
        if not self.attempt_list:
            return None
        last = self.attempt_list[-1]
        start, end = last.start(), last.ended_at
        if start is None or end is None:
            return None
        return max(0.0, iso_seconds(end) - iso_seconds(start))


@dataclass
class ExecutionView:
    info: ExecutionInfo
    status: str
    result: Any
    error: dict[str, Any] | None
    workload: Any
    payload: Any
    steps: dict[str, StepView]
    attempts: list[AttemptView]
    started_at: str | None
    ended_at: str | None
    last_seq: int
    playbook_name: str

    def ran(self) -> list[StepView]:
        return [s for s in self.steps.values() if s.status != "pending"]


def _attempt(
    v: StepView,
    views: dict[tuple[str, int, int], AttemptView],
    e: Event,
    scheduled: dict[tuple[str, int], str],
) -> AttemptView:
    visit = e.visit or 1
    key = (v.name, visit, e.attempt or 1)
    got = views.get(key)
    if got is None:
        got = AttemptView(v.name, visit, e.attempt or 1, scheduled.get((v.name, visit)))
        views[key] = got
        v.attempt_list.append(got)
    return got


def execution_view(
    info: ExecutionInfo, pb: Playbook, topology: Topology, events: Sequence[Event]
) -> ExecutionView:
    fold = ExecutionState(topology, info.id).apply_all(events)
    steps = {s.name: StepView(s.name, step_kind(s), s.desc or "", items=None) for s in pb.steps}
    for s in pb.steps:
        if s.type == "iterator":
            steps[s.name].items = ItemsView()
    attempts: dict[tuple[str, int, int], AttemptView] = {}
    scheduled: dict[tuple[str, int], str] = {}
    started_at = ended_at = None
    workload: Any = None
    payload: Any = None
    name = info.playbook_path
    for e in events:
        t = e.type
        if t == ev.EXECUTION_STARTED:
            started_at = started_at or e.at
            workload, payload = e.data.get("workload"), e.data.get("payload")
            name = str((e.data.get("playbook") or {}).get("name") or name)
        elif t in ev.TERMINAL_EXECUTION:
            ended_at = e.at
        elif t == ev.EXECUTION_RESUMED:
            ended_at = None
        if e.step is None or e.step not in steps:
            continue
        _step_event(steps[e.step], e, attempts, scheduled)
    for n, rec in fold.steps.items():
        if n in steps:
            v = steps[n]
            v.status, v.visits, v.attempts = rec.status, rec.visits, rec.attempts
            v.result, v.error = rec.result, rec.error
    _close_open_attempts(attempts, fold.status, ended_at)
    return ExecutionView(
        info=info,
        status=fold.status if fold.status != "new" else info.status,
        result=fold.result,
        error=fold.error,
        workload=workload,
        payload=payload,
        steps=steps,
        attempts=list(attempts.values()),
        started_at=started_at or info.created_at,
        ended_at=ended_at,
        last_seq=fold.last_seq,
        playbook_name=name,
    )


def _step_event(
    v: StepView,
    e: Event,
    attempts: dict[tuple[str, int, int], AttemptView],
    scheduled: dict[tuple[str, int], str],
) -> None:
    t, d = e.type, e.data
    if t == ev.STEP_LOG:
        for line in d.get("lines") or []:
            m = _CHILD_STARTED.match(str(line))
            if m:
                v.child_of[m.group(1)] = (e.index, e.visit or 1, e.attempt or 1)
    if e.index is not None:  # an iterator item: counted, not drawn
        if v.items is not None and t in (ev.STEP_COMPLETED, ev.STEP_FAILED):
            v.items.outcome[e.index] = "completed" if t == ev.STEP_COMPLETED else "failed"
        if t == ev.STEP_LOG:
            v.logs.append((e.visit or 1, e.attempt or 1, e.index, list(d.get("lines") or [])))
        return
    if t == ev.STEP_SCHEDULED:
        scheduled[(v.name, e.visit or 1)] = e.at
        v.scheduled_inputs = d.get("inputs")
        if v.type == "router" or v.type in ("start", "end"):
            _attempt(v, attempts, _as_attempt(e), scheduled)
    elif t == ev.STEP_STARTED:
        a = _attempt(v, attempts, e, scheduled)
        a.started_at = a.started_at or e.at
        a.worker = d.get("worker") or a.worker
        if isinstance(d.get("items"), list) and v.items is not None:
            v.items.total = len(d["items"])
            v.items.outcome = {}
            v.item_values = d["items"]
    elif t in (ev.STEP_COMPLETED, ev.STEP_FAILED, ev.STEP_RETRYING):
        a = _attempt(v, attempts, e, scheduled)
        a.ended_at = e.at
        a.status = {
            ev.STEP_COMPLETED: "completed",
            ev.STEP_FAILED: "failed",
            ev.STEP_RETRYING: "retrying",
        }[t]
        a.error = d.get("error")
        if isinstance(d.get("duration_ms"), int | float):
            a.duration_ms = float(d["duration_ms"])
        if "inputs" in d:
            a.inputs = d["inputs"]
    elif t == ev.STEP_LOG:
        v.logs.append((e.visit or 1, e.attempt or 1, None, list(d.get("lines") or [])))
    elif t == ev.STEP_CANCELLED:
        for a in attempts.values():
            if a.step == v.name and a.ended_at is None:
                a.ended_at, a.status = e.at, "cancelled"


def _as_attempt(e: Event) -> Event:
    """A router's scheduling as its one attempt (routers have no start mark)."""
    return Event(
        e.id, e.execution_id, e.seq, e.type, e.at, e.step, e.visit, None, 1, {}, e.logic_version
    )


def _close_open_attempts(
    attempts: dict[tuple[str, int, int], AttemptView], status: str, ended_at: str | None
) -> None:
    """Attempts without an outcome in a finished execution were cut short."""
    if status in ("completed", "failed", "cancelled"):
        for a in attempts.values():
            if a.ended_at is None:
                a.status, a.ended_at = "cancelled", ended_at


_CHILD_STARTED = re.compile(r"started child execution ([0-9a-f]{32})\b")


@dataclass(frozen=True)
class ChildView:
    info: ExecutionInfo
    index: int | None  # the iterator item that started it
    item: str  # that item, shortly
    visit: int | None
    attempt: int | None


def step_children(
    children: Sequence[ExecutionInfo], step: str, view: StepView | None = None
) -> list[ChildView]:
    """The step's child executions, by item index (then as they were started)."""
    out = []
    for c in children:
        if c.parent_step != step:
            continue
        index, visit, attempt = (view.child_of.get(c.id) if view else None) or (None, None, None)
        item = ""
        values = view.item_values if view else None
        if index is not None and values is not None and 0 <= index < len(values):
            item = _short_value(values[index])
        out.append(ChildView(c, index, item, visit, attempt))
    out.sort(
        key=lambda r: (
            -(r.visit or 0),
            r.index is None,
            r.index if r.index is not None else 0,
            r.info.created_at,
        )
    )
    return out


def _short_value(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
