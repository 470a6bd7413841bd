"""The flow map: workloads as nodes, who talks to whom as edges, from `dpi --flows-out` records.

A node is a workload (`namespace/Kind/name`, from the pods map's controllers), a pod (when only the
flow record's `net.client.pod` / `net.server.pod` names it) or an external address. An edge (client
to server) sums the flows between two nodes: their count (a record's ``flow.count``, 1 when absent: the
agent ships records aggregated per window), bytes both ways, the protocols seen
(`http/tcp:8080`) and the verdict counts (`pass`, `alert`, and whatever inline enforcement wrote).
Renders as JSON, Graphviz dot, or one self-contained HTML page (inline SVG, no network).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeguard.boundedread import InputTooLarge, bounded_lines
from kubeguard.cluster.podmap import PodMap
from kubeguard.errors import KubeguardError

MAX_FLOW_LINE = 1 << 20  # one flow record is a few hundred bytes


class FlowMapError(KubeguardError):
    """The flows file cannot be read; the message names file:line."""


@dataclass(slots=True)
class Edge:
    flows: int = 0
    bytes: int = 0
    protocols: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class FlowMap:
    """Nodes (id -> kind and namespace) and edges ((client, server) -> Edge)."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: dict[tuple[str, str], Edge] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": node, **info} for node, info in sorted(self.nodes.items())],
            "edges": [{"from": a, "to": b, "flows": e.flows, "bytes": e.bytes,
                       "protocols": dict(sorted(e.protocols.items())), "verdicts": dict(sorted(e.verdicts.items()))}
                      for (a, b), e in sorted(self.edges.items())],
        }


def build(path: Path, podmap: PodMap | None = None) -> FlowMap:
    """Read a flows file into a FlowMap; pods are grouped into workloads when a pods map is given."""
    fmap = FlowMap()
    try:
        with path.open("rb") as handle:
            for number, _, raw in bounded_lines(handle, MAX_FLOW_LINE, str(path)):
                if raw is None:
                    raise FlowMapError(f"{path}:{number}: line longer than {MAX_FLOW_LINE >> 10} KiB: "
                                       "not a flow record")
                _add_line(fmap, raw, podmap, f"{path}:{number}")
    except OSError as exc:
        raise FlowMapError(f"{path}: cannot read flows: {exc.strerror or exc}") from exc
    except InputTooLarge as exc:
        raise FlowMapError(str(exc)) from exc
    return fmap


