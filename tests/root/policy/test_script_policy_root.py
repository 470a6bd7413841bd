"""Scripts end to end with the agent (#13): a pod learns its script in discover; in monitor an unknown
script runs and raises exactly one alert; in protect `sh new.sh`, `python3 new.py` and a `#!/bin/sh` script
exec'd directly, each of which first creates a marker, leave no marker and raise one alert each, while the
learned script keeps running (every run completes: 0 false blocks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from agentlab import describe
from podlab import PodLab
from test_policy_root import deviations, kubeguard, start_agent, wait_deviation, wait_line

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
SH = os.path.realpath("/bin/sh")
PYTHON = os.path.realpath("/usr/bin/python3")


def test_unknown_scripts_alert_in_monitor_and_are_killed_in_protect(podlab: PodLab, tmp_path: Path,
                                                                    exec_guard_backend: str) -> None:
    pod = podlab.pod("jobs-6b8c9-qwert", namespace="batch", labels={"app": "jobs", "pod-template-hash": "6b8c9"},
                     owner=("ReplicaSet", "jobs-6b8c9"))
    pods = podlab.write_pods(tmp_path / "pods.json")
    policy_dir = tmp_path / "policies"
    work = Path(tempfile.mkdtemp(prefix="kgs", dir="/tmp"))  # short: the sensor keeps 64 bytes of a path
    markers = work / "m"
    markers.mkdir()
    (work / "known.sh").write_text(f"echo run >> {work}/known.log\n")
    for name in ("mon", "new"):
        (work / f"{name}.sh").write_text(f"touch {markers}/{name}-sh\n")
    (work / "new.py").write_text(f"open('{markers}/new-py', 'w').close()\n")
    direct = work / "direct.sh"
    direct.write_text(f"#!/bin/sh\ntouch {markers}/direct\n")
    direct.chmod(0o755)
    agent = start_agent(tmp_path / "agent", pods, policy_dir)
    loop: subprocess.Popen[str] | None = None
    try:
        loop = pod.popen([SH, "-c", f"cd {work}; while true; do {SH} known.sh || echo FAIL >> fail; sleep 0.2; done"])
        assert pod.run([PYTHON, "-c", "pass"]).returncode == 0  # python3 is one of the workload's executables
        assert pod.run(["touch", str(work / "t")]).returncode == 0
        wait_line(agent, "batch/Deployment/jobs promoted to monitor")
        assert deviations(agent, pod.container_id) == [], describe(deviations(agent, pod.container_id))

        assert pod.run([SH, "mon.sh"], cwd=work).returncode == 0  # monitor: runs, one alert
        assert (markers / "mon-sh").exists()
        found = wait_deviation(agent, pod, f"script {work}/mon.sh")
        assert [a["output_fields"]["policy.action"] for a in found] == ["alert"], describe(found)

        done = kubeguard("policy", "mode", "batch/Deployment/jobs", "protect", "--policy-dir", str(policy_dir))
        assert done.returncode == 0, done.stderr
        wait_line(agent, "batch/Deployment/jobs protect enforced on 1 container(s)")
        wait_line(agent, f"exec guard: {exec_guard_backend} program")
        runs = len((work / "known.log").read_text().split())
        cases = {f"{work}/new.sh": [SH, "new.sh"], f"{work}/new.py": [PYTHON, str(work / "new.py")],
                 str(direct): [str(direct)]}
        for needle, argv in cases.items():
            run = pod.run(argv, cwd=work)
            assert run.returncode == -9, (argv, run.returncode, run.stderr)
            found = wait_deviation(agent, pod, needle)
            assert len(found) == 1, f"{needle}: {describe(found)}"
        assert sorted(p.name for p in markers.iterdir()) == ["mon-sh"]  # nothing ran in protect
        assert len((work / "known.log").read_text().split()) > runs  # the learned script kept running
        assert loop.poll() is None and not (work / "fail").exists()  # 0 false blocks
    finally:
        if loop is not None and loop.poll() is None:
            loop.kill()
            loop.wait()
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)
