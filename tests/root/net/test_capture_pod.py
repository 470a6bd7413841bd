"""`kubeguard capture --pod`: a real netns pod's traffic into pcapng, read back by Debian's tshark / capinfos."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from podlab import NODE_NAME, PodLab
from roothelpers import require

SERVE = """
import socket, sys
srv = socket.create_server((sys.argv[1], 9099))
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.recv(100)
    conn.sendall(b"pong\\n")
    conn.close()
"""
PING = """
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with socket.create_connection((sys.argv[1], 9099), timeout=5) as s:
        s.sendall(b"ping\\n")
        s.recv(100)
    time.sleep(0.05)
"""


def capture(pods: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kubeguard", "capture", "--pods", str(pods), *args],
                            stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("capture: "), line + proc.stderr.read()
    return line


def run_traffic(podlab: PodLab, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    tshark = shutil.which("tshark")
    require(tshark is not None and shutil.which("capinfos") is not None, "Debian's tshark (scripts/setup-host.sh)")
    web = podlab.pod("web", namespace="shop", labels={"app": "web"})
    client = podlab.pod("client", namespace="shop")
    server = web.popen([sys.executable, "-c", SERVE, web.ip], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    pods = podlab.write_pods(tmp_path / "pods.json")
    proc = capture(pods, "--pod", "shop/web", *args)
    ready = wait_ready(proc)
    pinger = client.popen([sys.executable, "-c", PING, web.ip])
    try:
        proc.wait(timeout=120)
    finally:
        pinger.kill()
        pinger.wait()
    assert proc.stderr is not None
    return proc, ready, proc.stderr.read()


def test_capture_of_a_pod_opens_in_tshark_with_pod_comments(podlab: PodLab, tmp_path: Path) -> None:
    out = tmp_path / "web.pcapng"
    proc, ready, rest = run_traffic(podlab, tmp_path, "--count", "40", "--filter", "tcp port 9099", "-w", str(out))
    assert proc.returncode == 0, rest
    assert "veth peer of the netns of pid" in ready
    assert "40 packets written" in rest
    web = podlab.pods[0]
    read = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.port"],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    assert len(lines) == 40
    assert all(web.ip in line and "9099" in line for line in lines)
    info = subprocess.run(["capinfos", str(out)], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "pcapng" in info.stdout
    assert "pod=shop/web" in info.stdout and "namespace=shop" in info.stdout and f"node={NODE_NAME}" in info.stdout
    assert "Description = pod shop/web" in info.stdout


def test_ring_buffer_keeps_the_newest_files(podlab: PodLab, tmp_path: Path) -> None:
    base = tmp_path / "ring.pcapng"
    proc, _ready, rest = run_traffic(podlab, tmp_path, "--count", "200", "--ring", "3", "--max-size", "0.004",
                                     "-w", str(base))
    assert proc.returncode == 0, rest
    files = sorted(tmp_path.glob("ring_*.pcapng"))
    assert len(files) == 3, rest
    assert files[-1].name.startswith("ring_") and int(files[-1].name.split("_")[1]) > 3  # older ones rotated out
    for file in files:
        assert file.stat().st_size <= 4000 + 2000
        read = subprocess.run(["tshark", "-r", str(file)], capture_output=True, text=True, timeout=120)
        assert read.returncode == 0 and read.stdout.strip(), read.stderr
