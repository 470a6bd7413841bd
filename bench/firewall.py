"""Inline firewall cost: request/response latency through `kubeguard firewall` vs direct, same run (root).

Test pods (tests/root/podlab.py) talk through the root namespace's FORWARD path, as pod-to-pod
traffic does on a node. The firewall (chains + queue reader + DPI engine, in this process) runs the
whole time with one of two identical server pods inline; short runs alternate between the inline
server ("firewall") and the other ("direct"), so load drift on a shared machine hits both alike:

- redis-benchmark (Debian's redis-tools against redis-server; NeuVector's published method for its
  inline mode, +2-10 %): 50 keep-alive clients, GET. Redis needs no more inspection once identified, so
  after each connection's first command it leaves the queue (connmark bypass): this measures what
  decided, allowed flows pay. Goal: p50 <= +5 %.
- an HTTP/1.1 keep-alive client (sequential requests, one connection) against a Python HTTP server:
  every request and response goes through the queue and the engine (fully inspected HTTP).
- verdict throughput: packets/s the queue reader answers under a UDP blast it must inspect, and the
  engine + verdict logic alone on the HTTP conversation's packets (no kernel).

    sudo python -m bench.firewall [--rounds 12] [--requests 10000] [--http 1000]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

from tests.root.podlab import Pod, PodLab

from bench.record import record
from kubeguard.cluster.podmap import PodMap
from kubeguard.response.firewall import Firewall
from kubeguard.response.inject import ACK, PSH, SYN, Injector, segment
from kubeguard.response.iptables import Chains, Marks
from kubeguard.response.queue import QueueReader

QUEUE = 4711

HTTP_SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        out = b'{"id": 42, "name": "shoe", "price": 59.9}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
    def address_string(self): return self.client_address[0]
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):  # no reverse DNS of its own address (a netns has no resolver)
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
srv = Server((sys.argv[1], 8080), H)
print("ready", flush=True)
srv.serve_forever()
"""

HTTP_CLIENT = r"""
import json, socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, 8080))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
lat = []
for i in range(n):
    req = (f"GET /api/v1/items/{i}?q=shoes&page={i % 7} HTTP/1.1\r\nHost: shop.example\r\n"
           "User-Agent: okhttp/4.12.0\r\nAccept: application/json\r\n\r\n").encode()
    t = time.perf_counter()
    s.sendall(req)
    length = 0
    while True:
        line = f.readline()
        if line == b"\r\n":
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    f.read(length)
    lat.append(time.perf_counter() - t)
lat.sort()
print(json.dumps({"p50": lat[len(lat) // 2] * 1e3, "p99": lat[int(len(lat) * 0.99)] * 1e3, "n": n}))
"""

UDP_BLAST = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[2])
payload = b"\x17\x00kubeguard-bench-unknown-protocol-payload"
n = 0
while time.monotonic() < end:
    for _ in range(200):
        s.sendto(payload, (sys.argv[1], 9999))
    n += 200
