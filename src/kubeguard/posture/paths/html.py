"""One self-contained HTML page: the answers' paths drawn as SVG (no CDN, no network, no server).

Layout: one column per node kind (Internet, endpoints, pods, ... , targets), nodes stacked in
each column in order of first appearance; steps drawn as curves. Every step of a ranked path is
highlighted; choosing a path in the list highlights only that path (a few lines of inline JS).
"""

from __future__ import annotations

import html
import json
from typing import Any

from kubeguard.posture.paths.graph import NODE_KINDS, AttackGraph
from kubeguard.posture.paths.query import Answer

COLUMN_WIDTH = 250
ROW_HEIGHT = 46
NODE_WIDTH = 210
NODE_HEIGHT = 30
MARGIN = 30
COLOURS = {
    "internet": "#d7e3fc", "endpoint": "#fde2c8", "pod": "#e2f0cb", "container": "#eef6e0", "identity": "#fff1b8",
    "permissions": "#ffd6a5", "secret": "#f1d4ff", "node": "#ffc9c9", "cloud-identity": "#c9f2ff",
    "target": "#ff8a8a",
}


def _layout(graph: AttackGraph, nodes: list[str]) -> dict[str, tuple[int, int]]:
    columns: dict[str, list[str]] = {kind: [] for kind in NODE_KINDS}
    for node in nodes:
        columns.setdefault(graph.kind(node) or "pod", []).append(node)
    positions: dict[str, tuple[int, int]] = {}
    used = [kind for kind in columns if columns[kind]]
    for col, kind in enumerate(used):
        for row, node in enumerate(columns[kind]):
            positions[node] = (MARGIN + col * COLUMN_WIDTH, MARGIN + 20 + row * ROW_HEIGHT)
    return positions


