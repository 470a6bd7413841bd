"""Shared by the sensor cost benchmarks (bench/sensor_opens.py, bench/sensor_datagrams.py): C loops timed with
no sensor, under this tree's kubeguard.bt and under a git revision's (the peer), interleaved per round, with the
events the sensor delivered for each loop counted."""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.agent import SOURCES, WORK
from kubeguard.model import Event
from kubeguard.sensors.ebpf import EbpfSensor

# (label, run the loop once -> ns per iteration)
Case = tuple[str, Callable[[], float]]
# does this event belong to the loop of this label?
Match = Callable[[Event, str], bool]


def arguments(doc: str, count: str, prog: str) -> argparse.Namespace:
    """--COUNT (iterations per loop), --rounds, --baseline; exits unless root."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument(f"--{count}", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="git revision whose kubeguard.bt runs as the peer")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit(f"{prog} needs root")
    return args


def compiled(source: str) -> Path:
    """bench/agent_spawner/SOURCE.c built with gcc -O2 (the tool's path)."""
    WORK.mkdir(parents=True, exist_ok=True)
    tool = WORK / source
    subprocess.run(["gcc", "-O2", "-o", str(tool), str(SOURCES / f"{source}.c")], check=True)
    return tool


def run_loop(tool: Path, *args: object) -> float:
    """Run one C loop; it prints ns per iteration."""
    out = subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def program_at(rev: str) -> str:
    """kubeguard.bt as of git revision `rev`."""
    repo = Path(__file__).resolve().parents[1]
    cmd = ["git", "-C", str(repo), "show", f"{rev}:src/kubeguard/sensors/kubeguard.bt"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


class Count:
    """Counts the sensor's events of the loop running now."""

    def __init__(self, match: Match) -> None:
        self.match, self.label, self.seen = match, "", 0

    def __call__(self, event: Event) -> None:
        if self.match(event, self.label):
            self.seen += 1


def timed(cases: Sequence[Case], match: Match, source: str | None) -> tuple[dict[str, float], dict[str, int], int]:
    """ns per iteration of every case under a running sensor (`source` = program text, None = this tree's),
    the events counted for each and the events lost in the kernel."""
    sensor = EbpfSensor(source=source)
    sensor.start()
    count, stop = Count(match), threading.Event()
    thread = threading.Thread(target=sensor.run, args=(count, stop), daemon=True)
    thread.start()
    ns: dict[str, float] = {}
    seen: dict[str, int] = {}
    for label, run in cases:
        count.label, count.seen = label, 0
        ns[label] = run()
        last, quiet = -1, time.monotonic()
        while time.monotonic() - quiet < 1.0:  # drain
            if count.seen != last:
                last, quiet = count.seen, time.monotonic()
            time.sleep(0.05)
        seen[label] = count.seen
    stop.set()
    thread.join(10)
    lost = int(sensor.stats().get("lost", 0))
    sensor.close()
    return ns, seen, lost


@dataclass
class Figures:
    """Per case: ns per iteration of every round with no sensor, this tree's program and the peer's."""

    bare: dict[str, list[float]] = field(default_factory=dict)
    traced: dict[str, list[float]] = field(default_factory=dict)
    peer: dict[str, list[float]] = field(default_factory=dict)
    reported: dict[str, int] = field(default_factory=dict)
    lost: int = 0

    def rows(self, total: int, what: str = "") -> list[str]:
        """Markdown rows: label | no sensor | [peer |] this tree | ratio | reported of `total` `what`."""
        out = []
        for label, bare in self.bare.items():
            b, t = statistics.median(bare), statistics.median(self.traced[label])
            old = f"{statistics.median(self.peer[label]):,.0f} | " if self.peer.get(label) else ""
            out.append(f"| {label} | {b:,.0f} | {old}{t:,.0f} | {t / b:.2f}x | {self.reported[label]:,} of "
                       f"{total:,}{what} |")
        return out


def measure(cases: Sequence[Case], match: Match, rounds: int, baseline: str | None) -> Figures:
    """Every case with no sensor, then under this tree's program, then under `baseline`'s, `rounds` times."""
    peer = program_at(baseline) if baseline else None
    figures = Figures({label: [] for label, _ in cases}, {label: [] for label, _ in cases},
                      {label: [] for label, _ in cases}, {label: 0 for label, _ in cases})
    for _ in range(rounds):
        for label, run in cases:
            figures.bare[label].append(run())
        ns, seen, lost = timed(cases, match, None)
        figures.lost += lost
        for label in ns:
            figures.traced[label].append(ns[label])
            figures.reported[label] += seen[label]
        if peer is not None:
            ns, _, _ = timed(cases, match, peer)
            for label in ns:
                figures.peer[label].append(ns[label])
    return figures
