"""`exec_guard_backend`: runs an exec guard test once with the compiled guard and once with bpftrace's program."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from roothelpers import require

from kubeguard.bpfbuild import BuildUnavailable
from kubeguard.policy.execguard import BPFTRACE, COMPILED, COMPILED_SWITCH, ExecGuard, compiled_guard


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
