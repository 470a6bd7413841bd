"""Prebuilding the compiled BPF programs and the perf wake-up shim for the container image, which has no compiler.

``python -m kubeguard.bpfprebuild DIR`` (the Dockerfile's build stage, with clang, bpftool, libbpf-dev and a C
compiler) writes the exec probe (both variants), the exec guard and their loaders, CO-RE against the build host's
kernel BTF, and the shim into DIR, under the names `bpfbuild.build` and `perfwake.shim_path` look for in
`perfwake.PREBUILT_DIRS`. At load, libbpf relocates the objects to the node's kernel; one the node refuses makes
the sensor and the exec guard fall back to their bpftrace programs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from kubeguard.bpfbuild import BuildUnavailable, compile_into, prebuilt_names, sources_of
from kubeguard.sensors.execprobe import VARIANTS
from kubeguard.sensors.perfwake import ShimUnavailable, compile_shim

# (package, program, variant, compiler defines)
PROGRAMS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    *(("kubeguard.sensors", "execprobe", variant, defines) for variant, defines in VARIANTS.items()),
    ("kubeguard.policy", "execguard", "", ()),
)


def prebuild(directory: Path) -> list[Path]:
    """Build every program and the shim into `directory` (created 0755); the files written. Raises
    BuildUnavailable or ShimUnavailable."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    written = []
    for package, name, variant, defines in PROGRAMS:
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            built = compile_into(directory, Path(tmp), name, sources_of(package, name),
                                 prebuilt_names(package, name, variant), defines)
        written += [built.loader, built.bpf_object]
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ShimUnavailable("no C compiler (cc/gcc) to build the perf wake-up shim")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        written.append(compile_shim(directory, Path(tmp), cc))
    return sorted(set(written))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m kubeguard.bpfprebuild DIR", file=sys.stderr)
        return 2
    try:
        written = prebuild(Path(argv[0]))
    except (BuildUnavailable, ShimUnavailable, OSError) as exc:
        print(f"kubeguard.bpfprebuild: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
