"""A state machine drawn from its ASL definition, with the path one execution took.

Why SVG, made here as text: no dependency (standard library only: no JS graph
library, no CDN, no Node), so the console works offline and the page needs only
a few lines of script for the click-to-inspect panel; the drawing is a string a
test can parse, search and compare byte for byte; and ASL graphs are small
layered DAGs (tens of states), which a short layered layout draws well.

The layout is Sugiyama-lite, top to bottom as the AWS console draws it:

1. nodes: a Start, every state, an End; edges for Next, Choices[].Next,
   Default, Catch[].Next (labelled with their ErrorEquals) and End/Succeed/Fail
   → End. A Parallel or Map state is a group box holding its branches (or its
   ItemProcessor/Iterator), each laid out by the same steps, recursively;
2. cycles (Choice loops) are broken by a DFS from Start: an edge to a state on
   the DFS stack is a back edge, reversed for layering (and drawn upwards);
3. longest-path layering, then every state that only ends the execution is
   pulled to the row above End, so Succeed/Fail states line the bottom;
4. an edge spanning several rows gets a dummy node per row (a catch edge's
   middle dummy is as wide as its label, so labels never sit on a state);
5. order within a row: discovery order, then barycentre sweeps down and up,
   keeping the order with the fewest crossings;
6. x: each row in order, every node pulled to the mean x of its neighbours
   (long edges pulled harder, to keep them straight), the minimum gaps kept by
   weighted isotonic regression (pool adjacent violators);
7. sizes from the label length (a monospace estimate: 0.6 em a character).

`path_from_history` reads the events with `tmctl.core.executions.timeline`, the
parser `tmctl executions show` uses (AWS's and MiniStack's shapes), adding only
each state's input and output.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tmctl.core.executions import Step, details_of, timeline

Outcome = Literal["succeeded", "failed", "caught", "retried", "running", "not_run"]
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "failed", "caught", "retried", "running", "not_run")
START, END = "(start)", "(end)"  # the keys of the implicit Start and End nodes (and of a run's first/last transition)
DATA_LIMIT = 4096  # characters of a state's input, output and error carried in its data-* attributes

# ------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Node:
    """A box: a state, a Parallel/Map group holding its branches, or the Start/End marker.
    x, y is the top-left corner; nested states have absolute coordinates too."""

    key: str  # the state's name (qualified by its group if the name was taken already); START or END
    label: str
    kind: Literal["start", "end", "state", "group"]
    type: str  # the ASL Type; "" for Start and End
    x: float
    y: float
    width: float
    height: float
    layer: int
    parent: str | None = None  # the key of the Parallel/Map group this state is inside
    comment: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: Literal["start", "next", "choice", "default", "catch", "end"]
    label: str  # a catch's ErrorEquals, comma-separated; "" otherwise
    points: tuple[tuple[float, float], ...]  # source port first; a back edge runs upwards
    back: bool = False  # closes a cycle
    parent: str | None = None
    label_at: tuple[float, float] | None = None


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float

    def node(self, key: str) -> Node:
        return next(n for n in self.nodes if n.key == key)


_CHAR_W, _SMALL_W = 7.2, 6.0  # 12 px and 10 px monospace
_NODE_H, _MIN_W, _PAD_X = 40.0, 104.0, 14.0
_TERM_W, _TERM_H = 64.0, 26.0
_ROW_GAP, _GAP, _DUMMY_W = 44.0, 30.0, 10.0
_GROUP_PAD, _GROUP_HEAD, _BRANCH_GAP = 14.0, 26.0, 24.0
_MAX_NAME = 40  # characters of a name drawn in its box; all of it is in the tooltip
_MAX_LABEL = 26


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_errors(errors: str) -> str:
    """A catch's ErrorEquals as an edge label: `States.ALL`, `ConditionalCheckFailed +1`."""
    names = [e for e in errors.split(", ") if e]
    if not names:
        return ""
    first = names[0]
    if len(first) > _MAX_LABEL:
        first = first.rsplit(".", 1)[-1].removesuffix("Exception")
    first = _clip(first, _MAX_LABEL)
    return first + (f" +{len(names) - 1}" if len(names) > 1 else "")


@dataclass
class _V:
    """A vertex while laying out one scope: a real node or a dummy on a long edge."""

    key: str
    kind: str  # start | end | state | group | dummy
    type: str = ""
    label: str = ""
    w: float = _DUMMY_W
    h: float = 0.0
    comment: str = ""
    index: int = 0  # discovery order
    layer: int = 0
    x: float = 0.0  # centre
    y: float = 0.0  # top
    up: list[tuple[int, float]] = field(default_factory=list)  # (neighbour, pull): a catch pulls less than a Next
    down: list[tuple[int, float]] = field(default_factory=list)
    subs: list[_Scope] = field(default_factory=list)


@dataclass
class _E:
    source: int
    target: int
    kind: str
    label: str = ""
    back: bool = False
    chain: list[int] = field(default_factory=list)  # upper end, dummies, lower end


@dataclass
class _Scope:
    nodes: list[Node]
    edges: list[Edge]
    w: float
    h: float


