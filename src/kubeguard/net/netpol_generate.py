"""Least-privilege NetworkPolicies from observed flows (`dpi --flows-out` records) and the pods map.

Every workload of the pods map (pods grouped by their controller) gets one policy, Ingress and
Egress, selecting its pods by the labels its replicas share (less the per-pod ones such as
pod-template-hash). Its rules allow exactly the observed flows: per peer, the server ports seen,
by protocol. A pod peer is named by `namespaceSelector` (kubernetes.io/metadata.name) AND
`podSelector`; an address that is no known pod by an `ipBlock` of that one address. A workload
with no flows in a direction gets no rule there: a default deny. Flows other than TCP / UDP / SCTP
(ICMP) cannot be expressed per port and are counted in `skipped`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.cluster.podmap import PodMap
from kubeguard.errors import KubeguardError
from kubeguard.model import Workload
from kubeguard.policy.policy_engine import POD_SPECIFIC_LABELS

log = logging.getLogger(__name__)
PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}
Peer = tuple[str, str]  # ("workload", "ns/Kind/name") or ("ip", "203.0.113.9")


class FlowsError(KubeguardError):
    """The flows file cannot be read; the message names file:line."""


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """What generation needs of one flow: both ends, the server port and the protocol."""

    client: str
    server: str
    port: int
    protocol: str


def read_flows(path: Path) -> tuple[list[FlowRecord], int]:
    """The TCP/UDP/SCTP flows of a `--flows-out` file, and how many other records were skipped."""
    flows: list[FlowRecord] = []
    skipped = 0
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise FlowsError(f"{path}: cannot read flows: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise FlowsError(f"{path}: not a JSON-lines flows file: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            cip, sip, port = str(record["fd.cip"]), str(record["fd.sip"]), int(record["fd.sport"])
            ipaddress.ip_address(cip)
            ipaddress.ip_address(sip)
        except (ValueError, KeyError, TypeError) as exc:
            raise FlowsError(f"{path}:{number}: not a flow record (fd.cip, fd.sip, fd.sport): {exc}") from exc
        protocol = PROTOCOLS.get(str(record.get("fd.l4proto", "")).lower())
        if protocol is None or not 1 <= port <= 65535:
            skipped += 1
            continue
        flows.append(FlowRecord(cip, sip, port, protocol))
    return flows, skipped


@dataclass(slots=True)
class _Workload:
    ref: WorkloadRef
    pods: list[Workload] = field(default_factory=list)
    ingress: dict[Peer, set[tuple[str, int]]] = field(default_factory=lambda: defaultdict(set))
    egress: dict[Peer, set[tuple[str, int]]] = field(default_factory=lambda: defaultdict(set))

    def selector(self) -> dict[str, str]:
        shared: dict[str, str] | None = None
        for pod in self.pods:
            labels = {k: v for k, v in pod.labels if k not in POD_SPECIFIC_LABELS}
            shared = labels if shared is None else {k: v for k, v in shared.items() if labels.get(k) == v}
        return dict(sorted((shared or {}).items()))


@dataclass(slots=True)
class Generated:
    """Policies by namespace, and what could not be turned into a rule."""

    policies: dict[str, list[dict[str, Any]]]
    unselectable: list[str]  # workloads whose pods share no label: no policy can select them alone


def generate(flows: Iterable[FlowRecord], podmap: PodMap) -> Generated:
    """One NetworkPolicy per workload of `podmap`, allowing exactly the observed `flows`."""
    workloads: dict[WorkloadRef, _Workload] = {}
    by_ip: dict[str, WorkloadRef] = {}
    for uid, pod in sorted(podmap.by_pod_uid.items()):
        ref = podmap.owners.get(uid) or WorkloadRef(pod.namespace, "Pod", pod.pod)
        workloads.setdefault(ref, _Workload(ref)).pods.append(pod)
    for ip, pod in podmap.by_ip.items():
        owner = podmap.owners.get(pod.pod_uid)
        if owner is not None:
            by_ip[ip] = owner
    for flow in flows:
        client, server = by_ip.get(flow.client), by_ip.get(flow.server)
        port = (flow.protocol, flow.port)
        if client is not None:
            workloads[client].egress[("workload", str(server)) if server else ("ip", flow.server)].add(port)
        if server is not None:
            workloads[server].ingress[("workload", str(client)) if client else ("ip", flow.client)].add(port)
    selectors = _separate(workloads)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unselectable: list[str] = []
    for ref in sorted(workloads, key=str):
        work = workloads[ref]
        if not selectors[ref]:
            unselectable.append(str(ref))
            continue
        ingress = _rules(work.ingress, selectors, "from")
        egress = _rules(work.egress, selectors, "to")
        out[ref.namespace].append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": _name(ref), "namespace": ref.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "kubeguard"}},
            "spec": {"podSelector": selectors[ref], "policyTypes": ["Ingress", "Egress"],
                     "ingress": ingress, "egress": egress},
        })
    return Generated(dict(out), unselectable)


def _separate(workloads: dict[WorkloadRef, _Workload]) -> dict[WorkloadRef, dict[str, Any]]:
    """LabelSelectors per workload that select its pods and no other workload's pods of the namespace.

    The shared labels go to `matchLabels`; where they also select another workload's pods (a
    canary with `app: web, track: canary` beside `app: web`), a label of the other workload that
    this one lacks or holds with another value is excluded (`DoesNotExist` / `NotIn`). Workloads
    that cannot be told apart keep the overlap, and a warning says so. `{}` when the pods share no label.
    """
    out: dict[WorkloadRef, dict[str, Any]] = {}
    for ref, work in workloads.items():
        labels = work.selector()
        if not labels:
            out[ref] = {}
            continue
        selector: dict[str, Any] = {"matchLabels": labels}
        exprs: list[dict[str, Any]] = []
        for other_ref, other in workloads.items():
            if other_ref == ref or other_ref.namespace != ref.namespace:
                continue
            if not any(all(dict(p.labels).get(k) == v for k, v in labels.items()) for p in other.pods):
                continue
            mine = [dict(p.labels) for p in work.pods]
            for key, value in other.selector().items():
                if all(key not in m for m in mine):
                    exprs.append({"key": key, "operator": "DoesNotExist"})
                    break
                if all(m.get(key) != value for m in mine):
                    exprs.append({"key": key, "operator": "NotIn", "values": [value]})
                    break
            else:
                log.warning("%s: its pods' labels also select the pods of %s; the policy covers both", ref, other_ref)
        if exprs:
            selector["matchExpressions"] = exprs
        out[ref] = selector
    return out


def _rules(seen: dict[Peer, set[tuple[str, int]]], selectors: dict[WorkloadRef, dict[str, Any]],
           side: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for (kind, value), ports in sorted(seen.items()):
        if kind == "workload":
            ref = WorkloadRef.parse(value)
            selector = selectors.get(ref)
            if not selector:
                log.warning("%s: its pods share no label; flows with it are left out", ref)
                continue
            namespace = {"matchLabels": {"kubernetes.io/metadata.name": ref.namespace}}
            peer: dict[str, Any] = {"namespaceSelector": namespace, "podSelector": selector}
        else:
            address = ipaddress.ip_address(value)
            peer = {"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}
        rules.append({side: [peer], "ports": [{"protocol": proto, "port": port} for proto, port in sorted(ports)]})
    return rules


def _name(ref: WorkloadRef) -> str:
    name = f"kubeguard-{ref.kind.lower()}-{ref.name}".lower()
    return name[:253].rstrip("-.")
