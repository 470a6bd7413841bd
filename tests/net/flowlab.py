"""A small cluster's pods and a pcap of their traffic, turned into `dpi --flows-out` records by the real engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from kubeguard.net.pcapgen import PcapWriter, dns_query, tcp_conversation, udp_exchange

# (namespace, pod, ip, labels, owner kind, owner name)
PODS = [
    ("shop", "web-7d4b9-abcde", "10.0.1.1", {"app": "web", "pod-template-hash": "7d4b9"}, "ReplicaSet", "web-7d4b9"),
    ("shop", "web-7d4b9-fghij", "10.0.1.2", {"app": "web", "pod-template-hash": "7d4b9"}, "ReplicaSet", "web-7d4b9"),
    ("shop", "api-5f6c8-klmno", "10.0.1.10", {"app": "api", "pod-template-hash": "5f6c8"}, "ReplicaSet", "api-5f6c8"),
    ("db", "postgres-0", "10.0.2.10", {"app": "postgres", "statefulset.kubernetes.io/pod-name": "postgres-0"},
     "StatefulSet", "postgres"),
    ("kube-system", "coredns-6d8c4-pqrst", "10.0.3.53", {"k8s-app": "kube-dns", "pod-template-hash": "6d8c4"},
     "ReplicaSet", "coredns-6d8c4"),
    ("monitoring", "prom", "10.0.4.1", {"app": "prom"}, "", ""),
]
# (client ip, server ip, port, protocol, bytes sent by the client)
FLOWS = [
    ("10.0.1.1", "10.0.1.10", 8080, "TCP", b"GET /api/cart HTTP/1.1\r\nHost: api\r\n\r\n"),
    ("10.0.1.2", "10.0.1.10", 8080, "TCP", b"GET /api/items HTTP/1.1\r\nHost: api\r\n\r\n"),
    ("10.0.1.10", "10.0.2.10", 5432, "TCP", b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    ("10.0.1.1", "10.0.3.53", 53, "UDP", dns_query("api.shop.svc.cluster.local", ident=0x1234)),
    ("10.0.1.10", "10.0.3.53", 53, "UDP", dns_query("postgres.db.svc.cluster.local", ident=0x1235)),
    ("10.0.4.1", "10.0.1.2", 9090, "TCP", b"GET /metrics HTTP/1.1\r\nHost: web\r\n\r\n"),
    ("10.0.1.10", "203.0.113.7", 443, "TCP", b"\x16\x03\x01\x00\x05hello"),
    ("198.51.100.2", "10.0.1.1", 8080, "TCP", b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n"),
]


def pods_json() -> dict[str, Any]:
    items = []
    for i, (ns, name, ip, labels, kind, owner) in enumerate(PODS):
        meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"00000000-0000-0000-0000-{i:012d}",
                                "labels": labels}
        if kind:
            meta["ownerReferences"] = [{"kind": kind, "name": owner, "controller": True}]
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                      "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "img"}]},
                      "status": {"podIP": ip, "podIPs": [{"ip": ip}]}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def write_lab(tmp: Path) -> tuple[Path, Path]:
    """pods.json and flows.jsonl (from `kubeguard dpi` over a pcap of FLOWS)."""
    import json

    pods = tmp / "pods.json"
    pods.write_text(json.dumps(pods_json()))
    pcap = tmp / "lab.pcap"
    ts = 1_700_000_000.0
    with pcap.open("wb") as fh:
        writer = PcapWriter(fh)
        for n, (cip, sip, port, proto, data) in enumerate(FLOWS):
            client = (cip, 40000 + n)
            if proto == "TCP":
                ts = tcp_conversation(writer, client, (sip, port), [(0, data), (1, b"ok")], ts=ts + 1)
            else:
                ts = udp_exchange(writer, client, (sip, port), [(0, data), (1, data)], ts=ts + 1)
    flows = tmp / "flows.jsonl"
    done = subprocess.run([sys.executable, "-m", "kubeguard", "dpi", str(pcap), "--pods", str(pods), "--flows-out",
                           str(flows), "--no-store", "-o", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return pods, flows
