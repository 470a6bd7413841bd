"""Building a compiled BPF object (``NAME.bpf.c``) and its libbpf loader (``NAME.c``) once per source version.

The object is compiled with clang, CO-RE against the running kernel's BTF through bpftool's vmlinux.h; the
loader with the system C compiler and libbpf (Debian: clang, bpftool, libbpf-dev). Both go into a trusted cache
directory (ours, writable by nobody else: the loader runs as root) under names carrying a digest of the sources
and the kernel release. Used by the sensor's exec probe (sensors/execprobe.py) and the exec guard
(policy/execguard.py); a caller without the tools keeps its bpftrace programs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from kubeguard.sensors.perfwake import CACHE_DIRS, build_in_cache, trusted

BTF = Path("/sys/kernel/btf/vmlinux")
SBIN_DIRS = (Path("/usr/sbin"), Path("/sbin"))  # bpftool's home, often not on a user's PATH


class BuildUnavailable(Exception):
    """The object or its loader cannot be built here (a tool missing, no writable cache, a compile error)."""


@dataclass(frozen=True)
class Built:
    """A built loader and the BPF object it loads."""

    loader: Path
    bpf_object: Path


def tool(name: str) -> str:
    """The path of `name` (PATH, then the sbin directories); raises BuildUnavailable."""
    found = shutil.which(name) or next((str(d / name) for d in SBIN_DIRS if (d / name).is_file()), None)
    if found is None:
        raise BuildUnavailable(f"{name} not found (Debian packages clang, bpftool, libbpf-dev)")
    return found


def build(package: str, name: str, variant: str = "", defines: tuple[str, ...] = (),
          cache_dirs: tuple[Path, ...] = CACHE_DIRS) -> Built:
    """Package `package`'s ``NAME.bpf.c`` (compiled with `defines`, one object per `variant`) and ``NAME.c`` for
    this kernel, built now if not in a cache directory yet; raises BuildUnavailable."""
    sources = resources.files(package)
    bpf_src, loader_src = sources.joinpath(f"{name}.bpf.c").read_text(), sources.joinpath(f"{name}.c").read_text()
    digest = hashlib.sha256(f"{bpf_src}\0{loader_src}\0{os.uname().release}".encode()).hexdigest()[:16]
    loader_name, object_name = f"{name}-{digest}", f"{name}-{digest}{'-' + variant if variant else ''}.bpf.o"
    for directory in cache_dirs:
        loader, bpf_object = directory / loader_name, directory / object_name
        if loader.is_file() and bpf_object.is_file() and all(trusted(p) for p in (directory, loader, bpf_object)):
            return Built(loader, bpf_object)
    if not BTF.is_file():
        raise BuildUnavailable(f"the kernel has no BTF ({BTF})")
    clang, bpftool, cc = tool("clang"), tool("bpftool"), shutil.which("cc") or tool("gcc")

    def make(directory: Path, tmp: Path) -> Built:
        (tmp / f"{name}.bpf.c").write_text(bpf_src)
        (tmp / f"{name}.c").write_text(loader_src)
        with (tmp / "vmlinux.h").open("w") as header:
            _run([bpftool, "btf", "dump", "file", str(BTF), "format", "c"], "bpftool btf dump", stdout=header)
        _run([clang, "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", *defines, "-I", str(tmp), "-c",
              str(tmp / f"{name}.bpf.c"), "-o", str(tmp / object_name)], f"compiling {name}.bpf.c")
        if not (directory / loader_name).is_file():
            _run([cc, "-O2", "-Wall", "-o", str(tmp / loader_name), str(tmp / f"{name}.c"), "-lbpf"],
                 f"compiling {name}.c")
            os.replace(tmp / loader_name, directory / loader_name)  # atomic for concurrent starts
        os.replace(tmp / object_name, directory / object_name)
        return Built(directory / loader_name, directory / object_name)

    return build_in_cache(cache_dirs, name, make, BuildUnavailable)


def _run(cmd: list[str], what: str, stdout: IO[str] | None = None) -> None:
    done = subprocess.run(cmd, stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise BuildUnavailable(f"{what} failed: {(done.stderr or '').strip()[:400]}")
