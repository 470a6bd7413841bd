"""The agent's own behaviour as root, rules aside: sensor restart with a gap alert, drops under
overload counted and alerted, metrics served, everything flushed on SIGTERM, the proc fallback."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from agentlab import AgentProcess
from podlab import PodLab
from roothelpers import require

from kubeguard.agent.pipeline import DROP_RULE, GAP_RULE

pytestmark = pytest.mark.root
PYTHON = os.path.realpath(sys.executable)
RECORDER = ["--no-default-rules"]  # no rules: only the agent's own alerts


def start(tmp_path: Path, podlab: PodLab, sensor: str = "ebpf", extra: list[str] | None = None) -> AgentProcess:
    if sensor == "ebpf":
        require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor)")
    pods = podlab.write_pods(tmp_path / "pods.json")
    try:
        return AgentProcess.start(tmp_path / "agent", pods, sensor=sensor, extra=RECORDER + (extra or []))
    except RuntimeError as exc:
        require(False, f"a running agent with the {sensor} sensor ({exc})")
        raise


def children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append((int(entry.name), stat[stat.index("(") + 1: stat.rindex(")")]))
    return found


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def execs_of(agent: AgentProcess, container_id: str, exepath: str) -> list[dict]:
    return [e for e in agent.events(container_id) if e["evt.type"] == "execve" and e.get("proc.exepath") == exepath]


def test_killed_sensor_is_restarted_and_the_gap_alerted(podlab: PodLab, tmp_path: Path) -> None:
    pod = podlab.pod("web", namespace="shop")
    agent = start(tmp_path, podlab)
    try:
        bpftrace = [pid for pid, comm in children(agent.proc.pid) if comm == "bpftrace"]
        assert len(bpftrace) == 1, children(agent.proc.pid)
        os.kill(bpftrace[0], signal.SIGKILL)
        assert wait_for(lambda: any(a["rule"] == GAP_RULE for a in agent.alerts()), 60), agent.stderr()
        gap = next(a for a in agent.alerts() if a["rule"] == GAP_RULE)
        assert gap["output_fields"]["sensor"] == "ebpf" and gap["priority"] == "Critical"
        assert gap["output_fields"]["gap.seconds"] > 0
        # events flow again from the restarted sensor, still attributed to the pod
        assert pod.run(["/usr/bin/true"]).returncode == 0
        assert wait_for(lambda: execs_of(agent, pod.container_id, "/usr/bin/true")), "no events after restart"
    finally:
        agent.stop()


def test_overload_drops_are_counted_alerted_and_exported(podlab: PodLab, tmp_path: Path) -> None:
    pod = podlab.pod("storm", namespace="batch")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agent = start(tmp_path, podlab, extra=["--queue-size", "1", "--drop-report-interval", "1",
                                           "--metrics-port", str(port)])
    try:
        code = "import subprocess\nfor _ in range(1500): subprocess.run(['/usr/bin/true'])\n"
        assert pod.run([PYTHON, "-c", code], timeout=120).returncode == 0
        assert wait_for(lambda: any(a["rule"] == DROP_RULE for a in agent.alerts()), 30), agent.stderr()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        summary = agent.stop()
    drops = [a for a in agent.alerts() if a["rule"] == DROP_RULE]
    reported = sum(a["output_fields"]["n_drops_queue"] for a in drops)
    assert summary["queue_drops"] > 0
    assert reported == summary["queue_drops"]  # every drop reported, across the periodic alerts
    assert summary["events"] == summary["processed"] + summary["queue_drops"]
    assert "kubeguard_agent_drops_total{type=" in metrics
    assert 'kubeguard_agent_sensor_up{sensor="ebpf"} 1.0' in metrics


def test_sigterm_flushes_the_last_events_and_alerts(podlab: PodLab, tmp_path: Path) -> None:
    pod = podlab.pod("web", namespace="shop")
    agent = start(tmp_path, podlab)
    marker = "/usr/bin/true"
    assert pod.run([marker, secrets.token_hex(4)]).returncode == 0
    time.sleep(0.5)  # the kernel side delivers; the agent may still hold it in its queue or buffers
    summary = agent.stop()
    assert summary["queue_drops"] == 0 and summary["processed"] == summary["events"]
    seen = execs_of(agent, pod.container_id, marker)
    assert len(seen) == 1
    assert (seen[0]["k8s.pod.name"], seen[0]["k8s.ns.name"]) == ("web", "shop")
    assert isinstance(seen[0]["proc.aname"], list) and isinstance(seen[0]["k8s.pod.labels"], dict)
    assert not any(k.startswith("_") for k in seen[0])


def test_proc_connector_fallback_attributes_execs_to_pods(podlab: PodLab, tmp_path: Path) -> None:
    pod = podlab.pod("api", namespace="shop")
    agent = start(tmp_path, podlab, sensor="proc")
    try:
        assert "sensor proc running" in agent.stderr()
        assert "blind spot (proc)" in agent.stderr()
        code = "import time, subprocess\nsubprocess.run(['/usr/bin/sleep', '0.3'])\n"
        assert pod.run([PYTHON, "-c", code]).returncode == 0
        assert wait_for(lambda: execs_of(agent, pod.container_id, "/usr/bin/sleep")), agent.stderr()
        event = execs_of(agent, pod.container_id, "/usr/bin/sleep")[0]
        assert (event["k8s.pod.name"], event["k8s.ns.name"]) == ("api", "shop")
        assert event["proc.pname"].startswith("python")
    finally:
        agent.stop()
