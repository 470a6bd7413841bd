"""DNS detections: per-name tunnel scorer, tunnelling over time, zone transfers, NULL/TXT floods."""

from __future__ import annotations

import base64
import random

import pytest

from kubeguard.net.detect.dns import DnsThresholds, DnsTunnelDetector, is_tunnel_name, registered_domain
from kubeguard.net.types import DnsQuestion

TUNNEL_NAMES = [
    # dns2tcp: base64 with + and /
    "q+Z8BnweCORdAGL4+W7DB5xH1cUwcwM1gejAQoJF8hbs2Jf6p3n1rvyEqOo.efc7MB0sNhRa+naKrnyWU7HZVOx5bWal9Bx.t.example.org.",
    # iodine: mixed-case base32/64-ish data labels
    "0eaba822hbYbdn4yFplbyycYnihdSxeybaKw.iIX4PsKYEGPvvQU0oN3ngJXZddpz.t.example.net.",
    # dnscat2: long hex labels
    "7d2b01cc3a0b8e9f4f0100000000000000000000.3b1e6d51c2a0f09a48b7e3d1c2.dnscat.example.com.",
]
PLAIN_NAMES = [
    "www.google.com.", "kubernetes.default.svc.cluster.local.", "s3.us-east-1.amazonaws.com.",
    "d111111abcdef8.cloudfront.net.", "login.microsoftonline.com.", "bbc.co.uk.", "example.com.",
    "r4---sn-4g5e6nsz.googlevideo.com.", "8.8.8.8.in-addr.arpa.", "WwW.ExAmPlE.CoM.",
]


@pytest.mark.parametrize("name", TUNNEL_NAMES)
def test_tunnel_names(name: str) -> None:
    assert is_tunnel_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names(name: str) -> None:
    assert not is_tunnel_name(name)


def test_registered_domain() -> None:
    assert registered_domain("a.b.example.co.uk.") == ("a.b", "example.co.uk")
    assert registered_domain("x.example.com") == ("x", "example.com")
    assert registered_domain("example.com.") == ("", "example.com")


def _exfil_names(count: int, domain: str) -> list[str]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        chunk = base64.b32encode(rng.randbytes(30)).decode().rstrip("=").lower()
        out.append(f"{i:04x}{chunk[:40]}.{chunk[40:]}.{domain}.")
    return out


def test_tunnelling_over_time_alerts_once() -> None:
    det = DnsTunnelDetector()
    hits = []
    for i, name in enumerate(TUNNEL_NAMES[:1] * 3 + TUNNEL_NAMES[1:2] * 4):
        hits += det.observe("10.0.0.5", DnsQuestion(name, "TXT"), float(i))
    tunnels = [d for d in hits if d.rule == "DNS tunnelling"]
    assert len(tunnels) == 2  # one per registered domain, then the cooldown holds
    assert tunnels[0].mitre[0] == "T1071.004" and tunnels[0].fields["dns.domain"] == "example.org"


def test_tunnelling_by_volume_of_unique_subdomains() -> None:
    det = DnsTunnelDetector(DnsThresholds(tunnel_names=10**6, unique_subdomains=50, subdomain_bytes=1000))
    hits = []
    for i, name in enumerate(_exfil_names(60, "exfil.example")):
        hits += det.observe("10.0.0.5", DnsQuestion(name, "A"), i * 0.1)
    assert [d.rule for d in hits] == ["DNS tunnelling"]


def test_plain_browsing_not_flagged() -> None:
    det = DnsTunnelDetector()
    hits = []
    for i in range(2000):
        hits += det.observe("10.0.0.5", DnsQuestion(PLAIN_NAMES[i % len(PLAIN_NAMES)], "A"), i * 0.01)
    assert hits == []


def test_zone_transfer_and_responses_ignored() -> None:
    det = DnsTunnelDetector()
    assert [d.rule for d in det.observe("10.0.0.5", DnsQuestion("corp.example.", "AXFR"), 0.0)] == [
        "DNS zone transfer attempt"]
    assert det.observe("10.0.0.5", DnsQuestion("corp.example.", "AXFR", is_response=True), 1.0) == []
    assert det.observe("10.0.0.5", DnsQuestion("corp.example.", "A"), 1.0) == []


def test_null_flood() -> None:
    det = DnsTunnelDetector()
    hits = []
    for i in range(12):
        hits += det.observe("10.0.0.5", DnsQuestion(f"p{i}.example.net.", "NULL"), i * 1.0)
    assert [d.rule for d in hits] == ["DNS NULL query flood"]


def test_state_is_bounded() -> None:
    det = DnsTunnelDetector(DnsThresholds(max_keys=50))
    for i in range(3000):
        det.observe(f"10.0.{i // 250}.{i % 250}", DnsQuestion(f"a{i}.d{i}.example.", "TXT"), float(i))
    assert len(det.domains) <= 50 and len(det.types) <= 50 and len(det.last_alert) <= 50
