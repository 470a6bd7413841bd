"""The compiled exec probe (execprobe.bpf.c and its loader execprobe.c), built once per source version.

bpftrace 0.17 runs one BPF program and one perf output per printed line: an exec costs ~9 us of probe time in
kubeguard.bt's exec sections (entry, argv, exit, cwd walk, facts, process exit). The compiled probe reads the same
facts in one program at sched_process_exec and writes one packed ring-buffer record (~0.7 us with the process
exit's); its loader prints it into the same pipe as bpftrace as one E line (`execprobe -s` prints the sections' own
lines instead; a failed exec, an environment too long for the line and a process exit come as those lines anyway).
It also reports connect and accept as kubeguard.bt's connect and accept sections do (their C4, C6, CU, AC4 and AC6
lines), with one program at the syscall's exit and a ring-buffer record instead of bpftrace's entry and exit
programs and perf output (~0.75 us of probe time per connect before, measured with bench.policy's connect loop).
Built with clang (the BPF object, CO-RE against the running kernel's BTF through bpftool's vmlinux.h) and the
system C compiler with libbpf (the loader) into a cache directory named after the sources' hash; without them the
sensor keeps the exec sections in bpftrace and says so (the build: kubeguard.bpfbuild).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubeguard.bpfbuild import BTF, BuildUnavailable, Built
from kubeguard.bpfbuild import build as build_bpf
from kubeguard.sensors.perfwake import CACHE_DIRS

__all__ = ["BTF", "SECTIONS", "VARIANTS", "ExecProbe", "ExecProbeUnavailable", "build"]

# kubeguard.bt sections the probe replaces (execenv: only when the environment is wanted)
# the object's variants: without and with the environment copy (Falco's proc.env, when a loaded rule reads it)
VARIANTS: dict[str, tuple[str, ...]] = {"plain": (), "env": ("-DWANT_ENV",)}
SECTIONS = ("execfacts", "execenv", "exec", "procexit", "connect", "accept", "socket")


class ExecProbeUnavailable(BuildUnavailable):
    """The compiled exec probe cannot be built here (a tool missing, no writable cache, a compile error)."""


@dataclass(frozen=True)
class ExecProbe(Built):
    """A built probe: the loader to run and the BPF object it loads."""

    def command(self, ring_bytes: int | None = None) -> list[str]:
        return [str(self.loader), str(self.bpf_object), *([str(ring_bytes)] if ring_bytes else [])]


def build(want_env: bool, cache_dirs: tuple[Path, ...] = CACHE_DIRS) -> ExecProbe:
    """The probe for this kernel (built now if its sources are not in a cache directory yet)."""
    try:
        variant = "env" if want_env else "plain"
        built = build_bpf("kubeguard.sensors", "execprobe", variant, VARIANTS[variant], cache_dirs)
    except BuildUnavailable as exc:
        raise ExecProbeUnavailable(str(exc)) from None
    return ExecProbe(built.loader, built.bpf_object)
