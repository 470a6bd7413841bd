"""Text outputs of attack-path answers: a Rich tree, JSON and Graphviz dot; and back from that JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from kubeguard.errors import KubeguardError
from kubeguard.posture.paths.graph import AttackGraph, Step
from kubeguard.posture.paths.query import Answer, ChokePoint, Path


class PathsDocumentError(KubeguardError):
    """A document is not `kubeguard paths -o json` output (the message says what is wrong where)."""


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


def from_json(data: Any) -> tuple[AttackGraph, list[Answer]]:
    """The graph (the answers' nodes and steps only) and answers of a `to_json` document, e.g. one uploaded to
    the console; PathsDocumentError naming the answer/path when it is not one."""
    if not isinstance(data, dict) or data.get("kind") != "KubeguardAttackPaths" or not isinstance(
            data.get("answers"), list):
        raise PathsDocumentError("not a `kubeguard paths -o json` document (kind KubeguardAttackPaths, answers)")
    graph = AttackGraph()
    answers: list[Answer] = []
    for a_index, raw in enumerate(data["answers"]):
        where = f"answers[{a_index}]"
        try:
            paths: list[Path] = []
            for p_index, path in enumerate(raw["paths"]):
                where = f"answers[{a_index}].paths[{p_index}]"
                nodes = [graph.add_node(str(n["id"]), str(n["kind"]), str(n["label"])) for n in path["nodes"]]
                steps = []
                for step in path["steps"]:
                    source, target, findings = str(step["from"]), str(step["to"]), tuple(map(str, step["findings"]))
                    if source not in graph.g or target not in graph.g:
                        raise PathsDocumentError(f"{where}: step {source} -> {target} names a node not on the path")
                    graph.add_edge(source, target, str(step["kind"]), str(step["evidence"]))
                    graph.g.edges[source, target]["findings"] = findings
                    steps.append(Step(source, target, str(step["kind"]), str(step["evidence"]), findings))
                paths.append(Path(nodes, steps, int(path["cost"])))
            where = f"answers[{a_index}]"
            answers.append(Answer(
                str(raw["from"]), str(raw["to"]), paths,
                [ChokePoint(str(c["finding"]), int(c["closes"])) for c in raw.get("choke_points", [])],
                [str(f["finding"]) for f in raw.get("minimal_fix", [])],
                bool(raw.get("minimal_fix_complete", True)), bool(raw.get("truncated", False))))
        except PathsDocumentError:
            raise
        except KeyError as exc:
            raise PathsDocumentError(f"{where}: missing {exc} (unknown step kinds are refused too)") from exc
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise PathsDocumentError(f"{where}: {exc}") from exc
    return graph, answers


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
