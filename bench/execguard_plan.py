"""Exec guard plan changes: written into the running program's maps in place vs a new program per plan.

Run as root: `PYTHONPATH=src:. python -m bench.execguard_plan [--changes 11] [--inodes 850]`.

One `ExecGuard` (bpftrace program + script answerer), a plan of one container of `--inodes` allowed
executables, then `--changes` plan changes that add or remove a container of as many (2, 3, 4, 3, 2, ...
containers). Each change is applied twice, alternating, from the same plan to the same plan: in place (the
agent's path since b704be3) and by a new program filled before the old one stops (the path before it, and
still the one taken when a plan outgrows the maps; forced here by marking the running program's maps as
too small). Times are `ExecGuard.apply` wall time, in milliseconds; a new pod of a protected workload waits
for this after the enforcer's look.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench.record import record
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

CGROUP_BASE = 1 << 40  # no such cgroups: the plans only fill the maps


def plan(containers: int, inodes: int) -> list[GuardedCgroup]:
    return [GuardedCgroup(CGROUP_BASE + i, frozenset(range(1 + i * inodes, 1 + (i + 1) * inodes)))
            for i in range(containers)]


def timed_apply(guard: ExecGuard, guarded: list[GuardedCgroup], new_program: bool) -> float:
    """Milliseconds to apply `guarded`; with `new_program`, the running program's maps count as full."""
    run = guard.current
    if new_program and run is not None:
        run.keys_max = 0
    began = time.perf_counter()
    guard.apply(guarded)
    return 1000 * (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=11)
    parser.add_argument("--inodes", type=int, default=850)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.execguard_plan needs root (bpftrace)")
    sizes = [2 + (i % 4 if i % 4 < 3 else 1) for i in range(args.changes)]  # 2, 3, 4, 3, 2, 3, 4, ...
    guard = ExecGuard()
    in_place: list[float] = []
    new_program: list[float] = []
    try:
        first = timed_apply(guard, plan(1, args.inodes), new_program=False)
        previous = 1
        for size in sizes:
            for times, forced in ((in_place, False), (new_program, True)):
                timed_apply(guard, plan(previous, args.inodes), new_program=False)  # back to the same start
                times.append(timed_apply(guard, plan(size, args.inodes), new_program=forced))
            previous = size
        restarts = guard.restarts
    finally:
        guard.close()
    if restarts:
        raise SystemExit(f"bench.execguard_plan: the guard exited {restarts} time(s) during the run")
    ratio = statistics.median(new_program) / statistics.median(in_place)
    markdown = "\n".join([
        "## Exec guard plan changes (bench/execguard_plan.py)",
        "",
        f"`ExecGuard.apply` wall time for {args.changes} plan changes that add or remove a container of "
        f"{args.inodes} allowed executables (2 to 4 containers), each applied both ways, alternating: written into "
        "the running program's maps in place, and by a new bpftrace program filled before the old one stops (the "
        "path before b704be3; still taken when a plan outgrows the maps). A new pod of a protected workload is "
        f"guarded this long after the enforcer's look. First start of the guard: {first:.0f} ms.",
        "",
        "| path | median ms | max ms |",
        "|---|---|---|",
        f"| in place | {statistics.median(in_place):.1f} | {max(in_place):.1f} |",
        f"| new program (peer) | {statistics.median(new_program):.1f} | {max(new_program):.1f} |",
        "",
        f"New program / in place: **{ratio:.0f}x** (median).",
    ])
    record("execguard_plan", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
