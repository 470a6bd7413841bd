"""Edge rules meet through a table: each registered unit adds only the edge kinds it declares (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.paths.conftest import FIXTURES, graph_of

from kubeguard.posture.paths import edge_rules
from kubeguard.posture.paths.context import RIGHT_EDGES, BuildContext
from kubeguard.posture.paths.edge_rules import EDGE_RULES, edge_rule, ordered_rules
from kubeguard.posture.paths.graph import EDGE_KINDS, AttackGraph
from kubeguard.posture.paths.rights import NAMESPACE_ADMIN_RIGHTS


def test_rules_are_registered_in_a_total_order() -> None:
    graph_of("overlap")  # importing the builder registers every rule
    names = [rule.name for rule in ordered_rules()]
    assert names == ["pods", "secrets", "endpoints", "rbac", "escapes", "cloud", "hijack", "cluster-admin"]
    assert len({rule.stage for rule in EDGE_RULES.values()}) == len(EDGE_RULES)


def test_each_rule_adds_only_the_kinds_it_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build every fixture with add_edge recording which rule is running: no rule adds an undeclared kind."""
    from kubeguard.cluster.loader import load_path
    from kubeguard.posture.paths import conditions as cond
    from kubeguard.posture.paths.build import build_graph  # noqa: F401  (registers the rules)
    from kubeguard.posture.rbac_checks import rbac_index

    added: dict[str, set[str]] = {}
    running: list[str] = []
    real = AttackGraph.add_edge

    def recording(self: AttackGraph, source: str, target: str, kind: str, *args: Any, **kwargs: Any) -> None:
        added.setdefault(running[-1], set()).add(kind)
        real(self, source, target, kind, *args, **kwargs)

    monkeypatch.setattr(AttackGraph, "add_edge", recording)
    for fixture in sorted(FIXTURES.glob("*.yaml")):
        snapshot = load_path(fixture)
        ctx = BuildContext(snapshot, cond.FindingIndex(None))
        ctx.rbac = rbac_index(snapshot)
        for rule in ordered_rules():
            running.append(rule.name)
            rule.add(ctx)
    for name, kinds in added.items():
        assert kinds <= EDGE_RULES[name].kinds, (name, kinds - EDGE_RULES[name].kinds)
    # the fixtures exercise every edge kind the builder knows, so each is made by some declared rule
    assert set().union(*added.values()) == set(EDGE_KINDS)


def test_a_rule_with_an_unknown_kind_or_a_taken_stage_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_rules, "EDGE_RULES", dict(EDGE_RULES))
    with pytest.raises(ValueError, match="unknown edge kinds NO_SUCH_KIND"):
        edge_rule("bad", stage=999, kinds=("NO_SUCH_KIND",))
    with pytest.raises(ValueError, match="stage 10 is taken"):
        edge_rule("second-pods", stage=10, kinds=("CONTAINER_ATTACH",))(lambda ctx: None)


def test_every_right_has_its_edges_in_the_table() -> None:
    rights = {"ADMIN", "POD_EXEC", "POD_ATTACH", "POD_CREATE", "POD_PATCH", "TOKEN_LIST", "TOKEN_CREATE",
              "ROLE_BIND", "ESCALATE", "IMPERSONATE", "NODES_PROXY"}
    assert set(RIGHT_EDGES) == rights
    assert {right.name for right in NAMESPACE_ADMIN_RIGHTS} <= rights
