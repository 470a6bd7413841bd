"""Long fuzz lane: each text parser (rules, manifests, policy, ebpf) to 1,000,000 atheris inputs, one after another.

`nice -n 19 python -m bench.fuzz [TARGET...] [--runs N]`. Each target starts from a copy of its seed corpus
(tests/fuzz/seeds/TARGET) and runs tests/fuzz/atheris_inputs.py under libFuzzer; the table in docs/benchmarks.md
is rewritten after every target, so a stopped run keeps the targets it finished. Crash inputs are kept under
bench/fuzz-crashes/ (a crash is a bug: fix it and add its input as a regression test).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.record import DOC, record

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "fuzz" / "atheris_inputs.py"
SEEDS = ROOT / "tests" / "fuzz" / "seeds"
TARGETS = {
    "rules": "Falco rule YAML: loader, overrides, condition compile",
    "manifests": "manifest files through the cluster loader (YAML/JSON, binary, BOM)",
    "policy": "WorkloadPolicy documents (policy/document.py)",
    "ebpf": "kubeguard.bt output lines (sensors/ebpf_decode.py)",
}
TABLE_HEAD = "| target | what it feeds | inputs | time | crashes | coverage (edges) |\n|---|---|---:|---:|---:|---:|\n"


def run_target(name: str, runs: int) -> dict[str, str]:
    """One libFuzzer run; returns the row's figures."""
    crashes = ROOT / "bench" / "fuzz-crashes"
    crashes.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"kg-fuzz-{name}-") as corpus:
        for seed in (SEEDS / name).iterdir():
            shutil.copy(seed, corpus)
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(HARNESS), name, f"-runs={runs}", "-timeout=10",
                                 "-rss_limit_mb=2048", f"-artifact_prefix={crashes}/{name}-", corpus],
                                capture_output=True, text=True, env=env)
        seconds = time.monotonic() - start
    done = re.search(r"Done (\d+) runs", result.stderr)
    cov = re.findall(r"cov: (\d+)", result.stderr)
    crashed = result.returncode != 0
    if crashed:
        print(result.stderr[-4000:], file=sys.stderr)
    return {"inputs": f"{int(done.group(1)):,}" if done else "stopped", "time": f"{seconds:.0f} s",
            "crashes": "1 (see bench/fuzz-crashes)" if crashed else "0", "edges": cov[-1] if cov else "?"}


def recorded_rows() -> dict[str, str]:
    """The table rows already in docs/benchmarks.md, by target (a run of some targets keeps the others' rows)."""
    text = DOC.read_text() if DOC.exists() else ""
    block = re.search(r"<!-- bench:fuzz -->(.*?)<!-- /bench:fuzz -->", text, re.S)
    rows = re.findall(r"^\| `(\w+)` \|.*$", block.group(1), re.M) if block else []
    lines = re.findall(r"^\| `\w+` \|.*$", block.group(1), re.M) if block else []
    return dict(zip(rows, lines, strict=True))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.fuzz")
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    unknown = [name for name in args.targets if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    rows = recorded_rows()
    failed = False
    for name in args.targets or list(TARGETS):
        row = run_target(name, args.runs)
        failed |= row["crashes"] != "0"
        print(f"fuzz {name}: {row}", flush=True)
        rows[name] = (f"| `{name}` | {TARGETS[name]} | {row['inputs']} | {row['time']} | {row['crashes']} | "
                      f"{row['edges']} |")
        record("fuzz", "## Fuzzing the text parsers (bench/fuzz.py, atheris / libFuzzer)\n\n"
               f"`nice -n 19 python -m bench.fuzz --runs {args.runs}` (harness tests/fuzz/atheris_inputs.py, "
               "seeds tests/fuzz/seeds/; the test suite runs the same harness for a few thousand inputs each):\n\n"
               + TABLE_HEAD + "\n".join(rows[t] for t in TARGETS if t in rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
