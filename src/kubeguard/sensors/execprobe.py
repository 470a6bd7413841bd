"""The compiled exec probe (execprobe.bpf.c and its loader execprobe.c), built once per source version.

bpftrace 0.17 runs one BPF program and one perf output per printed line: an exec costs ~9 us of probe time
in kubeguard.bt's exec sections (entry, argv, exit, cwd walk, facts, process exit). The compiled probe reads
the same facts in one program at sched_process_exec and writes one ring-buffer record (~1.5 us); its loader
prints the lines those sections print, into the same pipe as bpftrace, so the decoder is shared. Built
with clang (the BPF object, CO-RE against the running kernel's BTF through bpftool's vmlinux.h) and the
system C compiler with libbpf (the loader) into a cache directory named after the sources' hash; without
them the sensor keeps the exec sections in bpftrace and says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from kubeguard.sensors.perfwake import CACHE_DIRS, trusted

# kubeguard.bt sections the probe replaces (execenv: only when the environment is wanted)
SECTIONS = ("execfacts", "execenv", "exec", "procexit")
BTF = Path("/sys/kernel/btf/vmlinux")
SBIN_DIRS = (Path("/usr/sbin"), Path("/sbin"))  # bpftool's home, often not on a user's PATH


class ExecProbeUnavailable(Exception):
    """The compiled exec probe cannot be built here (a tool missing, no writable cache, a compile error)."""


@dataclass(frozen=True)
class ExecProbe:
    """A built probe: the loader to run and the BPF object it loads."""

    loader: Path
    bpf_object: Path

    def command(self, ring_bytes: int | None = None) -> list[str]:
        return [str(self.loader), str(self.bpf_object), *([str(ring_bytes)] if ring_bytes else [])]


def _source(name: str) -> str:
    return resources.files("kubeguard.sensors").joinpath(name).read_text()


def _tool(name: str) -> str:
    found = shutil.which(name) or next((str(d / name) for d in SBIN_DIRS if (d / name).is_file()), None)
    if found is None:
        raise ExecProbeUnavailable(f"{name} not found (Debian packages clang, bpftool, libbpf-dev)")
    return found


def build(want_env: bool, cache_dirs: tuple[Path, ...] = CACHE_DIRS) -> ExecProbe:
    """The probe for this kernel (built now if its sources are not in a cache directory yet)."""
    bpf_src, loader_src = _source("execprobe.bpf.c"), _source("execprobe.c")
    variant = "env" if want_env else "plain"
    digest = hashlib.sha256(f"{bpf_src}\0{loader_src}\0{os.uname().release}".encode()).hexdigest()[:16]
    loader_name, object_name = f"execprobe-{digest}", f"execprobe-{digest}-{variant}.bpf.o"
    for directory in cache_dirs:
        loader, bpf_object = directory / loader_name, directory / object_name
        if loader.is_file() and bpf_object.is_file() and all(trusted(p) for p in (directory, loader, bpf_object)):
            return ExecProbe(loader, bpf_object)
    if not BTF.is_file():
        raise ExecProbeUnavailable("the kernel has no BTF (/sys/kernel/btf/vmlinux)")
    clang, bpftool, cc = _tool("clang"), _tool("bpftool"), shutil.which("cc") or _tool("gcc")
    errors = []
    for directory in cache_dirs:
        try:
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            if not trusted(directory):
                errors.append(f"{directory}: writable by other users or not ours")
                continue
            with tempfile.TemporaryDirectory(dir=directory) as work:
                tmp = Path(work)
                (tmp / "execprobe.bpf.c").write_text(bpf_src)
                (tmp / "execprobe.c").write_text(loader_src)
                with (tmp / "vmlinux.h").open("w") as header:
                    _run([bpftool, "btf", "dump", "file", str(BTF), "format", "c"], "bpftool btf dump", stdout=header)
                defines = ["-D__TARGET_ARCH_x86", *(["-DWANT_ENV"] if want_env else [])]
                _run([clang, "-O2", "-g", "-target", "bpf", *defines, "-I", str(tmp), "-c",
                      str(tmp / "execprobe.bpf.c"), "-o", str(tmp / object_name)], "compiling execprobe.bpf.c")
                if not (directory / loader_name).is_file():
                    _run([cc, "-O2", "-Wall", "-o", str(tmp / loader_name), str(tmp / "execprobe.c"), "-lbpf"],
                         "compiling execprobe.c")
                    os.replace(tmp / loader_name, directory / loader_name)  # atomic for concurrent starts
                os.replace(tmp / object_name, directory / object_name)
            return ExecProbe(directory / loader_name, directory / object_name)
        except OSError as exc:
            errors.append(f"{directory}: {exc.strerror or exc}")
    raise ExecProbeUnavailable("no writable cache directory for the exec probe (" + "; ".join(errors) + ")")


def _run(cmd: list[str], what: str, stdout: IO[str] | None = None) -> None:
    done = subprocess.run(cmd, stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise ExecProbeUnavailable(f"{what} failed: {(done.stderr or '').strip()[:400]}")
