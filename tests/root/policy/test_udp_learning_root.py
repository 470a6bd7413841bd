"""Unconnected UDP learned end to end with real pods: a pod that sends datagrams with sendto() (no connect) to a
peer pod in discover keeps sending to it in protect, while a sendto() to a peer it never sent to alerts once in
monitor and gets EPERM in protect (the cgroup sendmsg4 program), and that peer receives nothing then."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agentlab import describe
from podlab import PodLab
from test_policy_root import kubeguard, start_agent, wait_deviation, wait_line

from kubeguard.policy.policy_engine import RULE_EGRESS

pytestmark = pytest.mark.root
PYTHON = os.path.realpath(sys.executable)
PORT = 5353
# The receiver: prints one line per datagram received.
RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, _ = s.recvfrom(256)
    print(data.decode(), flush=True)
"""
# The learned sender: one unconnected socket, a sendto() every 0.2 s; prints "ok N" or "errno E" per send.
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
while True:
    n += 1
    try:
        s.sendto(b"beat %d" % n, (sys.argv[1], int(sys.argv[2])))
        print("ok", n, flush=True)
    except OSError as exc:
        print("errno", exc.errno, flush=True)
    time.sleep(0.2)
"""
# One sendto() from a fresh unconnected socket: prints "sent" or "errno E".
SEND_ONCE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    print("sent")
except OSError as exc:
    print("errno", exc.errno)
"""


class Lines:
    """The stdout lines of a process, collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.strip())

    def wait_more(self, count: int, timeout: float = 60) -> None:
        target = len(self.lines) + count
        deadline = time.monotonic() + timeout
        while len(self.lines) < target:
            assert time.monotonic() < deadline, f"stalled at {len(self.lines)} lines"
            time.sleep(0.2)


def test_unconnected_udp_peer_is_learned_and_a_new_one_refused(podlab: PodLab, tmp_path: Path) -> None:
    sender = podlab.pod("beacon-6c7d8-abcde", namespace="udp", labels={"app": "beacon", "pod-template-hash": "6c7d8"},
                        owner=("ReplicaSet", "beacon-6c7d8"))
    peer, newpeer = podlab.pod("collector", namespace="udp"), podlab.pod("stranger", namespace="udp")
    pods = podlab.write_pods(tmp_path / "pods.json")
    policy_dir = tmp_path / "policies"
    received = Lines(peer.popen([PYTHON, "-c", RECEIVER, peer.ip, str(PORT)], stdout=subprocess.PIPE, text=True))
    stranger_got = Lines(newpeer.popen([PYTHON, "-c", RECEIVER, newpeer.ip, str(PORT)], stdout=subprocess.PIPE,
                                       text=True))
    agent = start_agent(tmp_path / "agent", pods, policy_dir)
    try:
        sent = Lines(sender.popen([PYTHON, "-c", SENDER, peer.ip, str(PORT)], stdout=subprocess.PIPE, text=True))
        received.wait_more(3)
        wait_line(agent, "udp/Deployment/beacon promoted to monitor")

        # monitor: a sendto() to a new peer goes through and raises exactly one alert
        once = sender.run([PYTHON, "-c", SEND_ONCE, newpeer.ip, str(PORT), "monitor"], timeout=60)
        assert once.stdout.strip() == "sent", once.stderr
        found = wait_deviation(agent, sender, f"{newpeer.ip}:{PORT}")
        assert len(found) == 1, describe(found)
        assert found[0]["rule"] == RULE_EGRESS
        assert found[0]["output_fields"]["policy.deviation"] == f"egress UDP {newpeer.ip}:{PORT} (udp/Pod/stranger)"
        assert found[0]["output_fields"]["policy.action"] == "alert"

        # protect: the new peer is refused in the kernel, the learned one keeps receiving
        done = kubeguard("policy", "mode", "udp/Deployment/beacon", "protect", "--policy-dir", str(policy_dir))
        assert done.returncode == 0, done.stderr
        wait_line(agent, "udp/Deployment/beacon protect enforced on 1 container(s)")
        received.wait_more(5)
        stranger_before = list(stranger_got.lines)
        once = sender.run([PYTHON, "-c", SEND_ONCE, newpeer.ip, str(PORT), "protect"], timeout=60)
        assert once.stdout.strip() == "errno 1", once.stdout + once.stderr  # EPERM from sendmsg4
        sent.wait_more(10)
        received.wait_more(3)
        assert "protect" not in stranger_got.lines and stranger_got.lines == stranger_before, stranger_got.lines
        assert stranger_before == ["monitor"], stranger_before
    finally:
        summary = agent.stop()
    failures = [line for line in sent.lines if not line.startswith("ok ")]
    assert failures == [] and len(sent.lines) >= 20, (failures, len(sent.lines))  # 0 false blocks, counted
    assert summary.get("queue_drops", 0) == 0
