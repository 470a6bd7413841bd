"""Questions to the attack graph: ranked paths from a source to a target, and their choke points.

Ranking: a path's cost is the sum of its steps' costs (see `EDGE_KINDS`), ties broken by fewer
steps. The search is best-first with an exact heuristic (the reverse Dijkstra distance to the
target), each node expanded at most `limit` times, so the first `limit` simple paths come out
cheapest first without enumerating the graph.

Choke points: for each finding on the ranked paths, how many of them fixing it closes; and the
smallest set of findings whose fix leaves no path at all (checked on the whole graph, not only
on the ranked paths). Two candidate cuts are computed and the smaller valid one kept: a greedy
hitting set over the ranked paths, extended until the target is unreachable, and a minimum edge
cut of the graph where each fixable edge has capacity 1 and structural edges cannot be cut.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from networkx.algorithms.flow import boykov_kolmogorov

from kubeguard.cluster.snapshot import Snapshot
from kubeguard.errors import KubeguardError
from kubeguard.model import Finding
from kubeguard.posture.paths.build import build_graph
from kubeguard.posture.paths.graph import INTERNET, TARGETS, AttackGraph, Step


class QueryError(KubeguardError):
    """A --from / --to that names nothing in the snapshot, or is malformed."""


ANY_POD = "any-pod"
MAX_CUT_SOURCES = 500  # above this many starting pods the smallest fix is not computed (see minimal_fix)
HOP = 1  # added per step so that, at equal cost, shorter paths rank first
WEIGHT = 100  # cost unit relative to HOP


@dataclass(slots=True)
class Path:
    """One ranked path: its nodes, steps and total cost."""

    nodes: list[str]
    steps: list[Step]
    cost: int

    @property
    def findings(self) -> set[str]:
        return {f for step in self.steps for f in step.findings}

    def to_dict(self, graph: AttackGraph) -> dict[str, Any]:
        return {
            "cost": self.cost,
            "nodes": [{"id": n, "label": graph.label(n), "kind": graph.kind(n)} for n in self.nodes],
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(slots=True)
class ChokePoint:
    """A finding whose fix closes `closes` of the ranked paths."""

    finding: str
    closes: int


@dataclass(slots=True)
class Answer:
    """The answer to one question: paths, choke points and the minimal cut."""

    source: str
    target: str
    paths: list[Path]
    choke_points: list[ChokePoint] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    cut_complete: bool = True  # False: some path has only structural steps, nothing to fix cuts it
    truncated: bool = False  # more paths exist than were ranked

    def to_dict(self, graph: AttackGraph) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "paths": [p.to_dict(graph) for p in self.paths],
            "truncated": self.truncated,
            "choke_points": [
                {"finding": c.finding, "closes": c.closes, "of": len(self.paths),
                 **_finding_summary(graph, c.finding)} for c in self.choke_points],
            "minimal_fix": [{"finding": f, **_finding_summary(graph, f)} for f in self.cut],
            "minimal_fix_complete": self.cut_complete,
        }


def _finding_summary(graph: AttackGraph, finding_id: str) -> dict[str, Any]:
    finding = graph.findings.get(finding_id)
    if finding is None:
        return {}
    return {"title": finding.title, "severity": finding.severity.label, "evidence": finding.evidence,
            "remediation": finding.remediation, "file": finding.file, "line": finding.line}


def resolve_source(graph: AttackGraph, spec: str) -> str:
    """`internet`, `any-pod` or `pod:NS/NAME` (NAME: the pod or its controller) as a graph node."""
    if spec in (INTERNET, ANY_POD):
        return spec
    if spec.startswith("pod:"):
        node = _resolve_named(graph, spec, "pod")
        if node:
            return node
        raise QueryError(f"--from {spec}: no pod or workload of that name in the snapshot")
    raise QueryError(f"--from {spec!r}: expected internet, any-pod or pod:NAMESPACE/NAME")


def resolve_target(graph: AttackGraph, spec: str) -> str:
    """One of the impact targets, or `secret:NS/NAME`."""
    if spec in TARGETS:
        return spec
    if spec.startswith("secret:"):
        if spec in graph.g:
            return spec
        raise QueryError(f"--to {spec}: no such Secret in the snapshot")
    raise QueryError(f"--to {spec!r}: expected one of {', '.join(TARGETS)} or secret:NAMESPACE/NAME")


def _resolve_named(graph: AttackGraph, spec: str, kind: str) -> str | None:
    if spec in graph.g and graph.kind(spec) == kind:
        return spec
    namespace, _, name = spec.removeprefix("pod:").partition("/")
    if not name:
        return None
    # a pod name made by a controller: deployment-name-<hash>-<id>
    prefix = f"pod:{namespace}/"
    candidates = [n for n, d in graph.g.nodes(data=True)
                  if d.get("kind") == kind and n.startswith(prefix) and name.startswith(n.removeprefix(prefix))]
    return max(candidates, key=len) if candidates else None


def _sources(graph: AttackGraph, source: str) -> list[str]:
    if source == ANY_POD:
        return [n for n, d in graph.g.nodes(data=True) if d.get("kind") == "pod"]
    return [source]


def ranked_paths(graph: AttackGraph, source: str, target: str, limit: int = 10,
                 g: nx.DiGraph[str] | None = None) -> tuple[list[Path], bool]:
    """Up to `limit` simple paths cheapest first, and whether more exist than returned."""
    g = graph.g if g is None else g
    if target not in g:
        return [], False
    dist = nx.single_source_dijkstra_path_length(g.reverse(copy=False), target, weight=_weight)
    starts = [s for s in _sources(graph, source) if s in dist and s != target]
    counter = itertools.count()
    heap: list[tuple[int, int, tuple[str, ...], int]] = []
    for start in starts:
        heapq.heappush(heap, (int(dist[start]), next(counter), (start,), 0))
    expanded: Counter[str] = Counter()
    out: list[Path] = []
    while heap:
        _estimate, _tie, nodes, so_far = heapq.heappop(heap)
        node = nodes[-1]
        if node == target:
            if len(out) == limit:
                return out, True
            steps = [graph.step(u, v) for u, v in itertools.pairwise(nodes)]
            out.append(Path(list(nodes), steps, sum(g.edges[u, v]["cost"] for u, v in itertools.pairwise(nodes))))
            continue
        expanded[node] += 1
        if expanded[node] > limit + 1:
            continue
        for succ in g.successors(node):
            if succ in dist and succ not in nodes:
                spent = so_far + _weight(node, succ, g.edges[node, succ])
                heapq.heappush(heap, (int(spent + dist[succ]), next(counter), (*nodes, succ), spent))
    return out, False


def _weight(_u: str, _v: str, data: dict[str, Any]) -> int:
    return int(data["cost"]) * WEIGHT + HOP


def reachable(g: nx.DiGraph[str], sources: list[str], target: str) -> bool:
    """Whether any source reaches the target in `g`."""
    if target not in g:
        return False
    ancestors = nx.ancestors(g, target)
    return any(s in ancestors for s in sources)


def answer(graph: AttackGraph, source: str, target: str, limit: int = 10) -> Answer:
    """Ranked paths from `source` to `target` with choke points and the smallest fix that closes all."""
    paths, truncated = ranked_paths(graph, source, target, limit)
    result = Answer(source, target, paths, truncated=truncated)
    if not paths:
        return result
    counts: Counter[str] = Counter()
    for path in paths:
        counts.update(_path_closers(graph, path))
    result.choke_points = [ChokePoint(f, n) for f, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    result.cut, result.cut_complete = minimal_fix(graph, source, target, paths)
    return result


def _path_closers(graph: AttackGraph, path: Path) -> set[str]:
    """Findings whose fix alone removes some step of the path (and its parallel alternatives)."""
    out: set[str] = set()
    for u, v in itertools.pairwise(path.nodes):
        out |= _closing(graph, u, v)
    return out


def minimal_fix(graph: AttackGraph, source: str, target: str, paths: list[Path]) -> tuple[list[str], bool]:
    """The smaller of a min edge cut and a greedy hitting set that both leave the target unreachable.

    Both work on the relevant part of the graph only: nodes a source reaches that reach the target.
    With more than `MAX_CUT_SOURCES` starting pods (any-pod on a large cluster) no fix is computed:
    the answer then has choke points only and `minimal_fix_complete` false.
    """
    sources = [s for s in _sources(graph, source) if s in graph.g]
    relevant = _relevant(graph.g, sources, target)
    if sum(1 for s in sources if s in relevant) > MAX_CUT_SOURCES:
        return [], False
    best = _edge_cut(graph, relevant, sources, target)
    greedy = _greedy_cut(graph, relevant, sources, target, paths, bound=len(best) if best is not None else None)
    candidates: list[list[str]] = [c for c in (best, greedy) if c is not None]
    if not candidates:
        return [], False
    smallest = min(candidates, key=len)
    return sorted(smallest), True


def _relevant(g: nx.DiGraph[str], sources: list[str], target: str) -> nx.DiGraph[str]:
    """A view of the subgraph between the sources and the target."""
    ancestors = nx.ancestors(g, target) | {target}
    forward: set[str] = set()
    stack = [s for s in sources if s in ancestors]
    forward.update(stack)
    while stack:
        node = stack.pop()
        for succ in g.successors(node):
            if succ in ancestors and succ not in forward:
                forward.add(succ)
                stack.append(succ)
    return g.subgraph(forward)


def _closing(graph: AttackGraph, u: str, v: str) -> set[str]:
    """Findings any one of which removes the step u -> v (with its parallel alternatives)."""
    sets = graph.edge_closers(u, v)
    return set(sets[0]).intersection(*sets[1:])


def _greedy_cut(graph: AttackGraph, relevant: nx.DiGraph[str], sources: list[str], target: str, paths: list[Path],
                bound: int | None = None, rounds: int = 1) -> list[str] | None:
    """Greedy hitting set over the ranked paths, re-ranked on the reduced graph until none is left.

    Gives up (None) after `rounds` re-rankings or once it is no smaller than `bound`.
    """
    h: nx.DiGraph[str] | None = None
    chosen: list[str] = []
    open_paths = list(paths)
    for _ in range(rounds + 1):
        while open_paths:
            counts: Counter[str] = Counter()
            for path in open_paths:
                counts.update(_path_closers(graph, path))
            if not counts:
                return None  # a path with only structural steps: no fix closes it
            best = min(counts, key=lambda f: (-counts[f], f))
            chosen.append(best)
            if bound is not None and len(chosen) >= bound:
                return None
            open_paths = [p for p in open_paths if best not in _path_closers(graph, p)]
        if h is None:  # copy only when the ranked paths did not already give a small fix
            h = nx.DiGraph(relevant)
        h.remove_edges_from([(u, v) for u, v in list(h.edges()) if _closing(graph, u, v) & set(chosen)])
        if not reachable(h, sources, target):
            return chosen
        open_paths, _ = _ranked_on(graph, h, sources, target, 10)
    return None


def _ranked_on(graph: AttackGraph, h: nx.DiGraph[str], sources: list[str], target: str,
               limit: int) -> tuple[list[Path], bool]:
    if len(sources) == 1:
        return ranked_paths(graph, sources[0], target, limit, g=h)
    return ranked_paths(graph, ANY_POD, target, limit, g=h)


def _edge_cut(graph: AttackGraph, relevant: nx.DiGraph[str], sources: list[str], target: str) -> list[str] | None:
    """Min cut where fixable edges cost 1 (labelled by a finding that closes them) and others cannot be cut."""
    if target not in relevant:
        return []
    flow: nx.DiGraph[str] = nx.DiGraph()
    super_source = "\x00source"
    for s in sources:
        if s in relevant:
            flow.add_edge(super_source, s)
    for u, v in relevant.edges():
        common = _closing(graph, u, v)
        if common:
            flow.add_edge(u, v, capacity=1, findings=frozenset({min(common)}))
        else:
            flow.add_edge(u, v)
    merge_twins(flow, keep={super_source, target})
    try:
        _value, (reach, _rest) = nx.minimum_cut(flow, super_source, target, flow_func=boykov_kolmogorov)
    except nx.NetworkXUnbounded:
        return None
    # Fixing a finding removes every edge it labels, a superset of the cut edges: the target is cut off.
    return sorted({finding for u in reach for v in flow.successors(u) if v not in reach
                   for finding in flow.edges[u, v]["findings"]})


def merge_twins(flow: nx.DiGraph[str], keep: set[str]) -> int:
    """Merge nodes with the same predecessors and successors over edges of the same capacity (twins).

    The containers of one pod are such twins (the pod before them, node, token, metadata API after):
    a pod with N containers gave the min cut a hub with N parallel routes, and Boykov-Kolmogorov
    re-adopts that hub's N predecessors at each of its N augmentations (quadratic: 8,000 containers
    took 110 s). Twins are not adjacent to one another, so each one's side of a cut costs the same
    whatever the others do: some minimum cut keeps them together, and the merged node with summed
    capacities (its edges labelled by the union of the twins' findings) has the same cut value and
    reports the same findings. Returns how many nodes were merged away.
    """
    def capacity(data: dict[str, Any]) -> int | None:
        return data.get("capacity")

    groups: dict[tuple[tuple[tuple[str, int | None], ...], tuple[tuple[str, int | None], ...]], list[str]] = {}
    for node in flow.nodes:
        if node in keep:
            continue
        key = (tuple(sorted((p, capacity(d)) for p, d in flow.pred[node].items())),
               tuple(sorted((s, capacity(d)) for s, d in flow.succ[node].items())))
        groups.setdefault(key, []).append(node)
    merged = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        twins = set(members)
        if any(twins.intersection(flow.succ[m]) or twins.intersection(flow.pred[m]) for m in members):
            continue
        head, rest = members[0], members[1:]
        for edges in (flow.succ, flow.pred):
            for other, data in edges[head].items():
                each = capacity(data)
                if each is None:
                    continue
                labels = set(data["findings"])
                for twin in rest:
                    labels.update(edges[twin][other]["findings"])
                data["capacity"] = each * len(members)
                data["findings"] = frozenset(labels)
        flow.remove_nodes_from(rest)
        merged += len(rest)
    return merged


def analyse(snapshot: Snapshot, findings: list[Finding] | None = None, source: str = INTERNET,
            targets: list[str] | None = None, limit: int = 10) -> tuple[AttackGraph, list[Answer]]:
    """Build the graph and answer `source` -> each target (all impact targets by default)."""
    if limit < 1:
        raise QueryError(f"--limit {limit}: must be at least 1")
    graph = build_graph(snapshot, findings)
    start = resolve_source(graph, source)
    ends = [resolve_target(graph, t) for t in (targets or list(TARGETS))]
    return graph, [answer(graph, start, end, limit) for end in ends]
