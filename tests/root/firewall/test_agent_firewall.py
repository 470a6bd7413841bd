"""`kubeguard agent --firewall`: the inline firewall inside the agent, alerts through the agent's outputs."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from agentlab import AgentProcess
from fwlab import HTTP_CLIENT, PYTHON, iptables_rules, start_http_server
from podlab import PodLab

pytestmark = pytest.mark.root

SQLI = ["GET", "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--", [], "", "attack"]
BENIGN = ["GET", "/item?id=42&q=please+select+your+size", [], "", "benign"]


def test_agent_firewall_blocks_sqli_with_403_and_removes_rules(podlab: PodLab, tmp_path: Path) -> None:
    web = podlab.pod("web", namespace="shop", labels={"app": "web"})
    client = podlab.pod("client", namespace="shop", labels={"app": "client"})
    pods = podlab.write_pods(tmp_path / "pods.json")
    log = tmp_path / "server.log"
    start_http_server(web, 8080, log)
    queue = random.randrange(1000, 60000)
    agent = AgentProcess.start(tmp_path / "agent", pods, sensor="proc", extra=[
        "--no-fanotify", "--no-default-rules", "--firewall", "--firewall-selector", "app=web",
        "--firewall-mode", "protect", "--firewall-queue", str(queue)])
    try:
        assert "firewall inline for 1 pod addresses" in agent.stderr()
        assert f"KG-FW{queue}" in iptables_rules()
        reqs = tmp_path / "reqs.json"
        reqs.write_text(json.dumps([SQLI, BENIGN]))
        done = client.run([PYTHON, "-c", HTTP_CLIENT, web.ip, "8080", str(reqs), "1"], timeout=60)
        answers = {a["id"]: a for a in map(json.loads, done.stdout.splitlines())}
        assert answers["attack"].get("status") == 403 and answers["benign"].get("status") == 200, done.stdout
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(a["rule"] == "HTTP SQL injection" for a in agent.alerts()):
            time.sleep(0.1)
    finally:
        agent.stop()
    blocked = [a for a in agent.alerts() if a["rule"] == "HTTP SQL injection"]
    assert blocked and blocked[0]["output_fields"]["firewall.action"] == "blocked"
    assert blocked[0]["output_fields"]["k8s.pod.name"] == "web"
    assert log.read_text().split() and "attack" not in log.read_text() and "benign" in log.read_text()
    assert f"KG-FW{queue}" not in iptables_rules()
    assert "firewall stopped; " in agent.stderr() and "rules removed" in agent.stderr()