def _add_line(fmap: FlowMap, raw: bytes, podmap: PodMap | None, where: str) -> None:
    """One JSON line into `fmap`; FlowMapError naming `where` when it is not a flow record."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowMapError(f"{where}: not a JSON-lines flows file: {exc}") from exc
    if not line.strip():
        return
    try:
        add_record(fmap, json.loads(line), podmap)
    except RecursionError as exc:
        raise FlowMapError(f"{where}: not a flow record: nested too deeply") from exc
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise FlowMapError(f"{where}: not a flow record: {exc}") from exc


def from_records(records: Iterable[dict[str, Any]], podmap: PodMap | None = None) -> FlowMap:
    """A FlowMap of flow records already parsed (e.g. stored by the console); FlowMapError on a bad one."""
    fmap = FlowMap()
    for number, rec in enumerate(records, 1):
        try:
            add_record(fmap, rec, podmap)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise FlowMapError(f"flow record {number}: not a flow record: {exc}") from exc
    return fmap


def add_record(fmap: FlowMap, rec: dict[str, Any], podmap: PodMap | None = None) -> None:
    """Count one `dpi --flows-out` record into the map; KeyError/ValueError/TypeError when it is not one."""
    client = _node(fmap, str(rec["fd.cip"]), rec.get("net.client.pod"), podmap)
    server = _node(fmap, str(rec["fd.sip"]), rec.get("net.server.pod"), podmap)
    size = int(rec.get("flow.bytes_toserver", 0)) + int(rec.get("flow.bytes_toclient", 0))
    proto = f"{rec.get('net.proto') or 'unknown'}/{rec.get('fd.l4proto', '?')}:{int(rec['fd.sport'])}"
    count = int(rec.get("flow.count", 1))  # an agent's aggregated record stands for this many flows
    if count < 1:
        raise ValueError(f"flow.count {count}: expected at least 1")
    edge = fmap.edges.setdefault((client, server), Edge())
    edge.flows += count
    edge.bytes += size
    edge.protocols[proto] += count
    edge.verdicts[str(rec.get("net.verdict") or "unknown")] += count


def _node(fmap: FlowMap, ip: str, pod: Any, podmap: PodMap | None) -> str:
    workload = podmap.by_ip.get(ip) if podmap is not None else None
    if workload is not None:
        ref = podmap.owners.get(workload.pod_uid) if podmap is not None else None
        node, info = (str(ref), {"kind": "workload", "namespace": workload.namespace}) if ref else (
            f"{workload.namespace}/Pod/{workload.pod}", {"kind": "pod", "namespace": workload.namespace})
    elif isinstance(pod, str) and "/" in pod:
        namespace, _, name = pod.partition("/")
        node, info = f"{namespace}/Pod/{name}", {"kind": "pod", "namespace": namespace}
    else:
        node, info = ip, {"kind": "external", "namespace": ""}
    fmap.nodes.setdefault(node, info)
    return node


def _edge_label(edge: Edge) -> str:
    protocols = ", ".join(p for p, _ in edge.protocols.most_common(3))
    verdicts = " ".join(f"{v}={n}" for v, n in sorted(edge.verdicts.items()))
    return f"{protocols}\\n{edge.flows} flows, {edge.bytes} B\\n{verdicts}"


def to_dot(fmap: FlowMap) -> str:
    out = ["digraph flows {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    colours = {"workload": "#e2f0cb", "pod": "#eef6e0", "external": "#d7e3fc"}
    for node, info in sorted(fmap.nodes.items()):
        out.append(f'  {json.dumps(node)} [fillcolor="{colours[info["kind"]]}"];')
    for (a, b), edge in sorted(fmap.edges.items()):
        colour = "red" if any(v != "pass" for v in edge.verdicts) else "black"
        out.append(f'  {json.dumps(a)} -> {json.dumps(b)} [label="{_edge_label(edge)}", color={colour}];')
    out.append("}")
    return "\n".join(out) + "\n"


def _curve(x1: int, y1: int, x2: int, y2: int) -> str:
    """An SVG path between two 220x30 boxes: right to left side, the other way back, a loop within a column."""
    if x2 > x1:
        return f"M{x1 + 220},{y1 + 15} C{x1 + 260},{y1 + 15} {x2 - 40},{y2 + 15} {x2},{y2 + 15}"
    if x2 < x1:
        return f"M{x1},{y1 + 15} C{x1 - 40},{y1 + 15} {x2 + 260},{y2 + 15} {x2 + 220},{y2 + 15}"
    return f"M{x1 + 220},{y1 + 10} C{x1 + 280},{y1 + 10} {x2 + 280},{y2 + 20} {x2 + 220},{y2 + 20}"


def svg(fmap: FlowMap) -> str:
    """The map as one SVG: a column per namespace (external addresses first), a box per node, an arrow per edge."""
    columns: dict[str, list[str]] = {}
    for node, info in sorted(fmap.nodes.items(), key=lambda item: (item[1]["namespace"], item[0])):
        columns.setdefault(info["namespace"] or "(external)", []).append(node)
    pos: dict[str, tuple[int, int]] = {}
    for col, (_ns, nodes) in enumerate(columns.items()):
        for row, node in enumerate(nodes):
            pos[node] = (30 + col * 300, 60 + row * 60)
    width = 120 + 300 * max(len(columns), 1)
    height = 100 + 60 * max((len(n) for n in columns.values()), default=1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="12"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>']
    for col, ns in enumerate(columns):
        parts.append(f'<text x="{30 + col * 300}" y="30" font-weight="bold">{html.escape(ns)}</text>')
    for (a, b), edge in sorted(fmap.edges.items()):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        colour = "#c00" if any(v != "pass" for v in edge.verdicts) else "#555"
        title = html.escape(_edge_label(edge).replace("\\n", "; "))
        parts.append(f'<path d="{_curve(x1, y1, x2, y2)}" fill="none" stroke="{colour}" marker-end="url(#arrow)">'
                     f'<title>{title}</title></path>')
    colours = {"workload": "#e2f0cb", "pod": "#eef6e0", "external": "#d7e3fc"}
    for node, (x, y) in pos.items():
        label = node if len(node) <= 34 else node[:33] + "…"
        fill = colours[fmap.nodes[node]["kind"]]
        parts.append(f'<g><rect x="{x}" y="{y}" width="220" height="30" rx="6" fill="{fill}" stroke="#333"/>'
                     f'<text x="{x + 8}" y="{y + 19}">{html.escape(label)}</text>'
                     f"<title>{html.escape(node)}</title></g>")
    parts.append("</svg>")
    return "".join(parts)


def to_html(fmap: FlowMap) -> str:
    """One page: the SVG drawing and a table of the edges."""
    rows = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(', '.join(e.protocols))}</td>"
        f"<td>{e.flows}</td><td>{e.bytes}</td>"
        f"<td>{html.escape(' '.join(f'{v}={n}' for v, n in sorted(e.verdicts.items())))}</td></tr>"
        for (a, b), e in sorted(fmap.edges.items()))
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>kubeguard flow map</title><style>"
            "body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:left}</style></head><body><h1>Flow map</h1>"
            f"<p>{len(fmap.nodes)} nodes, {len(fmap.edges)} edges</p>{svg(fmap)}"
            "<h2>Edges</h2><table><tr><th>from</th><th>to</th><th>protocols</th><th>flows</th><th>bytes</th>"
            f"<th>verdicts</th></tr>{rows}</table></body></html>\n")
