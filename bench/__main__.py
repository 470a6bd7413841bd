"""`python -m bench` (`make bench`): every benchmark in turn, each rewriting its section of docs/benchmarks.md.

`python -m bench NAME...` runs only those. The root-only ones (agent, sensors) are skipped with a
line saying so when not run as root. Benchmarks run one after another: each measures one core
against a peer in the same run, so running two at once would only measure the contention.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BENCHMARKS = ("rules", "dpi_throughput", "l7_accuracy", "paths", "scan", "sensors", "agent", "policy",
              "execguard_plan", "new_container", "console_ingest", "live_demo", "flood")
ROOT_ONLY = frozenset({"sensors", "agent", "policy", "execguard_plan", "new_container", "live_demo"})


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        if name in ROOT_ONLY and os.geteuid() != 0:
            print(f"bench: {name} skipped (needs root: real pods and kernel sensors)", flush=True)
            continue
        print(f"bench: {name}", flush=True)
        began = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"bench: {name} exit {code} in {time.monotonic() - began:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
