"""Agent benchmark: exec storm (events seen vs spawned, drops) and agent CPU/RSS at ~1,000 events/s.

Run as root: `PYTHONPATH=src:. python -m bench.agent [--storm-rate 5000] [--storm-seconds 30]`.

- Storm: a C spawner in a test pod (tests/root/podlab.py) vfork+execs a static no-op binary at
  `--storm-rate` per second; the full agent (`kubeguard agent --sensor ebpf`, default rules, events
  log) runs meanwhile. Seen = execve events of the no-op attributed to the pod's container id in
  the agent's event log; lost = spawned - seen; drops = the agent's queue and kernel counters.
- Load: the same at `--load-rate` (500 exec/s = ~1,000 events/s: exec + exit) for `--load-seconds`;
  CPU of the agent's process tree (Python + its bpftrace child) over the window, peak RSS.
- Peer, same run, same load: bpftrace alone running the sensor's own program with its output thrown
  away (the kernel and bpftrace cost any bpftrace-based agent pays). Ratio: agent CPU / peer CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.root.podlab import PodLab

from bench.record import record

WORK = Path(__file__).resolve().parent / ".work" / "agent"
SOURCES = Path(__file__).resolve().parent / "agent_spawner"
REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def build_tools() -> tuple[Path, Path]:
    """Compile the spawner and the static no-op target into bench/.work/agent/."""
    WORK.mkdir(parents=True, exist_ok=True)
    spawner, noop = WORK / "spawner", WORK / "noop"
    subprocess.run(["gcc", "-O2", "-o", str(spawner), str(SOURCES / "spawner.c")], check=True)
    subprocess.run(["gcc", "-static", "-nostdlib", "-O2", "-o", str(noop), str(SOURCES / "noop.c")], check=True)
    return spawner, noop


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (by /proc/*/stat ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def rss_mib(pids: list[int], key: str = "VmRSS") -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Agent:
    """`kubeguard agent` as a subprocess, ready once it printed its "sensor ... running" line."""

    def __init__(self, work: Path, pods: Path, rules: list[str] | None = None,
                 options: list[str] | None = None) -> None:
        self.events = work / "events.jsonl"
        self.stderr_path = work / "agent.err"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeguard", "agent", "--sensor", "ebpf", "--pods", str(pods),
             "--events-out", str(self.events), "--alerts-out", str(work / "alerts.jsonl"),
             "--store", str(work / "alerts.db"), "--drop-report-interval", "5",
             *[arg for path in rules or [] for arg in ("--rules", path)],
             *[arg for option in options or [] for arg in ("-o", option)]],
            stdout=subprocess.DEVNULL, stderr=self.stderr_path.open("w"), env=env)
        deadline = time.monotonic() + 120
        while "running" not in self.stderr_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"agent did not start: {self.stderr_path.read_text().strip()}")
            time.sleep(0.2)

    def drain(self, quiet_s: float = 2.0, limit_s: float = 30.0) -> None:
        """Wait until the agent's events log stopped growing for `quiet_s` (at most `limit_s`): the agent has
        read what the storm left in the kernel's rings before it is stopped (a stop drops what is still there)."""
        deadline, size, since = time.monotonic() + limit_s, -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.events.stat().st_size if self.events.exists() else 0
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.2)

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)
        text = self.stderr_path.read_text()
        match = re.search(r"events (\d+), processed (\d+), dropped (\d+) \(queue\) \+ (\d+) \(kernel\)", text)
        if not match:
            raise SystemExit(f"no summary from the agent: {text.strip()[-500:]}")
        events, processed, queue_drops, kernel_lost = (int(g) for g in match.groups())
        rules = re.search(r"(\d+) rules loaded", text)
        return {"events": events, "processed": processed, "queue_drops": queue_drops, "kernel_lost": kernel_lost,
                "rules": int(rules.group(1)) if rules else 0}

    def seen_execs(self, container_id: str, exe: str) -> tuple[int, int]:
        """Successful execs of `exe` in the container, and how many of them had an empty exe path
        (bpftrace's str() of a user page not yet touched reads ""); both are seen and attributed."""
        seen = unreadable = 0
        with self.events.open() as f:
            for line in f:
                if '"execve"' in line and container_id in line:
                    e = json.loads(line)
                    if e.get("container.id") != container_id or e.get("evt.rawres") != 0:
                        continue
                    if e.get("proc.exepath") == exe:
                        seen += 1
                    elif not e.get("proc.exepath") and not e.get("proc.args"):
                        seen += 1
                        unreadable += 1
        return seen, unreadable


def storm(pod, spawner: Path, noop: Path, rate: float, seconds: float) -> tuple[int, float]:
    out = pod.run([str(spawner), str(rate), str(seconds), str(noop)], timeout=seconds + 120)
    spawned, elapsed, _failed = out.stdout.split()
    return int(spawned), float(elapsed)


