"""No false block while the enforcer re-plans a protected pod whose processes all come and go.

The pod has no long-lived process (as bench.policy's client pod): every run enters its cgroup, execs an allowed
binary and exits. The enforcer re-plans every 20 ms and resolves the allowed executables (a whole directory
glob, so resolving takes a while) inside the container. Before d7e5062 it resolved them through
``/proc/PID/root`` of a process that could exit meanwhile; the plan then allowed nothing and the exec guard
killed every exec of the pod until the next plan (one bench.policy warm-up lost all 300 script runs)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from podlab import PodLab
from roothelpers import require

from kubeguard.cluster.podmap import PodMap
from kubeguard.policy.enforce import Enforcer
from kubeguard.policy.policy_engine import PolicyEngine
from kubeguard.policy.store import PolicyStore

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
RUNS = 600
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")
POLICY = f"""apiVersion: kubeguard.io/v1alpha1
kind: WorkloadPolicy
metadata: {{name: deployment-churn, namespace: shop}}
spec:
  workload: {{kind: Deployment, name: churn}}
  mode: protect
  processes: [{{path: "{os.path.dirname(TRUE)}/*"}}]
"""


def test_allowed_execs_of_a_pod_with_no_long_lived_process(podlab: PodLab, tmp_path: Path) -> None:
    require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    pod = podlab.pod("churn-5f6d7-q2w3e", namespace="shop", owner=("ReplicaSet", "churn-5f6d7"),
                     labels={"app": "churn", "pod-template-hash": "5f6d7"})
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "churn.yaml").write_text(POLICY)
    store = PolicyStore(policies)
    store.open()
    podmap = PodMap.from_snapshot(podlab.snapshot())
    messages: list[str] = []
    engine = PolicyEngine(store, lambda: podmap)
    enforcer = Enforcer(engine, lambda: podmap, messages.append, interval=0.02)
    enforcer.start()
    try:
        deadline = time.monotonic() + 120
        while not any("shop/Deployment/churn protect enforced" in m for m in messages):
            assert time.monotonic() < deadline, f"protect was not enforced: {messages}"
            time.sleep(0.05)
        failed = [done.returncode for done in (pod.run([TRUE], timeout=60) for _ in range(RUNS))
                  if done.returncode != 0]
        assert failed == [], f"{len(failed)} of {RUNS} allowed runs failed ({enforcer.kills} kills): {messages}"
        outside = tmp_path / "outside"  # the guard is on: a binary outside the profile is killed at exec
        shutil.copy(TRUE, outside)
        assert pod.run([str(outside)], timeout=60).returncode == -9
        assert enforcer.errors == 0
    finally:
        enforcer.stop()