def layout(definition: dict) -> Layout:
    """Where every state, group and edge of an ASL definition goes (top to bottom)."""
    used: set[str] = set()
    scope = _scope(definition.get("States") or {}, definition.get("StartAt"), None, True, used)
    return Layout(tuple(scope.nodes), tuple(scope.edges), round(scope.w, 1), round(scope.h, 1))


def _key(name: str, parent: str | None, used: set[str]) -> str:
    key = name if name not in used and name not in (START, END) else f"{parent or ''}/{name}"
    while key in used:
        key += "'"
    used.add(key)
    return key


def _transitions(state: dict) -> list[tuple[str, str, str]]:
    """(target, kind, label) for each way out of a state, in drawing order."""
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(target: Any, kind: str, label: str = "") -> None:
        if isinstance(target, str) and (target, kind) not in seen:
            seen.add((target, kind))
            out.append((target, kind, label))
        elif isinstance(target, str) and kind == "catch":  # two catchers to one state: one edge, both labels
            i = next(i for i, t in enumerate(out) if t[:2] == (target, kind))
            out[i] = (target, kind, out[i][2] + ", " + label)

    for choice in state.get("Choices") or []:
        if isinstance(choice, dict):
            add(choice.get("Next"), "choice")
    add(state.get("Default"), "default")
    add(state.get("Next"), "next")
    for catcher in state.get("Catch") or []:
        if isinstance(catcher, dict):
            add(catcher.get("Next"), "catch", ", ".join(str(e) for e in catcher.get("ErrorEquals") or []))
    return out


def _branches(state: dict) -> list[dict]:
    if state.get("Type") == "Parallel":
        return [b for b in state.get("Branches") or [] if isinstance(b, dict)]
    if state.get("Type") == "Map":
        inner = state.get("ItemProcessor") or state.get("Iterator")
        return [inner] if isinstance(inner, dict) else []
    return []


def _scope(states: dict, start_at: Any, parent: str | None, outer: bool, used: set[str]) -> _Scope:
    vs: list[_V] = []
    by_name: dict[str, int] = {}
    if outer:
        vs.append(_V(START, "start", label="Start", w=_TERM_W, h=_TERM_H))
    for name, state in states.items():
        state = state if isinstance(state, dict) else {}
        key = _key(str(name), parent, used)
        label = _clip(str(name), _MAX_NAME)
        kind_type = str(state.get("Type", "?"))
        w = max(_MIN_W, len(label) * _CHAR_W + 2 * _PAD_X, len(kind_type) * _SMALL_W + 2 * _PAD_X + 24)
        v = _V(key, "state", kind_type, label, w, _NODE_H, comment=str(state.get("Comment", "")))
        subs = [_scope(b.get("States") or {}, b.get("StartAt"), key, False, used) for b in _branches(state)]
        if kind_type in ("Parallel", "Map"):
            v.kind, v.subs = "group", subs
            inner_w = sum(s.w for s in subs) + _BRANCH_GAP * max(0, len(subs) - 1)
            v.w = max(w, inner_w + 2 * _GROUP_PAD)
            v.h = max(_NODE_H, _GROUP_HEAD + max((s.h for s in subs), default=0.0) + _GROUP_PAD)
        by_name[str(name)] = len(vs)
        vs.append(v)
    if outer:
        by_name_end = len(vs)
        vs.append(_V(END, "end", label="End", w=_TERM_W, h=_TERM_H))

    es: list[_E] = []
    if outer and start_at in by_name:
        es.append(_E(0, by_name[start_at], "start"))
    for name, state in states.items():
        state = state if isinstance(state, dict) else {}
        src = by_name[str(name)]
        es.extend(_E(src, by_name[t], kind, label) for t, kind, label in _transitions(state) if t in by_name)
        if outer and (state.get("End") is True or state.get("Type") in ("Succeed", "Fail")):
            es.append(_E(src, by_name_end, "end"))

    root = 0 if outer else by_name.get(start_at, 0) if isinstance(start_at, str) else 0
    self_loops = _break_cycles(vs, es, root)
    _layer(vs, es, outer)
    layers = _chains(vs, es)
    layers = _order(vs, layers)
    _place_x(vs, layers)
    _straighten(vs, es, layers)
    row_top = _place_y(vs, layers)
    return _emit(vs, es, self_loops, layers, row_top, parent)


def _break_cycles(vs: list[_V], es: list[_E], root: int) -> list[_E]:
    """Mark back edges (DFS from the root, then from any state not reached) and
    number the vertices in discovery order; return the self-loops, taken out of `es`."""
    out: list[list[int]] = [[] for _ in vs]
    loops = [e for e in es if e.source == e.target]
    es[:] = [e for e in es if e.source != e.target]
    for i, e in enumerate(es):
        out[e.source].append(i)
    state = [0] * len(vs)  # 0 new, 1 on the DFS stack, 2 done
    order = 0
    for start in [root, *range(len(vs))]:
        if not vs or state[start]:
            continue
        state[start], vs[start].index, order = 1, order, order + 1
        stack = [(start, iter(out[start]))]
        while stack:
            v, edges = stack[-1]
            for i in edges:
                t = es[i].target
                if state[t] == 1:
                    es[i].back = True
                elif state[t] == 0:
                    state[t], vs[t].index, order = 1, order, order + 1
                    stack.append((t, iter(out[t])))
                    break
            else:
                state[v] = 2
                stack.pop()
    return loops