def measure_agent(lab: PodLab, spawner: Path, noop: Path, args: argparse.Namespace) -> dict[str, float]:
    pod = lab.pod("storm", namespace="bench")
    work = Path(tempfile.mkdtemp(prefix="kg-bench-agent-"))
    agent = Agent(work, lab.write_pods(work / "pods.json"), args.rules, args.option)
    try:
        pids = tree_pids(agent.proc.pid)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        load_spawned, load_elapsed = storm(pod, spawner, noop, args.load_rate, args.load_seconds)
        time.sleep(1.0)
        pids = tree_pids(agent.proc.pid)
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        rss = rss_mib(pids)
        storm_spawned, storm_elapsed = storm(pod, spawner, noop, args.storm_rate, args.storm_seconds)
        peak = rss_mib(tree_pids(agent.proc.pid), "VmHWM")
        agent.drain()
    finally:
        counters = agent.stop()
    seen_total, unreadable = agent.seen_execs(pod.container_id, str(noop))
    return {
        "load_rate": load_spawned / load_elapsed, "load_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "load_spawned": load_spawned, "rss_mib": rss, "peak_rss_mib": peak,
        "storm_spawned": storm_spawned, "storm_rate": storm_spawned / storm_elapsed, "storm_seconds": storm_elapsed,
        "seen": seen_total, "unreadable_path": unreadable, "expected": load_spawned + storm_spawned, **counters,
    }


def measure_bpftrace_alone(lab: PodLab, spawner: Path, noop: Path, args: argparse.Namespace) -> dict[str, float]:
    from kubeguard.sensors.ebpf import available_tracepoints, build_program

    program, _ = build_program(available_tracepoints())
    pod = lab.pod("peer", namespace="bench")
    out = WORK / "bpftrace-alone.out"
    env = {**os.environ, "BPFTRACE_PERF_RB_PAGES": "4096", "BPFTRACE_STRLEN": "64"}
    with out.open("wb") as sink:
        proc = subprocess.Popen(["bpftrace", "-f", "json", "-e", program], stdout=sink,
                                stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while b"READY" not in out.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bpftrace alone did not start")
            time.sleep(0.2)
        cpu0, t0 = cpu_seconds([proc.pid]), time.monotonic()
        spawned, elapsed = storm(pod, spawner, noop, args.load_rate, args.load_seconds)
        time.sleep(1.0)
        cpu1, t1 = cpu_seconds([proc.pid]), time.monotonic()
        rss = rss_mib([proc.pid])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # bpftrace stuck detaching: the measurement is already taken
            proc.kill()
            proc.wait()
        out.unlink(missing_ok=True)
    return {"load_rate": spawned / elapsed, "load_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm-rate", type=float, default=5000)
    parser.add_argument("--storm-seconds", type=float, default=30)
    parser.add_argument("--load-rate", type=float, default=500, help="execs/s (each is 2 events: exec, exit)")
    parser.add_argument("--load-seconds", type=float, default=20)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--rules", action="append", default=[],
                        help="extra rules file for the agent (repeatable; e.g. Falco's, whose proc.env rules make "
                             "the sensor copy the environment of every exec)")
    parser.add_argument("-o", "--option", action="append", default=[],
                        help="rule selection for the agent, e.g. rules[].disable.rule=NAME (repeatable)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.agent needs root (bpftrace, test pods)")
    spawner, noop = build_tools()
    lab = PodLab()
    try:
        peer = measure_bpftrace_alone(lab, spawner, noop, args)
        agent = measure_agent(lab, spawner, noop, args)
    finally:
        lab.close()
    lost = agent["expected"] - agent["seen"]
    ratio = agent["load_cpu_pct"] / peer["load_cpu_pct"] if peer["load_cpu_pct"] else float("nan")
    load_events = 2 * agent["load_rate"]  # one execve and one procexit per spawn
    print(json.dumps({"agent": agent, "bpftrace_alone": peer, "cpu_ratio": ratio, "lost": lost}, indent=1))
    extra = " + " + ", ".join(Path(r).name for r in args.rules) if args.rules else ""
    markdown = f"""## Agent (`python -m bench.agent`)

Exec storm in a test pod (netns + kubelet-style cgroup), full agent (`kubeguard agent --sensor ebpf`,
default rules{extra} ({agent['rules']} loaded), events log on), a static no-op binary vfork+exec'd by a C spawner.

| measure | value |
|---|---|
| storm: spawned | {agent['storm_spawned']:,} in {agent['storm_seconds']:.1f} s |
| storm: exec rate achieved (asked) | {agent['storm_rate']:,.0f}/s ({args.storm_rate:,.0f}/s) |
| execs spawned in total (load + storm) | {agent['expected']:,} |
| execs seen by the agent, attributed to the pod | {agent['seen']:,} |
| of which with an empty exe path (bpftrace `str()` on a not-yet-touched page) | {agent['unreadable_path']:,} |
| **lost** | **{lost:,}** |
| agent queue drops / kernel-side lost (bpftrace) | {agent['queue_drops']:,} / {agent['kernel_lost']:,} |
| events received by the agent (all types, whole run) | {agent['events']:,} |
| load: exec rate (events/s, exec + exit) | {agent['load_rate']:,.0f} ({load_events:,.0f}) |
| load: agent CPU (Python + bpftrace), % of one core | **{agent['load_cpu_pct']:.1f} %** |
| load: bpftrace alone (peer, same program), % of one core | {peer['load_cpu_pct']:.1f} % |
| **ratio agent / bpftrace alone (CPU)** | **{ratio:.2f}x** |
| agent RSS at load / peak (Python + bpftrace) | {agent['rss_mib']:.0f} MiB / {agent['peak_rss_mib']:.0f} MiB |
| bpftrace alone RSS | {peer['rss_mib']:.0f} MiB |

Targets: 0 lost at 5k exec/s; <= 5 % of one core at 1k events/s. Absolute CPU figures move with other load
on the machine (load average below); the ratio to bpftrace alone, measured in the same run, less so.
"""
    if not args.no_record:
        record("agent", markdown)


if __name__ == "__main__":
    main()
