"""Fixtures for root tests: `podlab` makes test pods (see podlab.py) and removes them afterwards."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from podlab import PodLab


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


@pytest.fixture
def podlab() -> Iterator[PodLab]:
    """A PodLab for one test: `podlab.pod(...)` makes pods; all are torn down after the test."""
    need_podlab()
    lab = PodLab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def module_podlab() -> Iterator[PodLab]:
    """A PodLab shared by the tests of one module (for pods that are expensive to set up)."""
    need_podlab()
    lab = PodLab()
    try:
        yield lab
    finally:
        lab.close()