def _short(text: str, length: int = 32) -> str:
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def svg(graph: AttackGraph, answers: list[Answer]) -> str:
    """The SVG drawing of every path of the answers."""
    nodes: list[str] = []
    edge_paths: dict[tuple[str, str], list[str]] = {}
    for a_index, ans in enumerate(answers):
        for p_index, path in enumerate(ans.paths):
            for node in path.nodes:
                if node not in nodes:
                    nodes.append(node)
            for u, v in zip(path.nodes, path.nodes[1:], strict=False):
                edge_paths.setdefault((u, v), []).append(f"p{a_index}-{p_index}")
    pos = _layout(graph, nodes)
    width = max((x for x, _ in pos.values()), default=0) + NODE_WIDTH + 2 * MARGIN
    height = max((y for _, y in pos.values()), default=0) + NODE_HEIGHT + 2 * MARGIN
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="attack paths">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>']
    for (u, v), owners in edge_paths.items():
        (x1, y1), (x2, y2) = pos[u], pos[v]
        sx, sy = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2
        ex, ey = x2, y2 + NODE_HEIGHT // 2
        if x2 <= x1:  # same column or backwards: loop around the right side
            sx, ex = x1 + NODE_WIDTH, x2 + NODE_WIDTH
            bend = max(60, abs(ey - sy) // 2)
            d = f"M{sx},{sy} C{sx + bend},{sy} {ex + bend},{ey} {ex},{ey}"
        else:
            mid = (sx + ex) // 2
            d = f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"
        step = graph.step(u, v)
        labels = f" [{', '.join(step.findings)}]" if step.findings else ""
        title = html.escape(f"{step.kind}: {step.evidence}{labels}")
        classes = " ".join(owners)
        out.append(f'<path class="step {classes}" d="{d}" fill="none" stroke="#c0392b" stroke-width="2" '
                   f'marker-end="url(#arrow)"><title>{title}</title></path>')
    for node in nodes:
        x, y = pos[node]
        kind = graph.kind(node)
        label = graph.label(node)
        out.append(f'<g class="node" data-id="{html.escape(node)}"><rect x="{x}" y="{y}" width="{NODE_WIDTH}" '
                   f'height="{NODE_HEIGHT}" rx="6" fill="{COLOURS.get(kind, "#eeeeee")}" stroke="#555"/>'
                   f'<text x="{x + 8}" y="{y + 19}" font-size="12" font-family="sans-serif">'
                   f'{html.escape(_short(label))}</text><title>{html.escape(label)}</title></g>')
    used = [kind for kind in NODE_KINDS if any(graph.kind(n) == kind for n in nodes)]
    for col, kind in enumerate(used):
        out.append(f'<text x="{MARGIN + col * COLUMN_WIDTH}" y="{MARGIN}" font-size="13" font-weight="bold" '
                   f'font-family="sans-serif">{html.escape(kind)}</text>')
    out.append("</svg>")
    return "\n".join(out)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>kubeguard attack paths</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.step {{ opacity: 0.85; }} .step.dim {{ opacity: 0.08; }}
#paths li {{ cursor: pointer; margin: 0.2em 0; }} #paths li.on {{ font-weight: bold; }}
.finding {{ color: #8a5a00; }} table {{ border-collapse: collapse; }}
td, th {{ padding: 2px 8px; border: 1px solid #ccc; }}
#drawing {{ overflow: auto; border: 1px solid #ddd; }}
</style></head><body>
<h1>kubeguard attack paths</h1>
{summary}
<div id="drawing">{svg}</div>
<h2>Paths</h2><p>Choose a path to highlight it; choose it again to show all.</p>
<ol id="paths">{items}</ol>
{chokes}
<script id="data" type="application/json">{data}</script>
<script>
"use strict";
(function () {{
  var items = document.querySelectorAll("#paths li");
  var current = null;
  function show(id) {{
    current = (current === id) ? null : id;
    document.querySelectorAll(".step").forEach(function (el) {{
      el.classList.toggle("dim", current !== null && !el.classList.contains(current));
    }});
    items.forEach(function (li) {{ li.classList.toggle("on", li.dataset.path === current); }});
  }}
  items.forEach(function (li) {{ li.addEventListener("click", function () {{ show(li.dataset.path); }}); }});
  var data = JSON.parse(document.getElementById("data").textContent);
  document.title = "kubeguard attack paths (" + data.answers.length + " question(s))";
}})();
</script>
</body></html>
"""


def page(graph: AttackGraph, answers: list[Answer]) -> str:
    """The whole page: summary, SVG, the path list with steps, choke points, and the data as JSON."""
    summary = "<ul>" + "".join(
        f"<li>{html.escape(graph.label(a.source))} &rarr; {html.escape(graph.label(a.target))}: "
        f"{len(a.paths)} path(s){' (more exist)' if a.truncated else ''}</li>" for a in answers) + "</ul>"
    items: list[str] = []
    for a_index, ans in enumerate(answers):
        for p_index, path in enumerate(ans.paths):
            steps = " &rarr; ".join(
                f'<span title="{html.escape(s.evidence)}">{html.escape(s.kind)}</span> '
                f"{html.escape(graph.label(s.target))}" for s in path.steps)
            items.append(f'<li data-path="p{a_index}-{p_index}">{html.escape(graph.label(path.nodes[0]))} '
                         f"&rarr; {steps} <small>(cost {path.cost})</small></li>")
    rows: list[str] = []
    for ans in answers:
        for choke in ans.choke_points[:10]:
            rows.append(f"<tr><td>{html.escape(graph.label(ans.target))}</td>"
                        f'<td class="finding">{html.escape(choke.finding)}</td>'
                        f"<td>{choke.closes} of {len(ans.paths)}</td>"
                        f"<td>{'yes' if choke.finding in ans.cut else ''}</td></tr>")
    chokes = ("<h2>Choke points</h2><table><tr><th>target</th><th>fixing finding</th><th>closes paths</th>"
              "<th>in smallest fix</th></tr>" + "".join(rows) + "</table>") if rows else ""
    data: dict[str, Any] = {"answers": [a.to_dict(graph) for a in answers]}
    data_json = json.dumps(data).replace("<", "\\u003c")
    return PAGE.format(summary=summary, svg=svg(graph, answers), items="".join(items), chokes=chokes, data=data_json)
