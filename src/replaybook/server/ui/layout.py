"""A layered (Sugiyama-style) drawing of a step graph, top to bottom. Pure geometry:
it knows names and arcs, not playbooks, so it is tested on its own.

1. Layers: longest path from the sources over the forward arcs (back edges are
   drawn, not layered), so every forward arc points down.
2. Arcs spanning several layers get a chain of invisible dummy nodes, one per layer
   crossed, so the ordering gives them a lane of their own instead of drawing them
   through the nodes in between.
3. Order within each layer: alternating down and up sweeps that sort by the mean
   position of the neighbours in the previous layer (barycenter); the sweep with the
   fewest crossings wins.
4. x: each layer is placed as close as possible to the mean x of its neighbours,
   keeping the order and a minimum gap; that is an isotonic regression, solved
   exactly by pooling adjacent violators. A linear chain comes out straight and a
   diamond symmetric.
5. Back edges: dashed arcs bowing out to the right of everything they pass.

Everything is linear or close to it in the number of nodes plus dummies, so a
1,000-step chain lays out in milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Point = tuple[float, float]


@dataclass(frozen=True)
class Sizes:
    node_w: float = 176.0
    node_h: float = 46.0
    dummy_w: float = 14.0
    h_gap: float = 28.0
    v_gap: float = 40.0
    margin: float = 24.0


@dataclass(frozen=True)
class PlacedNode:
    name: str
    layer: int
    x: float  # centre
    y: float  # centre


@dataclass(frozen=True)
class PlacedEdge:
    source: str
    target: str
    back: bool
    path: str  # SVG path data


@dataclass
class Layout:
    nodes: dict[str, PlacedNode]
    edges: list[PlacedEdge]
    width: float
    height: float
    sizes: Sizes = field(default_factory=Sizes)
    layers: int = 0


def layered_layout(
    names: Sequence[str],
    arcs: Iterable[tuple[str, str]],
    back_edges: Iterable[tuple[str, str]] = (),
    sizes: Sizes | None = None,
) -> Layout:
    """Positions for `names` (in workflow order, which breaks ties) and paths for
    `arcs` (source, target); arcs in `back_edges` close loops and are drawn as arcs
    back up. Arcs naming unknown steps are ignored."""
    sz = sizes or Sizes()
    known = set(names)
    back = {a for a in back_edges if a[0] in known and a[1] in known}
    forward: list[tuple[str, str]] = []
    loops: list[tuple[str, str]] = []
    for a in dict.fromkeys(arcs):
        if a[0] not in known or a[1] not in known:
            continue
        (loops if a in back or a[0] == a[1] else forward).append(a)
    layer_of, cyclic = _layers(names, forward)
    forward = [a for a in forward if a not in cyclic]
    loops.extend(cyclic)
    rank = {n: i for i, n in enumerate(names)}
    layers, chains = _with_dummies(names, forward, layer_of, rank)
    up, down = _neighbours(chains)
    _order(layers, up, down)
    width_of = _widths(sz)
    xs = _positions(layers, up, down, width_of, sz.h_gap)
    return _assemble(names, layer_of, layers, chains, loops, xs, sz)


# -- 1. layers ------------------------------------------------------------------


def _layers(
    names: Sequence[str], forward: list[tuple[str, str]]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Longest-path layers (Kahn's order). Should the forward arcs still hold a
    cycle, its remaining arcs are returned to be drawn as back edges."""
    preds: dict[str, list[str]] = {n: [] for n in names}
    succs: dict[str, list[str]] = {n: [] for n in names}
    for s, t in forward:
        preds[t].append(s)
        succs[s].append(t)
    indegree = {n: len(preds[n]) for n in names}
    layer = dict.fromkeys(names, 0)
    ready = [n for n in names if indegree[n] == 0]
    ready.reverse()  # a stack popping in workflow order
    done: set[str] = set()
    cyclic: list[tuple[str, str]] = []
    pending = list(names)
    while len(done) < len(names):
        if not ready:  # a cycle: force its first unfinished step
            forced = next(n for n in pending if n not in done)
            cyclic.extend((p, forced) for p in preds[forced] if p not in done)
            ready.append(forced)
        node = ready.pop()
        if node in done:
            continue
        done.add(node)
        for t in succs[node]:
            layer[t] = max(layer[t], layer[node] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    if cyclic:  # recompute without the cut arcs so every forward arc points down
        cut = set(cyclic)
        return _layers(names, [a for a in forward if a not in cut])[0], cyclic
    return layer, cyclic


# -- 2. dummies -----------------------------------------------------------------


def _with_dummies(
    names: Sequence[str],
    forward: list[tuple[str, str]],
    layer_of: dict[str, int],
    rank: dict[str, int],
) -> tuple[list[list[str]], dict[tuple[str, str], list[str]]]:
    """Layers of node ids (real names and dummies) in an initial order, and each
    forward arc as the chain of ids it passes through."""
    depth = max(layer_of.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for n in names:
        layers[layer_of[n]].append(n)
    chains: dict[tuple[str, str], list[str]] = {}
    for s, t in forward:
        chain = [s]
        for lyr in range(layer_of[s] + 1, layer_of[t]):
            dummy = f"\0{rank[s]}>{rank[t]}@{lyr}"
            layers[lyr].append(dummy)
            chain.append(dummy)
        chain.append(t)
        chains[(s, t)] = chain
    return layers, chains


def _neighbours(
    chains: dict[tuple[str, str], list[str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for chain in chains.values():
        for a, b in itertools.pairwise(chain):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    return up, down


# -- 3. order -------------------------------------------------------------------

SWEEPS = 8


def _order(layers: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]]) -> None:
    """Barycenter sweeps in place; keeps the ordering with the fewest crossings."""
    best = [list(lyr) for lyr in layers]
    best_crossings = _crossings(layers, down)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        rng = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for i in rng:
            ref = layers[i - 1] if downward else layers[i + 1]
            pos = {n: k for k, n in enumerate(ref)}
            links = up if downward else down
            layers[i] = _by_barycenter(layers[i], links, pos)
        got = _crossings(layers, down)
        if got < best_crossings:
            best_crossings = got
            best = [list(lyr) for lyr in layers]
        if best_crossings == 0:
            break
    layers[:] = best


def _by_barycenter(layer: list[str], links: dict[str, list[str]], pos: dict[str, int]) -> list[str]:
    keyed = []
    for k, n in enumerate(layer):
        ns = [pos[m] for m in links.get(n, ()) if m in pos]
        # A node without neighbours there keeps its place.
        keyed.append((sum(ns) / len(ns) if ns else float(k), k, n))
    keyed.sort()
    return [n for _, _, n in keyed]


def _crossings(layers: list[list[str]], down: dict[str, list[str]]) -> int:
    total = 0
    for i in range(len(layers) - 1):
        below = {n: k for k, n in enumerate(layers[i + 1])}
        ends = [
            (a, below[b]) for a, n in enumerate(layers[i]) for b in down.get(n, ()) if b in below
        ]
        if len(ends) < 2:
            continue
        # Arcs (a1, b1), (a2, b2) cross when a1 < a2 and b1 > b2: count inversions.
        ends.sort()
        total += _inversions([b for _, b in ends])
    return total


def _inversions(values: list[int]) -> int:
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = values[:mid], values[mid:]
    count = _inversions(left) + _inversions(right)
    left.sort()
    right.sort()
    j = 0
    for v in left:  # for each left value, how many right values are smaller
        while j < len(right) and right[j] < v:
            j += 1
        count += j
    return count


# -- 4. x -----------------------------------------------------------------------


def _widths(sz: Sizes) -> dict[bool, float]:
    return {True: sz.dummy_w, False: sz.node_w}


def _is_dummy(node: str) -> bool:
    return node.startswith("\0")


def _positions(
    layers: list[list[str]],
    up: dict[str, list[str]],
    down: dict[str, list[str]],
    width_of: dict[bool, float],
    gap: float,
) -> dict[str, float]:
    xs: dict[str, float] = {}
    for lyr in layers:
        x = 0.0
        for k, n in enumerate(lyr):
            if k:
                x += _separation(lyr[k - 1], n, width_of, gap)
            xs[n] = x
    for sweep in range(4):
        downward = sweep % 2 == 0
        order = layers[1:] if downward else layers[-2::-1]
        links = up if downward else down
        for lyr in order:
            wanted = []
            for n in lyr:
                ns = [xs[m] for m in links.get(n, ())]
                wanted.append(sum(ns) / len(ns) if ns else xs[n])
            seps = [_separation(a, b, width_of, gap) for a, b in itertools.pairwise(lyr)]
            for n, x in zip(lyr, _closest_ordered(wanted, seps), strict=True):
                xs[n] = x
    return xs


def _separation(a: str, b: str, width_of: dict[bool, float], gap: float) -> float:
    wa, wb = width_of[_is_dummy(a)], width_of[_is_dummy(b)]
    g = gap / 2 if _is_dummy(a) or _is_dummy(b) else gap
    return (wa + wb) / 2 + g


def _closest_ordered(wanted: list[float], seps: list[float]) -> list[float]:
    """x minimising sum (x_i - wanted_i)^2 with x_(i+1) - x_i >= seps_i: with
    y_i = x_i - (seps_0 + ... + seps_(i-1)) the constraint is y non-decreasing, an
    isotonic regression (pool adjacent violators)."""
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    blocks: list[list[float]] = []  # [mean, count]
    for w, off in zip(wanted, offsets, strict=True):
        blocks.append([w - off, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    ys: list[float] = []
    for mean, count in blocks:
        ys.extend([mean] * int(count))
    return [y + off for y, off in zip(ys, offsets, strict=True)]


# -- 5. paths -------------------------------------------------------------------


def _assemble(
    names: Sequence[str],
    layer_of: dict[str, int],
    layers: list[list[str]],
    chains: dict[tuple[str, str], list[str]],
    loops: list[tuple[str, str]],
    xs: dict[str, float],
    sz: Sizes,
) -> Layout:
    half = sz.node_w / 2
    left = min((xs[n] - (half if not _is_dummy(n) else sz.dummy_w / 2) for n in xs), default=0)
    shift = sz.margin - left
    row = sz.node_h + sz.v_gap

    def y_of(layer: int) -> float:
        return sz.margin + sz.node_h / 2 + layer * row

    pos: dict[str, Point] = {}
    for i, lyr in enumerate(layers):
        for n in lyr:
            pos[n] = (xs[n] + shift, y_of(i))
    right = max((x + half for x, _ in pos.values()), default=sz.margin)
    nodes = {n: PlacedNode(n, layer_of[n], pos[n][0], pos[n][1]) for n in names}
    edges = _forward_paths(chains, pos, sz)
    back_paths, right = _back_paths(loops, layer_of, layers, pos, sz, right)
    edges.extend(back_paths)
    height = sz.margin * 2 + max(len(layers), 1) * row - sz.v_gap
    return Layout(nodes, edges, right + sz.margin, height, sz, len(layers))


def _ports(
    chains: dict[tuple[str, str], list[str]], pos: dict[str, Point], sz: Sizes
) -> dict[tuple[str, str, str], float]:
    """x offsets of the arcs leaving the bottom or entering the top of each node,
    spread out and sorted by where the other end is, so they do not cross there."""
    outs: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    ins: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    for key, chain in chains.items():
        outs.setdefault(key[0], []).append((pos[chain[1]][0], key))
        ins.setdefault(key[1], []).append((pos[chain[-2]][0], key))
    spread = min(14.0, sz.node_w / 8)
    offsets: dict[tuple[str, str, str], float] = {}
    for side, groups in (("out", outs), ("in", ins)):
        for group in groups.values():
            group.sort()
            mid = (len(group) - 1) / 2
            for k, (_, key) in enumerate(group):
                offsets[(side, *key)] = (k - mid) * spread
    return offsets


def _forward_paths(
    chains: dict[tuple[str, str], list[str]], pos: dict[str, Point], sz: Sizes
) -> list[PlacedEdge]:
    ports = _ports(chains, pos, sz)
    half_h = sz.node_h / 2
    out: list[PlacedEdge] = []
    for (s, t), chain in chains.items():
        pts: list[Point] = [(pos[s][0] + ports[("out", s, t)], pos[s][1] + half_h)]
        pts.extend(pos[d] for d in chain[1:-1])
        pts.append((pos[t][0] + ports[("in", s, t)], pos[t][1] - half_h))
        out.append(PlacedEdge(s, t, False, _smooth(pts)))
    return out


def _smooth(pts: list[Point]) -> str:
    """Vertical cubic segments through `pts`: tangents are vertical at every point,
    so a path through dummies bends smoothly."""
    d = [f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        dy = (y1 - y0) / 2
        d.append(f"C{x0:.1f},{y0 + dy:.1f} {x1:.1f},{y1 - dy:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(d)


def _back_paths(
    loops: list[tuple[str, str]],
    layer_of: dict[str, int],
    layers: list[list[str]],
    pos: dict[str, Point],
    sz: Sizes,
    right: float,
) -> tuple[list[PlacedEdge], float]:
    """Each back edge leaves the top of its source, runs through the free gap above
    it to a lane right of every node of the layers it spans (nested loops further
    out), up that lane, and through the gap below its target into the target's
    bottom: it never crosses a node, and its rounded corners read as an arc."""
    half, hh = sz.node_w / 2, sz.node_h / 2
    corner = half - 14  # attach near the right edge, clear of the centred forward arcs
    out: list[PlacedEdge] = []
    extent = right
    spans = sorted(loops, key=lambda a: abs(layer_of[a[0]] - layer_of[a[1]]))
    lanes: list[tuple[int, int, float]] = []  # (top layer, bottom layer, x) in use
    for s, t in spans:
        (sx, sy), (tx, ty) = pos[s], pos[t]
        if s == t:
            above, beside = sy - hh - 12, sx + half + 14
            pts = [(sx + corner, sy - hh), (sx + corner, above), (beside, above)]
            pts += [(beside, sy), (sx + half, sy)]
            out.append(PlacedEdge(s, t, True, _rounded(pts, 6)))
            extent = max(extent, sx + half + 18)
            continue
        top, bottom = sorted((layer_of[s], layer_of[t]))
        widest = max(
            pos[n][0] + (sz.dummy_w / 2 if _is_dummy(n) else half)
            for lyr in layers[top : bottom + 1]
            for n in lyr
        )
        lane = widest + 22
        for a, b, x in lanes:
            if a <= bottom and top <= b:
                lane = max(lane, x + 12)
        lanes.append((top, bottom, lane))
        above_source = sy - hh - sz.v_gap / 2 + 4
        below_target = ty + hh + sz.v_gap / 2 - 4
        pts = [(sx + corner, sy - hh), (sx + corner, above_source), (lane, above_source)]
        pts += [(lane, below_target), (tx + corner, below_target), (tx + corner, ty + hh)]
        out.append(PlacedEdge(s, t, True, _rounded(pts, 10)))
        extent = max(extent, lane + 6)
    return out, extent


def _rounded(pts: list[Point], radius: float) -> str:
    """A polyline through `pts` with its corners rounded (quadratic curves)."""
    d = [f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"]
    for (ax, ay), (bx, by), (cx, cy) in zip(pts, pts[1:], pts[2:], strict=False):
        r_in = min(radius, (abs(bx - ax) + abs(by - ay)) / 2)
        r_out = min(radius, (abs(cx - bx) + abs(cy - by)) / 2)
        ux, uy = _unit(bx - ax, by - ay)
        vx, vy = _unit(cx - bx, cy - by)
        d.append(f"L{bx - ux * r_in:.1f},{by - uy * r_in:.1f}")
        d.append(f"Q{bx:.1f},{by:.1f} {bx + vx * r_out:.1f},{by + vy * r_out:.1f}")
    d.append(f"L{pts[-1][0]:.1f},{pts[-1][1]:.1f}")
    return " ".join(d)


def _unit(dx: float, dy: float) -> Point:
    n = (dx * dx + dy * dy) ** 0.5
    return (dx / n, dy / n) if n else (0.0, 0.0)
