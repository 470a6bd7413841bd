"""Helpers for root tests, importable by name from test modules (every conftest.py shares one module name).

`need_root`, `require`, `need_shared_data`, `IN_CI` are tests/conftest.py's, re-exported; `need_podlab`
checks what a test pod needs; `wait_reported` waits for a counter a reader thread raises.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def _load_top_conftest() -> ModuleType:
    """tests/conftest.py under its own name (both files are called conftest; re-exported from here)."""
    spec = importlib.util.spec_from_file_location("kubeguard_tests_conftest", Path(__file__).parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_top = _load_top_conftest()
need_root = _top.need_root
require = _top.require
need_shared_data = _top.need_shared_data
IN_CI = _top.IN_CI
SHARED_DATA = _top.SHARED_DATA
REPO = _top.REPO


def need_podlab() -> None:
    """Root plus the tools a pod needs (ip, nsenter, a cgroup v2 hierarchy); fails under CI=true."""
    need_root("test pods (netns, veth, cgroups)")
    for tool in ("ip", "nsenter", "sysctl"):
        require(shutil.which(tool) is not None, f"the {tool} command")
    require(any(line.split()[2:3] == ["cgroup2"] for line in Path("/proc/self/mounts").read_text().splitlines()),
            "a cgroup v2 hierarchy")


def wait_reported(count: Callable[[], int], want: int, what: str, timeout: float = 60) -> int:
    """Wait until `count()` reaches `want` (a counter a reader thread raises after the event itself, such as the
    exec guard's kills), then return it (the caller asserts it is not more)."""
    deadline = time.monotonic() + timeout
    while count() < want:
        assert time.monotonic() < deadline, f"{count()} {what} reported, waiting for {want}"
        time.sleep(0.05)
    return count()
