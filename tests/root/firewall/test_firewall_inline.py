"""The inline firewall as root, end to end: real servers and clients in test pods, `kubeguard firewall`
between them (NFQUEUE), verdicts proven by what the servers themselves received."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.dpi_corpus import _request
from fwlab import HTTP_CLIENT, PYTHON, REPO, FirewallProcess, iptables_rules, start_http_server, wait_line
from podlab import PodLab
from roothelpers import require
from tests.net.detect.test_detect_http import ATTACKS, BENIGN, CMDI, CODE, LOG4SHELL, SQLI, SSRF, TRAVERSAL, XXE

from kubeguard.net.types import HttpRequest

pytestmark = pytest.mark.root

BENIGN_COUNT = 1200
PER_CONNECTION = 40


def _wire(req: HttpRequest, rid: str) -> list[object]:
    headers = [(k, v) for k, v in req.headers if k.lower() not in ("host", "content-length")]
    return [req.method, req.uri, headers, req.body.decode("latin-1"), rid]


def _benign(n: int) -> list[list[object]]:
    rng = random.Random(14)
    out = [_wire(req, f"b{i}") for i, req in enumerate(BENIGN)]
    while len(out) < n:
        method, uri, body, attack = _request(rng, 0.0)
        assert not attack
        headers = [("User-Agent", rng.choice(["curl/8.5.0", "okhttp/4.12.0", "Go-http-client/1.1"]))]
        if body:
            headers.append(("Content-Type", "application/json"))
        out.append([method, uri, headers, body.decode("latin-1"), f"b{len(out)}"])
    return out


def _send(client, server_ip: str, port: int, reqs: list[list[object]], tmp_path: Path, name: str,
          per_conn: int) -> dict[str, dict[str, object]]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(reqs))
    done = client.run([PYTHON, "-c", HTTP_CLIENT, server_ip, str(port), str(path), str(per_conn)], timeout=600)
    assert done.returncode == 0, done.stderr
    answers = {}
    for line in done.stdout.splitlines():
        rec = json.loads(line)
        answers[rec["id"]] = rec
    return answers


def _server_ids(log: Path) -> set[str]:
    return {line.split()[1] for line in log.read_text().splitlines()} if log.exists() else set()


def test_attacks_get_403_and_never_reach_the_server_benign_all_pass(podlab: PodLab, tmp_path: Path) -> None:
    web = podlab.pod("web", namespace="shop", labels={"app": "web"})
    client = podlab.pod("client", namespace="shop", labels={"app": "client"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    log = tmp_path / "server.log"
    start_http_server(web, 8080, log)
    fw = FirewallProcess(tmp_path, pods, "--selector", "app=web", "--mode", "protect")
    try:
        assert fw.chain in iptables_rules()
        attacks = [_wire(req, f"a{i}") for i, (_rule, req) in enumerate(ATTACKS)]
        answers = _send(client, web.ip, 8080, attacks, tmp_path, "attacks", per_conn=1)
        benign = _benign(BENIGN_COUNT)
        benign_answers = _send(client, web.ip, 8080, benign, tmp_path, "benign", per_conn=PER_CONNECTION)
    finally:
        assert fw.stop() == 0, fw.err
    assert fw.chain not in iptables_rules()
    seen = _server_ids(log)
    # every attack request: an HTTP 403 from the firewall, and the server never completed it
    not_forbidden = {rid: a for rid, a in answers.items() if a.get("status") != 403}
    assert not not_forbidden, not_forbidden
    assert len(answers) == len(ATTACKS)
    assert not {f"a{i}" for i in range(len(ATTACKS))} & seen
    # every benign request answered 200 by the server itself: 0 false blocks
    assert len(benign_answers) == len(benign) >= 1000
    bad = {rid: a for rid, a in benign_answers.items() if a.get("status") != 200}
    assert not bad, list(bad.items())[:5]
    assert {r[4] for r in benign} <= seen
    alerts = fw.alerts()
    blocked = [a for a in alerts if a["output_fields"].get("firewall.action") == "blocked"]
    assert len({a["output_fields"]["fd.cport"] for a in blocked}) == len(ATTACKS)
    rules = {a["rule"] for a in blocked}
    assert {SQLI, CMDI, CODE, XXE, TRAVERSAL, LOG4SHELL, SSRF} <= rules, {a["rule"] for a in alerts}
    assert all(a["output_fields"]["k8s.pod.name"] == "web" for a in blocked)
    assert "0 errors" in fw.err and f"{len(ATTACKS)} flows blocked ({len(ATTACKS)} with HTTP 403)" in fw.err


def test_monitor_mode_alerts_and_lets_the_attack_through(podlab: PodLab, tmp_path: Path) -> None:
    web = podlab.pod("web", namespace="shop", labels={"app": "web"})
    client = podlab.pod("client", namespace="shop")
    pods = podlab.write_pods(tmp_path / "pods.json")
    log = tmp_path / "server.log"
    start_http_server(web, 8080, log)
    fw = FirewallProcess(tmp_path, pods, "--namespace", "shop", "--mode", "monitor")
    try:
        rule, req = ATTACKS[0]
        answers = _send(client, web.ip, 8080, [_wire(req, "m0")], tmp_path, "monitor", per_conn=1)
    finally:
        assert fw.stop() == 0, fw.err
    assert answers["m0"]["status"] == 200 and "m0" in _server_ids(log)
    alerts = [a for a in fw.alerts() if a["rule"] == rule]
    assert alerts and alerts[0]["output_fields"]["firewall.action"] == "alert"
    assert alerts[0]["output_fields"]["firewall.mode"] == "monitor"


ALLOW_LIST = """
policies:
  - name: miner-https-only
    namespace: mining
    endpointSelector: {matchLabels: {app: miner}}
    mode: protect
    egress:
      - toCIDR: [0.0.0.0/0]
        toPorts:
          - ports: [{port: "8443"}, {port: "443"}]
            protocols: [https]
