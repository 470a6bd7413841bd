"""Detections to Alerts: Falco-format records with the flow's keys and, when known, the pods behind it.

The alert's workload is the pod the detection concerns: the client side for what a pod does
(mining, reverse shells, tunnels, old clients), otherwise the server side (attacks against a
service). Both pods, when known, are named in `net.client.pod` / `net.server.pod`.
"""

from __future__ import annotations

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import SEVERITY_FALCO_PRIORITY, Alert, Workload, format_time_ns
from kubeguard.net.types import Detection

CLIENT_SIDE_TAGS = {"mining", "reverse_shell", "dns", "tunnel", "scan", "flood"}


def pod_name(workload: Workload | None) -> str:
    return f"{workload.namespace}/{workload.pod}" if workload else ""


def make_alert(det: Detection, identity: dict[str, object], ts: float, podmap: PodMap | None,
               hostname: str = "") -> Alert:
    """One network Alert for `det` seen on the flow (or source) described by `identity`."""
    fields: dict[str, object] = dict(identity)
    client = server = None
    if podmap is not None:
        client = podmap.by_ip.get(str(identity.get("fd.cip", "")))
        server = podmap.by_ip.get(str(identity.get("fd.sip", "")))
    if client:
        fields["net.client.pod"] = pod_name(client)
    if server:
        fields["net.server.pod"] = pod_name(server)
    client_side = bool(CLIENT_SIDE_TAGS.intersection(det.tags))
    workload = (client or server) if client_side else (server or client)
    if workload:
        fields.update(workload.falco_fields())
    fields.update(det.fields)
    fields["net.evidence"] = det.evidence
    where = (f"{identity.get('fd.cip')}:{identity.get('fd.cport')} -> {identity.get('fd.sip')}:"
             f"{identity.get('fd.sport')} {identity.get('fd.l4proto')}/{identity.get('net.proto', 'unknown')}")
    pod = f" pod={pod_name(workload)}" if workload else ""
    return Alert(
        rule=det.rule,
        priority=SEVERITY_FALCO_PRIORITY[det.severity],
        output=f"{det.rule}: {det.evidence} ({where}){pod}",
        time=format_time_ns(int(ts * 1e9)),
        source="network",
        hostname=hostname,
        output_fields=fields,
        tags=["network", *det.mitre, *det.tags],
        workload=workload,
    )
