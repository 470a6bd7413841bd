"""Runs the text-parser atheris harness (coverage-guided) for a bounded number of inputs per parser: no crash."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import libfuzzer_command

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "atheris_inputs.py"
RUNS = 3000


@pytest.mark.parametrize("target", ["rules", "manifests", "policy", "ebpf"])
def test_atheris_finds_no_crash(target: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris does not install on this platform")
    corpus = tmp_path / "corpus"
    shutil.copytree(HERE / "seeds" / target, corpus)
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
    command = [sys.executable, str(HARNESS), target, f"-runs={RUNS}", "-timeout=10", "-rss_limit_mb=1024",
               f"-artifact_prefix={tmp_path}/", str(corpus)]
    result = subprocess.run(libfuzzer_command(command), capture_output=True, text=True, timeout=600, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {RUNS} runs" in result.stderr
