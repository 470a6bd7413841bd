"""Fixtures for root tests: `podlab` makes test pods (see podlab.py) and removes them afterwards;
`exec_guard_backend` runs an exec guard test once with the compiled guard and once with bpftrace's program."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from podlab import PodLab
from roothelpers import IN_CI, REPO, SHARED_DATA, need_podlab, need_root, need_shared_data, require

from kubeguard.bpfbuild import BuildUnavailable
from kubeguard.policy.execguard import BPFTRACE, COMPILED, COMPILED_SWITCH, ExecGuard, compiled_guard

__all__ = ["IN_CI", "REPO", "SHARED_DATA", "need_podlab", "need_root", "need_shared_data", "require"]


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


@pytest.fixture(params=[COMPILED, BPFTRACE])
def exec_guard_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The backend under test, chosen through KUBEGUARD_EXEC_GUARD_COMPILED (so agents the test starts use it
    too); every ExecGuard the test starts in this process must have run it (no silent fallback)."""
    backend: str = request.param
    if backend == COMPILED:
        try:
            compiled_guard()
        except BuildUnavailable as exc:
            require(False, f"the compiled exec guard ({exc})")
    else:
        require(shutil.which("bpftrace") is not None, "bpftrace (the exec guard)")
    monkeypatch.setenv(COMPILED_SWITCH, "1" if backend == COMPILED else "0")
    guards: list[ExecGuard] = []
    choose = ExecGuard._choose

    def recorded(self: ExecGuard) -> None:
        choose(self)
        guards.append(self)

    monkeypatch.setattr(ExecGuard, "_choose", recorded)
    yield backend
    assert all(g.backend == backend for g in guards), [(g.backend, g.backend_reason) for g in guards]