def _dag(e: _E) -> tuple[int, int]:
    return (e.target, e.source) if e.back else (e.source, e.target)


def _layer(vs: list[_V], es: list[_E], outer: bool) -> None:
    """Longest path from the sources; states that only end the execution go to the row above End."""
    n = len(vs)
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for e in es:
        a, b = _dag(e)
        succ[a].append(b)
        indeg[b] += 1
    ready = sorted((i for i in range(n) if indeg[i] == 0), key=lambda i: vs[i].index)
    while ready:
        a = ready.pop(0)
        for b in succ[a]:
            vs[b].layer = max(vs[b].layer, vs[a].layer + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
                ready.sort(key=lambda i: vs[i].index)
    if not vs:
        return
    if outer:
        end = n - 1
        vs[end].layer = max((v.layer for v in vs[:-1]), default=0) + 1
        for i, v in enumerate(vs):
            if succ[i] and all(b == end for b in succ[i]):
                v.layer = vs[end].layer - 1
    else:
        bottom = max(v.layer for v in vs)
        for i, v in enumerate(vs):
            if not succ[i]:
                v.layer = bottom


def _chains(vs: list[_V], es: list[_E]) -> list[list[int]]:
    """A dummy vertex on every row a long edge crosses; the rows, in discovery order."""
    for e in es:
        a, b = _dag(e)
        chain = [a]
        span = range(vs[a].layer + 1, vs[b].layer)
        for layer in span:
            width = _DUMMY_W
            if e.kind == "catch" and layer == span.start and e.label:
                width = len(short_errors(e.label)) * _SMALL_W + 12
            vs.append(_V(f"~{len(vs)}", "dummy", w=width, layer=layer, index=vs[a].index))
            chain.append(len(vs) - 1)
        chain.append(b)
        e.chain = chain
        pull = 0.25 if e.kind == "catch" or e.back else 1.0
        for u, w in zip(chain, chain[1:], strict=False):
            vs[u].down.append((w, pull))
            vs[w].up.append((u, pull))
    rows: list[list[int]] = [[] for _ in range(max((v.layer for v in vs), default=-1) + 1)]
    for i in sorted(range(len(vs)), key=lambda i: (vs[i].index, vs[i].kind == "dummy", i)):
        rows[vs[i].layer].append(i)
    return rows


def _crossings(vs: list[_V], rows: list[list[int]]) -> int:
    total = 0
    for upper, lower in zip(rows, rows[1:], strict=False):
        pos = {v: i for i, v in enumerate(lower)}
        pairs = [(i, pos[w]) for i, u in enumerate(upper) for w, _pull in vs[u].down if w in pos]
        total += sum(1 for j, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[j + 1:]
                     if (a1 - a2) * (b1 - b2) < 0)
    return total


def _order(vs: list[_V], rows: list[list[int]]) -> list[list[int]]:
    """Barycentre sweeps, down then up, keeping the order with the fewest crossings."""
    pos = {v: i for row in rows for i, v in enumerate(row)}
    best, best_crossings = [list(r) for r in rows], _crossings(vs, rows)
    for sweep in range(8):
        downwards = sweep % 2 == 0
        indices = range(1, len(rows)) if downwards else range(len(rows) - 2, -1, -1)
        for li in indices:
            def centre(v: int, downwards: bool = downwards) -> tuple[float, int]:
                return (_mean([(pos[u], p) for u, p in (vs[v].up if downwards else vs[v].down)], pos[v]), pos[v])

            rows[li].sort(key=centre)
            pos.update((v, i) for i, v in enumerate(rows[li]))
        crossings = _crossings(vs, rows)
        if crossings < best_crossings:
            best, best_crossings = [list(r) for r in rows], crossings
    return best


def _mean(values: list[tuple[float, float]], default: float) -> float:
    total = sum(w for _v, w in values)
    return sum(v * w for v, w in values) / total if total else float(default)


def _gap(a: _V, b: _V) -> float:
    dummies = (a.kind == "dummy") + (b.kind == "dummy")
    return (a.w + b.w) / 2 + (_GAP, _GAP / 2, _GAP / 3)[dummies]


def _fit(desired: list[float], weights: list[float], gaps: list[float]) -> list[float]:
    """x closest to `desired` (weighted least squares) with x[i+1] - x[i] >= gaps[i]:
    isotonic regression of desired - offset by pooling adjacent violators."""
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    blocks: list[list[float]] = []  # [value, weight, count]
    for d, w, o in zip(desired, weights, offsets, strict=True):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    xs: list[float] = []
    for value, _w, count in blocks:
        xs.extend([value] * int(count))
    return [x + o for x, o in zip(xs, offsets, strict=True)]


def _place_x(vs: list[_V], rows: list[list[int]]) -> None:
    for row in rows:
        x = 0.0
        for a, b in zip(row, row[1:], strict=False):
            x += _gap(vs[a], vs[b])
            vs[b].x = x
        for v in row:
            vs[v].x -= x / 2
    plan = [(range(1, len(rows)), "up"), (range(len(rows) - 2, -1, -1), "down")] * 4
    plan += [(range(len(rows)), "both"), (range(len(rows)), "both")]
    for indices, side in plan:
        for li in indices:
            row = rows[li]
            desired, weights = [], []
            for v in row:
                near = vs[v].up + vs[v].down if side == "both" else getattr(vs[v], side)
                desired.append(_mean([(vs[u].x, p) for u, p in near], vs[v].x))
                weights.append(8.0 if vs[v].kind == "dummy" else max((p for _u, p in near), default=0.05))
            xs = _fit(desired, weights, [_gap(vs[a], vs[b]) for a, b in zip(row, row[1:], strict=False)])
            for v, x in zip(row, xs, strict=True):
                vs[v].x = x


def _straighten(vs: list[_V], es: list[_E], rows: list[list[int]]) -> None:
    """A long edge drawn as few vertical lines as can be: each longest run of its dummies that
    can share one x between their row neighbours gets it (longest edges first)."""
    slot: dict[int, tuple[list[int], int]] = {v: (row, i) for row in rows for i, v in enumerate(row)}

    def room(d: int) -> tuple[float, float]:
        row, i = slot[d]
        lo = vs[row[i - 1]].x + _gap(vs[row[i - 1]], vs[d]) if i > 0 else float("-inf")
        hi = vs[row[i + 1]].x - _gap(vs[d], vs[row[i + 1]]) if i + 1 < len(row) else float("inf")
        return lo, hi

    def align(run: list[int], lo: float, hi: float) -> None:
        xs = sorted(vs[d].x for d in run)
        for d in run:
            vs[d].x = min(max(xs[len(xs) // 2], lo), hi)

    for e in sorted(es, key=lambda e: -len(e.chain)):
        run: list[int] = []
        lo, hi = float("-inf"), float("inf")
        for d in e.chain[1:-1]:  # the longest runs of dummies that fit one x, each made straight
            d_lo, d_hi = room(d)
            if run and max(lo, d_lo) > min(hi, d_hi):
                align(run, lo, hi)
                run, lo, hi = [], float("-inf"), float("inf")
            run.append(d)
            lo, hi = max(lo, d_lo), min(hi, d_hi)
        if run:
            align(run, lo, hi)


def _place_y(vs: list[_V], rows: list[list[int]]) -> list[tuple[float, float]]:
    """Each row's (top, height); every vertex centred in its row."""
    out, y = [], 0.0
    for row in rows:
        h = max((vs[v].h for v in row), default=0.0)
        for v in row:
            vs[v].y = y + (h - vs[v].h) / 2
        out.append((y, h))
        y += h + _ROW_GAP
    return out


def _emit(vs: list[_V], es: list[_E], loops: list[_E], rows: list[list[int]],
          row_top: list[tuple[float, float]], parent: str | None) -> _Scope:
    real = [v for v in vs if v.kind != "dummy"]
    left = min((v.x - v.w / 2 for v in vs), default=0.0)
    for v in vs:
        v.x -= left
    width = max((v.x + v.w / 2 for v in vs), default=0.0)
    height = row_top[-1][0] + row_top[-1][1] if row_top else 0.0

    # ports: the edges leaving a box's bottom (or entering its top) spread along it, ordered by where they go
    bottom: dict[int, list[tuple[float, int]]] = {}
    top: dict[int, list[tuple[float, int]]] = {}
    for i, e in enumerate(es):
        a, b = e.chain[0], e.chain[-1]
        bottom.setdefault(a, []).append((vs[e.chain[1]].x, i))
        top.setdefault(b, []).append((vs[e.chain[-2]].x, i))
    port: dict[tuple[int, str], float] = {}
    for side, table in (("bottom", bottom), ("top", top)):
        for v, items in table.items():
            items.sort()
            step = min(16.0, vs[v].w * 0.6 / max(1, len(items) - 1))
            for j, (_x, i) in enumerate(items):
                port[(i, side)] = vs[v].x + (j - (len(items) - 1) / 2) * step

    placed: dict[int, Edge] = {}
    taken = [(v.x - v.w / 2, v.y, v.x + v.w / 2, v.y + v.h) for v in real]  # what a label must not cover
    for i, e in sorted(enumerate(es), key=lambda ie: len(ie[1].chain) == 2):  # reserved label spots first
        a, b = vs[e.chain[0]], vs[e.chain[-1]]
        pts = [(port[(i, "bottom")], a.y + a.h)]
        for d in e.chain[1:-1]:
            top_y, h = row_top[vs[d].layer]
            pts += [(vs[d].x, top_y), (vs[d].x, top_y + h)]
        pts.append((port[(i, "top")], b.y))
        label_at = None
        if e.label and len(e.chain) > 2:  # on the dummy made as wide as the label
            d = max((vs[x] for x in e.chain[1:-1]), key=lambda v: v.w)
            label_at = (d.x, row_top[d.layer][0] + row_top[d.layer][1] / 2)
            taken.append(_label_box(label_at, e.label))
        elif e.label:  # between two adjacent rows: the first spot along the curve no box or label covers
            spots = [_on_curve(pts[0], pts[-1], t) for t in (0.5, 0.3, 0.7, 0.15, 0.85)]
            label_at = next((p for p in spots if not any(_overlap(_label_box(p, e.label), b) for b in taken)),
                            spots[0])
            taken.append(_label_box(label_at, e.label))
        if e.back:
            pts.reverse()
        placed[i] = Edge(vs[e.source].key, vs[e.target].key, e.kind, e.label, _rounded(pts), e.back, parent,
                         _rounded([label_at])[0] if label_at else None)
    edges = [placed[i] for i in range(len(es))]
    for e in loops:  # a state that can follow itself: a small loop on its right side
        v = vs[e.source]
        x, cy = v.x + v.w / 2, v.y + v.h / 2
        pts = [(x, cy - 8), (x + 22, cy - 8), (x + 22, cy + 8), (x, cy + 8)]
        edges.append(Edge(v.key, v.key, e.kind, e.label, _rounded(pts), True, parent,
                          (round(x + 26, 1), round(cy, 1)) if e.label else None))
        width = max(width, x + 30)

    nodes: list[Node] = []
    for v in sorted(real, key=lambda v: (v.layer, v.x)):
        x0, y0 = v.x - v.w / 2, v.y
        nodes.append(Node(v.key, v.label, v.kind, v.type, round(x0, 1), round(y0, 1), round(v.w, 1), round(v.h, 1),
                          v.layer, parent, v.comment))
        if v.subs:  # the branches side by side under the group's heading, centred in it
            inner = sum(s.w for s in v.subs) + _BRANCH_GAP * (len(v.subs) - 1)
            ox = x0 + (v.w - inner) / 2
            for sub in v.subs:
                nodes.extend(_moved(n, ox, y0 + _GROUP_HEAD) for n in sub.nodes)
                edges.extend(_moved_edge(e, ox, y0 + _GROUP_HEAD) for e in sub.edges)
                ox += sub.w + _BRANCH_GAP
    return _Scope(nodes, edges, width, height)


def _label_box(at: tuple[float, float], label: str) -> tuple[float, float, float, float]:
    half = len(short_errors(label)) * _SMALL_W / 2 + 2
    return (at[0] - half, at[1] - 7, at[0] + half, at[1] + 7)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _on_curve(p0: tuple[float, float], p1: tuple[float, float], t: float) -> tuple[float, float]:
    """The point at t on the vertical-tangent cubic the SVG draws from p0 to p1."""
    (x0, y0), (x1, y1) = p0, p1
    m = (y1 - y0) / 2
    c = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)
    return (c[0] * x0 + c[1] * x0 + c[2] * x1 + c[3] * x1, c[0] * y0 + c[1] * (y0 + m) + c[2] * (y1 - m) + c[3] * y1)


def _rounded(points: Iterable[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    return tuple((round(x, 1), round(y, 1)) for x, y in points)


def _moved(n: Node, dx: float, dy: float) -> Node:
    return Node(n.key, n.label, n.kind, n.type, round(n.x + dx, 1), round(n.y + dy, 1), n.width, n.height, n.layer,
                n.parent, n.comment)


def _moved_edge(e: Edge, dx: float, dy: float) -> Edge:
    at = (round(e.label_at[0] + dx, 1), round(e.label_at[1] + dy, 1)) if e.label_at else None
    return Edge(e.source, e.target, e.kind, e.label, _rounded((x + dx, y + dy) for x, y in e.points), e.back,
                e.parent, at)


# ------------------------------------------------------------------ the path of one execution


@dataclass(frozen=True)
class Transition:
    """One move of the execution: `source` (START for the first) to `target` (END once it ended)."""

    source: str
    target: str
    seq: int  # 0 for Start → the first state, then in order
    duration_ms: float | None  # the time spent in `source` before this move (Start: until the first state began)
    caught: bool = False  # `source` failed and one of its Catch rules made this move


@dataclass
class StateRun:
    """What one state did in one execution (every entry of a state in a loop added up)."""

    name: str
    type: str
    outcome: Outcome
    attempts: int = 0  # resource calls (Scheduled events): a Retry makes several
    entries: int = 1
    duration_ms: float | None = None  # entered → exited, every entry added up
    input: str | None = None  # the latest entry's, as the history holds them (JSON text)
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    first_seq: int = 0  # the order of its first entry
    transitions: list[Transition] = field(default_factory=list)  # the moves out of it, in order

    @property
    def retries(self) -> int:
        """Calls beyond the first of each entry (a Choice or Pass makes no call: 0)."""
        return max(0, self.attempts - self.entries)


def _outcome(step: Step, caught: bool) -> Outcome:
    if step.status == "RUNNING" or step.exited is None:  # not left yet: working, or waiting to retry a failure
        return "running"
    if step.status in ("FAILED", "TIMED_OUT", "ABORTED"):
        return "caught" if caught else "failed"
    return "retried" if len(step.attempts) > 1 else "succeeded"


def path_from_history(events: list[dict]) -> dict[str, StateRun]:
    """Each state the execution entered, keyed by name, from GetExecutionHistory's events
    (either engine's shape, any order: the event ids order them)."""
    events = sorted(events, key=lambda e: int(e.get("id", 0)))
    steps = [s for s in timeline(events) if s.type != "Redrive"]
    # timeline summarises results; the console shows the raw input and output of each entry
    io: list[list[Any]] = []
    ended = None
    for event in events:
        kind, details = event["type"], details_of(event)
        if kind.endswith("StateEntered"):
            io.append([details.get("name"), details.get("input"), None])
        elif kind.endswith("StateExited"):
            match = next((entry for entry in reversed(io) if entry[0] == details.get("name")), None)
            if match is not None:
                match[2] = details.get("output")
        elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            ended = kind
        elif kind == "ExecutionRedriven":  # running again: the end before it is not where this run stops
            ended = None

    runs: dict[str, StateRun] = {}
    for seq, step in enumerate(steps):
        entry = io[seq] if seq < len(io) and io[seq][0] == step.name else [step.name, None, None]
        caught = step.next is not None
        outcome = _outcome(step, caught)
        ms = round(step.seconds * 1000, 1) if step.seconds is not None else None
        run = runs.get(step.name)
        if run is None:
            run = runs[step.name] = StateRun(step.name, step.type, outcome, len(step.attempts), 1, ms, entry[1],
                                             entry[2], step.error, step.cause, seq)
        else:
            run.entries += 1
            run.attempts += len(step.attempts)
            run.duration_ms = round((run.duration_ms or 0) + ms, 1) if ms is not None else run.duration_ms
            run.input, run.output = entry[1], entry[2]
            run.error, run.cause = step.error or run.error, step.cause or run.cause
            run.outcome = "running" if "running" in (run.outcome, outcome) else outcome
        target = step.next or (END if ended and seq == len(steps) - 1 else None)
        if target is not None:
            run.transitions.append(Transition(step.name, target, seq + 1, ms, outcome == "caught"))
    if steps:  # the first move: from the execution's start (timeline's offsets count from it) to the first state
        first = steps[0]
        runs[first.name].transitions.insert(0, Transition(START, first.name, 0, round(first.offset * 1000, 1)))
    return runs


# ------------------------------------------------------------------ SVG

_STYLE = """\
.tmg{--tmg-ink:#1f2328;--tmg-muted:#59636e;--tmg-edge:#8c959f;--tmg-paper:#fff;\
--tmg-succeeded:#1a7f37;--tmg-succeeded-bg:#dafbe1;--tmg-failed:#cf222e;--tmg-failed-bg:#ffebe9;\
--tmg-caught:#e16f24;--tmg-caught-bg:#fff1e5;--tmg-retried:#b58407;--tmg-retried-bg:#fff8c5;\
--tmg-running:#0969da;--tmg-running-bg:#ddf4ff;--tmg-not_run:#8c959f;--tmg-not_run-bg:#f6f8fa;\
font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
.tmg text{fill:var(--tmg-ink)}
.tmg .tmg-type,.tmg .tmg-label,.tmg .tmg-legend text{font-size:10px;fill:var(--tmg-muted)}
.tmg .tmg-label{paint-order:stroke;stroke:var(--tmg-paper);stroke-width:3px;stroke-linejoin:round}
.tmg .tmg-heading{font-size:13px;font-weight:600}
.tmg .tmg-state{cursor:pointer}
.tmg .tmg-state>rect{fill:var(--tmg-paper);stroke:var(--tmg-ink);stroke-width:1.2}
.tmg .tmg-state:focus{outline:none}
.tmg .tmg-state:hover>rect,.tmg .tmg-state:focus>rect{stroke-width:3}
.tmg .tmg-group>rect{fill-opacity:.35;stroke-dasharray:5 3}
.tmg .tmg-terminal>rect{fill:var(--tmg-ink)}
.tmg .tmg-terminal text{fill:var(--tmg-paper);font-size:11px}
.tmg .tmg-edge{fill:none;stroke:var(--tmg-edge);stroke-width:1.3}
.tmg .tmg-catch{stroke-dasharray:5 3}
.tmg .tmg-taken{stroke:var(--tmg-ink);stroke-width:2.4}
.tmg .tmg-badge rect{fill:var(--tmg-retried);stroke:none}
.tmg .tmg-badge text{fill:var(--tmg-paper);font-size:10px;font-weight:600}
.tmg .tmg-note{font-size:10px;fill:var(--tmg-muted)}
"""
_STYLE += "".join(
    f".tmg .tmg-{o}>rect,.tmg .tmg-swatch.tmg-{o}{{fill:var(--tmg-{o}-bg);stroke:var(--tmg-{o});stroke-width:2}}\n"
    for o in OUTCOMES)
_STYLE += """.tmg .tmg-not_run{opacity:.75}
.tmg .tmg-not_run>rect{stroke-width:1.2}
.tmg .tmg-running>rect{stroke-dasharray:6 3;animation:tmg-run 1s linear infinite}
@keyframes tmg-run{to{stroke-dashoffset:-9}}
@media (prefers-reduced-motion:reduce){.tmg .tmg-running>rect{animation:none}}
"""

_LEGEND = {"succeeded": "succeeded", "failed": "failed", "caught": "caught", "retried": "retried ×N",
           "running": "running", "not_run": "not run"}
_MARGIN = 16.0
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(value: Any, limit: int | None = None) -> str:
    """Text safe in an XML text node or a quoted attribute (an engine's strings are not trusted)."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(_XML_INVALID.sub("\ufffd", text), quote=True).replace("\n", "&#10;").replace("\r", "&#13;")


def _esc_json(value: Any, limit: int) -> str:
    """Like _esc, for a single-quoted attribute: `"` stays as is, `'` is escaped."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = html.escape(_XML_INVALID.sub("\ufffd", text), quote=False).replace("'", "&#x27;")
    return text.replace("\n", "&#10;").replace("\r", "&#13;")


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def duration_text(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:.0f} m {seconds:.0f} s"


def _path(points: tuple[tuple[float, float], ...], loop: bool) -> str:
    """Straight lines for a self-loop; otherwise vertical-tangent curves through the points."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{_num(x0)} {_num(y0)}"]
    for x1, y1 in rest:
        if loop or x1 == x0:
            d.append(f"L{_num(x1)} {_num(y1)}")
        else:
            m = (y1 - y0) / 2
            d.append(f"C{_num(x0)} {_num(y0 + m)} {_num(x1)} {_num(y1 - m)} {_num(x1)} {_num(y1)}")
        x0, y0 = x1, y1
    return "".join(d)


def _tooltip(node: Node, run: StateRun | None, outcome: str) -> str:
    lines = [f"{node.key} ({node.type})"]
    if run is not None:
        parts = [outcome.replace("_", " ")]
        if run.attempts > 1:
            parts.append(f"{run.attempts} attempts")
        if run.entries > 1:
            parts.append(f"entered {run.entries}×")
        if run.duration_ms is not None:
            parts.append(duration_text(run.duration_ms))
        lines.append(", ".join(parts))
        if run.error or run.cause:
            lines.append(_clip(": ".join(t for t in (run.error, run.cause) if t), 300))
    elif outcome == "not_run":
        lines.append("not run")
    if node.comment:
        lines.append(_clip(node.comment, 200))
    return "\n".join(lines)


def render_svg(definition: dict, runs: dict[str, StateRun] | None = None, *, title: str = "") -> str:
    """The definition's graph as one self-contained <svg> element (inline CSS, no external
    references); with `runs` (from path_from_history), each state coloured by its outcome
    and the path taken drawn bold, with the time spent before each move."""
    lay = layout(definition)
    head = 26.0 if title else 0.0
    ox, oy = _MARGIN, _MARGIN + head

    taken = _taken(lay, runs or {})
    keys = {n.key for n in lay.nodes}
    unmatched = sorted(set(runs or {}) - keys)

    out: list[str] = []
    body_w = max(lay.width, 1.0)
    legend, legend_h = _legend(body_w, runs is not None)
    note = ""
    if unmatched:
        note = _clip("Not in this definition: " + ", ".join(unmatched), max(40, int(body_w / _SMALL_W)))
    total_w = body_w + 2 * _MARGIN
    legend_y = oy + lay.height + 22
    total_h = legend_y + legend_h + (16 if note else 0) + _MARGIN - 8
    label = title or "State machine"
    out.append(f'<svg xmlns="http://www.w3.org/2000/svg" class="tmg" viewBox="0 0 {_num(total_w)} {_num(total_h)}" '
               f'width="{_num(total_w)}" height="{_num(total_h)}" role="group" aria-label="{_esc(label)}">')
    out.append(f"<title>{_esc(label)}</title>")
    out.append(f"<style>\n{_STYLE}</style>")
    out.append('<defs><marker id="tmg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" '
               'markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#59636e" '
               'style="fill:context-stroke"/></marker></defs>')
    if title:
        out.append(f'<text class="tmg-heading" x="{_num(_MARGIN)}" y="{_num(_MARGIN + 13)}">{_esc(title)}</text>')
    out.append(f'<g transform="translate({_num(ox)} {_num(oy)})">')

    def outcome_of(key: str) -> tuple[str, StateRun | None]:
        if runs is None:
            return "none", None
        run = runs.get(key)
        return (run.outcome, run) if run is not None else ("not_run", None)

    groups = [n for n in lay.nodes if n.kind == "group"]
    for n in groups:  # under the edges and states they hold
        outcome, run = outcome_of(n.key)
        out.append(_state(n, outcome, run, group=True))
    out.append('<g class="tmg-edges">')
    for i, e in enumerate(lay.edges):
        moves = taken.get(i, [])
        cls = "tmg-edge" + (" tmg-catch" if e.kind == "catch" else "") + (" tmg-taken" if moves else "")
        out.append(f'<path class="{cls}" d="{_path(e.points, e.source == e.target)}" marker-end="url(#tmg-arrow)" '
                   f'data-from="{_esc(e.source)}" data-to="{_esc(e.target)}"/>')
        if e.label and e.label_at:
            x, y = e.label_at
            out.append(f'<text class="tmg-label" x="{_num(x)}" y="{_num(y + 3)}" text-anchor="middle">'
                       f"<title>{_esc(e.label)}</title>{_esc(short_errors(e.label))}</text>")
        if moves:
            total = sum(t.duration_ms or 0 for t in moves)
            text = duration_text(total) if len(moves) == 1 else f"{len(moves)}× {duration_text(total)}"
            (x, y), (x2, _y2) = e.points[0], e.points[1]
            if e.back:
                y -= 14
            anchor, dx = ("end", -5) if x2 < x - 1 else ("start", 5)
            out.append(f'<text class="tmg-label tmg-duration" x="{_num(x + dx)}" y="{_num(y + 13)}" '
                       f'text-anchor="{anchor}">{_esc(text)}</text>')
    out.append("</g>")
    out.append('<g class="tmg-states">')
    for n in lay.nodes:
        if n.kind in ("start", "end"):
            out.append(f'<g class="tmg-terminal" id="graph-{n.kind}"><rect x="{_num(n.x)}" y="{_num(n.y)}" '
                       f'width="{_num(n.width)}" height="{_num(n.height)}" rx="{_num(n.height / 2)}"/>'
                       f'<text x="{_num(n.x + n.width / 2)}" y="{_num(n.y + n.height / 2 + 4)}" '
                       f'text-anchor="middle">{_esc(n.label)}</text></g>')
        elif n.kind == "state":
            outcome, run = outcome_of(n.key)
            out.append(_state(n, outcome, run, group=False))
    out.append("</g></g>")
    out.append(f'<g class="tmg-legend" role="list" aria-label="Legend" '
               f'transform="translate({_num(_MARGIN)} {_num(legend_y)})">{legend}</g>')
    if note:
        out.append(f'<text class="tmg-note" x="{_num(_MARGIN)}" y="{_num(legend_y + legend_h + 10)}">'
                   f"{_esc(note)}</text>")
    out.append("</svg>")
    return "\n".join(out)


def _taken(lay: Layout, runs: dict[str, StateRun]) -> dict[int, list[Transition]]:
    """The moves made along each edge (by index): a caught failure's along the Catch edge,
    any other along the Next/Choice/Default one, where a state has both to one target."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(lay.edges):
        by_pair.setdefault((e.source, e.target), []).append(i)
    out: dict[int, list[Transition]] = {}
    for run in runs.values():
        for t in run.transitions:
            found = by_pair.get((t.source, t.target), [])
            if found:
                best = next((i for i in found if (lay.edges[i].kind == "catch") == t.caught), found[0])
                out.setdefault(best, []).append(t)
    return out


def _state(n: Node, outcome: str, run: StateRun | None, *, group: bool) -> str:
    attrs = [f'class="tmg-state tmg-{"group" if group else "box"} tmg-{outcome}"', f'id="state-{_esc(n.key)}"',
             f'data-testid="state-{_esc(n.key)}"', f'data-state="{_esc(n.key)}"', f'data-type="{_esc(n.type)}"',
             f'data-outcome="{outcome}"']
    aria = f"{n.key}, {n.type}, {outcome.replace('_', ' ')}"
    if run is not None:
        attrs.append(f'data-attempts="{run.attempts}"')
        if run.duration_ms is not None:
            attrs.append(f'data-duration-ms="{_num(run.duration_ms)}"')
            aria += f", {duration_text(run.duration_ms)}"
        if run.attempts > 1:
            aria += f", {run.attempts} attempts"
        for name, value in (("input", run.input), ("output", run.output), ("error", run.error),
                            ("cause", run.cause)):
            if value is not None:  # single-quoted: JSON's many double quotes stay one byte each
                attrs.append(f"data-{name}='{_esc_json(value, DATA_LIMIT)}'")
    attrs += ['tabindex="0"', 'role="button"', f'aria-label="{_esc(aria)}"']
    x, y, w, h = n.x, n.y, n.width, n.height
    parts = [f"<g {' '.join(attrs)}>", f"<title>{_esc(_tooltip(n, run, outcome))}</title>",
             f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" rx="{6 if not group else 8}"/>']
    if group:
        parts.append(f'<text x="{_num(x + 10)}" y="{_num(y + 17)}">{_esc(n.label)}'
                     f'<tspan class="tmg-type" dx="8">{_esc(n.type)}</tspan></text>')
    else:
        cx = x + w / 2
        parts.append(f'<text x="{_num(cx)}" y="{_num(y + 17)}" text-anchor="middle">{_esc(n.label)}</text>')
        parts.append(f'<text class="tmg-type" x="{_num(cx)}" y="{_num(y + 31)}" text-anchor="middle">'
                     f"{_esc(n.type)}</text>")
    if run is not None and run.retries:
        bx = x + w - 14
        parts.append(f'<g class="tmg-badge"><rect x="{_num(bx - 2)}" y="{_num(y - 8)}" width="24" height="16" '
                     f'rx="8"/><text x="{_num(bx + 10)}" y="{_num(y + 4)}" text-anchor="middle">'
                     f"×{run.attempts}</text></g>")
    parts.append("</g>")
    return "".join(parts)


def _legend(width: float, with_runs: bool) -> tuple[str, float]:
    """Swatches in rows as wide as the graph; (markup, height)."""
    items = [(o, _LEGEND[o]) for o in OUTCOMES] if with_runs else []
    items.append(("catch", "catch (dashed)"))
    out, x, y = [], 0.0, 0.0
    for key, text in items:
        w = 22 + len(text) * _SMALL_W + 14
        if x and x + w > width:
            x, y = 0.0, y + 18
        if key == "catch":
            swatch = (f'<path class="tmg-edge tmg-catch" d="M{_num(x)} {_num(y + 6)}h16"/>')
        else:
            swatch = (f'<rect class="tmg-swatch tmg-{key}" x="{_num(x)}" y="{_num(y)}" width="16" height="12" '
                      'rx="3"/>')
        out.append(f'<g role="listitem">{swatch}<text x="{_num(x + 22)}" y="{_num(y + 10)}">{_esc(text)}</text></g>')
        x += w
    return "".join(out), y + 14
