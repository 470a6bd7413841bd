"""The perf-buffer wake-up shim for the sensor's bpftrace (perfwake.c), built once per source version.

bpftrace 0.17 wakes its reader on every printf; on our VMs that costs ~10 us inside each probe, on
the traced task's time (see perfwake.c). The shim, LD_PRELOADed into bpftrace only, makes the kernel
wake the reader at a byte watermark and bpftrace drain every non-empty ring each `drain_ms`.
It is compiled with the system C compiler into a cache directory named after the source's hash;
without a compiler the sensor runs plain bpftrace (per-event wake-ups) and says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
CACHE_DIRS = (Path("/var/cache/kubeguard"),
              Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubeguard")
# built into the container image (Dockerfile: python -m kubeguard.bpfprebuild), which has no compiler; read-only
PREBUILT_DIRS = (Path("/usr/local/lib/kubeguard/bpf"),)
DRAIN_MS = 20  # longest a record waits in the kernel ring at low rates
WATERMARK_FRACTION = 8  # wake the reader when 1/8 of a CPU's ring is filled (storms)


class ShimUnavailable(Exception):
    """The shim cannot be built here (no C compiler, no writable cache, compile error)."""


def source() -> str:
    return resources.files("kubeguard.sensors").joinpath("perfwake.c").read_text()


def shim_name() -> str:
    """The file name of the shim built from this source version."""
    return f"perfwake-{hashlib.sha256(source().encode()).hexdigest()[:16]}.so"


def shim_path(cache_dirs: tuple[Path, ...] = CACHE_DIRS, compiler: str | None = None) -> Path:
    """The built shim: from a cache directory or prebuilt (`PREBUILT_DIRS`), else built now."""
    name = shim_name()
    for directory in (*cache_dirs, *PREBUILT_DIRS):
        if (directory / name).is_file() and trusted(directory) and trusted(directory / name):
            return directory / name
    cc = compiler or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ShimUnavailable("no C compiler (cc/gcc) to build the perf wake-up shim")
    return build_in_cache(cache_dirs, "the perf wake-up shim", lambda directory, work: compile_shim(
        directory, work, cc), ShimUnavailable)


def compile_shim(directory: Path, work: Path, cc: str) -> Path:
    """Compile the shim in `work` and move it into `directory`; raises ShimUnavailable."""
    name = shim_name()
    src, out = work / "perfwake.c", work / name
    src.write_text(source())
    done = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(src), "-ldl"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ShimUnavailable(f"compiling perfwake.c failed: {done.stderr.strip()[:300]}")
    os.replace(out, directory / name)  # atomic: concurrent starts never load a half-written file
    return directory / name


def build_in_cache(cache_dirs: tuple[Path, ...], what: str, make: Callable[[Path, Path], T],
                   error: type[Exception]) -> T:
    """`make(directory, work)` in the first of `cache_dirs` that is ours and writable by nobody else (created if
    missing), with `work` a temporary directory inside it; raises `error` when none is usable."""
    errors = []
    for directory in cache_dirs:
        try:
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            if not trusted(directory):
                errors.append(f"{directory}: writable by other users or not ours")
                continue
            with tempfile.TemporaryDirectory(dir=directory) as work:
                return make(directory, Path(work))
        except OSError as exc:
            errors.append(f"{directory}: {exc.strerror or exc}")
    raise error(f"no writable cache directory for {what} (" + "; ".join(errors) + ")")


def trusted(path: Path) -> bool:
    """Ours and writable by nobody else (the library is preloaded into a root process)."""
    info = path.stat()
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def shim_env(rb_pages: int, drain_ms: int = DRAIN_MS, markers: bool = False) -> dict[str, str]:
    """Environment for bpftrace with the shim; {} (plain bpftrace) when it cannot be built, logged once.

    With `markers` the shim prints a drain marker line after each drain's records (see timeorder.py)."""
    try:
        path = shim_path()
    except ShimUnavailable as exc:
        log.warning("ebpf sensor: per-event perf wake-ups (higher exec/connect latency): %s", exc)
        return {}
    watermark = max(4096, rb_pages * os.sysconf("SC_PAGE_SIZE") // WATERMARK_FRACTION)
    preload = " ".join(p for p in (str(path), os.environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, "KUBEGUARD_PERF_DRAIN_MS": str(drain_ms),
            "KUBEGUARD_PERF_WATERMARK": str(watermark), "KUBEGUARD_PERF_MARKERS": "1" if markers else "0"}
