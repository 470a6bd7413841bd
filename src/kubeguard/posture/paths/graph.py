"""The attack graph: typed nodes, typed edges with evidence and the findings that create them.

Nodes are strings (``pod:NS/NAME``, ``sa:NS/NAME``, ``node:NAME`` ...) carrying a `kind` and a
`label`; the impact targets are the fixed nodes `CLUSTER_ADMIN`, `NODE_ROOT`, `CLOUD_DATA` and
`COMPUTE_HIJACK`. Every edge has a kind from `EDGE_KINDS` (its cost says how hard the step is),
the evidence that makes it true, and the ids of the findings that create it: fixing ANY of those
findings removes the edge. An edge without findings is structural (root on a node reads every
token on it) and cannot be fixed by itself. Between two nodes the graph keeps one edge, the
easiest; a harder parallel edge is kept in `alternatives` so a cut stays honest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from kubeguard.model import Finding

INTERNET = "internet"
CLUSTER_ADMIN = "cluster-admin"
NODE_ROOT = "node-root"
CLOUD_DATA = "cloud-data"
COMPUTE_HIJACK = "compute-hijack"
METADATA_API = "metadata-api"
ANY_NODE = "node:*"
TARGETS = (CLUSTER_ADMIN, NODE_ROOT, CLOUD_DATA, COMPUTE_HIJACK)

# Node kinds, in the order the HTML layout draws their columns.
NODE_KINDS = (
    "internet", "endpoint", "pod", "container", "identity", "permissions", "secret", "node",
    "cloud-identity", "target",
)


@dataclass(frozen=True, slots=True)
class EdgeKind:
    """One kind of attack step: how hard it is (cost), what it means, ATT&CK ids."""

    name: str
    cost: int
    meaning: str
    mitre: tuple[str, ...] = ()


def _kinds(*kinds: EdgeKind) -> dict[str, EdgeKind]:
    return {k.name: k for k in kinds}


# Costs: 0 free (already there), 1 a command, 2 a known technique, 3 needs an exploit or luck.
EDGE_KINDS: dict[str, EdgeKind] = _kinds(
    # entry
    EdgeKind("ENDPOINT_EXPLOIT", 3, "exploit the application behind an exposed endpoint", ("T1190",)),
    EdgeKind("UNAUTH_CONSOLE", 1, "use a console that asks for no login, with its service account's rights",
             ("T1133", "MS-TA9003")),
    EdgeKind("EXPOSED", 0, "the endpoint is reachable from there"),
    # inside a pod
    EdgeKind("CONTAINER_ATTACH", 0, "code execution in a pod is execution in its containers"),
    # Kubernetes API
    EdgeKind("HAS_PERMISSIONS", 0, "the identity holds this binding's rights"),
    EdgeKind("POD_EXEC", 1, "kubectl exec into the pod", ("T1609",)),
    EdgeKind("POD_ATTACH", 1, "kubectl attach to the pod's process", ("T1609",)),
    EdgeKind("POD_CREATE", 2, "create a pod (privileged, or mounting the identity)", ("T1610",)),
    EdgeKind("POD_PATCH", 2, "patch the pod or its controller to run attacker code", ("T1610",)),
    EdgeKind("TOKEN_STEAL", 1, "read the mounted service-account token", ("T1528",)),
    EdgeKind("TOKEN_LIST", 1, "read the secret through the API", ("T1552.007",)),
    EdgeKind("TOKEN_CREATE", 1, "request a token for the service account (TokenRequest)", ("T1528",)),
    EdgeKind("ROLE_BIND", 1, "bind any role to oneself", ("T1098",)),
    EdgeKind("ESCALATE", 1, "grant oneself rights one does not hold (escalate verb)", ("T1098",)),
    EdgeKind("IMPERSONATE", 1, "act as another user, group or service account", ("T1078",)),
    EdgeKind("NODES_PROXY", 1, "run commands in pods through the kubelet API (nodes/proxy)", ("T1609",)),
    EdgeKind("ADMIN_OF", 0, "these rights are every right (of the cluster, or of one namespace)"),
    EdgeKind("SECRET_MOUNT", 0, "the container has the secret in its environment or files", ("T1552.001",)),
    EdgeKind("SECRET_TOKEN", 0, "the secret holds the service account's token"),
    # escapes (KubeHound's container-escape set)
    EdgeKind("CE_PRIV_MOUNT", 2, "privileged container: mount the host's disk", ("T1611",)),
    EdgeKind("CE_NSENTER", 1, "privileged with hostPID: nsenter into PID 1", ("T1611",)),
    EdgeKind("CE_SYS_PTRACE", 2, "SYS_PTRACE with hostPID: inject into a host process", ("T1611",)),
    EdgeKind("CE_MODULE_LOAD", 2, "SYS_MODULE: load a kernel module", ("T1611", "T1547.006")),
    EdgeKind("CE_UMH_CORE_PATTERN", 2, "writable host /proc: set core_pattern to a host command", ("T1611",)),
    EdgeKind("CE_VAR_LOG_SYMLINK", 3, "host /var/log plus pods/log rights: symlink to read host files", ("T1611",)),
    EdgeKind("EXPLOIT_RUNTIME_SOCK", 1, "container runtime socket mounted: start a privileged container",
             ("T1611", "T1610")),
    EdgeKind("EXPLOIT_HOST_WRITE", 2, "writable sensitive host path: plant a cron job, key or binary", ("T1611",)),
    EdgeKind("EXPLOIT_HOST_READ", 1, "host path over the kubelet's pod directories: read other pods' tokens",
             ("T1552.001",)),
    # node
    EdgeKind("ROOT_ON_NODE", 0, "root on this node"),
    EdgeKind("NODE_TOKENS", 0, "root on the node reads the tokens the kubelet mounted for its pods", ("T1528",)),
    EdgeKind("NODE_PODS", 0, "root on the node enters every container on it", ("T1609",)),
    # cloud
    EdgeKind("CLOUD_CREDS", 0, "cloud credentials available to this step", ("T1552.001", "T1078.004")),
    EdgeKind("METADATA_API", 1, "query the cloud metadata service at 169.254.169.254", ("T1552.005",)),
    EdgeKind("NODE_ROLE", 0, "the metadata service hands out the node's instance role", ("T1552.005",)),
    EdgeKind("CLOUD_ACCESS", 1, "use the cloud identity against cloud storage", ("T1530",)),
    # impact
    EdgeKind("RESOURCE_HIJACK", 1, "run a miner: no CPU limit and no quota bounds it", ("T1496",)),
)


@dataclass(slots=True)
class Step:
    """One edge of a path, as shown to users."""

    source: str
    target: str
    kind: str
    evidence: str
    findings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "kind": self.kind, "evidence": self.evidence,
                "findings": list(self.findings)}


@dataclass(slots=True)
class AttackGraph:
    """The graph plus the findings its edges refer to (id -> Finding)."""

    g: nx.DiGraph[str] = field(default_factory=nx.DiGraph)
    findings: dict[str, Finding] = field(default_factory=dict)

    def add_node(self, node: str, kind: str, label: str, **attrs: Any) -> str:
        if node not in self.g:
            self.g.add_node(node, kind=kind, label=label, **attrs)
        return node

    def add_edge(self, source: str, target: str, kind: str, evidence: str,
                 findings: Iterable[Finding] = ()) -> None:
        """Add a step; findings given are recorded; the easier of two parallel edges is kept first."""
        edge_kind = EDGE_KINDS[kind]
        ids: list[str] = []
        for finding in findings:
            self.findings.setdefault(finding.id, finding)
            if finding.id not in ids:
                ids.append(finding.id)
        data = {"kind": kind, "cost": edge_kind.cost, "evidence": evidence, "findings": tuple(ids)}
        existing = self.g.get_edge_data(source, target)
        if existing is None:
            self.g.add_edge(source, target, **data, alternatives=())
            return
        if (existing["kind"], existing["evidence"]) == (kind, evidence):
            return
        if data["cost"] < existing["cost"]:
            alternatives = (*existing["alternatives"], _without_alternatives(existing))
            self.g.add_edge(source, target, **data, alternatives=alternatives)
        else:
            existing["alternatives"] = (*existing["alternatives"], data)

    def label(self, node: str) -> str:
        return str(self.g.nodes[node].get("label", node)) if node in self.g else node

    def kind(self, node: str) -> str:
        return str(self.g.nodes[node].get("kind", "")) if node in self.g else ""

    def step(self, source: str, target: str) -> Step:
        data = self.g.edges[source, target]
        return Step(source, target, data["kind"], data["evidence"], data["findings"])

    def edge_closers(self, source: str, target: str) -> list[tuple[str, ...]]:
        """Finding sets of the edge and its parallel alternatives; the step is gone when each set is hit."""
        data = self.g.edges[source, target]
        return [data["findings"], *(alt["findings"] for alt in data["alternatives"])]

    def edges_of_kind(self, kind: str) -> Iterator[tuple[str, str]]:
        for u, v, data in self.g.edges(data=True):
            if data["kind"] == kind or any(a["kind"] == kind for a in data["alternatives"]):
                yield u, v

    def has_edge_kind(self, source: str, target: str, kind: str) -> bool:
        data = self.g.get_edge_data(source, target)
        if data is None:
            return False
        return data["kind"] == kind or any(a["kind"] == kind for a in data["alternatives"])

    def without_findings(self, fixed: Iterable[str]) -> nx.DiGraph[str]:
        """A view of the graph with every edge that the fixed findings close removed."""
        fixed_set = set(fixed)

        def keep(u: str, v: str) -> bool:
            return not all(set(f) & fixed_set for f in self.edge_closers(u, v))

        view: nx.DiGraph[str] = nx.subgraph_view(self.g, filter_edge=keep)
        return view


def _without_alternatives(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "alternatives"}
