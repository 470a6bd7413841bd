"""Runs the atheris harness (coverage-guided) for a bounded number of inputs: no crash, no hang."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import libfuzzer_command

HARNESS = Path(__file__).with_name("atheris_dpi.py")


def test_atheris_finds_no_crash(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris does not install on this platform")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    command = [sys.executable, str(HARNESS), "-runs=20000", "-timeout=5", "-rss_limit_mb=1024",
               f"-artifact_prefix={tmp_path}/"]
    result = subprocess.run(libfuzzer_command(command), capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 20000 runs" in result.stderr
