"""The layered layout of step graphs: layers follow the arcs, a chain is straight,
a diamond symmetric, long arcs avoid nodes, orderings avoid crossings, back edges
bow out to the right, and a 1,000-step chain lays out fast."""

from __future__ import annotations

import itertools
import re
import time

from replaybook.core.topology import build_topology
from replaybook.playbook.load import load_playbook
from replaybook.server.ui.layout import Sizes, _closest_ordered, _inversions, layered_layout
from replaybook.server.ui.views import build_graph


def xs(path: str) -> list[float]:
    return [float(x) for x, _ in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path)]


def test_layers_follow_the_longest_path() -> None:
    lay = layered_layout(
        ["start", "a", "b", "c", "end"],
        [("start", "a"), ("a", "b"), ("b", "c"), ("start", "c"), ("c", "end")],
    )
    assert [lay.nodes[n].layer for n in ("start", "a", "b", "c", "end")] == [0, 1, 2, 3, 4]
    ys = [lay.nodes[n].y for n in ("start", "a", "b", "c", "end")]
    assert ys == sorted(ys) and len(set(ys)) == 5
    assert lay.layers == 5


def test_a_chain_is_one_straight_column() -> None:
    names = ["start", *(f"s{i}" for i in range(20)), "end"]
    lay = layered_layout(names, list(itertools.pairwise(names)))
    assert len({round(lay.nodes[n].x, 6) for n in names}) == 1
    assert lay.width == Sizes().node_w + 2 * Sizes().margin


def test_a_diamond_is_symmetric_and_does_not_overlap() -> None:
    lay = layered_layout(
        ["start", "left", "right", "join"],
        [("start", "left"), ("start", "right"), ("left", "join"), ("right", "join")],
    )
    n = lay.nodes
    assert n["left"].y == n["right"].y
    assert abs(n["right"].x - n["left"].x) >= Sizes().node_w + Sizes().h_gap - 1e-9
    assert abs((n["left"].x + n["right"].x) / 2 - n["start"].x) < 1e-6
    assert abs(n["join"].x - n["start"].x) < 1e-6


def test_a_long_arc_gets_a_lane_beside_the_nodes_it_passes() -> None:
    lay = layered_layout(
        ["start", "a", "b", "end"],
        [("start", "a"), ("a", "b"), ("b", "end"), ("start", "end")],
    )
    skip = next(e for e in lay.edges if (e.source, e.target) == ("start", "end"))
    half = Sizes().node_w / 2
    points = [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", skip.path)]
    for name in ("a", "b"):  # where the arc crosses the rows of a and b, it is clear of them
        node = lay.nodes[name]
        level = [x for x, y in points if abs(y - node.y) < 0.05]
        assert level and all(abs(x - node.x) > half for x in level)


def test_ordering_removes_avoidable_crossings() -> None:
    # Written in an order that crosses: a->y, b->x; the sweep swaps one layer.
    lay = layered_layout(
        ["s", "a", "b", "x", "y"],
        [("s", "a"), ("s", "b"), ("a", "y"), ("b", "x")],
    )
    n = lay.nodes
    assert (n["a"].x < n["b"].x) == (n["y"].x < n["x"].x)


def test_back_edges_are_drawn_to_the_right_and_marked() -> None:
    lay = layered_layout(
        ["start", "work", "check", "end"],
        [("start", "work"), ("work", "check"), ("check", "work"), ("check", "end")],
        back_edges=[("check", "work")],
    )
    back = [e for e in lay.edges if e.back]
    assert [(e.source, e.target) for e in back] == [("check", "work")]
    assert max(xs(back[0].path)) > lay.nodes["work"].x + Sizes().node_w / 2
    assert lay.width >= max(xs(back[0].path))
    assert lay.nodes["check"].layer == lay.nodes["work"].layer + 1  # not layered by it


def test_self_loops_and_unknown_steps_are_handled() -> None:
    lay = layered_layout(["start", "again"], [("start", "again"), ("again", "again"), ("x", "y")])
    assert [e.back for e in lay.edges] == [False, True]


def test_a_cycle_without_declared_back_edges_still_lays_out() -> None:
    lay = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")])
    assert sum(e.back for e in lay.edges) == 1
    assert len({lay.nodes[n].layer for n in "abc"}) == 3


def test_isotonic_placement_keeps_order_and_gaps() -> None:
    assert _closest_ordered([0.0, 0.0, 0.0], [10.0, 10.0]) == [-10.0, 0.0, 10.0]
    assert _closest_ordered([0.0, 100.0], [10.0]) == [0.0, 100.0]
    assert _inversions([2, 0, 1]) == 2 and _inversions([0, 1, 2]) == 0


def test_graph_of_a_playbook_marks_joins_kinds_and_conditions() -> None:
    pb, _ = load_playbook(
        """
metadata: {name: g}
workflow:
  - step: start
    next: [a, b]
  - step: a
    type: python
    code: "def main(): return 1"
    next:
      - when: "{{ a > 0 }}"
        then: [join]
      - else: [end]
    on_error: [b]
  - step: b
    next: join
  - step: join
    next: end
  - step: end
""",
        "g.yaml",
    )
    graph = build_graph(pb, build_topology(pb))
    nodes = {n.name: n for n in graph.nodes}
    assert nodes["join"].join and not nodes["a"].join
    assert nodes["a"].type == "python" and nodes["b"].type == "router"
    kinds = {(e.source, e.target): (e.kind, e.label) for e in graph.edges}
    assert kinds[("a", "join")] == ("next", "when {{ a > 0 }}")
    assert kinds[("a", "end")] == ("next", "else")
    assert kinds[("a", "b")][0] == "error"


def test_a_thousand_step_chain_lays_out_fast() -> None:
    names = ["start", *(f"s{i}" for i in range(1000)), "end"]
    t0 = time.perf_counter()
    lay = layered_layout(names, list(itertools.pairwise(names)))
    assert time.perf_counter() - t0 < 0.5
    assert lay.layers == 1002
