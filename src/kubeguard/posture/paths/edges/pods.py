"""Pods, their containers, the nodes they run on and the service-account tokens they mount."""

from __future__ import annotations

from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.context import BuildContext, PodInfo
from kubeguard.posture.paths.edge_rules import edge_rule


@edge_rule("pods", stage=10, kinds=(
    "CONTAINER_ATTACH", "NODE_PODS", "SECRET_TOKEN", "TOKEN_STEAL", "NODE_TOKENS", "ROOT_ON_NODE",
))
def pod_edges(ctx: BuildContext) -> None:
    nodes = ctx.snapshot.of_kind("Node")
    service_accounts = {(o.namespace, o.name): o for o in ctx.snapshot.of_kind("ServiceAccount")}
    for obj in nodes:
        ctx.host_node(obj.name)
    for template in ctx.snapshot.pod_templates():
        owner = template.owner
        node = ctx.graph.add_node(ctx.pod_node(owner), "pod", f"{owner.kind} {owner.namespace}/{owner.name}",
                                   namespace=owner.namespace)
        placement = wl.node_placement(template, nodes)
        hosts = [ctx.host_node(n) for n in placement] if placement is not None else [ctx.host_node("*")]
        sa = ctx.sa_node(template.namespace, template.service_account)
        token = wl.token_mounted(template, service_accounts)
        containers = []
        for spec in template.containers():
            name = str(spec.get("name", "?"))
            ctr = ctx.graph.add_node(f"ctr:{owner.namespace}/{owner.name}/{name}", "container",
                                      f"container {name} of {owner.namespace}/{owner.name}",
                                      image=str(spec.get("image", "")))
            ctx.graph.add_edge(node, ctr, "CONTAINER_ATTACH", f"container {name} runs in the pod")
            containers.append((ctr, spec))
        info = PodInfo(node, template, containers, sa, token, hosts)
        ctx.pods.append(info)
        ctx.pods_by_ns[owner.namespace].append(info)
        mounted = ctx.index.condition(cond.TOKEN_MOUNTED, owner, f"token of {ctx.graph.label(sa)} is mounted")
        for host in hosts:
            ctx.graph.add_edge(host, node, "NODE_PODS", f"runs on {ctx.graph.label(host)}")
            if token:
                ctx.graph.add_edge(ctx.tokens_node(host), sa, "SECRET_TOKEN",
                                    f"token of {owner.namespace}/{owner.name} on {ctx.graph.label(host)}")
        if token:
            for ctr, _spec in containers:
                ctx.graph.add_edge(ctr, sa, "TOKEN_STEAL",
                                    "/var/run/secrets/kubernetes.io/serviceaccount/token is mounted",
                                    [mounted])
