"""Graph facts the engine needs about a playbook: which arcs are back edges (loops)
and, for each step, the sources of its forward incoming arcs (what a join waits for).

Both come from one depth-first walk from `start` that follows the `next` arcs then the
`on_error` arcs of each step, in the order written (spec §8). An arc is a back edge
when its target is on the current path from `start`. Steps the walk never reaches have
no predecessors (and arcs from them count for nothing): they can never run.
"""

from __future__ import annotations

from collections.abc import Iterator

from replaybook.playbook.model import Playbook, Step


def _targets(step: Step) -> Iterator[str]:
    for arc in (*step.next.arcs, *step.on_error.arcs):
        yield arc.target


def _walk(pb: Playbook) -> tuple[frozenset[tuple[str, str]], set[str]]:
    """(back edges, steps reachable from start), iteratively (no recursion limit)."""
    back: set[tuple[str, str]] = set()
    done: set[str] = set()
    if not pb.has_step("start"):
        return frozenset(), done
    on_path = {"start"}
    stack = [("start", _targets(pb.step("start")))]
    while stack:
        name, targets = stack[-1]
        for target in targets:
            if not pb.has_step(target):
                continue
            if target in on_path:
                back.add((name, target))
            elif target not in done:
                on_path.add(target)
                stack.append((target, _targets(pb.step(target))))
                break
        else:
            stack.pop()
            on_path.discard(name)
            done.add(name)
    return frozenset(back), done


def back_edges(pb: Playbook) -> frozenset[tuple[str, str]]:
    """Arcs (source, target), over `next` and `on_error`, that close a loop."""
    return _walk(pb)[0]


def forward_predecessors(pb: Playbook) -> dict[str, tuple[str, ...]]:
    """For every step, the distinct sources of its forward (non-back) incoming arcs,
    in workflow order; steps not reachable from `start` have none and count for none."""
    back, reachable = _walk(pb)
    preds: dict[str, list[str]] = {s.name: [] for s in pb.steps}
    for step in pb.steps:
        if step.name not in reachable:
            continue
        for target in _targets(step):
            sources = preds.get(target)
            if sources is None or (step.name, target) in back:
                continue
            if step.name not in sources:
                sources.append(step.name)
    return {name: tuple(sources) for name, sources in preds.items()}
