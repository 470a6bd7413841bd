"""Ranked paths, choke points and the minimal fix on a fixture with overlapping paths; query errors."""

from __future__ import annotations

import itertools

import pytest

from kubeguard.cliutil import UserError
from kubeguard.posture.paths.graph import INTERNET, NODE_ROOT
from kubeguard.posture.paths.query import ANY_POD, answer, ranked_paths, reachable, resolve_source, resolve_target

BINDING = "paths.dangerous-binding:ClusterRoleBinding/deployer-launches-pods"
EXPOSED_B = "paths.exposed-endpoint:Service/shop/app-b"
EXPOSED_A = "paths.exposed-endpoint:Service/shop/app-a"
PRIV_B = "paths.privileged:Deployment/shop/app-b"


def test_overlapping_paths_are_ranked_cheapest_first(fixture_graph):
    graph = fixture_graph("overlap")
    paths, truncated = ranked_paths(graph, INTERNET, NODE_ROOT, limit=10)
    assert not truncated
    costs = [(p.cost, len(p.steps)) for p in paths]
    assert costs == sorted(costs)
    assert len(paths) == 3
    kinds = [[s.kind for s in p.steps] for p in paths]
    assert ["EXPOSED", "ENDPOINT_EXPLOIT", "CONTAINER_ATTACH", "CE_PRIV_MOUNT", "ROOT_ON_NODE"] in kinds
    assert sum("TOKEN_STEAL" in k and "POD_CREATE" in k for k in kinds) == 2
    for path in paths:  # each step is an edge of the graph with evidence
        for step, (u, v) in zip(path.steps, itertools.pairwise(path.nodes), strict=True):
            assert (step.source, step.target) == (u, v) and step.evidence


def test_limit_bounds_the_paths_and_says_more_exist(fixture_graph):
    paths, truncated = ranked_paths(fixture_graph("overlap"), INTERNET, NODE_ROOT, limit=2)
    assert len(paths) == 2 and truncated


def test_choke_points_rank_the_findings_shared_by_most_paths(fixture_graph):
    graph = fixture_graph("overlap")
    ans = answer(graph, INTERNET, NODE_ROOT)
    closes = {c.finding: c.closes for c in ans.choke_points}
    assert closes[BINDING] == 2 and closes[EXPOSED_B] == 2
    assert closes[PRIV_B] == 1 and closes[EXPOSED_A] == 1
    assert [c.closes for c in ans.choke_points] == sorted((c.closes for c in ans.choke_points), reverse=True)
    assert {c.finding for c in ans.choke_points[:2]} == {BINDING, EXPOSED_B}
    # the smallest fix closes every path on the whole graph, and no single finding does
    assert ans.cut_complete and len(ans.cut) == 2
    assert all(set(ans.cut) & p.findings for p in ans.paths)
    assert not reachable(graph.without_findings(ans.cut), [INTERNET], NODE_ROOT)
    for single in closes:
        assert reachable(graph.without_findings([single]), [INTERNET], NODE_ROOT)


def test_any_pod_and_named_pod_sources(fixture_graph):
    graph = fixture_graph("overlap")
    assert resolve_source(graph, "pod:shop/app-a-7d4b9c-x2x1z") == "pod:shop/app-a"
    from_a = answer(graph, "pod:shop/app-a", NODE_ROOT)
    assert from_a.paths and all(p.nodes[0] == "pod:shop/app-a" for p in from_a.paths)
    anywhere = answer(graph, ANY_POD, NODE_ROOT)
    assert {p.nodes[0] for p in anywhere.paths} == {"pod:shop/app-a", "pod:shop/app-b"}


@pytest.mark.parametrize(("func", "spec", "message"), [
    (resolve_source, "pod:shop/nothing", "no pod or workload"),
    (resolve_source, "somewhere", "expected internet, any-pod"),
    (resolve_target, "secret:shop/missing", "no such Secret"),
    (resolve_target, "the-moon", "expected one of"),
])
def test_bad_query_is_one_user_error(fixture_graph, func, spec, message):
    with pytest.raises(UserError, match=message):
        func(fixture_graph("overlap"), spec)
