"""Building the compiled exec probe: cached per source version, a clear reason when it cannot be built, and the
kubeguard.bt sections it stands in for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import require
from kubeguard import bpfbuild, bpfprebuild
from kubeguard.policy import execguard
from kubeguard.sensors import execprobe, perfwake
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


def test_prebuilt_programs_are_taken_where_nothing_can_be_built(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The container image's case: no compiler, nothing cached, the programs prebuilt (python -m
    kubeguard.bpfprebuild DIR): the exec probe's two variants, the exec guard and the shim come from DIR."""
    require(tools_present(), "clang, bpftool, libbpf-dev and kernel BTF (scripts/setup-host.sh)")
    prebuilt = tmp_path / "prebuilt"
    assert bpfprebuild.main([str(prebuilt)]) == 0
    written = sorted(p.name for p in prebuilt.iterdir())
    assert len(written) == 6  # two loaders, three objects, the shim
    empty = tmp_path / "cache"
    empty.mkdir(mode=0o755)
    monkeypatch.setattr(perfwake, "PREBUILT_DIRS", (prebuilt,))
    monkeypatch.setattr(bpfbuild, "tool", lambda name: (_ for _ in ()).throw(AssertionError(name)))
    monkeypatch.setattr(perfwake.shutil, "which", lambda name: None)
    plain, env = (execprobe.build(want_env=w, cache_dirs=(empty,)) for w in (False, True))
    guard = execguard.compiled_guard(cache_dirs=(empty,))
    shim = perfwake.shim_path(cache_dirs=(empty,))
    assert {p.parent for p in (plain.loader, plain.bpf_object, env.bpf_object, guard.loader, guard.bpf_object,
                               shim)} == {prebuilt}
    assert plain.loader == env.loader and plain.bpf_object != env.bpf_object and guard.loader != plain.loader
    assert sorted(p.name for p in (plain.loader, plain.bpf_object, env.bpf_object, guard.loader,
                                   guard.bpf_object, shim)) == written
    assert not any(empty.iterdir())  # nothing compiled, nothing written
    # a prebuilt directory others can write is not trusted: the build is tried (and here has no tools)
    prebuilt.chmod(0o777)
    monkeypatch.setattr(bpfbuild, "tool", lambda name: (_ for _ in ()).throw(bpfbuild.BuildUnavailable(name)))
    with pytest.raises(execprobe.ExecProbeUnavailable):
        execprobe.build(want_env=False, cache_dirs=(empty,))
    with pytest.raises(perfwake.ShimUnavailable):
        perfwake.shim_path(cache_dirs=(empty,))


def test_prebuild_names_its_failure_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bpfbuild, "tool", lambda name: (_ for _ in ()).throw(
        bpfbuild.BuildUnavailable(f"{name} not found (Debian packages clang, bpftool, libbpf-dev)")))
    assert bpfprebuild.main([str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        "kubeguard.bpfprebuild: clang not found (Debian packages clang, bpftool, libbpf-dev)\n")
    assert bpfprebuild.main([]) == 2
