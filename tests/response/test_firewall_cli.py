"""`kubeguard firewall` bad input: one line naming what and where, exit 2, no traceback, no rules touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubeguard.response.selection import parse_selector

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "kubeguard", "firewall", *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.fixture
def pods(tmp_path: Path) -> Path:
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
         "spec": {}, "status": {"podIP": "10.1.0.9"}}]}))
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "block", "-n", "shop"], "--mode: expected one of discover, monitor, protect, got 'block'"),
    (["--block-severity", "huge", "-n", "shop"], "--block-severity: expected one of"),
    (["--queue-num", "70000", "-n", "shop"], "--queue-num: expected 0-65535"),
    ([], "select pods: --selector, --namespace, --all-pods or an --allow-list"),
    (["-l", "app=web,,x", "-n", "shop"], "--selector 'app=web,,x': empty requirement"),
])
def test_bad_flags_are_one_line(pods: Path, args: list[str], message: str) -> None:
    done = run("--pods", str(pods), *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"kubeguard: error: {done.stderr.split('error: ', 1)[1].strip()}"]
    assert message in done.stderr


def test_missing_pods_file_and_bad_allow_list_name_the_file(tmp_path: Path, pods: Path) -> None:
    done = run("--pods", str(tmp_path / "nope.json"), "-n", "shop")
    assert done.returncode == 2 and f"{tmp_path / 'nope.json'}: cannot read pods file" in done.stderr
    bad = tmp_path / "allow.yaml"
    bad.write_text("policies:\n  - name: web\n    endpointSelector: {}\n    egress:\n      - toPorts:\n"
                   "          - ports: [{port: 99999}]\n")
    done = run("--pods", str(pods), "--allow-list", str(bad))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{bad}:6: policy web: bad port 99999-99999/TCP" in done.stderr


def test_selector_syntax() -> None:
    assert parse_selector("app=web,tier!=db,env in (a, b),!legacy,canary") == {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["db"]},
            {"key": "env", "operator": "In", "values": ["a", "b"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "canary", "operator": "Exists"},
        ],
    }
