"""`--protect-after` end to end with a real pod (NeuVector's mode auto-switch): a workload learned in discover
moves to monitor after the quiet window, raises an alert there for a deviation (which runs), and after a stretch
in monitor without one moves to protect by itself, where the kernel guard kills a dropped binary before it runs
its own code while the learned program keeps running."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from agentlab import AgentProcess, describe
from podlab import PodLab
from roothelpers import require
from test_policy_root import kubeguard, wait_deviation, wait_line

from kubeguard.policy.policy_engine import RULE_PROCESS

pytestmark = pytest.mark.root
WORKLOAD = "shop/Deployment/auto"


def test_monitor_moves_to_protect_by_itself(podlab: PodLab, tmp_path: Path) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor and the exec guard)")
    work = Path(tempfile.mkdtemp(prefix="kga", dir="/tmp"))  # short paths: the sensor keeps 64 bytes
    try:
        pod = podlab.pod("auto-5d9c7-x1y2z", namespace="shop", labels={"app": "auto", "pod-template-hash": "5d9c7"},
                         owner=("ReplicaSet", "auto-5d9c7"))
        pod.popen(["sleep", "100000"])  # the container's main process (a real container always has one)
        pods = podlab.write_pods(tmp_path / "pods.json")
        policy_dir = tmp_path / "policies"
        try:
            agent = AgentProcess.start(tmp_path / "agent", pods, extra=[
                "--no-default-rules", "--policy-dir", str(policy_dir), "--quiet-window", "4", "--protect-after", "8"])
        except RuntimeError as exc:
            require(False, f"a running agent ({exc})")
            raise
        try:
            assert pod.run(["/usr/bin/true"]).returncode == 0  # learned in discover
            wait_line(agent, f"{WORKLOAD} promoted to monitor")
            assert pod.run(["/usr/bin/id"]).returncode == 0  # a deviation in monitor: it runs, and alerts
            (alert,) = wait_deviation(agent, pod, "/usr/bin/id")
            assert alert["rule"] == RULE_PROCESS, describe([alert])
            assert alert["output_fields"]["policy.mode"] == "monitor"
            assert alert["output_fields"]["policy.action"] == "alert"
            wait_line(agent, f"{WORKLOAD} promoted to protect after 8s in monitor without a deviation")
            wait_line(agent, f"{WORKLOAD} protect enforced on 1 container(s)")
            shutil.copy("/usr/bin/touch", work / "dropper")
            assert pod.run([str(work / "dropper"), str(work / "marker")]).returncode != 0
            assert not (work / "marker").exists()  # killed before its first instruction
            assert pod.run(["/usr/bin/true"]).returncode == 0  # the learned program still runs
            shown = kubeguard("policy", "show", WORKLOAD, "--policy-dir", str(policy_dir))
            assert "mode=protect" in shown.stdout and "(hand-written)" not in shown.stdout, shown.stdout
        finally:
            agent.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