"""

POOL = r"""
import socket, ssl, sys, threading
log = open(sys.argv[3], "a", buffering=1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[4], sys.argv[5])
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
def serve(conn):
    conn.settimeout(10)
    try:
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b"\x16":
            tls = ctx.wrap_socket(conn, server_side=True)
            data = tls.recv(4096)
            log.write(f"tls {data[:40]!r}\n")
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            tls.close()
            return
        data = conn.recv(4096)
        log.write(f"raw {len(data)} {data[:60]!r}\n")
        if data:
            conn.sendall(b'{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a"]],"08000002",4],"error":null}\n')
    except OSError as exc:
        log.write(f"error {type(exc).__name__}\n")
    conn.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

MINER = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b'{"id":1,"method":"mining.subscribe","params":["xmrig/6.21.0"]}\n')
try:
    got = s.recv(4096)
    print("answer", len(got), flush=True)
except OSError as exc:
    print("error", type(exc).__name__, flush=True)
"""

TLS_CLIENT = r"""
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as raw:
    with ctx.wrap_socket(raw) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: pool\r\n\r\n")
        print("answer", s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
"""

SSH_SERVER = r"""
import socket, sys
log = open(sys.argv[3], "a", buffering=1)
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    c.settimeout(10)
    try:
        c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
        log.write(f"banner sent, got {c.recv(4096)[:40]!r}\n")
    except OSError as exc:
        log.write(f"error {type(exc).__name__}\n")
    c.close()
"""

SSH_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
try:
    got = s.recv(4096)
    print("answer", got[:40], flush=True)
except OSError as exc:
    print("error", type(exc).__name__, flush=True)
"""


@pytest.fixture
def allow_lab(podlab: PodLab, tmp_path: Path):
    require(subprocess.run(["openssl", "version"], capture_output=True).returncode == 0, "openssl")
    miner = podlab.pod("xmrig-7f9", namespace="mining", labels={"app": "miner"})
    pool = podlab.pod("pool", namespace="outside", labels={"app": "pool"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=pool", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    logs = {"pool": tmp_path / "pool.log", "ssh": tmp_path / "ssh.log"}
    server = pool.popen([PYTHON, "-c", POOL, pool.ip, "8443", str(logs["pool"]), str(cert), str(key)],
                        stdout=subprocess.PIPE, text=True)
    wait_line(server, "stdout", "ready")
    ssh = pool.popen([PYTHON, "-c", SSH_SERVER, pool.ip, "443", str(logs["ssh"])], stdout=subprocess.PIPE, text=True)
    wait_line(ssh, "stdout", "ready")
    (tmp_path / "allow.yaml").write_text(ALLOW_LIST)
    fw = FirewallProcess(tmp_path, pods, "--allow-list", str(tmp_path / "allow.yaml"))
    try:
        yield miner, pool, fw, logs
    finally:
        fw.stop()
        assert fw.chain not in iptables_rules()


def test_stratum_on_8443_blocked_at_its_first_json_rpc_packet_https_passes(allow_lab) -> None:
    miner, pool, fw, logs = allow_lab
    ok = miner.run([PYTHON, "-c", TLS_CLIENT, pool.ip, "8443"])
    assert "answer HTTP/1.1 200 OK" in ok.stdout, ok.stdout + ok.stderr
    mined = miner.run([PYTHON, "-c", MINER, pool.ip, "8443"])
    assert mined.stdout.startswith("error ConnectionResetError"), mined.stdout + mined.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and logs["pool"].read_text().count("\n") < 2:
        time.sleep(0.1)
    lines = logs["pool"].read_text().splitlines()
    assert lines[0].startswith("tls b'GET / HTTP/1.1")
    # the pool never received one byte of JSON-RPC: its read ended with the reset
    assert lines[1] in ("raw 0 b''", "error ConnectionResetError"), lines
    assert fw.stop() == 0, fw.err
    violations = [a for a in fw.alerts() if a["rule"] == "Firewall policy violation"]
    assert len(violations) == 1, fw.alerts()
    fields = violations[0]["output_fields"]
    assert fields["firewall.action"] == "blocked" and fields["net.proto"] == "stratum"
    assert fields["fd.sport"] == 8443 and fields["k8s.pod.name"] == "xmrig-7f9"
    assert "protocol stratum not allowed" in violations[0]["output"]
    # the first JSON-RPC packet was the one dropped: the firewall saw one client data packet on that flow
    assert fields["firewall.policy"] == "miner-https-only"


def test_ssh_banner_on_443_is_blocked(allow_lab) -> None:
    miner, pool, fw, _logs = allow_lab
    got = miner.run([PYTHON, "-c", SSH_CLIENT, pool.ip, "443"])
    assert "SSH-" not in got.stdout and got.stdout.startswith(("error ConnectionResetError", "answer b''")), got.stdout
    assert fw.stop() == 0, fw.err
    violations = [a for a in fw.alerts() if a["rule"] == "Firewall policy violation"]
    assert violations and violations[0]["output_fields"]["net.proto"] == "ssh"
    assert violations[0]["output_fields"]["firewall.action"] == "blocked"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_rules_removed_on_signal(podlab: PodLab, tmp_path: Path, sig: int) -> None:
    podlab.pod("web", namespace="shop")
    pods = podlab.write_pods(tmp_path / "pods.json")
    before = iptables_rules()
    fw = FirewallProcess(tmp_path, pods, "--namespace", "shop")
    during = iptables_rules()
    assert f"-A FORWARD -j {fw.chain}" in during and f"-A {fw.chain}-QUEUE -j NFQUEUE" in during
    assert fw.stop(sig) == 0, fw.err
    assert "rules removed" in fw.err
    after = iptables_rules()
    assert fw.chain not in after
    assert sorted(after.splitlines()) == sorted(line for line in before.splitlines() if fw.chain not in line)


def test_killed_run_leaves_rules_that_cleanup_removes(podlab: PodLab, tmp_path: Path) -> None:
    podlab.pod("web", namespace="shop")
    pods = podlab.write_pods(tmp_path / "pods.json")
    fw = FirewallProcess(tmp_path, pods, "--namespace", "shop")
    fw.stop(signal.SIGKILL)
    assert fw.chain in iptables_rules()  # SIGKILL cannot be caught: --cleanup is the way out
    done = subprocess.run([sys.executable, "-m", "kubeguard", "firewall", "--cleanup", "--queue-num", str(fw.queue)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 0, done.stderr
    assert fw.chain not in iptables_rules()


UDP_SINK = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(3)
print("ready", flush=True)
n = 0
try:
    while True:
        s.recv(2048)
        n += 1
        if n == 1 or n % 100 == 0:
            print("got", n, flush=True)
except socket.timeout:
    print("total", n, flush=True)
"""
UDP_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(b"x%06d" % i, (sys.argv[1], 9999))
"""


def test_fail_open_counts_and_alerts_packets_that_pass_a_full_queue(podlab: PodLab, tmp_path: Path) -> None:
    sink_pod = podlab.pod("sink", namespace="shop")
    sender = podlab.pod("sender", namespace="other")
    pods = podlab.write_pods(tmp_path / "pods.json")
    fw = FirewallProcess(tmp_path, pods, "--namespace", "shop")
    sink = sink_pod.popen([PYTHON, "-c", UDP_SINK, sink_pod.ip], stdout=subprocess.PIPE, text=True)
    wait_line(sink, "stdout", "ready")
    fw.proc.send_signal(signal.SIGSTOP)  # the engine is stalled: the kernel's queue fills
    try:
        sent = sender.run([PYTHON, "-c", UDP_SEND, sink_pod.ip, "10000"])
        assert sent.returncode == 0, sent.stderr
        wait_line(sink, "stdout", "got", timeout=30)  # with the reader stopped, only fail-open lets these through
    finally:
        fw.proc.send_signal(signal.SIGCONT)
    total_line = wait_line(sink, "stdout", "total", timeout=60)  # the queue drained after SIGCONT
    received = int(total_line.split()[1])
    assert fw.stop() == 0, fw.err  # the bypass counter's last count runs at exit
    bypass = [a for a in fw.alerts() if a["rule"] == "Firewall fail-open bypass"]
    assert bypass, fw.out[-2000:] + fw.err
    bypassed = max(a["output_fields"]["firewall.bypassed_total"] for a in bypass)
    inspected = int(re.search(r"firewall: (\d+) packets", fw.err).group(1))  # type: ignore[union-attr]
    # every datagram the sink got was either answered by the reader or counted as bypassed
    assert bypassed >= 1 and bypassed + inspected >= received, (bypassed, inspected, received)
    assert fw.chain not in iptables_rules()


RESP_SERVER = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 6379))
print("ready", flush=True)
c, _ = srv.accept()
f = c.makefile("rb")
while True:
    line = f.readline()
    if not line:
        break
    if line.startswith(b"*"):
        for _ in range(int(line[1:]) * 2):
            f.readline()
        c.sendall(b"+PONG\r\n")
"""
RESP_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 6379), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range(int(sys.argv[2])):
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert s.recv(64) == b"+PONG\r\n"
print("done", flush=True)
"""


def _rule_packets(chain: str, needle: str) -> int:
    out = subprocess.run(["iptables", "-w", "5", "-L", chain, "-v", "-x", "-n"], capture_output=True, text=True,
                         check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if needle in line and line.split()[0].isdigit())


def test_decided_flow_leaves_the_queue_connmark_bypass(podlab: PodLab, tmp_path: Path) -> None:
    server = podlab.pod("cache", namespace="shop", labels={"app": "cache"})
    client = podlab.pod("web", namespace="shop", labels={"app": "web"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    proc = server.popen([PYTHON, "-c", RESP_SERVER, server.ip], stdout=subprocess.PIPE, text=True)
    wait_line(proc, "stdout", "ready")
    fw = FirewallProcess(tmp_path, pods, "--selector", "app=cache", "--mode", "protect")
    try:
        done = client.run([PYTHON, "-c", RESP_CLIENT, server.ip, "500"], timeout=60)
        assert done.stdout.strip() == "done", done.stderr
        queued = _rule_packets(f"{fw.chain}-QUEUE", "NFQUEUE")
        bypassed = _rule_packets(fw.chain, "connmark match  0x200000/0x200000")
    finally:
        assert fw.stop() == 0, fw.err
    # 500 request/answer pairs (>= 1,000 packets, plus ACKs); only the handshake and the first command were queued
    assert queued <= 12, queued
    assert bypassed >= 990, bypassed
    assert "1 flows bypassed" in fw.err


def test_fail_closed_drops_what_the_queue_cannot_take(podlab: PodLab, tmp_path: Path) -> None:
    sink_pod = podlab.pod("sink", namespace="shop")
    sender = podlab.pod("sender", namespace="other")
    pods = podlab.write_pods(tmp_path / "pods.json")
    fw = FirewallProcess(tmp_path, pods, "--namespace", "shop", "--fail-closed")
    sink = sink_pod.popen([PYTHON, "-c", UDP_SINK, sink_pod.ip], stdout=subprocess.PIPE, text=True)
    wait_line(sink, "stdout", "ready")
    fw.proc.send_signal(signal.SIGSTOP)
    try:
        sent = sender.run([PYTHON, "-c", UDP_SEND, sink_pod.ip, "10000"])
        assert sent.returncode == 0, sent.stderr
    finally:
        fw.proc.send_signal(signal.SIGCONT)
    received = int(wait_line(sink, "stdout", "total", timeout=60).split()[1])
    assert fw.stop() == 0, fw.err
    # nothing passed uninspected: the sink got only what the reader answered (at most the queue's 8,192);
    # the rest was dropped, counted and alerted
    inspected = int(re.search(r"firewall: (\d+) packets", fw.err).group(1))  # type: ignore[union-attr]
    assert received <= inspected <= 8192 + 100, (received, fw.err)
    assert not [a for a in fw.alerts() if a["rule"] == "Firewall fail-open bypass"]
    drops = [a for a in fw.alerts() if a["rule"] == "Firewall fail-closed drop"]
    assert drops and max(a["output_fields"]["firewall.dropped_total"] for a in drops) >= 1


HTTP_RULES = """
policies:
  - name: web-api
    namespace: shop
    endpointSelector: {matchLabels: {app: web}}
    mode: protect
    ingress:
      - fromEndpoints: [{matchLabels: {app: client}}]
        toPorts:
          - ports: [{port: "8080"}]
            rules:
              http:
                - {method: GET, path: "/api/.*"}
                - {method: POST, path: /api/orders, host: "shop\\\\.example"}
"""


def test_http_rules_of_the_allow_list(podlab: PodLab, tmp_path: Path) -> None:
    web = podlab.pod("web", namespace="shop", labels={"app": "web"})
    client = podlab.pod("client", namespace="shop", labels={"app": "client"})
    other = podlab.pod("other", namespace="shop", labels={"app": "other"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    log = tmp_path / "server.log"
    start_http_server(web, 8080, log)
    (tmp_path / "allow.yaml").write_text(HTTP_RULES)
    fw = FirewallProcess(tmp_path, pods, "--allow-list", str(tmp_path / "allow.yaml"))
    try:
        reqs = [["GET", "/api/items/7", [], "", "ok-get"], ["POST", "/api/orders", [], '{"sku": 1}', "ok-post"],
                ["DELETE", "/api/items/7", [], "", "no-delete"], ["GET", "/admin", [], "", "no-admin"]]
        answers = _send(client, web.ip, 8080, reqs, tmp_path, "rules", per_conn=1)
        (tmp_path / "peer.json").write_text(json.dumps([["GET", "/api/items/7", [], "", "no-peer"]]))
        from_other = other.run([PYTHON, "-c", HTTP_CLIENT, web.ip, "8080", str(tmp_path / "peer.json"), "1"])
    finally:
        assert fw.stop() == 0, fw.err
    assert {k: v.get("status") for k, v in answers.items()} == {
        "ok-get": 200, "ok-post": 200, "no-delete": 403, "no-admin": 403}
    assert "ConnectionRefusedError" in from_other.stderr  # reset at its SYN: not a peer the policy names
    assert _server_ids(log) == {"ok-get", "ok-post"}
    reasons = [a["output"] for a in fw.alerts() if a["rule"] == "Firewall policy violation"]
    assert any("HTTP DELETE /api/items/7" in r for r in reasons) and any("ingress from shop/other" in r
                                                                         for r in reasons), reasons


NETPOL = """
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


def test_networkpolicy_denied_connection_is_reset(podlab: PodLab, tmp_path: Path) -> None:
    web = podlab.pod("web", namespace="shop", labels={"app": "web"})
    client = podlab.pod("client", namespace="shop", labels={"app": "client"})
    other = podlab.pod("other", namespace="shop", labels={"app": "other"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    log = tmp_path / "server.log"
    start_http_server(web, 8080, log)
    (tmp_path / "netpol.yaml").write_text(NETPOL)
    fw = FirewallProcess(tmp_path, pods, "--selector", "app=web", "--mode", "protect",
                         "--netpol", str(tmp_path / "netpol.yaml"))
    try:
        (tmp_path / "r.json").write_text(json.dumps([["GET", "/api/items/7", [], "", "from-client"]]))
        ok = _send(client, web.ip, 8080, json.loads((tmp_path / "r.json").read_text()), tmp_path, "c", 1)
        (tmp_path / "o.json").write_text(json.dumps([["GET", "/api/items/7", [], "", "from-other"]]))
        refused = other.run([PYTHON, "-c", HTTP_CLIENT, web.ip, "8080", str(tmp_path / "o.json"), "1"])
    finally:
        assert fw.stop() == 0, fw.err
    assert ok["from-client"]["status"] == 200
    assert "ConnectionRefusedError" in refused.stderr
    assert _server_ids(log) == {"from-client"}
    denied = [a for a in fw.alerts() if a["rule"] == "Firewall policy violation"]
    assert len(denied) == 1 and denied[0]["output_fields"]["firewall.policy"] == "shop/web-from-client"
