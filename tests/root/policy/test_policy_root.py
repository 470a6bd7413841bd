"""Workload policies end to end with real pods: a real HTTP service and an exec probe are learned in
discover, deviations alert once each in monitor, and in protect they are blocked in the kernel
while the learned traffic and the probe keep working (0 false blocks); policies survive a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from agentlab import REPO, AgentProcess, describe
from podlab import Pod, PodLab
from roothelpers import require

from kubeguard.policy.policy_engine import RULE_EGRESS, RULE_FILE, RULE_PROCESS

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
PYTHON = os.path.realpath(sys.executable)
SERVER = """
import http.server, socketserver, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
with socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), Handler) as server:
    server.serve_forever()
"""
CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(10)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as exc:
    print("errno", exc.errno)
"""
WRITE = """
import sys
try:
    with open(sys.argv[1], "a") as f:
        f.write("changed\\n")
    print("written")
except OSError as exc:
    print("errno", exc.errno)
"""
READ = """
import sys
try:
    with open(sys.argv[1]) as f:
        f.read()
    print("read")
except OSError as exc:
    print("errno", exc.errno)
"""
POLICY_RULES = (RULE_PROCESS, RULE_FILE, RULE_EGRESS, "Policy deviation: ingress")


class Traffic:
    """The learned behaviour, over and over: a client pod GETs the web pod, an exec probe in the web pod."""

    def __init__(self, web: Pod, client: Pod) -> None:
        self.web, self.client = web, client
        self.rounds = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.round()
            self._stop.wait(0.3)

    def round(self) -> None:
        got = self.client.run(["curl", "-sS", "-m", "20", f"http://{self.web.ip}:8080/"], timeout=60)
        if got.returncode != 0 or got.stdout != "ok":
            self.failures.append(f"client GET: rc={got.returncode} {got.stdout!r} {got.stderr.strip()!r}")
        probe = self.web.run(["cat", "/etc/hostname"], timeout=60)
        if probe.returncode != 0:
            self.failures.append(f"probe: rc={probe.returncode} {probe.stderr.strip()!r}")
        for lookup in (["id", "-un"], ["getent", "ahostsv4", "localhost"]):  # passwd, hosts lookups (nsswitch)
            got = self.web.run(lookup, timeout=60)
            if got.returncode != 0 or not got.stdout.strip():
                self.failures.append(f"{lookup[0]}: rc={got.returncode} {got.stderr.strip()!r}")
        self.rounds += 1

    def wait_rounds(self, count: int, timeout: float = 120) -> None:
        target = self.rounds + count
        deadline = time.monotonic() + timeout
        while self.rounds < target and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.rounds >= target, "background traffic stalled"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def wait_line(agent: AgentProcess, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in agent.stderr():
        assert agent.proc.poll() is None, agent.stderr()
        assert time.monotonic() < deadline, f"no {text!r} in the agent's stderr:\n{agent.stderr()}"
        time.sleep(0.2)


def deviations(agent: AgentProcess, container_id: str) -> list[dict[str, Any]]:
    return [a for a in agent.alerts_for(container_id) if a["rule"] in POLICY_RULES]


def wait_deviation(agent: AgentProcess, pod: Pod, needle: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The policy alerts of `pod` whose deviation mentions `needle` (waits for the first, then 2 s more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [a for a in deviations(agent, pod.container_id) if needle in a["output_fields"]["policy.deviation"]]
        if found:
            time.sleep(2)  # a second alert for the same deviation would come within this
            return [a for a in deviations(agent, pod.container_id)
                    if needle in a["output_fields"]["policy.deviation"]]
        time.sleep(0.2)
    return []


def kubeguard(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "kubeguard", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def start_agent(work: Path, pods: Path, policy_dir: Path,
                extra: Sequence[str] = ("--quiet-window", "6")) -> AgentProcess:
    require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor and the exec guard)")
    try:
        return AgentProcess.start(work, pods, extra=["--policy-dir", str(policy_dir), *extra])
    except RuntimeError as exc:
        require(False, f"a running agent ({exc})")
        raise


def test_discover_monitor_protect_with_a_real_service(podlab: PodLab, tmp_path: Path, exec_guard_backend: str) -> None:
    require(shutil.which("curl") is not None and shutil.which("nc") is not None, "curl and nc")
    web = podlab.pod("web-5d9c7f-abcde", namespace="shop", labels={"app": "web", "pod-template-hash": "5d9c7f"},
                     owner=("ReplicaSet", "web-5d9c7f"))
    client = podlab.pod("client-7f8d9-xyz12", namespace="shop", labels={"app": "client", "pod-template-hash": "7f8d9"},
                        owner=("ReplicaSet", "client-7f8d9"))
    outsider = podlab.pod("outsider", namespace="other")
    pods = podlab.write_pods(tmp_path / "pods.json")
    policy_dir = tmp_path / "policies"
    drop = Path(tempfile.mkdtemp(prefix="kgp", dir="/tmp"))  # short: the sensor keeps 64 bytes of a path
    etc_file = Path("/etc") / f"kubeguard-policy-test-{os.getpid()}-{web.container_id[:8]}"
    etc_file.write_text("original\n")
    etc_secret = Path("/etc") / f"kubeguard-policy-read-{os.getpid()}-{web.container_id[:8]}"
    etc_secret.write_text("secret\n")
    outsider.popen([PYTHON, "-c", SERVER, outsider.ip, "9090"])
    client.popen(["sleep", "100000"])  # the client container's main process (a real container always has one)
    agent = start_agent(tmp_path / "agent", pods, policy_dir)
    traffic = Traffic(web, client)
    try:
        # discover: the service's own start, its clients, the probe
        web.popen([PYTHON, "-c", SERVER, web.ip, "8080"])
        deadline = time.monotonic() + 60
        while web.run(["curl", "-s", "-m", "5", f"http://{web.ip}:8080/"]).stdout != "ok":
            assert time.monotonic() < deadline, "web server did not answer"
            time.sleep(0.3)
        traffic.start()
        wait_line(agent, "shop/Deployment/web promoted to monitor")
        wait_line(agent, "shop/Deployment/client promoted to monitor")
        traffic.wait_rounds(2)
        assert deviations(agent, web.container_id) == [], describe(deviations(agent, web.container_id))

        # monitor: each deviation raises exactly one alert, nothing is blocked
        shutil.copy("/usr/bin/touch", drop / "dropper")
        assert web.run([str(drop / "dropper"), str(drop / "marker-monitor")]).returncode == 0
        assert (drop / "marker-monitor").exists()
        assert web.run(["nc", "-h"]).returncode in (0, 1)
        assert web.run([PYTHON, "-c", CONNECT, outsider.ip, "9090"]).stdout.strip() == "connected"
        assert web.run([PYTHON, "-c", WRITE, str(etc_file)]).stdout.strip() == "written"
        for needle, rule in ((str(drop / "dropper"), RULE_PROCESS), ("/usr/bin/nc", RULE_PROCESS),
                             (f"{outsider.ip}:9090", RULE_EGRESS), (f"write {etc_file}", RULE_FILE)):
            found = wait_deviation(agent, web, needle)
            assert len(found) == 1, f"{needle}: {describe(found)}"
            alert = found[0]
            assert alert["rule"] == rule
            fields = alert["output_fields"]
            assert fields["policy.workload"] == "shop/Deployment/web" and fields["policy.mode"] == "monitor"
            assert fields["policy.action"] == "alert" and fields["k8s.pod.name"] == web.name
            assert any(t.startswith("T") for t in alert["tags"])
        assert len(deviations(agent, web.container_id)) == 4, describe(deviations(agent, web.container_id))
        assert deviations(agent, client.container_id) == [], describe(deviations(agent, client.container_id))

        # protect: the same deviations are blocked in the kernel; learned traffic goes on
        for workload in ("shop/Deployment/web", "shop/Deployment/client"):
            done = kubeguard("policy", "mode", workload, "protect", "--policy-dir", str(policy_dir))
            assert done.returncode == 0, done.stderr
        wait_line(agent, "shop/Deployment/web protect enforced on 1 container(s)")
        wait_line(agent, "shop/Deployment/client protect enforced on 1 container(s)")
        wait_line(agent, f"exec guard: {exec_guard_backend} program")
        traffic.wait_rounds(2)
        run = web.run([str(drop / "dropper"), str(drop / "marker-protect")])
        assert run.returncode == -9 and not (drop / "marker-protect").exists()
        assert web.run(["nc", "-h"]).returncode == -9
        assert web.run([PYTHON, "-c", CONNECT, outsider.ip, "9090"]).stdout.strip() == "errno 1"  # EPERM
        blocked = wait_deviation(agent, web, f"{outsider.ip}:9090")
        assert [a["output_fields"]["policy.action"] for a in blocked] == ["alert", "blocked"], describe(blocked)
        assert web.run([PYTHON, "-c", WRITE, str(etc_file)]).stdout.strip() == "errno 1"  # EPERM from fanotify
        assert web.run([PYTHON, "-c", READ, str(etc_secret)]).stdout.strip() == "errno 1"  # a read never learned
        assert web.run([PYTHON, "-c", READ, "/etc/hostname"]).stdout.strip() == "read"  # a learned one
        assert etc_file.read_text() == "original\nchanged\n"  # only monitor's write got through
        denied = wait_deviation(agent, web, f"write {etc_file}")
        assert [a["output_fields"]["policy.action"] for a in denied] == ["alert", "blocked"], describe(denied)
        dropped = wait_deviation(agent, web, str(drop / "dropper"))
        assert [a["output_fields"]["policy.action"] for a in dropped] == ["alert", "blocked"]
        traffic.wait_rounds(3)
    finally:
        traffic.stop()
        summary = agent.stop()
        etc_file.unlink(missing_ok=True)
        etc_secret.unlink(missing_ok=True)
        shutil.rmtree(drop, ignore_errors=True)
    assert traffic.failures == [], traffic.failures  # 0 false blocks over the whole test
    assert summary.get("queue_drops", 0) == 0
    denied = sorted(line.split("denied: ", 1)[1].split(" ", 1)[1] for line in agent.stderr().splitlines()
                    if "policy: denied: " in line)
    assert denied == sorted([f"w {etc_file}", f"r {etc_secret}"]), denied  # the file guard's only blocks
    assert "executions blocked" in agent.stderr() and "2 file opens denied" in agent.stderr()

    # the policies survive a restart: still protected, the service still works
    agent = start_agent(tmp_path / "agent2", pods, policy_dir)
    try:
        wait_line(agent, "shop/Deployment/web protect enforced on 1 container(s)")
        wait_line(agent, "shop/Deployment/client protect enforced on 1 container(s)")
        restart_drop = Path(tempfile.mkdtemp(prefix="kgp", dir="/tmp"))
        shutil.copy("/usr/bin/touch", restart_drop / "dropper")
        run = web.run([str(restart_drop / "dropper"), str(restart_drop / "marker")])
        assert run.returncode == -9 and not (restart_drop / "marker").exists()
        shutil.rmtree(restart_drop)
        traffic.round()
        traffic.round()
        assert traffic.failures == [], traffic.failures
    finally:
        agent.stop()
