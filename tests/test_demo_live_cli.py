"""`kubeguard demo --live` without root: one clear line and a non-zero exit, nothing made; bad flag combinations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kubeguard(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user without root: as root, in a new user namespace (uid 65534 there, no mapping)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "kubeguard", *args]
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        assert unshare is not None, "unshare (util-linux) is needed to drop root for this test"
        cmd = [unshare, "--user", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd="/")


def test_live_without_root_is_one_line_and_exit_2() -> None:
    done = kubeguard("demo", "--live")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs root" in lines[0] and "kubeguard demo" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_protect_without_live_is_refused() -> None:
    done = subprocess.run([sys.executable, "-m", "kubeguard", "demo", "--protect"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "kubeguard: error: --protect needs --live", done.stderr
