"""Build the attack graph from a Snapshot (and, optionally, the scan's findings).

The graph starts with the Internet and the impact targets; then every registered edge rule
(`kubeguard.posture.paths.edge_rules`, the modules under `kubeguard.posture.paths.edges`) adds its
edges, in stage order: pods, secrets, endpoints, RBAC, escapes, cloud, compute hijack, cluster-admin.
RBAC is resolved once by `kubeguard.posture.rbac.RbacIndex`.
"""

from __future__ import annotations

from kubeguard.cluster.snapshot import Snapshot
from kubeguard.model import Finding
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import edges  # noqa: F401  (registers the edge rules)
from kubeguard.posture.paths.context import BuildContext
from kubeguard.posture.paths.edge_rules import ordered_rules
from kubeguard.posture.paths.graph import CLOUD_DATA, CLUSTER_ADMIN, COMPUTE_HIJACK, INTERNET, NODE_ROOT, AttackGraph
from kubeguard.posture.rbac_checks import rbac_index

TARGET_LABELS = ((CLUSTER_ADMIN, "cluster-admin"), (NODE_ROOT, "root on a node"), (CLOUD_DATA, "cloud data"),
                 (COMPUTE_HIJACK, "compute hijack (miner)"))


def build_graph(snapshot: Snapshot, findings: list[Finding] | None = None) -> AttackGraph:
    """The attack graph of a snapshot; `findings` from a scan are reused as edge labels."""
    ctx = BuildContext(snapshot, cond.FindingIndex(findings))
    ctx.graph.add_node(INTERNET, "internet", "Internet")
    for target, label in TARGET_LABELS:
        ctx.graph.add_node(target, "target", label)
    ctx.rbac = rbac_index(snapshot)
    for rule in ordered_rules():
        rule.add(ctx)
    return ctx.graph
