"""Run `kubeguard` in a subprocess under a memory cap (RLIMIT_AS) for the hostile-input tests."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).parents[2] / "src"
MEMORY_CAP = 1 << 30  # address space of the child: bounded memory or MemoryError, never the machine


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "KUBEGUARD_DB": str(tmp_path / "default.db"),
            "HOME": str(tmp_path), "COLUMNS": "200"}


def kubeguard(*args: str, tmp_path: Path, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`kubeguard ARGS` under the memory cap; generous wall bound (the machine is loaded)."""
    return subprocess.run([sys.executable, "-m", "kubeguard", *args], capture_output=True, text=True,
                          timeout=timeout, env=env(tmp_path), preexec_fn=_cap, **kw)


def popen(*args: str, tmp_path: Path, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kubeguard", *args], text=True, env=env(tmp_path),
                            preexec_fn=_cap, **kw)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr lines starting `kubeguard: error:`; asserts no traceback anywhere."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("kubeguard: error:")]
