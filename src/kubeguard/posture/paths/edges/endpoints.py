"""Entry: Services and Ingresses reachable from outside, the pods behind them, consoles without login."""

from __future__ import annotations

from typing import Any

from kubeguard.cluster.selectors import PodLabelIndex
from kubeguard.posture.exposure import CONSOLES, identity_text
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths.context import BuildContext, PodInfo
from kubeguard.posture.paths.edge_rules import edge_rule
from kubeguard.posture.paths.graph import INTERNET


@edge_rule("endpoints", stage=30, kinds=(
    "EXPOSED", "ENDPOINT_EXPLOIT", "UNAUTH_CONSOLE",
))
def endpoint_edges(ctx: BuildContext) -> None:
    services: dict[tuple[str, str], str] = {}
    by_template = {id(info.template): info for info in ctx.pods}
    selector_index = PodLabelIndex(info.template for info in ctx.pods)
    for svc in ctx.snapshot.of_kind("Service"):
        spec = svc.spec
        kind = str(spec.get("type") or "ClusterIP")
        exposure = {"LoadBalancer": "external", "NodePort": "node"}.get(kind, "cluster")
        if spec.get("externalIPs"):
            exposure = "external"
        if kind == "ExternalName":
            continue
        ports = ",".join(str(p.get("port")) for p in spec.get("ports") or [] if isinstance(p, dict))
        node = ctx.graph.add_node(f"endpoint:{svc.namespace}/{svc.name}", "endpoint",
                                   f"Service {svc.namespace}/{svc.name} ({kind} :{ports})", exposure=exposure)
        services[(svc.namespace, svc.name)] = node
        if exposure != "cluster":
            where = "a load balancer" if exposure == "external" else f"port(s) {ports} on every node"
            finding = ctx.index.condition(cond.EXPOSED_ENDPOINT, svc, f"{kind} Service reachable on {where}")
            ctx.graph.add_edge(INTERNET, node, "EXPOSED", f"{kind} Service: reachable on {where}", [finding])
        for template in selector_index.select(svc.namespace, spec.get("selector")):
            _behind_endpoint(ctx, node, by_template[id(template)])
    for ingress in ctx.snapshot.of_kind("Ingress"):
        node = ctx.graph.add_node(f"endpoint:{ingress.namespace}/ingress/{ingress.name}", "endpoint",
                                   f"Ingress {ingress.namespace}/{ingress.name}", exposure="external")
        hosts = [str(r.get("host")) for r in ingress.spec.get("rules") or []
                 if isinstance(r, dict) and r.get("host")]
        finding = ctx.index.condition(cond.EXPOSED_ENDPOINT, ingress,
                                       f"Ingress routes {', '.join(hosts) or 'any host'} from outside")
        ctx.graph.add_edge(INTERNET, node, "EXPOSED", f"Ingress for {', '.join(hosts) or 'any host'}", [finding])
        for backend in _ingress_backends(ingress.spec):
            target = services.get((ingress.namespace, backend))
            if target:
                ctx.graph.add_edge(node, target, "EXPOSED", f"Ingress routes to Service {backend}")
                ctx.graph.g.nodes[target]["exposure"] = "external"


def _behind_endpoint(ctx: BuildContext, endpoint: str, info: PodInfo) -> None:
    owner = info.template.owner
    ctx.graph.add_edge(endpoint, info.node, "ENDPOINT_EXPLOIT",
                        f"selects the pods of {owner.kind} {owner.namespace}/{owner.name}")
    for _ctr, spec in info.containers:
        console = unauthenticated_console(spec)
        if console and info.token:
            findings = [ctx.index.condition(cond.UNAUTH_CONSOLE, owner, f"{console} (image {spec.get('image')})",
                                             str(spec.get("name"))),
                        ctx.index.condition(cond.TOKEN_MOUNTED, owner,
                                             f"token of {ctx.graph.label(info.sa_node)} is mounted")]
            ctx.graph.add_edge(endpoint, info.sa_node, "UNAUTH_CONSOLE",
                                f"{console}; it acts as {ctx.graph.label(info.sa_node)}", findings)


def unauthenticated_console(container: dict[str, Any]) -> str | None:
    """What makes the container a console serving without login (the scan's console table), or None."""
    text = identity_text(container)
    for console in CONSOLES:
        if console.pattern.search(text):
            why = console.auth_off(container)
            if why:
                return f"{console.name}: {why}"
    return None


def _ingress_backends(spec: dict[str, Any]) -> list[str]:
    names: list[str] = []
    default = spec.get("defaultBackend") or spec.get("backend")
    paths = [default] if isinstance(default, dict) else []
    for rule in spec.get("rules") or []:
        http = rule.get("http") if isinstance(rule, dict) else None
        for path in (http or {}).get("paths") or []:
            if isinstance(path, dict) and isinstance(path.get("backend"), dict):
                paths.append(path["backend"])
    for backend in paths:
        service = backend.get("service")
        if isinstance(service, dict) and service.get("name"):
            names.append(str(service["name"]))
        elif backend.get("serviceName"):
            names.append(str(backend["serviceName"]))
    return names
