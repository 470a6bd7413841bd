"""`kubeguard quarantine`: a pod is cut off the network (both directions) and frozen, other pods are not
affected, and --release undoes both."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from podlab import PodLab
from roothelpers import require
from test_policy_root import SERVER, kubeguard

from kubeguard.response.quarantine import TABLE

pytestmark = pytest.mark.root
PYTHON = os.path.realpath(sys.executable)


def get(client, ip: str) -> bool:  # type: ignore[no-untyped-def]
    return client.run(["curl", "-s", "-m", "3", f"http://{ip}:8080/"], timeout=30).stdout == "ok"


def wait_up(client, ip: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while not get(client, ip):
        assert time.monotonic() < deadline, f"{ip} did not answer"
        time.sleep(0.3)


def frozen(cgroup: Path) -> bool:
    return "frozen 1" in (cgroup / "cgroup.events").read_text()


def test_quarantine_cuts_one_pod_off_and_release_restores(podlab: PodLab, tmp_path: Path) -> None:
    require(shutil.which("nft") is not None and shutil.which("curl") is not None, "nft and curl")
    bad = podlab.pod("bad", namespace="shop")
    good = podlab.pod("good", namespace="shop")
    client = podlab.pod("client", namespace="shop")
    pods = str(podlab.write_pods(tmp_path / "pods.json"))
    for pod in (bad, good):
        pod.popen([PYTHON, "-c", SERVER, pod.ip, "8080"])
        wait_up(client, pod.ip)
    done = kubeguard("quarantine", "shop/bad", "--pods", pods)
    assert done.returncode == 0, done.stderr
    try:
        assert "quarantined" in done.stdout
        assert not get(client, bad.ip)  # nothing reaches it
        assert bad.run(["curl", "-s", "-m", "3", f"http://{good.ip}:8080/"], timeout=30).returncode != 0
        assert get(client, good.ip)  # the others are not affected
        again = kubeguard("quarantine", "shop/bad", "--freeze", "--pods", pods)
        assert again.returncode == 0 and "frozen" in again.stdout, again.stderr
        assert frozen(bad.cgroup_v2.parent)
    finally:
        undone = kubeguard("quarantine", "shop/bad", "--release", "--pods", pods)
    assert undone.returncode == 0, undone.stderr
    deadline = time.monotonic() + 30
    while frozen(bad.cgroup_v2.parent):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    wait_up(client, bad.ip)
    assert bad.run(["curl", "-s", "-m", "5", f"http://{good.ip}:8080/"], timeout=30).stdout == "ok"
    # the last release removes the table: nothing of ours is left in the ruleset
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert TABLE not in listed
    # bad input: one line, no traceback
    wrong = kubeguard("quarantine", "shop/nope", "--pods", pods)
    assert wrong.returncode == 2 and "no such pod" in wrong.stderr and "Traceback" not in wrong.stderr
