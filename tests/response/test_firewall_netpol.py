"""NetworkPolicy (L3/L4) decisions in the firewall, through the project's evaluator."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Alert
from kubeguard.response.firewall import Firewall, Verdict
from kubeguard.response.inject import SYN, segment
from kubeguard.response.netpol import NetpolCheck

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: client}}}]
      ports: [{port: 8080, protocol: TCP}]
"""
IPS = {"web": "10.1.0.9", "client": "10.1.0.5", "other": "10.1.0.7"}


def _pods(tmp_path: Path) -> Path:
    items = [{"kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": name, "labels": {"app": name}},
              "spec": {"containers": [{"name": "app", "image": "x"}]}, "status": {"podIP": ip, "phase": "Running"}}
             for name, ip in IPS.items()]
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    return path


def _syn(src: str, dst: str, dport: int, sport: int = 40000) -> bytes:
    return segment(socket.inet_aton(IPS[src]), socket.inet_aton(IPS[dst]), sport, dport, 1, 0, SYN)


def test_networkpolicy_denies_are_blocked_at_the_syn(tmp_path: Path) -> None:
    (tmp_path / "netpol.yaml").write_text(POLICY)
    pods = _pods(tmp_path)
    check = NetpolCheck([tmp_path / "netpol.yaml"])
    check.reload_pods(pods)
    assert not check.problems
    alerts: list[Alert] = []
    fw = Firewall(PodMap.from_file(pods), default_mode="protect", on_alert=alerts.append, netpol=check.decide)
    fw.select(set(IPS.values()))
    assert fw.verdict(_syn("client", "web", 8080)) == Verdict.PASS
    assert fw.verdict(_syn("other", "web", 8080, 40001)) == Verdict.BLOCK
    assert fw.verdict(_syn("client", "web", 22, 40002)) == Verdict.BLOCK
    assert fw.verdict(_syn("web", "other", 443, 40003)) == Verdict.PASS  # egress of web is not isolated
    denied = [a for a in alerts if a.rule == "Firewall policy violation"]
    assert len(denied) == 2
    fields = denied[0].output_fields
    assert fields["firewall.policy"] == "shop/web-from-client" and fields["firewall.side"] == "ingress"
    assert fields["firewall.action"] == "blocked" and fields["k8s.pod.name"] == "web"
    assert "NetworkPolicy denies shop/other -> shop/web:8080/TCP" in denied[0].output


def test_monitor_mode_alerts_networkpolicy_denies_only(tmp_path: Path) -> None:
    (tmp_path / "netpol.yaml").write_text(POLICY)
    check = NetpolCheck([tmp_path / "netpol.yaml"])
    check.reload_pods(_pods(tmp_path))
    alerts: list[Alert] = []
    fw = Firewall(PodMap.from_file(_pods(tmp_path)), default_mode="monitor", on_alert=alerts.append,
                  netpol=check.decide)
    fw.select(set(IPS.values()))
    assert fw.verdict(_syn("other", "web", 8080)) == Verdict.PASS
    assert alerts[-1].output_fields["firewall.action"] == "alert"
