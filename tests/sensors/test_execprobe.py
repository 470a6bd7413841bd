"""Building the compiled exec probe: cached per source version, a clear reason when it cannot be built, and the
kubeguard.bt sections it stands in for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import require
from kubeguard import bpfbuild
from kubeguard.sensors import execprobe
from kubeguard.sensors.ebpf import split_sections


def tools_present() -> bool:
    return all(shutil.which(t) or Path("/usr/sbin", t).is_file() for t in ("clang", "bpftool")) and \
        Path("/usr/include/bpf/libbpf.h").is_file() and execprobe.BTF.is_file()


def test_built_once_then_taken_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(tools_present(), "clang, bpftool, libbpf-dev and kernel BTF (scripts/setup-host.sh)")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    probe = execprobe.build(want_env=False, cache_dirs=(cache,))
    assert probe.loader.read_bytes()[:4] == b"\x7fELF" and probe.bpf_object.read_bytes()[:4] == b"\x7fELF"
    with_env = execprobe.build(want_env=True, cache_dirs=(cache,))
    assert with_env.loader == probe.loader and with_env.bpf_object != probe.bpf_object  # one loader, two objects
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    # a second start finds both without compiling (no tool is looked up)
    monkeypatch.setattr(bpfbuild, "tool", lambda name: (_ for _ in ()).throw(AssertionError(name)))
    assert execprobe.build(want_env=False, cache_dirs=(cache,)) == probe
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps
    assert probe.command(1 << 20) == [str(probe.loader), str(probe.bpf_object), str(1 << 20)]


def test_a_missing_tool_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bpfbuild.shutil, "which", lambda name: None)
    monkeypatch.setattr(bpfbuild, "SBIN_DIRS", ())
    monkeypatch.setattr(bpfbuild, "BTF", Path(__file__))  # some file: the BTF check passes
    with pytest.raises(execprobe.ExecProbeUnavailable, match="clang not found"):
        execprobe.build(want_env=False, cache_dirs=(tmp_path,))


def test_a_cache_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    require(tools_present(), "clang, bpftool, libbpf-dev and kernel BTF (scripts/setup-host.sh)")
    cache = tmp_path / "open"
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(execprobe.ExecProbeUnavailable, match="writable by other users"):
        execprobe.build(want_env=False, cache_dirs=(cache,))


def test_the_sections_it_replaces_are_kubeguard_bt_sections() -> None:
    source = (Path(execprobe.__file__).parent / "kubeguard.bt").read_text()
    names = {name for name, _ in split_sections(source)}
    assert set(execprobe.SECTIONS) <= names
