"""`paths --from any-pod` on a pod with many containers does work linear in the containers (issue 18, item 14).

The work is counted, not timed: the size of the network the min cut runs on, and how often an edge's
closing findings are looked up. Before, the containers of one pod reached the min cut as N parallel
routes through one hub, which Boykov-Kolmogorov re-adopts at each of its N augmentations (quadratic).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from kubeguard.cluster.snapshot import K8sObject, Snapshot
from kubeguard.posture.paths import query
from kubeguard.posture.paths.build import build_graph
from kubeguard.posture.paths.graph import NODE_ROOT, AttackGraph
from kubeguard.posture.paths.query import ANY_POD, answer, merge_twins


def wide_pod(containers: int) -> Snapshot:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "wide", "namespace": "default", "labels": {"app": "wide"}},
           "spec": {"containers": [{"name": f"c{i}", "image": "nginx:1.25", "securityContext": {"privileged": True}}
                                   for i in range(containers)]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wide", "namespace": "default"},
               "spec": {"type": "NodePort", "selector": {"app": "wide"}, "ports": [{"port": 80}]}}
    snapshot = Snapshot()
    snapshot.extend([K8sObject(pod), K8sObject(service)])
    return snapshot


def counted_answer(containers: int, monkeypatch: pytest.MonkeyPatch) -> tuple[query.Answer, dict[str, int]]:
    work = {"flow_edges": 0, "closer_lookups": 0}
    graph = build_graph(wide_pod(containers))
    real_cut, real_closers = query.boykov_kolmogorov, AttackGraph.edge_closers

    def cut(flow: nx.DiGraph[str], *args: Any, **kwargs: Any) -> Any:
        work["flow_edges"] += flow.number_of_edges()
        return real_cut(flow, *args, **kwargs)

    def closers(self: AttackGraph, source: str, target: str) -> list[tuple[str, ...]]:
        work["closer_lookups"] += 1
        return real_closers(self, source, target)

    with monkeypatch.context() as patch:
        patch.setattr(query, "boykov_kolmogorov", cut)
        patch.setattr(AttackGraph, "edge_closers", closers)
        result = answer(graph, ANY_POD, NODE_ROOT)
    return result, work


def test_any_pod_min_cut_does_not_grow_with_the_containers_of_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    small, small_work = counted_answer(100, monkeypatch)
    large, large_work = counted_answer(2_000, monkeypatch)
    assert small.paths and large.paths
    assert small.cut == large.cut == ["paths.privileged:Pod/default/wide"] and large.cut_complete
    # the min cut runs on the same small network whatever the containers (was 4 edges per container)
    assert 0 < large_work["flow_edges"] == small_work["flow_edges"] < 40
    # the other per-edge work grows with the containers, not with their square
    assert large_work["closer_lookups"] <= 25 * small_work["closer_lookups"]


def test_twins_are_merged_with_summed_capacities_and_all_their_findings() -> None:
    flow: nx.DiGraph[str] = nx.DiGraph()
    flow.add_edge("s", "pod")
    for name in ("a", "b", "c"):
        flow.add_edge("pod", name)
        flow.add_edge(name, "hub", capacity=1, findings=frozenset({f"fix-{name}"}))
    flow.add_edge("pod", "d")  # not a twin: another successor
    flow.add_edge("d", "t")
    flow.add_edge("hub", "t")
    assert merge_twins(flow, keep={"s", "t"}) == 2
    (twin,) = [n for n in ("a", "b", "c") if n in flow]
    assert flow.edges[twin, "hub"] == {"capacity": 3, "findings": frozenset({"fix-a", "fix-b", "fix-c"})}
    assert "d" in flow and flow.number_of_nodes() == 6
