"""Text outputs of attack-path answers: a Rich tree, JSON and Graphviz dot."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from kubeguard.posture.paths.graph import AttackGraph
from kubeguard.posture.paths.query import Answer


def _location(graph: AttackGraph, finding_id: str) -> str:
    finding = graph.findings.get(finding_id)
    if finding is None or not finding.file:
        return ""
    return f" ({finding.file}:{finding.line})" if finding.line else f" ({finding.file})"


def print_answers(console: Console, graph: AttackGraph, answers: list[Answer]) -> None:
    """Each answer as a tree: path -> steps with evidence, then choke points and the minimal fix."""
    for ans in answers:
        title = f"[bold]{escape(graph.label(ans.source))}[/] -> [bold red]{escape(graph.label(ans.target))}[/]"
        if not ans.paths:
            console.print(f"{title}: [green]no attack path[/]", soft_wrap=False)
            continue
        more = " (more exist; showing the easiest)" if ans.truncated else ""
        tree = Tree(f"{title}: {len(ans.paths)} path(s){more}")
        for number, path in enumerate(ans.paths, 1):
            branch = tree.add(f"path {number} (cost {path.cost}, {len(path.steps)} steps)")
            for step in path.steps:
                node = branch.add(f"[cyan]{step.kind}[/] -> {escape(graph.label(step.target))}")
                node.add(f"[dim]evidence:[/] {escape(step.evidence)}")
                for finding in step.findings:
                    node.add(f"[dim]finding:[/] [yellow]{escape(finding)}[/]{escape(_location(graph, finding))}")
        if ans.choke_points:
            chokes = tree.add("[bold]choke points[/]")
            for choke in ans.choke_points[:10]:
                chokes.add(f"fixing [yellow]{escape(choke.finding)}[/] closes {choke.closes} "
                           f"of the {len(ans.paths)} paths")
        if ans.cut:
            fix = tree.add(f"[bold]smallest fix that closes every path[/] ({len(ans.cut)} finding(s))")
            for finding in ans.cut:
                item = graph.findings.get(finding)
                fix.add(f"[yellow]{escape(finding)}[/]{escape(_location(graph, finding))}" +
                        (f": {escape(item.remediation)}" if item else ""))
        elif not ans.cut_complete:
            tree.add("[red]some path uses only structural steps: no single finding closes it[/]")
        console.print(tree, soft_wrap=False)


def to_json(graph: AttackGraph, answers: list[Answer]) -> str:
    data: dict[str, Any] = {
        "kind": "KubeguardAttackPaths",
        "graph": {"nodes": graph.g.number_of_nodes(), "edges": graph.g.number_of_edges()},
        "answers": [a.to_dict(graph) for a in answers],
    }
    return json.dumps(data, indent=2)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: AttackGraph, answers: list[Answer]) -> str:
    """The union of the answers' paths as a dot digraph (fixable steps bold red, labelled by finding)."""
    nodes: dict[str, None] = {}
    edges: dict[tuple[str, str], None] = {}
    for ans in answers:
        for path in ans.paths:
            nodes.update(dict.fromkeys(path.nodes))
            edges.update(dict.fromkeys(zip(path.nodes, path.nodes[1:], strict=False)))
    lines = ["digraph attack_paths {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for node in nodes:
        shape = {"target": "doubleoctagon", "internet": "ellipse"}.get(graph.kind(node), "box")
        lines.append(f"  {_quote(node)} [label={_quote(graph.label(node))}, shape={shape}];")
    for u, v in edges:
        step = graph.step(u, v)
        style = ", color=red, penwidth=2" if step.findings else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)} [label={_quote(step.kind)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
