"""Short-lived processes cannot slip through (NeuVector #1800): 10,000 execs of a binary outside the
profile that exits within a millisecond raise 10,000 alerts in monitor, and none of them runs in
protect (the binary's first act is to create a marker file; the markers are counted)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from agentlab import AgentProcess
from podlab import PodLab
from roothelpers import require
from test_policy_root import kubeguard, wait_line

from kubeguard.policy.policy_engine import RULE_PROCESS

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
CSRC = Path(__file__).resolve().parent / "csrc"
COUNT = 10_000


def build(work: Path) -> tuple[Path, Path]:
    require(shutil.which("gcc") is not None, "gcc (builds the test's marker binary and spawner)")
    spawner, marker = work / "spawner", work / "marker"
    subprocess.run(["gcc", "-O2", "-o", str(spawner), str(CSRC / "spawner.c")], check=True)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(marker), str(CSRC / "marker.c")], check=True)
    return spawner, marker


def count_alerts(agent: AgentProcess, container_id: str, path: str) -> int:
    """Process deviations of the marker: by path, or by name when the sensor could not read the path."""
    return sum(1 for a in agent.alerts_for(container_id) if a["rule"] == RULE_PROCESS and (
        a["output_fields"].get("proc.exepath") == path
        or a["output_fields"]["policy.deviation"] == "process marker (path not readable)"))


def wait_count(agent: AgentProcess, container_id: str, path: str, count: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        found = count_alerts(agent, container_id, path)
        if found >= count:
            time.sleep(2)  # no more than `count` either
            return count_alerts(agent, container_id, path)
        time.sleep(0.5)
    return found


def test_ten_thousand_short_lived_execs(podlab: PodLab, tmp_path: Path, exec_guard_backend: str) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor and the exec guard)")
    work = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))  # short paths: the sensor keeps 64 bytes
    try:
        spawner, marker = build(work)
        monitor_dir, protect_dir = work / "mon", work / "pro"
        monitor_dir.mkdir()
        protect_dir.mkdir()
        pod = podlab.pod("burst-x7k2p", namespace="batch", owner=("Job", "burst"))
        pods = podlab.write_pods(tmp_path / "pods.json")
        policy_dir = tmp_path / "policies"
        try:
            agent = AgentProcess.start(tmp_path / "agent", pods, extra=[
                "--no-default-rules", "--policy-dir", str(policy_dir), "--quiet-window", "4"])
        except RuntimeError as exc:
            require(False, f"a running agent ({exc})")
            raise
        try:
            assert pod.run([str(spawner), "3", "/usr/bin/true", "x"]).stdout.split() == ["3", "0", "0"]
            wait_line(agent, "batch/Job/burst promoted to monitor")

            out = pod.run([str(spawner), str(COUNT), str(marker), str(monitor_dir)], timeout=600)
            assert out.stdout.split() == [str(COUNT), "0", "0"], out.stderr
            assert len(list(monitor_dir.iterdir())) == COUNT
            alerts = wait_count(agent, pod.container_id, str(marker), COUNT)
            assert alerts == COUNT, f"{alerts} alerts for {COUNT} execs"

            done = kubeguard("policy", "mode", "batch/Job/burst", "protect", "--policy-dir", str(policy_dir))
            assert done.returncode == 0, done.stderr
            wait_line(agent, "batch/Job/burst protect enforced on 1 container(s)")
            wait_line(agent, f"exec guard: {exec_guard_backend} program")
            out = pod.run([str(spawner), str(COUNT), str(marker), str(protect_dir)], timeout=600)
            assert out.stdout.split() == ["0", str(COUNT), "0"], out.stdout + out.stderr
            assert list(protect_dir.iterdir()) == []  # not one of them ran its own code
            assert pod.run([str(spawner), "3", "/usr/bin/true", "x"]).stdout.split() == ["3", "0", "0"]
        finally:
            summary = agent.stop()
        assert summary.get("queue_drops", 0) == 0 and summary.get("kernel_lost", 0) == 0, summary
    finally:
        shutil.rmtree(work, ignore_errors=True)
