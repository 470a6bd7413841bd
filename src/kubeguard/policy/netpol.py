"""The network part of workload policies as Kubernetes NetworkPolicy objects (networking.k8s.io/v1).

One NetworkPolicy per workload that has a pod selector, both directions: each allowed ingress /
egress rule becomes a peer (``podSelector`` + ``namespaceSelector`` on
``kubernetes.io/metadata.name`` for workload peers, ``ipBlock`` for CIDRs) with its port and
protocol. A workload peer without a known selector, DNS peers and deny rules cannot be expressed in
NetworkPolicy and are left out (listed in the object's ``kubeguard.io/omitted`` annotation).
"""

from __future__ import annotations

from typing import Any

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.policy.document import NetRule, WorkloadPolicy, document_name


def network_policies(policies: list[WorkloadPolicy], everyone: list[WorkloadPolicy] | None = None
                     ) -> list[dict[str, Any]]:
    """NetworkPolicy documents for `policies`; `everyone` gives the selectors of peer workloads."""
    selectors = {p.workload: p.selector for p in (everyone if everyone is not None else policies)}
    out: list[dict[str, Any]] = []
    for policy in sorted(policies, key=lambda p: p.workload):
        if not policy.selector:
            continue
        omitted: list[str] = []
        ingress = _rules(policy.ingress, selectors, "from", omitted)
        egress = _rules(policy.egress, selectors, "to", omitted)
        meta: dict[str, Any] = {"name": f"kubeguard-{document_name(policy.workload)}",
                                "namespace": policy.workload.namespace,
                                "labels": {"app.kubernetes.io/managed-by": "kubeguard"}}
        if omitted:
            meta["annotations"] = {"kubeguard.io/omitted": "; ".join(omitted)}
        out.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {"matchLabels": dict(sorted(policy.selector.items()))},
                     "policyTypes": ["Ingress", "Egress"], "ingress": ingress, "egress": egress},
        })
    return out


def _rules(rules: list[NetRule], selectors: dict[WorkloadRef, dict[str, str]], side: str,
           omitted: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rule in sorted(rules, key=lambda r: r.key):
        if rule.action != "allow":
            omitted.append(f"deny {rule.key}")
            continue
        entry: dict[str, Any] = {}
        peer = rule.peer
        if peer.workload:
            ref = WorkloadRef.parse(peer.workload)
            labels = selectors.get(ref)
            if not labels:
                omitted.append(f"{rule.key} (peer selector unknown)")
                continue
            entry[side] = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ref.namespace}},
                            "podSelector": {"matchLabels": dict(sorted(labels.items()))}}]
        elif peer.cidr:
            entry[side] = [{"ipBlock": {"cidr": peer.cidr}}]
        elif peer.dns:
            omitted.append(f"{rule.key} (DNS names are not NetworkPolicy peers)")
            continue
        if rule.port:
            entry["ports"] = [{"protocol": rule.protocol, "port": rule.port}]
        out.append(entry)
    return out
