"""Kubernetes API: the dangerous rights of every binding, as edges from its subjects to what the rights reach."""

from __future__ import annotations

from collections import defaultdict

from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths.context import BuildContext, qualified
from kubeguard.posture.paths.edge_rules import edge_rule
from kubeguard.posture.paths.rights import rights_of
from kubeguard.posture.rbac import Grant, Subject


@edge_rule("rbac", stage=40, kinds=(
    "HAS_PERMISSIONS", "ADMIN_OF", "ROLE_BIND", "ESCALATE", "IMPERSONATE", "POD_EXEC", "POD_ATTACH",
    "POD_PATCH", "NODES_PROXY", "TOKEN_LIST", "TOKEN_CREATE", "POD_CREATE", "RESOURCE_HIJACK", "ROOT_ON_NODE",
))
def rbac_edges(ctx: BuildContext) -> None:
    assert ctx.rbac is not None
    by_binding: dict[tuple[str, str, str], list[Grant]] = defaultdict(list)
    holders: dict[tuple[str, str, str], set[Subject]] = defaultdict(set)
    for subject in ctx.rbac.subjects():
        for grant in ctx.rbac.grants(subject, inherited=False):
            key = grant.binding.key
            holders[key].add(subject)
            if all(g.rule != grant.rule for g in by_binding[key]):
                by_binding[key].append(grant)
    groups_with_rights: set[Subject] = set()
    for key, grants in by_binding.items():
        binding = grants[0].binding
        rights = rights_of(grants, grants[0].scope)
        if not rights:
            continue
        node = ctx.graph.add_node(f"perms:{binding.kind}/{binding.namespace}/{binding.name}", "permissions",
                                   f"{binding.kind} {qualified(binding)} -> {grants[0].role.kind} "
                                   f"{grants[0].role.name}")
        ctx.right_edges(node, rights, grants[0].scope)
        summary = "; ".join(sorted({r.evidence for r in rights}))
        finding = ctx.index.condition(cond.RBAC_GRANT, binding, summary[:300])
        for subject in sorted(holders[key]):
            ctx.graph.add_edge(ctx.subject_node(subject), node, "HAS_PERMISSIONS",
                                f"bound by {binding.kind} {qualified(binding)}: {summary[:200]}", [finding])
            if subject.kind == "Group":
                groups_with_rights.add(subject)
    if groups_with_rights:
        for info in ctx.pods:
            _sa_groups(ctx, info.sa_node, groups_with_rights)
        for sa in {n for nodes in ctx.sas_by_ns.values() for n in nodes}:
            _sa_groups(ctx, sa, groups_with_rights)


def _sa_groups(ctx: BuildContext, sa_node: str, groups: set[Subject]) -> None:
    namespace, name = sa_node.removeprefix("sa:").split("/", 1)
    for group in Subject("ServiceAccount", name, namespace).groups():
        if group in groups:
            ctx.graph.add_edge(sa_node, ctx.subject_node(group), "HAS_PERMISSIONS", f"member of {group.name}")
