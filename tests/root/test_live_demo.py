"""`kubeguard demo --live`, end to end as root: the Tesla breach in the lab, caught stage by stage; in protect
cut at the first stage (the object store's and the pool's own logs show no download and no share); the lab
torn down completely after a normal run, an injected failure and SIGINT (checked against the lab's own record
of what it made: namespaces, veths, cgroups, the metadata route, the firewall's chains).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from roothelpers import REPO, need_podlab, require

from kubeguard.lab.breach import BreachLab, leftovers
from kubeguard.lab.live import POLICY_BLOCK_RULE, STAGES, run_live

pytestmark = [pytest.mark.root, pytest.mark.slow]

EXPECTED_RULES = {
    "console": "Terminal shell in container",
    "token": "Read service account token",
    "metadata": "Contact cloud metadata service from container",
    "s3": "Read cloud credentials file",
    "miner": "Detect crypto miners",
    "pool": "Stratum mining protocol",
}


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_podlab()
    for tool in ("bpftrace", "iptables", "unshare", "curl", "setsid", "nohup"):
        require(shutil.which(tool) is not None, f"the {tool} command (demo --live)")


def test_stages_and_rules_agree() -> None:
    """The runner's table of expected rules is the one asserted here."""
    assert {s.key: s.rule for s in STAGES} == EXPECTED_RULES


def test_live_chain_every_stage_caught_on_the_dashboard_pod(tmp_path: Path) -> None:
    labs: list[BreachLab] = []
    result = run_live(False, tmp_path / "run", on_lab=labs.append)
    assert [s.spec.key for s in result.stages] == list(EXPECTED_RULES)
    namespace, pod = result.dashboard.split("/")
    assert namespace == "kube-system" and pod.startswith("kubernetes-dashboard-")
    for stage in result.stages:
        assert stage.status == "done", f"{stage.spec.key}: {stage.status} ({stage.detail})"
        assert stage.rule == EXPECTED_RULES[stage.spec.key], (
            f"{stage.spec.key}: caught by {stage.rule}; alerts: {sorted({a['rule'] for a in result.alerts})}")
        assert stage.pod == result.dashboard
        alert = next(a for a in result.alerts if a["rule"] == stage.rule
                     and a["output_fields"].get("k8s.pod.name") == pod)
        assert alert["output_fields"]["k8s.ns.name"] == namespace
    # the attack really happened: the stores' own logs
    assert len(result.s3_downloads) == 3, result.s3_downloads
    assert result.shares >= 1
    assert result.ok()
    assert result.leftovers == [] and labs[0].leftovers() == []


def test_protect_cuts_the_chain_at_the_shell(tmp_path: Path) -> None:
    labs: list[BreachLab] = []
    run = tmp_path / "run"
    result = run_live(True, run, on_lab=labs.append)
    first, later = result.stages[0], result.stages[1:]
    assert first.status == "blocked", f"{first.status}: {first.detail}"
    assert first.rule == POLICY_BLOCK_RULE and first.pod == result.dashboard
    blocked = [a for a in result.alerts if a["rule"] == POLICY_BLOCK_RULE]
    assert any(a["output_fields"].get("policy.action") == "blocked" for a in blocked), blocked
    assert all(s.status == "not reached" for s in later), [(s.spec.key, s.status) for s in later]
    # the object store's and the pool's own logs: the store served no object, the pool saw no miner
    s3_log = (run / "s3-telemetry.log").read_text()
    assert '"PUT /telemetry' in s3_log  # the log is the real one: the set-up's uploads are in it
    assert "GET /telemetry" not in s3_log
    pool_log = (run / "mining-pool.log").read_text() if (run / "mining-pool.log").exists() else ""
    assert '"share"' not in pool_log and '"login"' not in pool_log
    assert result.s3_downloads == [] and result.shares == 0
    assert result.cut_at == "console" and result.ok()
    assert labs[0].leftovers() == []


def test_nothing_left_after_an_injected_failure(tmp_path: Path) -> None:
    labs: list[BreachLab] = []

    def fail(stage: str) -> None:
        if stage == "metadata":
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected failure"):
        run_live(False, tmp_path / "run", on_lab=labs.append, on_stage=fail)
    record = json.loads((tmp_path / "run" / "lab.json").read_text())
    assert len(record["netns"]) == 5 and record["firewall_queue"] is not None
    assert leftovers(record) == []


def test_nothing_left_after_sigint(tmp_path: Path) -> None:
    """Ctrl-C while the lab is up: one line, exit 130, nothing of the lab left (its own record says what it made).

    (Interrupting during the attack itself raced the attack's end: its stages take milliseconds.)"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TMPDIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "kubeguard", "demo", "--live", "--report", str(tmp_path / "r.html")]
    # a background CI job inherits SIGINT ignored; a person's Ctrl-C reaches a default handler: give it that
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline, record_file = time.monotonic() + 150, None
    while time.monotonic() < deadline:  # interrupt once the lab's pods are made (the run then needs ~50 s more)
        found = list(tmp_path.glob("kubeguard-live-*/lab.json"))
        if found and len(json.loads(found[0].read_text())["netns"]) == 5:
            record_file = found[0]
            break
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.1)
    assert record_file is not None, "the lab was never made"
    record = json.loads(record_file.read_text())
    assert leftovers(record) != []  # the lab is there before the interrupt
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 130, out
    assert "interrupted; the lab was torn down" in out and "Traceback" not in out
    assert leftovers(record) == []
