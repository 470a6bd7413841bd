"""Runs the detectors' atheris harness (coverage-guided) for a bounded number of inputs: no crash, no hang."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import libfuzzer_command

HARNESS = Path(__file__).with_name("atheris_detect.py")
RUNS = 10000


def test_atheris_finds_no_crash_in_detectors(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris does not install on this platform")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    command = [sys.executable, str(HARNESS), f"-runs={RUNS}", "-timeout=5", "-rss_limit_mb=1024", "-max_len=4096",
               f"-artifact_prefix={tmp_path}/"]
    result = subprocess.run(libfuzzer_command(command), capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {RUNS} runs" in result.stderr
