"""Sensor benchmark: startup time, exec storm seen vs spawned, kernel-side loss, CPU per event.

Run as root: `PYTHONPATH=src:. python -m bench.sensors [--seconds 10] [--rate 5000]`.

The C spawner of bench/agent.py vfork+execs a static no-op binary, first as fast as it can, then
at `--rate` per second, while one sensor runs alone (no pipeline, no rules): the ebpf sensor
(bpftrace) and, as the peer in the same run, the proc connector fallback (CN_PROC + /proc, the
kind of sensor a pure-Python agent would use without eBPF). Seen = execve events of the no-op;
complete = with its exe path (the proc sensor loses it when the process is gone before /proc is
read). CPU = the sensor's Python process plus its bpftrace child over the storm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.agent import build_tools, cpu_seconds
from bench.record import record
from kubeguard.model import Event
from kubeguard.sensors.base import Sensor
from kubeguard.sensors.ebpf import EbpfSensor
from kubeguard.sensors.proc import ProcConnectorSensor


class Counter:
    """Counts the no-op's exec events (and complete ones) as the sensor emits them."""

    def __init__(self, exe: str) -> None:
        self.exe = exe
        self.total = self.execs = self.complete = 0

    def __call__(self, event: Event) -> None:
        self.total += 1
        if event.get("evt.type") == "execve" and event.get("evt.rawres") == 0:
            if event.get("proc.exepath") == self.exe:
                self.execs += 1
                self.complete += 1
            elif event.get("proc.name") in (Event.NA, Path(self.exe).name):  # /proc read too late (proc sensor)
                self.execs += 1


def measure(make: Callable[[], Sensor], spawner: Path, noop: Path, rate: float, seconds: float) -> dict[str, float]:
    sensor = make()
    began = time.monotonic()
    sensor.start()
    startup = time.monotonic() - began
    count = Counter(str(noop))
    stop = threading.Event()
    thread = threading.Thread(target=sensor.run, args=(count, stop), daemon=True)
    thread.start()
    pids = [os.getpid(), *([sensor.proc.pid] if isinstance(sensor, EbpfSensor) and sensor.proc else [])]
    cpu0 = cpu_seconds(pids)
    out = subprocess.run([str(spawner), str(rate), str(seconds), str(noop)], capture_output=True, text=True,
                         check=True, timeout=seconds + 120)
    spawned_s, elapsed_s = out.stdout.split()[:2]
    spawned, elapsed = int(spawned_s), float(elapsed_s)
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 1.5:  # drain: until no new event for 1.5 s
        if count.total != last:
            last, quiet_since = count.total, time.monotonic()
        time.sleep(0.1)
    cpu = cpu_seconds(pids) - cpu0
    stop.set()
    thread.join(10)
    stats = sensor.stats()
    sensor.close()
    return {"startup_s": startup, "spawned": spawned, "elapsed_s": elapsed, "seen": count.execs,
            "complete": count.complete, "events": count.total, "lost": stats.get("lost", 0),
            "parse_errors": stats.get("parse_errors", 0), "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--startups", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.sensors needs root")
    spawner, noop = build_tools()
    startups = []
    for _ in range(args.startups):
        sensor = EbpfSensor()
        began = time.monotonic()
        sensor.start()
        startups.append(time.monotonic() - began)
        sensor.close()
    runs = {
        ("ebpf", "max"): measure(EbpfSensor, spawner, noop, 0, args.seconds),
        ("proc", "max"): measure(ProcConnectorSensor, spawner, noop, 0, args.seconds),
        ("ebpf", "rate"): measure(EbpfSensor, spawner, noop, args.rate, args.seconds),
        ("proc", "rate"): measure(ProcConnectorSensor, spawner, noop, args.rate, args.seconds),
    }
    rows = []
    for (name, mode), r in runs.items():
        rate = r["spawned"] / r["elapsed_s"]
        rows.append(
            f"| {name} | {'max' if mode == 'max' else f'{args.rate:.0f}/s target'} | {r['spawned']:.0f} "
            f"({rate:,.0f}/s) | {r['seen']:.0f} | {r['complete']:.0f} ({100 * r['complete'] / r['spawned']:.1f} %) "
            f"| {r['lost']:.0f} | {r['parse_errors']:.0f} | {r['events'] / r['elapsed_s']:,.0f} "
            f"| {100 * r['cpu_s'] / r['elapsed_s']:.0f} % |")
    ebpf, proc = runs[("ebpf", "max")], runs[("proc", "max")]
    ratio = (ebpf["complete"] / ebpf["spawned"]) / max(proc["complete"] / proc["spawned"], 1e-9)
    markdown = f"""## Sensors: exec storm (bench/sensors.py)

ebpf sensor startup (bpftrace compiles and attaches 66 probes, until its READY line; under a load
average of ~8 on 2 cores): median
{statistics.median(startups):.2f} s over {len(startups)} starts (min {min(startups):.2f} s).

| sensor | spawn rate | spawned | execs seen | complete | lost | parse errors | events/s | CPU |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

At the spawner's maximum rate the ebpf sensor delivered complete exec events for
{100 * ebpf['complete'] / ebpf['spawned']:.1f} % of the processes, the proc-connector peer for
{100 * proc['complete'] / proc['spawned']:.1f} % (ratio ebpf/proc {ratio:.2f}x): CN_PROC gives pids only and
short-lived processes are gone before /proc is read ("execs seen" for proc also counts
execs of a process named like the no-op, so it can exceed "spawned"). "events/s" counts every event the sensor
emitted machine-wide (exits, opens of every other process ...); CPU: one core = 100 %. The spawner's maximum
rate and the CPU figures move with other load on the machine (load average below); the seen/spawned and ratio
columns are what this benchmark is for.
"""
    print(markdown)
    record("sensors", markdown)


if __name__ == "__main__":
    main()
