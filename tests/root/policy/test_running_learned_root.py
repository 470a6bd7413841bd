"""Programs already running when the agent starts (kubeguard.policy.running): a pod whose entrypoint, a shell
script, and its child started before the agent is learned with them; in protect, starting that entrypoint again
runs (the container's restart), while a program never seen is killed at exec; a program started while no agent
watched is one alert for the next agent, and keeps running."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from podlab import PodLab
from test_policy_root import deviations, kubeguard, start_agent, wait_deviation, wait_line

pytestmark = pytest.mark.root
WORKLOAD = "shop/Deployment/early"


def test_the_entrypoint_running_before_the_agent_starts_again_in_protect(podlab: PodLab, tmp_path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="kgr", dir="/tmp"))  # short paths: the sensor keeps 64 bytes
    try:
        entry = work / "entry.sh"
        entry.write_text('[ "$1" = once ] && exit 0\nsleep 100000\n')  # dash waits for its sleep: both run
        pod = podlab.pod("early-6c8d9-k3l4m", namespace="shop", labels={"app": "early", "pod-template-hash": "6c8d9"},
                         owner=("ReplicaSet", "early-6c8d9"))
        pod.popen(["/bin/sh", str(entry)])  # the container's entrypoint, started before any agent
        pods = podlab.write_pods(tmp_path / "pods.json")
        policy_dir = tmp_path / "policies"
        agent = start_agent(tmp_path / "agent", pods, policy_dir, ("--no-default-rules", "--quiet-window", "3600"))
        try:
            wait_line(agent, "rules from the live processes of 1 newly listed pods")
            exported = kubeguard("policy", "export", WORKLOAD, "--policy-dir", str(policy_dir))
            for learned in ("path: /bin/sh", "path: /usr/bin/dash", "path: /usr/bin/sleep", f"path: {entry}"):
                assert learned in exported.stdout, exported.stdout
            done = kubeguard("policy", "mode", WORKLOAD, "protect", "--policy-dir", str(policy_dir))
            assert done.returncode == 0, done.stderr
            wait_line(agent, f"{WORKLOAD} protect enforced on 1 container(s)")
            again = pod.run(["/bin/sh", str(entry), "once"])  # the container started again
            assert again.returncode == 0, again
            assert pod.run(["sleep", "0"]).returncode == 0
            assert pod.run(["/usr/bin/id"]).returncode != 0  # never seen: killed at exec
            (alert,) = wait_deviation(agent, pod, "/usr/bin/id")
            assert alert["output_fields"]["policy.action"] == "blocked", alert
            assert [a["output_fields"]["policy.deviation"] for a in deviations(agent, pod.container_id)] == [
                alert["output_fields"]["policy.deviation"]]  # the restart and its sleep raised none
        finally:
            agent.stop()
        # a program started while no agent watched (the Tesla miner's way in): found running by the next agent,
        # one alert, and not killed (nothing is killed that was not stopped at its exec)
        miner = pod.popen(["/usr/bin/tail", "-f", "/dev/null"])
        agent = start_agent(tmp_path / "agent2", pods, policy_dir, ("--no-default-rules", "--quiet-window", "3600"))
        try:
            (found,) = wait_deviation(agent, pod, "/usr/bin/tail")
            fields = found["output_fields"]
            assert fields["policy.deviation"] == "process /usr/bin/tail (found running when its pod was listed)"
            assert fields["policy.mode"] == "protect" and fields["policy.action"] == "alert", fields
            assert fields["k8s.pod.name"] == pod.name and fields["k8s.ns.name"] == "shop", fields
            assert len(deviations(agent, pod.container_id)) == 1  # the entrypoint and its sleep: allowed
            assert miner.poll() is None
        finally:
            agent.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
