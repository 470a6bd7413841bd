"""Code loaded through the environment end to end with the agent (#13): a pod whose bash runs with BASH_ENV
naming its own hook learns that hook in discover; in monitor a bash whose BASH_ENV names another file, and a
program started with LD_PRELOAD naming a library, each raise exactly one alert, while the learned hook keeps
running without one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from agentlab import describe
from podlab import PodLab
from test_policy_root import deviations, start_agent, wait_deviation, wait_line

pytestmark = pytest.mark.root
BASH = os.path.realpath(shutil.which("bash") or "/bin/bash")
TRUE = os.path.realpath(shutil.which("true") or "/bin/true")
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C"}  # small: the sensor copies the first bytes of an environment


def test_environment_loaded_code_is_learned_then_alerts_in_monitor(podlab: PodLab, tmp_path: Path) -> None:
    pod = podlab.pod("hooks-7c9d8-asdfg", namespace="batch", labels={"app": "hooks", "pod-template-hash": "7c9d8"},
                     owner=("ReplicaSet", "hooks-7c9d8"))
    pods = podlab.write_pods(tmp_path / "pods.json")
    work = Path(tempfile.mkdtemp(prefix="kge", dir="/tmp"))  # short: the sensor keeps 64 bytes of a path
    (work / "hook.sh").write_text(f"echo run >> {work}/hook.log\n")
    (work / "evil.sh").write_text(f"touch {work}/evil-ran\n")
    agent = start_agent(tmp_path / "agent", pods, tmp_path / "policies")
    loop: subprocess.Popen[str] | None = None
    try:
        loop = pod.popen([BASH, "-c", f"while true; do BASH_ENV={work}/hook.sh {BASH} -c : || echo FAIL >> "
                                      f"{work}/fail; sleep 0.2; done"], env=ENV)
        assert pod.run([TRUE], env=ENV).returncode == 0  # true is one of the workload's executables
        wait_line(agent, "batch/Deployment/hooks promoted to monitor")
        assert deviations(agent, pod.container_id) == [], describe(deviations(agent, pod.container_id))
        runs = len((work / "hook.log").read_text().split())

        assert pod.run([BASH, "-c", ":"], env={**ENV, "BASH_ENV": f"{work}/evil.sh"}).returncode == 0
        found = wait_deviation(agent, pod, f"{work}/evil.sh (BASH_ENV)")
        assert [a["output_fields"]["policy.deviation"] for a in found] == \
            [f"code {work}/evil.sh (BASH_ENV) loaded by {BASH}"], describe(found)
        assert found[0]["output_fields"]["policy.action"] == "alert"

        assert pod.run([TRUE], env={**ENV, "LD_PRELOAD": f"{work}/hook.so"}).returncode == 0  # (not there: a warning)
        found = wait_deviation(agent, pod, f"{work}/hook.so (LD_PRELOAD)")
        assert len(found) == 1, describe(found)

        assert len((work / "hook.log").read_text().split()) > runs  # the learned hook kept running ...
        hook_alerts = [a for a in deviations(agent, pod.container_id)
                       if "hook.sh" in a["output_fields"]["policy.deviation"]]
        assert hook_alerts == [], describe(hook_alerts)  # ... without an alert
        assert loop.poll() is None and not (work / "fail").exists()
    finally:
        if loop is not None and loop.poll() is None:
            loop.kill()
            loop.wait()
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)
