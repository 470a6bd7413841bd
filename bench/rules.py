"""Rule engine throughput: a generated, realistic event mix through Falco's stable+incubating rules plus ours.

Peers measured in the same run: the naive tree-walking evaluator over the same conditions
(kubeguard.rules.treewalk), and Falco's published figure of ~250,000 syscalls/s on one CPU.
Run: ``PYTHONPATH=src:. python -m bench.rules [--events N]``; Falco's rule files are read from
../shared/data/falco-rules (KUBEGUARD_SHARED_DATA overrides ../shared/data, e.g. from a git worktree).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from pathlib import Path

from bench.record import record
from kubeguard.rules import RuleEngine
from kubeguard.rules.treewalk import TreeWalker

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KUBEGUARD_SHARED_DATA") or REPO.parent / "shared" / "data")
FALCO_RULES = SHARED_DATA / "falco-rules"
FALCO_PUBLISHED_EPS = 250_000
TARGET_EPS = 250_000

BINARIES = ["/usr/bin/python3", "/usr/local/bin/node", "/usr/bin/java", "/usr/sbin/nginx", "/usr/bin/date",
            "/bin/sh", "/usr/bin/curl", "/usr/bin/git", "/usr/bin/ls", "/usr/bin/grep", "/usr/bin/cat",
            "/usr/local/bin/app", "/usr/bin/sleep", "/usr/bin/env"]
FILES = ["/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/python3.11/os.py", "/etc/hosts",
         "/etc/resolv.conf", "/proc/self/stat", "/app/config.yaml", "/var/log/app/app.log", "/tmp/upload-123",
         "/usr/share/zoneinfo/UTC", "/etc/nsswitch.conf", "/app/static/index.html", "/sys/fs/cgroup/cpu.max"]
APP_WRITES = ["/var/log/app/app.log", "/tmp/upload-123", "/app/cache/session.db", "/var/lib/app/data.db"]
CLIENTS = ["/usr/bin/python3", "/usr/local/bin/node", "/usr/bin/java", "/usr/sbin/nginx", "/usr/bin/curl",
           "/usr/local/bin/app"]
PEERS = [("10.96.0.10", 53), ("10.96.12.7", 5432), ("10.96.3.3", 6379), ("172.217.16.14", 443),
         ("10.244.1.20", 8080), ("10.96.0.1", 443)]
ATTACKS = [
    {"evt.type": "execve", "proc.name": "bash", "proc.exepath": "/bin/bash", "proc.cmdline": "bash", "proc.tty": 34816},
    {"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "fd.type": "file", "fd.num": 3,
     "evt.arg.flags": "O_RDONLY", "evt.rawres": 3},
    {"evt.type": "execve", "proc.name": "xmrig", "proc.exepath": "/tmp/xmrig", "proc.cmdline": "xmrig -o stratum+tcp://p:3333"},
    {"evt.type": "connect", "proc.name": "curl", "fd.type": "ipv4", "fd.rip": "169.254.169.254", "fd.rport": 80,
     "fd.sip": "169.254.169.254", "fd.sport": 80, "evt.rawres": 0},
]


def generate(count: int, seed: int = 7) -> list[dict]:
    """Mostly benign exec/open/connect from containers and the host, a few other syscalls, rare attacks."""
    rng = random.Random(seed)
    pods = [{"container.id": f"{rng.getrandbits(48):012x}", "k8s.ns.name": ns, "k8s.pod.name": f"{ns}-{i}",
             "container.image.repository": f"registry.example/{ns}/app"} for i, ns in
            enumerate(["shop", "payments", "web", "batch", "monitoring"] * 4)]
    events = []
    t = 1_790_000_000_000_000_000
    for _ in range(count):
        t += rng.randint(1000, 50_000)
        where = {"container.id": "host"} if rng.random() < 0.15 else rng.choice(pods)
        exe = rng.choice(BINARIES)
        name = exe.rsplit("/", 1)[1]
        base = {**where, "evt.time": t, "evt.dir": "<", "proc.pid": rng.randint(100, 60000), "proc.name": name,
                "proc.exepath": exe, "proc.pname": rng.choice(["python3", "node", "containerd-shim", "bash", "java"]),
                "user.uid": rng.choice([0, 1000, 65534]), "user.name": "app", "proc.tty": 0,
                "proc.cmdline": f"{name} --port 8080", "proc.args": "--port 8080"}
        roll = rng.random()
        if roll < 0.0005:
            events.append({**base, **rng.choice(ATTACKS)})
        elif roll < 0.55:
            if rng.random() < 0.8:
                path, flags = rng.choice(FILES), rng.choice(["O_RDONLY|O_CLOEXEC", "O_RDONLY"])
            else:
                path = rng.choice(APP_WRITES)
                flags = rng.choice(["O_WRONLY|O_CREAT|O_APPEND", "O_RDWR|O_CREAT", "O_WRONLY|O_CREAT|O_TRUNC"])
            events.append({**base, "evt.type": rng.choice(["openat", "openat", "open"]), "fd.name": path,
                           "fd.type": "file", "fd.num": rng.randint(3, 200), "evt.arg.flags": flags,
                           "evt.rawres": 3})
        elif roll < 0.75:
            events.append({**base, "evt.type": "execve", "evt.rawres": 0,
                           "proc.aname": [name, base["proc.pname"], "containerd-shim"]})
        elif roll < 0.92:
            ip, port = rng.choice(PEERS)
            client = rng.choice(CLIENTS)
            base.update({"proc.name": client.rsplit("/", 1)[1], "proc.exepath": client})
            events.append({**base, "evt.type": "connect", "fd.type": "ipv4", "fd.l4proto": "tcp",
                           "fd.sip": ip, "fd.sport": port, "fd.rip": ip, "fd.rport": port,
                           "fd.cip": "10.244.0.5", "fd.cport": rng.randint(30000, 60000),
                           "evt.rawres": rng.choice([0, -115])})
        else:
            kind = rng.choice(["accept4", "procexit", "dup2", "close", "mmap", "clone", "read"])
            events.append({**base, "evt.type": kind, "evt.rawres": rng.choice([0, 1, 5])})
    return events


def measure(fn, events: list[dict], repeats: int) -> tuple[float, float, int]:
    """Best events/s over `repeats` passes by CPU time of this process and by wall clock; matches of the last."""
    best_cpu = best_wall = 0.0
    hits = 0
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        wall, cpu = time.perf_counter(), time.process_time()
        hits = 0
        for event in events:
            if fn(event):
                hits += 1
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        gc.enable()
        best_cpu = max(best_cpu, len(events) / max(cpu, 1e-9))
        best_wall = max(best_wall, len(events) / max(wall, 1e-9))
    return best_cpu, best_wall, hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    files = [FALCO_RULES / "falco_rules.yaml", FALCO_RULES / "falco-incubating_rules.yaml"]
    if not all(f.exists() for f in files):
        print(f"Falco rule files not found under {FALCO_RULES}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    engine = RuleEngine.load(files, include_defaults=True, hostname="bench")
    load_s = time.perf_counter() - started
    events = generate(args.events)
    walker = TreeWalker(engine.rules)
    naive_events = events[: max(5000, args.events // 20)]

    compiled_eps, compiled_wall, compiled_hits = measure(engine.matching_rules, events, args.repeats)
    process_eps, process_wall, _ = measure(engine.process, events, args.repeats)
    naive_eps, naive_wall, _ = measure(walker.matching, naive_events, 1)
    agree = all(sorted(r.name for r in engine.matching_rules(e)) == sorted(walker.matching(e))
                for e in naive_events[:5000])

    lines = [
        "## Rule engine (`python -m bench.rules`)",
        "",
        f"{len(engine.rules)} enabled rules (Falco stable + incubating + kubeguard defaults), loaded and compiled in "
        f"{load_s:.2f} s (Falco's rules of the same name replace ours, as a later file does); "
        f"{len(events):,} generated events (≈55% open, 20% exec, 17% connect, 8% other syscalls, "
        f"0.05% attacks; 85% from containers). One Python thread (one core). Absolute figures move with "
        "other load on the machine (load average below); the ratios were measured in the same run.",
        "",
        "| evaluator | events/s per CPU second | events/s wall clock | ratio (CPU) |",
        "|---|---:|---:|---:|",
        f"| compiled, indexed by evt.type (`matching_rules`) | {compiled_eps:,.0f} | {compiled_wall:,.0f} | "
        f"{compiled_eps / FALCO_PUBLISHED_EPS:.2f}x Falco's published ~250k/s |",
        f"| compiled + Alert building (`process`) | {process_eps:,.0f} | {process_wall:,.0f} | "
        f"{process_eps / FALCO_PUBLISHED_EPS:.2f}x Falco's published |",
        f"| naive tree walk, every rule on every event | {naive_eps:,.0f} | {naive_wall:,.0f} | "
        f"compiled is {compiled_eps / naive_eps:.0f}x faster |",
        "",
        f"Matches in the mix: {compiled_hits:,} events raised at least one rule. Compiled and tree-walk results "
        f"agree on the first 5,000 events: {'yes' if agree else 'NO'}. Target ≥ {TARGET_EPS:,} events/s: "
        f"{'met' if compiled_eps >= TARGET_EPS else 'NOT met'}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("rules", text)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
