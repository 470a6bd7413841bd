"""Coverage-guided fuzzing (atheris / libFuzzer) of the text parsers: rule files, manifests, policy files, eBPF lines.

One harness, one parser per run: `python tests/fuzz/atheris_inputs.py TARGET [libFuzzer flags] [corpus dirs]`,
TARGET one of rules, manifests, policy, ebpf. test_fuzz_atheris.py runs each for a bounded number of inputs;
bench/fuzz.py runs each to 1,000,000. Only the parsers' documented outcomes may happen (problems collected,
PolicyError raised); any other exception is a crash libFuzzer reports.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from kubeguard.cluster.loader import load_file
    from kubeguard.cluster.snapshot import Snapshot
    from kubeguard.policy.document import PolicyError, parse_documents
    from kubeguard.rules.loader import Loader
    from kubeguard.rules.rule_engine import compile_rules
    from kubeguard.sensors.ebpf_decode import BpftraceDecoder

_SCRATCH = Path(tempfile.mkdtemp(prefix="kg-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def fuzz_rules(data: bytes) -> None:
    """Falco rule YAML: load (lists, macros, rules, overrides) and compile every condition."""
    loader = Loader()
    loader.load_text("fuzz.yaml", _text(data))
    compile_rules(loader.rs)


def fuzz_manifests(data: bytes) -> None:
    """Manifest files through the cluster loader (bytes as they are on disk: binary, BOM, JSON or YAML)."""
    suffix = ".json" if data[:1] == b"{" else ".yaml"
    path = _SCRATCH / f"m{suffix}"
    path.write_bytes(data)
    snap = Snapshot()
    load_file(path, snap)
    snap.of_kind("Pod")


def fuzz_policy(data: bytes) -> None:
    """WorkloadPolicy documents: PolicyError (file:line) is the only allowed failure."""
    try:
        parse_documents(_text(data), "fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml:"), exc


def fuzz_ebpf(data: bytes) -> None:
    """kubeguard.bt output lines: feed() never raises, flush() completes what is pending."""
    decoder = BpftraceDecoder()
    for line in _text(data).split("\n"):
        decoder.feed(line)
    decoder.flush()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "rules": fuzz_rules, "manifests": fuzz_manifests, "policy": fuzz_policy, "ebpf": fuzz_ebpf,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
