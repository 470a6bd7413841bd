"""Protocol allow-lists: the Cilium-like model, its decisions, and file:line messages for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeguard.model import Workload
from kubeguard.response.allowlist import AllowListError, ConnectionGrant, Decision, load, parse

WEB = Workload(namespace="shop", pod="web-1", labels=(("app", "web"),))
DB = Workload(namespace="shop", pod="db-0", labels=(("app", "db"),))
DNS = Workload(namespace="kube-system", pod="coredns-1", labels=(("k8s-app", "kube-dns"),))
OTHER = Workload(namespace="other", pod="x", labels=(("app", "web"),))

POLICY = """
policies:
  - name: web
    namespace: shop
    endpointSelector: {matchLabels: {app: web}}
    mode: protect
    ingress:
      - toPorts:
          - ports: [{port: "8080", protocol: TCP}]
            rules:
              http:
                - {method: "GET", path: "/api/.*"}
                - {method: "POST", path: "/api/orders", headers: ["X-Tenant: a"]}
    egress:
      - toEndpoints: [{matchLabels: {app: db}}]
        toPorts: [{ports: [{port: "5432"}], protocols: [postgres]}]
      - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}}]
        toPorts: [{ports: [{port: "53", protocol: ANY}], protocols: [dns]}]
      - toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]
        toPorts: [{ports: [{port: "443"}], protocols: [https]}]
"""


def test_egress_peers_ports_and_protocols() -> None:
    al = parse(POLICY)
    grant = al.grant("10.1.0.5", WEB, "10.1.0.9", DB, 5432, "tcp")
    assert isinstance(grant, ConnectionGrant)
    assert al.protocol(grant, "postgresql").allowed
    grant = al.grant("10.1.0.5", WEB, "10.1.0.9", DB, 5432, "tcp")
    assert isinstance(grant, ConnectionGrant)
    denied = al.protocol(grant, "ssh")
    assert not denied.allowed and denied.side == "egress" and "protocol ssh not allowed" in denied.reason
    assert isinstance(al.grant("10.1.0.5", WEB, "10.2.0.53", DNS, 53, "udp"), ConnectionGrant)
    # DNS only to kube-dns: the same port to another pod is denied at connection start
    refused = al.grant("10.1.0.5", WEB, "10.1.0.9", DB, 53, "udp")
    assert isinstance(refused, Decision) and not refused.allowed and refused.policy == "web"
    # HTTPS to the world but not into 10/8
    world = al.grant("10.1.0.5", WEB, "93.184.216.34", None, 443, "tcp")
    assert isinstance(world, ConnectionGrant) and al.protocol(world, "tls").allowed
    assert isinstance(al.grant("10.1.0.5", WEB, "10.9.9.9", None, 443, "tcp"), Decision)


def test_ingress_http_rules_and_open_directions() -> None:
    al = parse(POLICY)
    grant = al.grant("10.1.0.7", None, "10.1.0.5", WEB, 8080, "tcp")
    assert isinstance(grant, ConnectionGrant) and grant.egress is None  # the client has no policy
    assert al.protocol(grant, "http").allowed
    assert al.http_request(grant, "GET", "/api/items/3", "shop", []).allowed
    assert not al.http_request(grant, "DELETE", "/api/items/3", "shop", []).allowed
    assert not al.http_request(grant, "GET", "/admin", "shop", []).allowed
    assert not al.http_request(grant, "POST", "/api/orders", "shop", []).allowed
    assert al.http_request(grant, "POST", "/api/orders", "shop", [("x-tenant", "a")]).allowed
    # port not listed in ingress: denied; a pod no policy selects: everything open
    assert isinstance(al.grant("10.1.0.7", None, "10.1.0.5", WEB, 22, "tcp"), Decision)
    assert isinstance(al.grant("10.1.0.7", None, "10.3.0.1", OTHER, 22, "tcp"), ConnectionGrant)
    assert al.mode_for(WEB, "monitor") == "protect" and al.mode_for(OTHER, "monitor") == "monitor"


def test_http_protocol_covers_http_apis_and_https_alias() -> None:
    al = parse("""
policies:
  - {name: a, namespace: shop, endpointSelector: {}, egress: [{toPorts: [{protocols: [http, https]}]}]}
""")
    for proto, ok in (("http", True), ("elasticsearch", True), ("tls", True), ("stratum", False), ("ssh", False)):
        grant = al.grant("10.1.0.5", WEB, "1.2.3.4", None, 9200, "tcp")
        assert isinstance(grant, ConnectionGrant)
        assert al.protocol(grant, proto).allowed is ok, proto


@pytest.mark.parametrize(("text", "where", "what"), [
    ("policies:\n  - name: a\n    namespace: x\n    endpointSelector: {}\n    mode: block\n", ":2:", "mode must be"),
    ("policies:\n  - name: a\n    endpointSelector: {}\n    egress:\n      - toPorts:\n"
     "          - ports: [{port: http}]\n", ":6:", "port must be a number"),
    ("policies:\n  - name: a\n    endpointSelector: {}\n    egress:\n      - toCIDR: [10.0.0/33]\n", ":5:",
     "bad CIDR"),
    ("policies:\n  - name: a\n    endpointSelector: {}\n    ingress:\n      - toEndpoints: []\n", ":5:",
     "unknown key 'toEndpoints'"),
    ("policies:\n  - name: a\n    endpointSelector: {}\n    egress:\n      - toPorts:\n"
     "          - rules: {http: [{path: '(['}]}\n", ":6:", "not a valid regular expression"),
    ("policies: [\n", ":2:", "not valid YAML"),
    ("policies:\n  - name: a\n", ":2:", "endpointSelector"),
])
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = tmp_path / "allow.yaml"
    path.write_text(text)
    with pytest.raises(AllowListError) as exc:
        load(path)
    message = str(exc.value)
    assert message.startswith(f"{path}{where}") and what in message, message


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(AllowListError, match="cannot read allow-list"):
        load(tmp_path / "nope.yaml")
