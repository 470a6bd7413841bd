"""Impact: containers that may run a miner unbounded (no CPU limit, no quota in the namespace)."""

from __future__ import annotations

from kubeguard.cluster.snapshot import K8sObject
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.context import BuildContext
from kubeguard.posture.paths.edge_rules import edge_rule
from kubeguard.posture.paths.graph import COMPUTE_HIJACK


@edge_rule("hijack", stage=70, kinds=(
    "RESOURCE_HIJACK",
))
def hijack_edges(ctx: BuildContext) -> None:
    limit_defaults = {o.namespace for o in ctx.snapshot.of_kind("LimitRange") if _limit_range_cpu(o)}
    quotas = {o.namespace for o in ctx.snapshot.of_kind("ResourceQuota")}
    for info in ctx.pods:
        ns = info.template.namespace
        if ns in quotas:
            continue
        for ctr, spec in info.containers:
            if wl.has_cpu_limit(spec) or ns in limit_defaults:
                continue
            owner = info.template.owner
            finding = ctx.index.condition(cond.NO_LIMITS, owner,
                                           f"container {spec.get('name')} has no CPU limit; {ns} has no quota",
                                           str(spec.get("name")))
            ctx.graph.add_edge(ctr, COMPUTE_HIJACK, "RESOURCE_HIJACK",
                                f"no CPU limit on {spec.get('name')} and no ResourceQuota in {ns}", [finding])


def _limit_range_cpu(obj: K8sObject) -> bool:
    for limit in obj.spec.get("limits") or []:
        if isinstance(limit, dict) and isinstance(limit.get("default"), dict) and limit["default"].get("cpu"):
            return True
    return False
