"""Building a compiled BPF object (``NAME.bpf.c``) and its libbpf loader (``NAME.c``) once per source version.

The object is compiled with clang, CO-RE against the running kernel's BTF through bpftool's vmlinux.h; the
loader with the system C compiler and libbpf (Debian: clang, bpftool, libbpf-dev). Both go into a trusted cache
directory (ours, writable by nobody else: the loader runs as root) under names carrying a digest of the sources
and the kernel release. Used by the sensor's exec probe (sensors/execprobe.py) and the exec guard
(policy/execguard.py); a caller without the tools keeps its bpftrace programs.

Where nothing is cached for this kernel, a prebuilt object and loader for these sources are taken from
`perfwake.PREBUILT_DIRS` before anything is compiled: the container image has no compiler, and its build stage runs
``python -m kubeguard.bpfprebuild /usr/local/lib/kubeguard/bpf`` (`prebuild`), CO-RE objects that libbpf relocates
at load to the node's kernel (as Falco's modern probe ships). A prebuilt object the node's kernel refuses makes
its caller fall back to bpftrace (the sensor's exec probe, the exec guard).
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

from kubeguard.sensors import perfwake
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


def sources_of(package: str, name: str) -> tuple[str, str]:
    sources = resources.files(package)
    return sources.joinpath(f"{name}.bpf.c").read_text(), sources.joinpath(f"{name}.c").read_text()


def _names(name: str, variant: str, digest: str) -> tuple[str, str]:
    """The loader's and the object's file names."""
    return f"{name}-{digest}", f"{name}-{digest}{'-' + variant if variant else ''}.bpf.o"


def prebuilt_names(package: str, name: str, variant: str = "") -> tuple[str, str]:
    """The file names of a prebuilt (CO-RE, any kernel) loader and object of these sources."""
    bpf_src, loader_src = sources_of(package, name)
    return _names(name, variant, hashlib.sha256(f"{bpf_src}\0{loader_src}\0co-re".encode()).hexdigest()[:16])


def build(package: str, name: str, variant: str = "", defines: tuple[str, ...] = (),
          cache_dirs: tuple[Path, ...] = CACHE_DIRS) -> Built:
    """Package `package`'s ``NAME.bpf.c`` (compiled with `defines`, one object per `variant`) and ``NAME.c`` for
    this kernel: from a cache directory, else prebuilt (`perfwake.PREBUILT_DIRS`), else built now; raises
    BuildUnavailable."""
    bpf_src, loader_src = sources_of(package, name)
    digest = hashlib.sha256(f"{bpf_src}\0{loader_src}\0{os.uname().release}".encode()).hexdigest()[:16]
    loader_name, object_name = _names(name, variant, digest)
    found = _find(cache_dirs, loader_name, object_name) or _find(perfwake.PREBUILT_DIRS,
                                                                   *prebuilt_names(package, name, variant))
    if found is not None:
        return found
    if not BTF.is_file():
        raise BuildUnavailable(f"the kernel has no BTF ({BTF})")
    return build_in_cache(cache_dirs, name, lambda directory, tmp: compile_into(
        directory, tmp, name, (bpf_src, loader_src), (loader_name, object_name), defines), BuildUnavailable)


def _find(directories: tuple[Path, ...], loader_name: str, object_name: str) -> Built | None:
    for directory in directories:
        loader, bpf_object = directory / loader_name, directory / object_name
        if loader.is_file() and bpf_object.is_file() and all(trusted(p) for p in (directory, loader, bpf_object)):
            return Built(loader, bpf_object)
    return None


def compile_into(directory: Path, tmp: Path, name: str, sources: tuple[str, str], names: tuple[str, str],
                 defines: tuple[str, ...]) -> Built:
    """Compile `sources` (the BPF program's, the loader's) in `tmp`, CO-RE against the running kernel's BTF, and
    move them into `directory` under `names` (the loader kept when there); raises BuildUnavailable."""
    clang, bpftool, cc = tool("clang"), tool("bpftool"), shutil.which("cc") or tool("gcc")
    (bpf_src, loader_src), (loader_name, object_name) = sources, names
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


def _run(cmd: list[str], what: str, stdout: IO[str] | None = None) -> None:
    done = subprocess.run(cmd, stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise BuildUnavailable(f"{what} failed: {(done.stderr or '').strip()[:400]}")
