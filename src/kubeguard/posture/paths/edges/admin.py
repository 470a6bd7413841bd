"""Impact of cluster-admin: a privileged pod on any node, and every right in every namespace."""

from __future__ import annotations

from kubeguard.posture.paths.context import BuildContext
from kubeguard.posture.paths.edge_rules import edge_rule
from kubeguard.posture.paths.graph import CLUSTER_ADMIN


@edge_rule("cluster-admin", stage=80, kinds=(
    "POD_CREATE", "ADMIN_OF", "ROOT_ON_NODE",
    # the rights of namespace admin, when this rule is the first to reach a namespace
    "POD_EXEC", "TOKEN_LIST", "TOKEN_CREATE", "RESOURCE_HIJACK",
))
def cluster_admin_edges(ctx: BuildContext) -> None:
    ctx.graph.add_edge(CLUSTER_ADMIN, ctx.host_node("*"), "POD_CREATE",
                       "cluster-admin creates a privileged pod that mounts the host")
    for namespace in sorted(ctx.snapshot.namespaces()):
        ctx.graph.add_edge(CLUSTER_ADMIN, ctx.ns_admin(namespace), "ADMIN_OF", f"every right in namespace {namespace}")