print(n)
"""


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    line = proc.stdout.readline() if proc.stdout else ""
    if "ready" not in line:
        raise RuntimeError(f"server did not start: {line!r}")


def _wait_port(pod: Pod, port: int) -> None:
    for _ in range(100):
        try:
            subprocess.run(["ip", "netns", "exec", pod.netns, sys.executable, "-c",
                            f"import socket; socket.create_connection(({pod.ip!r}, {port}), timeout=1)"],
                           check=True, capture_output=True, timeout=10)
            return
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {pod.ip}:{port}")


class InlineFirewall:
    """The firewall of `kubeguard firewall`, run in this process for one round."""

    def __init__(self, pods: PodMap, ips: set[str]) -> None:
        self.chains = Chains(QUEUE)
        self.fw = Firewall(pods, default_mode="protect", injector=Injector())
        self.fw.select(ips)
        self.fw.warm_up()
        self.reader = QueueReader(self.fw, QUEUE, Marks())
        self.chains.install(ips)
        self.thread = threading.Thread(target=self.reader.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.chains.remove()
        self.reader.stop()
        self.thread.join(timeout=10)


def redis_round(client: Pod, server: Pod, password: str, requests: int) -> dict[str, float]:
    out = client.run(["redis-benchmark", "-h", server.ip, "-p", "6379", "-a", password, "-t", "get", "-n",
                      str(requests), "-c", "50", "--csv"], timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()}")
    rows = [line.replace('"', "").split(",") for line in out.stdout.splitlines() if line.strip()]
    head, values = rows[0], rows[-1]
    row = dict(zip(head, values, strict=True))
    return {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]), "p99": float(row["p99_latency_ms"])}


def http_round(client: Pod, server: Pod, n: int) -> dict[str, float]:
    out = client.run([sys.executable, "-c", HTTP_CLIENT, server.ip, str(n)], timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"HTTP client failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def offline_verdicts(n_requests: int = 3000) -> float:
    """Packets/s of Firewall.verdict alone over an HTTP conversation (keep-alive, request + response)."""
    fw = Firewall(PodMap(), default_mode="protect")
    c, s = socket.inet_aton("10.1.0.5"), socket.inet_aton("10.1.0.9")
    fw.select({"10.1.0.9"})
    pkts = [segment(c, s, 40000, 8080, 100, 0, SYN), segment(s, c, 8080, 40000, 900, 101, SYN | ACK)]
    cseq, sseq = 101, 901
    for i in range(n_requests):
        req = (f"GET /api/v1/items/{i}?q=shoes HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: okhttp/4.12.0\r\n"
               "Accept: application/json\r\n\r\n").encode()
        resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{}\n\n\n"
        pkts.append(segment(c, s, 40000, 8080, cseq, sseq, ACK | PSH, req))
        cseq += len(req)
        pkts.append(segment(s, c, 8080, 40000, sseq, cseq, ACK | PSH, resp))
        sseq += len(resp)
        pkts.append(segment(c, s, 40000, 8080, cseq, sseq, ACK))
    began = time.perf_counter()
    for p in pkts:
        fw.verdict(p)
    return len(pkts) / (time.perf_counter() - began)


def _pct(a: float, b: float) -> str:
    return f"{(b / a - 1) * 100:+.1f} %"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests", type=int, default=10_000, help="redis-benchmark requests per run")
    parser.add_argument("--http", type=int, default=1000, help="HTTP requests per run")
    parser.add_argument("--no-record", action="store_true", help="Print only; do not rewrite docs/benchmarks.md.")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark", "iptables"):
        if shutil.which(tool) is None:
            print(f"bench.firewall: {tool} not found (scripts/setup-host.sh installs it)", file=sys.stderr)
            return 2
    lab = PodLab()
    inline = None
    try:
        servers = {"firewall": lab.pod("api-inline", namespace="shop", labels={"app": "api"}),
                   "direct": lab.pod("api-direct", namespace="shop", labels={"app": "api-direct"})}
        client = lab.pod("frontend", namespace="shop", labels={"app": "frontend"})
        password = secrets.token_hex(16)
        for server in servers.values():
            server.popen(["redis-server", "--bind", server.ip, "--port", "6379", "--save", "", "--appendonly", "no",
                          "--requirepass", password], stdout=subprocess.DEVNULL)
            _wait_port(server, 6379)
            _wait_ready(server.popen([sys.executable, "-c", HTTP_SERVER, server.ip], stdout=subprocess.PIPE,
                                     text=True))
        pods = PodMap.from_snapshot(lab.snapshot())
        inline = InlineFirewall(pods, {servers["firewall"].ip})
        results: dict[str, dict[str, list[dict[str, float]]]] = {"redis": {"direct": [], "firewall": []},
                                                                   "http": {"direct": [], "firewall": []}}
        for i in range(args.rounds):
            for kind in ("direct", "firewall") if i % 2 == 0 else ("firewall", "direct"):
                results["redis"][kind].append(redis_round(client, servers[kind], password, args.requests))
            for kind in ("direct", "firewall") if i % 2 == 0 else ("firewall", "direct"):
                results["http"][kind].append(http_round(client, servers[kind], args.http))
            print(f"round {i + 1}: redis {results['redis']['direct'][-1]} / {results['redis']['firewall'][-1]}; "
                  f"http {results['http']['direct'][-1]} / {results['http']['firewall'][-1]}", flush=True)
        inline.close()
        counters = inline.fw.counters.as_dict()
        inline = None
        blast = verdict_throughput(lab)
    finally:
        if inline is not None:
            inline.close()
        lab.close()
    offline = offline_verdicts()
    med = {bench: {kind: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                   for kind, runs in by_kind.items()} for bench, by_kind in results.items()}
    paired = {bench: {k: statistics.median(f[k] / d[k] for d, f in zip(by_kind["direct"], by_kind["firewall"],
                                                                         strict=True)) for k in ("p50", "p99")}
              for bench, by_kind in results.items()}
    r, h = med["redis"], med["http"]
    lines = [
        "## Inline firewall (`python -m bench.firewall`, root)",
        "",
        f"One client pod, two server pods (redis-server and an HTTP/1.1 server each) behind the root namespace's "
        f"FORWARD path, `kubeguard firewall`'s chains and queue reader running (mode protect) with one server "
        f"inline and the other not; {args.rounds} rounds, each one run against each server in alternating order; "
        "medians of the runs, and the median of the per-round ratios (same minute, same load).",
        "",
        "| workload | path | p50 ms | p99 ms | throughput | p50 vs direct (paired) | p99 vs direct (paired) |",
        "|---|---|---|---|---|---|---|",
        f"| redis-benchmark GET, 50 clients, {args.requests:,} req/run (connmark-bypassed once identified) | direct | "
        f"{r['direct']['p50']:.3f} | {r['direct']['p99']:.3f} | {r['direct']['rps']:,.0f} req/s | | |",
        f"| | firewall | {r['firewall']['p50']:.3f} | {r['firewall']['p99']:.3f} | {r['firewall']['rps']:,.0f} req/s "
        f"| {(paired['redis']['p50'] - 1) * 100:+.1f} % | {(paired['redis']['p99'] - 1) * 100:+.1f} % |",
        f"| HTTP/1.1 keep-alive, sequential, {args.http:,} req/run (every packet inspected) | direct | "
        f"{h['direct']['p50']:.3f} | {h['direct']['p99']:.3f} | | | |",
        f"| | firewall | {h['firewall']['p50']:.3f} | {h['firewall']['p99']:.3f} | | "
        f"{(paired['http']['p50'] - 1) * 100:+.0f} % ({paired['http']['p50']:.2f}x) | "
        f"{(paired['http']['p99'] - 1) * 100:+.0f} % ({paired['http']['p99']:.2f}x) |",
        "",
        "\"direct\" still passes the firewall's first chain (the server is not inline): the comparison is an inline, "
        "bypassed flow against a flow of a pod that is not inline, on the same node at the same time. Fully "
        "inspected HTTP pays a user-space round trip per packet (request, response and ACKs through NFQUEUE "
        "and the Python engine).",
        "",
        f"Verdict throughput: {blast['rate']:,.0f} packets/s answered by the queue reader under a UDP blast it must "
        f"inspect ({blast['verdicts']:,} verdicts in {blast['seconds']:.1f} s; {blast['sent']:,} sent, the rest "
        f"passed a full queue fail-open and were counted as bypassed); {offline:,.0f} packets/s for the engine and "
        "verdict logic alone on an HTTP keep-alive conversation (no kernel, one core).",
        "",
        f"Firewall counters over the latency runs: {counters}.",
    ]
    text = "\n".join(lines)
    print(text)
    print(f"redis p50 overhead (paired) {(paired['redis']['p50'] - 1) * 100:+.1f} % (goal <= +5 %)")
    if not args.no_record:
        record("firewall", text)
    return 0


def verdict_throughput(lab: PodLab, seconds: float = 3.0) -> dict[str, float]:
    sink = lab.pod("sink", namespace="shop")
    sender = lab.pod("sender", namespace="other")
    inline = InlineFirewall(PodMap.from_snapshot(lab.snapshot()), {sink.ip})
    try:
        before = inline.reader.received
        began = time.monotonic()
        out = sender.run([sys.executable, "-c", UDP_BLAST, sink.ip, str(seconds)], timeout=60)
        elapsed = time.monotonic() - began
        verdicts = inline.reader.received - before
    finally:
        inline.close()
    return {"rate": verdicts / elapsed, "verdicts": verdicts, "seconds": elapsed, "sent": int(out.stdout or 0)}


if __name__ == "__main__":
    sys.exit(main())
