"""The state edge rules build the attack graph in: the graph, shared node helpers, and per-pod facts.

Edge rules (kubeguard.posture.paths.edges) add edges through a BuildContext; the node helpers here
(pods, identities, nodes, tokens, namespace admin, cloud identities) are the ones several rules share,
so each node is made the same way whichever rule reaches it first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeguard.cluster.snapshot import K8sObject, PodTemplate, Snapshot
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.graph import ANY_NODE, CLOUD_DATA, CLUSTER_ADMIN, COMPUTE_HIJACK, NODE_ROOT, AttackGraph
from kubeguard.posture.paths.rights import NAMESPACE_ADMIN_RIGHTS, Right
from kubeguard.posture.rbac import RbacIndex, Subject
from kubeguard.tables import file_under


@dataclass(slots=True)
class PodInfo:
    """One pod template in the graph, with the facts the families share."""

    node: str
    template: PodTemplate
    containers: list[tuple[str, dict[str, Any]]]  # (graph node, container spec)
    sa_node: str
    token: bool
    placement: list[str]  # graph node ids of the nodes it may run on


@dataclass(slots=True)
class BuildContext:
    """What the edge rules share: the snapshot, the graph they add to, and the facts of every pod."""

    snapshot: Snapshot
    index: cond.FindingIndex
    graph: AttackGraph = field(default_factory=AttackGraph)
    rbac: RbacIndex | None = None
    pods: list[PodInfo] = field(default_factory=list)
    pods_by_ns: dict[str, list[PodInfo]] = field(default_factory=lambda: defaultdict(list))
    secrets_by_ns: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sas_by_ns: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ns_admin_done: set[str] = field(default_factory=set)

    def pod_node(self, owner: K8sObject) -> str:
        return f"pod:{owner.namespace}/{owner.name}"

    def sa_node(self, namespace: str, name: str) -> str:
        node = f"sa:{namespace}/{name}"
        self.sas_by_ns[namespace].add(node)
        return self.graph.add_node(node, "identity", f"ServiceAccount {namespace}/{name}")

    def subject_node(self, subject: Subject) -> str:
        if subject.kind == "ServiceAccount":
            return self.sa_node(subject.namespace, subject.name)
        kind = subject.kind.lower()
        return self.graph.add_node(f"{kind}:{subject.name}", "identity", f"{subject.kind} {subject.name}")

    def host_node(self, name: str) -> str:
        if name == "*":
            node = self.graph.add_node(ANY_NODE, "node", "any node (pods without placement)")
        else:
            node = self.graph.add_node(f"node:{name}", "node", f"Node {name}")
        self.graph.add_edge(node, NODE_ROOT, "ROOT_ON_NODE", f"root on {self.graph.label(node)}")
        return node

    def tokens_node(self, host: str) -> str:
        name = host.removeprefix("node:")
        node = self.graph.add_node(f"tokens:{name}", "secret", f"pod tokens under /var/lib/kubelet/pods on {name}")
        self.graph.add_edge(host, node, "NODE_TOKENS", f"root on {self.graph.label(host)} reads /var/lib/kubelet/pods")
        return node

    def ns_admin(self, namespace: str) -> str:
        node = self.graph.add_node(f"perms:ns-admin/{namespace}", "permissions", f"admin of namespace {namespace}")
        if namespace not in self.ns_admin_done:
            self.ns_admin_done.add(namespace)
            self.right_edges(node, NAMESPACE_ADMIN_RIGHTS, namespace)
        return node

    def right_edges(self, node: str, rights: Iterable[Right], scope: str) -> None:
        """Edges from a permission set to what each of its rights reaches within `scope` (see RIGHT_EDGES)."""
        namespaces = [scope] if scope else sorted(self.snapshot.namespaces())
        for right in rights:
            RIGHT_EDGES[right.name](self, node, right, scope, namespaces)

    def pod_create(self, node: str, namespaces: list[str], evidence: str) -> None:
        ns_objects = {o.name: o for o in self.snapshot.of_kind("Namespace")}
        for ns in namespaces:
            for sa in sorted(self.sas_by_ns.get(ns, ())):
                self.graph.add_edge(node, sa, "POD_CREATE", f"{evidence}: a pod running as {self.graph.label(sa)}")
            if not wl.namespace_psa_blocks_privileged(ns_objects.get(ns)):
                self.graph.add_edge(node, self.host_node("*"), "POD_CREATE",
                                    f"{evidence}: a privileged hostPID pod in {ns} (no Pod Security enforce)")
            if not self.bounded_namespace(ns):
                self.graph.add_edge(node, COMPUTE_HIJACK, "RESOURCE_HIJACK",
                                    f"{evidence}: pods in {ns}, which has no ResourceQuota or LimitRange")

    def cloud_identity(self, key: str, label: str) -> str:
        node = self.graph.add_node(f"cloud:{key}", "cloud-identity", label)
        self.graph.add_edge(node, CLOUD_DATA, "CLOUD_ACCESS", f"{label}: cloud storage and APIs the identity may use")
        return node

    def bounded_namespace(self, namespace: str) -> bool:
        return any(o.namespace == namespace for o in self.snapshot.of_kind("ResourceQuota", "LimitRange"))


def qualified(obj: K8sObject) -> str:
    """NS/NAME, or NAME for a cluster-scoped object."""
    return f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name


# What a right reaches, per right name (rights.py says which rights a permission set holds).
RightEdges = Callable[[BuildContext, str, Right, str, list[str]], None]
RIGHT_EDGES: dict[str, RightEdges] = {}


def right_edge(*names: str) -> Callable[[RightEdges], RightEdges]:
    """Decorator: the function adds the edges of the rights `names`."""
    return file_under(RIGHT_EDGES, names, "edge function")


@right_edge("ADMIN")
def _admin(ctx: BuildContext, node: str, right: Right, scope: str, _namespaces: list[str]) -> None:
    if scope:
        ctx.graph.add_edge(node, ctx.ns_admin(scope), "ADMIN_OF", f"all rights in {scope}: {right.evidence}")
    else:
        ctx.graph.add_edge(node, CLUSTER_ADMIN, "ADMIN_OF", f"all rights cluster-wide: {right.evidence}")


@right_edge("ROLE_BIND", "ESCALATE")
def _namespace_admin(ctx: BuildContext, node: str, right: Right, _scope: str, namespaces: list[str]) -> None:
    if right.cluster_admin:
        ctx.graph.add_edge(node, CLUSTER_ADMIN, right.name, right.evidence)
        return
    for ns in namespaces:
        ctx.graph.add_edge(node, ctx.ns_admin(ns), right.name, right.evidence)


@right_edge("POD_EXEC", "POD_ATTACH", "POD_PATCH", "NODES_PROXY")
def _into_pods(ctx: BuildContext, node: str, right: Right, _scope: str, namespaces: list[str]) -> None:
    for ns in namespaces:
        for info in ctx.pods_by_ns.get(ns, []):
            ctx.graph.add_edge(node, info.node, right.name, right.evidence)


@right_edge("TOKEN_LIST")
def _read_secrets(ctx: BuildContext, node: str, right: Right, _scope: str, namespaces: list[str]) -> None:
    for ns in namespaces:
        for secret in ctx.secrets_by_ns.get(ns, []):
            ctx.graph.add_edge(node, secret, "TOKEN_LIST", right.evidence)


@right_edge("TOKEN_CREATE", "IMPERSONATE")
def _as_service_accounts(ctx: BuildContext, node: str, right: Right, _scope: str, namespaces: list[str]) -> None:
    if right.cluster_admin:  # impersonating users or groups: system:masters
        ctx.graph.add_edge(node, CLUSTER_ADMIN, right.name, right.evidence)
        return
    for ns in namespaces:
        for sa in sorted(ctx.sas_by_ns.get(ns, ())):
            ctx.graph.add_edge(node, sa, right.name, right.evidence)


@right_edge("POD_CREATE")
def _create_pods(ctx: BuildContext, node: str, right: Right, _scope: str, namespaces: list[str]) -> None:
    ctx.pod_create(node, namespaces, right.evidence)
