"""`kubeguard agent` bad input: one clear line naming what and where, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def agent(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "KUBEGUARD_DB": str(tmp / "a.db")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run([sys.executable, "-m", "kubeguard", "agent", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_sensor(tmp_path: Path) -> None:
    assert "--sensor kprobe: expected one of ebpf, proc" in one_error_line(agent("--sensor", "kprobe", tmp=tmp_path))


def test_missing_rules_file(tmp_path: Path) -> None:
    line = one_error_line(agent("--rules", str(tmp_path / "nope.yaml"), tmp=tmp_path))
    assert f"{tmp_path / 'nope.yaml'}: rules file not found" in line


def test_broken_pods_file(tmp_path: Path) -> None:
    pods = tmp_path / "pods.json"
    pods.write_text('{"kind": "List", "items": [')
    line = one_error_line(agent("--pods", str(pods), tmp=tmp_path))
    assert f"{pods}: not JSON" in line


def test_bad_webhook_and_syslog(tmp_path: Path) -> None:
    pods = tmp_path / "pods.json"
    pods.write_text('{"kind": "List", "items": []}')
    assert "expected udp://HOST:PORT" in one_error_line(
        agent("--pods", str(pods), "--no-default-rules", "--syslog", "udp://x", tmp=tmp_path))


@pytest.mark.parametrize("flag", ["--metrics-token-file", "--console-token-file"])
def test_binary_or_huge_token_file_is_one_line(tmp_path: Path, flag: str) -> None:
    token = tmp_path / "token"
    token.write_bytes(bytes(range(256)))  # found by the bad-input walker: a UnicodeDecodeError traceback before
    feature = ["--console", "https://127.0.0.1:1"] if flag.startswith("--console") else []
    assert f"{token}: " in one_error_line(agent(*feature, flag, str(token), tmp=tmp_path))
    token.write_bytes(b"x" * (1 << 20))
    assert "not a token" in one_error_line(agent(*feature, flag, str(token), tmp=tmp_path))


@pytest.mark.parametrize(("flag", "needs"), [("--console-ca", "--console"), ("--console-token-file", "--console"),
                                             ("--firewall-allow-list", "--firewall")])
def test_a_flag_ignored_without_its_feature_is_refused(tmp_path: Path, flag: str, needs: str) -> None:
    # found by the bad-input walker: a missing file here was accepted, since nothing read it
    line = one_error_line(agent(flag, str(tmp_path / "missing"), tmp=tmp_path))
    assert f"{flag} only apply with {needs}" in line


def test_protect_after_is_checked(tmp_path: Path) -> None:
    assert "--protect-after only apply with --policy-dir" in one_error_line(
        agent("--protect-after", "60", tmp=tmp_path))
    assert "--protect-after -1: must not be negative" in one_error_line(
        agent("--policy-dir", str(tmp_path), "--protect-after", "-1", tmp=tmp_path))


def test_new_workload_mode_is_checked(tmp_path: Path) -> None:
    assert "--new-workload-mode only apply with --policy-dir" in one_error_line(
        agent("--new-workload-mode", "monitor", tmp=tmp_path))
    assert "--new-workload-mode learn: expected discover, monitor or protect" in one_error_line(
        agent("--policy-dir", str(tmp_path), "--new-workload-mode", "learn", tmp=tmp_path))
