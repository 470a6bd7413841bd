"""Building the perf wake-up shim: cached per source version, never loaded from a directory others can write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import require
from kubeguard.sensors.perfwake import ShimUnavailable, shim_env, shim_path


def need_cc() -> None:
    require(shutil.which("cc") is not None or shutil.which("gcc") is not None, "a C compiler (gcc)")


def test_built_once_then_taken_from_the_cache(tmp_path: Path) -> None:
    need_cc()
    cache = tmp_path / "cache"
    built = shim_path((cache,))
    assert built.parent == cache and built.name.startswith("perfwake-") and built.suffix == ".so"
    assert built.read_bytes()[:4] == b"\x7fELF"
    stamp = built.stat().st_mtime_ns
    # a second start finds it without compiling (a compiler that does not exist is never called)
    assert shim_path((cache,), compiler=str(tmp_path / "no-such-cc")) == built
    assert built.stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [built.name]  # no temporary left behind


def test_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    need_cc()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ShimUnavailable, match="writable by other users"):
        shim_path((shared,))
    assert list(shared.iterdir()) == []


def test_untrusted_cached_copy_is_not_used(tmp_path: Path) -> None:
    need_cc()
    cache = tmp_path / "cache"
    built = shim_path((cache,))
    built.chmod(0o777)  # someone else could have replaced it
    with pytest.raises(ShimUnavailable):
        shim_path((cache,), compiler=str(tmp_path / "no-such-cc"))


def test_compile_failure_is_one_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'perfwake.c:1: broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ShimUnavailable, match=r"compiling perfwake\.c failed: perfwake\.c:1: broken"):
        shim_path((tmp_path / "cache",), compiler=str(fake))


def test_env_names_the_shim_and_a_watermark_below_the_ring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    need_cc()
    monkeypatch.setattr("kubeguard.sensors.perfwake.CACHE_DIRS", (tmp_path / "cache",))
    monkeypatch.setattr("kubeguard.sensors.perfwake.shim_path.__defaults__", ((tmp_path / "cache",), None))
    monkeypatch.setenv("LD_PRELOAD", "/opt/other.so")
    env = shim_env(rb_pages=64)
    first, other = env["LD_PRELOAD"].split(" ")
    assert Path(first).is_file() and other == "/opt/other.so"
    assert 4096 <= int(env["KUBEGUARD_PERF_WATERMARK"]) < 64 * 4096
    assert int(env["KUBEGUARD_PERF_DRAIN_MS"]) > 0
