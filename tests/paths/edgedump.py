"""The attack graph as plain data, in insertion order, for comparing two builders' output exactly."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubeguard.posture.paths.graph import AttackGraph


def graph_dump(graph: AttackGraph) -> dict[str, list[Any]]:
    """Every node with its attributes and every edge with kind, cost, evidence, findings and alternatives."""
    def edge(data: dict[str, Any]) -> list[Any]:
        return [data["kind"], data["cost"], data["evidence"], list(data["findings"])]

    return {
        "nodes": [[node, {k: str(v) for k, v in sorted(data.items())}] for node, data in graph.g.nodes(data=True)],
        "edges": [[u, v, *edge(data), [edge(alt) for alt in data["alternatives"]]]
                  for u, v, data in graph.g.edges(data=True)],
    }


def graph_digest(graph: AttackGraph) -> dict[str, Any]:
    """Counts and a SHA-256 of the dump: a large graph's identity in a few bytes."""
    dump = graph_dump(graph)
    text = json.dumps(dump, sort_keys=True)
    return {"nodes": len(dump["nodes"]), "edges": len(dump["edges"]),
            "sha256": hashlib.sha256(text.encode()).hexdigest()}
