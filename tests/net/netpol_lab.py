"""The upstream NetworkPolicy e2e lab as data: pods a, b, c in namespaces x, y, z, and reachability matrices.

Each pod is labelled `pod: <name>`, each namespace `ns: <name>` (plus the API server's
kubernetes.io/metadata.name); every pod serves TCP, UDP and SCTP on ports 80 and 81 with container
ports named serve-<port>-<proto>, as in the e2e suite. Pod IPs are 10.<ns>.0.<pod>.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeguard.cluster.snapshot import K8sObject, Snapshot

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
ALL = [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]


def pod_ip(name: str) -> str:
    ns, pod = name.split("/")
    return f"10.{NAMESPACES.index(ns) + 1}.0.{PODS.index(pod) + 1}"


def lab(*policies: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for ns in NAMESPACES:
        snap.add(K8sObject({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"ns": ns}}}))
    for name in ALL:
        ns, pod = name.split("/")
        ports = [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
                 for port in (80, 81) for proto in ("TCP", "UDP", "SCTP")]
        snap.add(K8sObject({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                            "spec": {"containers": [{"name": "cont", "image": "agnhost", "ports": ports}]},
                            "status": {"podIP": pod_ip(name)}}))
    for policy in policies:
        snap.add(K8sObject(policy))
    return snap


def policy(name: str, namespace: str, pod_selector: dict[str, Any] | None = None, *,
           ingress: list[dict[str, Any]] | None = None, egress: list[dict[str, Any]] | None = None,
           types: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": pod_selector if pod_selector is not None else {}}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def labels(**kv: str) -> dict[str, Any]:
    return {"matchLabels": dict(kv)}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    item: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        item["values"] = list(values)
    return {"matchExpressions": [item]}


class Reachability:
    """The e2e suite's truth table: every (from, to) pod pair, with its helpers to set expectations."""

    def __init__(self, default: bool) -> None:
        self.table = {(f, t): default for f in ALL for t in ALL}

    def expect(self, src: str, dst: str, value: bool) -> Reachability:
        self.table[(src, dst)] = value
        return self

    def expect_peer(self, src: Callable[[str], bool], dst: Callable[[str], bool], value: bool) -> Reachability:
        for f, t in self.table:
            if src(f) and dst(t):
                self.table[(f, t)] = value
        return self

    def all_ingress(self, dst: str, value: bool) -> Reachability:
        return self.expect_peer(lambda _f: True, lambda t: t == dst, value)

    def all_egress(self, src: str, value: bool) -> Reachability:
        return self.expect_peer(lambda f: f == src, lambda _t: True, value)


def in_ns(ns: str) -> Callable[[str], bool]:
    return lambda name: name.startswith(f"{ns}/")


def anyone(_name: str) -> bool:
    return True
