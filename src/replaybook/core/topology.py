"""Static shape of a workflow: forward arcs, back edges, predecessors, loop regions.

Computed once per playbook; the fold and `decide` only look things up here.
"""

from __future__ import annotations

from dataclasses import dataclass

from replaybook.playbook.model import Playbook


@dataclass(frozen=True)
class Topology:
    order: dict[str, int]  # workflow position of each step
    successors: dict[str, tuple[str, ...]]  # forward targets (next + on_error), in order
    predecessors: dict[str, tuple[str, ...]]  # forward sources, in workflow order
    back_edges: frozenset[tuple[str, str]]
    regions: dict[str, frozenset[str]]  # back-edge target -> steps forward-reachable from it

    def is_back(self, source: str, target: str) -> bool:
        return (source, target) in self.back_edges


def _arc_targets(pb: Playbook, name: str) -> list[str]:
    step = pb.step(name)
    out: list[str] = []
    for arc in (*step.next.arcs, *step.on_error.arcs):
        if arc.target not in out and pb.has_step(arc.target):
            out.append(arc.target)
    return out


def _find_back_edges(pb: Playbook, targets: dict[str, list[str]]) -> set[tuple[str, str]]:
    """An arc to a step on the current depth-first path from `start` is a back edge
    (spec §8). Iterative, because a long linear playbook would overflow recursion."""
    back: set[tuple[str, str]] = set()
    done: set[str] = set()
    roots = ["start"] + [s.name for s in pb.steps if s.name != "start"]
    for root in roots:
        if root in done or not pb.has_step(root):
            continue
        on_path: set[str] = {root}
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            succ = targets[node]
            if i < len(succ):
                stack[-1] = (node, i + 1)
                nxt = succ[i]
                if nxt in on_path:
                    back.add((node, nxt))
                elif nxt not in done:
                    on_path.add(nxt)
                    stack.append((nxt, 0))
            else:
                stack.pop()
                on_path.discard(node)
                done.add(node)
    return back


def _reachable(start: str, successors: dict[str, tuple[str, ...]]) -> frozenset[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in successors[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def build_topology(pb: Playbook) -> Topology:
    order = {s.name: i for i, s in enumerate(pb.steps)}
    targets = {s.name: _arc_targets(pb, s.name) for s in pb.steps}
    back = _find_back_edges(pb, targets)
    successors = {
        name: tuple(t for t in ts if (name, t) not in back) for name, ts in targets.items()
    }
    preds: dict[str, list[str]] = {s.name: [] for s in pb.steps}
    for s in pb.steps:
        for t in successors[s.name]:
            preds[t].append(s.name)
    predecessors = {t: tuple(sorted(ps, key=order.__getitem__)) for t, ps in preds.items()}
    regions = {t: _reachable(t, successors) for (_, t) in back}
    return Topology(order, successors, predecessors, frozenset(back), regions)
