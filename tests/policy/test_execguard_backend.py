"""Which program the exec guard runs: the compiled guard when it builds (unless KUBEGUARD_EXEC_GUARD_COMPILED=0),
else bpftrace's, with the reason logged once; a compiled guard that does not start falls back to bpftrace. The
two programs' behaviour on real pods is tests/root/policy (every exec guard test runs with both)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import require
from kubeguard import bpfbuild
from kubeguard.policy import execguard
from kubeguard.policy.execguard import (
    BPFTRACE,
    COMPILED,
    COMPILED_SWITCH,
    ExecGuard,
    ExecGuardError,
    GuardedCgroup,
    choose_backend,
)


def no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bpfbuild.shutil, "which", lambda name: None)
    monkeypatch.setattr(bpfbuild, "SBIN_DIRS", ())
    monkeypatch.setattr(bpfbuild, "BTF", Path(__file__))  # some file: the BTF check passes


def test_a_missing_tool_means_bpftrace_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COMPILED_SWITCH, raising=False)
    no_tools(monkeypatch)
    built, reason = choose_backend(cache_dirs=(tmp_path,))
    assert built is None and "clang not found" in reason


def test_the_switch_chooses_bpftrace_without_building(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPILED_SWITCH, "0")
    monkeypatch.setattr(execguard, "compiled_guard", lambda *a: (_ for _ in ()).throw(AssertionError("built")))
    assert choose_backend() == (None, f"{COMPILED_SWITCH}=0")
    assert choose_backend(compiled=False) == (None, f"{COMPILED_SWITCH}=0")
    monkeypatch.delenv(COMPILED_SWITCH)
    assert choose_backend(compiled=False) == (None, "compiled guard not wanted")


def test_the_guard_logs_its_backend_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    built = bpfbuild.Built(Path("/cache/execguard-x"), Path("/cache/execguard-x.bpf.o"))
    monkeypatch.setattr(execguard, "compiled_guard", lambda *a: built)
    monkeypatch.delenv(COMPILED_SWITCH, raising=False)
    guard = ExecGuard(bpftrace="/usr/bin/bpftrace")
    with caplog.at_level(logging.INFO, logger="kubeguard.policy.execguard"):
        guard._choose()
        guard._choose()
    assert guard.backend == COMPILED and len(caplog.records) == 1 and "compiled" in caplog.records[0].message
    guard._gen = 3
    cmd, env = guard._command(1234, 8192)
    assert cmd == [str(built.loader), str(built.bpf_object), "1234", "3", "8192"] and env is None

    plain = ExecGuard(bpftrace="/usr/bin/bpftrace", compiled=False)
    with caplog.at_level(logging.INFO, logger="kubeguard.policy.execguard"):
        plain._choose()
    assert plain.backend == BPFTRACE and caplog.records[-1].levelno == logging.WARNING
    plain._gen = 2
    cmd, env = plain._command(1234, 8192)
    assert cmd[:5] == ["/usr/bin/bpftrace", "--unsafe", "-B", "line", "-e"] and cmd[6] == "1234"
    assert env is not None and env["BPFTRACE_MAP_KEYS_MAX"] == "8192"


class Running:
    """A stand-in for the running script answerer."""

    def poll(self) -> None:
        return None


def test_a_compiled_guard_that_does_not_start_falls_back_to_bpftrace(monkeypatch: pytest.MonkeyPatch) -> None:
    built = bpfbuild.Built(Path("/cache/execguard-x"), Path("/cache/execguard-x.bpf.o"))
    monkeypatch.setattr(execguard, "compiled_guard", lambda *a: built)
    monkeypatch.delenv(COMPILED_SWITCH, raising=False)
    guard = ExecGuard(bpftrace="/usr/bin/bpftrace")
    started: list[str] = []

    def start_program(self: ExecGuard, guarded: list[GuardedCgroup]) -> object:
        started.append(self.backend)
        if self._built is not None:
            raise ExecGuardError("exec guard did not start: ERROR: execguard: attaching guard_exec failed")
        return "run"

    monkeypatch.setattr(ExecGuard, "_start_program", start_program)
    guard.answerer = Running()  # type: ignore[assignment]
    assert guard._start([GuardedCgroup(1)]) == "run"  # type: ignore[comparison-overlap]
    assert started == [COMPILED, BPFTRACE] and guard.backend == BPFTRACE
    assert "attaching guard_exec failed" in guard.backend_reason
    # without bpftrace the error is the compiled guard's
    lone = ExecGuard(bpftrace="/nonexistent")
    lone.bpftrace = ""
    lone.answerer = Running()  # type: ignore[assignment]
    with pytest.raises(ExecGuardError, match="attaching guard_exec"):
        lone._start([GuardedCgroup(1)])
    # nor when the answerer is gone (not the compiled guard's fault): it stays the backend
    orphan = ExecGuard(bpftrace="/usr/bin/bpftrace")
    with pytest.raises(ExecGuardError, match="attaching guard_exec"):
        orphan._start([GuardedCgroup(1)])
    assert orphan.backend == COMPILED


def test_the_compiled_guard_builds_and_is_cached(tmp_path: Path) -> None:
    require(all(bpfbuild.shutil.which(t) or Path("/usr/sbin", t).is_file() for t in ("clang", "bpftool"))
            and Path("/usr/include/bpf/libbpf.h").is_file() and bpfbuild.BTF.is_file(),
            "clang, bpftool, libbpf-dev and kernel BTF (scripts/setup-host.sh)")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    built = execguard.compiled_guard((cache,))
    assert built.loader.read_bytes()[:4] == b"\x7fELF" and built.bpf_object.read_bytes()[:4] == b"\x7fELF"
    assert built.loader.name.startswith("execguard-") and execguard.compiled_guard((cache,)) == built
