"""As root: the real agent (`kubeguard agent --console ...`, ebpf sensor, default rules) ships an attack's alert
from a test pod to a real `kubeguard console` over HTTPS, heartbeats show on the console, an alert raised
while the console is down (killed -9) arrives after its restart, once, and a quarantine asked for in the
console is applied to the pod by the agent and released."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from agentlab import AgentProcess
from podlab import PodLab
from roothelpers import require
from tests.console.consolelab import ConsoleProcess
from tests.pglab import free_port

from kubeguard.console.auth import AuthStore
from kubeguard.response.quarantine import Target, is_quarantined, release
from kubeguard.store.central import CentralQuery, CentralStore
from kubeguard.store.sqldb import Database

pytestmark = pytest.mark.root
RULE = "Read sensitive file untrusted"
NODE = "kubeguard-test-node"  # the node name agentlab gives the agent


def wait_for(predicate, timeout: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_agent_ships_alerts_to_the_console_through_a_console_crash(podlab: PodLab, tmp_path: Path) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    db = str(tmp_path / "console.db")
    token = tmp_path / "node.token"
    token.write_text(AuthStore(Database(db)).create_api_token(NODE, "agent"))
    central = CentralStore(Database(db))
    console = ConsoleProcess(db, cert, key, free_port(), tmp_path)
    console.start()
    pod = podlab.pod("web", namespace="shop")
    pods = podlab.write_pods(tmp_path / "pods.json")
    try:
        agent = AgentProcess.start(tmp_path / "agent", pods, extra=[
            "--console", console.url, "--console-token-file", str(token), "--console-ca", str(cert),
            "--console-spool", str(tmp_path / "spool.db")])
    except RuntimeError as exc:
        console.stop()
        require(False, f"a running agent with the ebpf sensor ({exc})")
        raise
    shipped = lambda: central.count(CentralQuery(rule=RULE, node=NODE))  # noqa: E731
    try:
        assert pod.run(["/usr/bin/cat", "/etc/shadow"]).returncode == 0
        assert wait_for(lambda: shipped() >= 1), agent.stderr()
        (record,) = central.alerts(CentralQuery(rule=RULE))
        assert (record["namespace"], record["pod"]) == ("shop", pod.name)
        assert record["output_fields"]["fd.name"] == "/etc/shadow"
        assert wait_for(lambda: any(a["node"] == NODE for a in central.agents()))
        (health,) = central.agents()
        assert health["version"] and health["events_per_s"] >= 0
        console.kill9()
        assert pod.run(["/usr/bin/cat", "/etc/shadow"]).returncode == 0
        assert wait_for(lambda: len([a for a in agent.alerts() if a["rule"] == RULE]) >= 2)  # raised while down
        time.sleep(1.0)  # the agent meets the dead console and keeps the alert in its spool
        console.start()
        assert wait_for(lambda: shipped() >= 2), agent.stderr()
        # a quarantine asked for in the console is applied by the agent of the pod's node, and released
        central.quarantine("shop", pod.name, False, "alice", "2026-12-04T16:00:00Z")
        assert wait_for(lambda: is_quarantined(pod.ip)), agent.stderr()
        central.release("shop", pod.name)
        assert wait_for(lambda: not is_quarantined(pod.ip)), agent.stderr()
    finally:
        if is_quarantined(pod.ip):
            release(Target(pod.ip, "", None))
        summary = agent.stop()
        console.stop()
    local = [a for a in agent.alerts() if a["rule"] == RULE]
    assert len(local) == 2 and shipped() == 2 and summary.get("queue_drops", 0) == 0
