"""Protect-mode cost: exec and connect latency in a protected pod vs the same pod with no agent, same run.

Run as root: `PYTHONPATH=src:. python -m bench.policy [--count 3000]`.

A client pod (workload shop/Deployment/bench-client) runs bench/policy_lat/lat.c:
- exec: vfork + execve of a static no-op binary + wait, `--count` times;
- connect: socket + TCP connect + close to a server pod, `--count` times;
p50 and p99 of each, in microseconds. Rounds: no agent; the guards alone; the agent detecting only;
the full agent (`kubeguard agent`, default rules, ebpf sensor, fanotify) with the client's policy in
protect (its executables and the server allowed: every exec passes the bpftrace exec guard, every
connect the cgroup connect4 program), then no agent again. The ratio is protect / the mean of the two no-agent rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.root.agentlab import AgentProcess
from tests.root.podlab import Pod, PodLab

from bench.record import record
from kubeguard.policy.connectguard import Allow, ConnectGuard
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup

HERE = Path(__file__).resolve().parent
ACCEPTOR = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4096)
while True:
    c, _ = s.accept()
    c.close()
"""
POLICY = """apiVersion: kubeguard.io/v1alpha1
kind: WorkloadPolicy
metadata: {{name: deployment-bench-client, namespace: shop}}
spec:
  workload: {{kind: Deployment, name: bench-client}}
  mode: protect
  processes: [{{path: {nsenter}}}, {{path: {lat}}}, {{path: {noop}}}]
  network:
    egress: [{{peer: {{cidr: {server}/32}}, port: 9000, protocol: TCP}}]
"""


def build(work: Path) -> tuple[Path, Path]:
    lat, noop = work / "lat", work / "noop"
    subprocess.run(["gcc", "-O2", "-o", str(lat), str(HERE / "policy_lat" / "lat.c")], check=True)
    subprocess.run(["gcc", "-static", "-nostdlib", "-O2", "-o", str(noop), str(HERE / "agent_spawner" / "noop.c")],
                   check=True)
    return lat, noop


def measure(client: Pod, lat: Path, noop: Path, server: Pod, count: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, args in (("exec", [str(noop)]), ("connect", [server.ip, "9000"])):
        done = client.run([str(lat), kind, str(count), *args], timeout=600)
        p50, p99, failed = done.stdout.split()
        if int(failed):
            raise SystemExit(f"bench.policy: {failed} of {count} {kind} calls failed (false blocks?)")
        out[f"{kind}_p50"], out[f"{kind}_p99"] = float(p50), float(p99)
    return out


def guards_only(client: Pod, lat: Path, noop: Path, server: Pod, count: int, nsenter: str) -> dict[str, float]:
    """The enforcement alone: the exec guard and the connect4 program, no sensors, no rules."""
    exec_guard, connect_guard = ExecGuard(), ConnectGuard()
    try:
        inodes = frozenset(os.stat(p).st_ino for p in (nsenter, lat, noop))
        exec_guard.apply([GuardedCgroup(client.cgroup_id, inodes)])
        connect_guard.set_entries({Allow(f"{server.ip}/32", 9000, "TCP")})
        connect_guard.attach(str(client.cgroup_v2))
        measure(client, lat, noop, server, 300)
        return measure(client, lat, noop, server, count)
    finally:
        exec_guard.close()
        connect_guard.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.policy: needs root (real pods, kernel guards)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kgb", dir="/tmp"))
    lab = PodLab()
    try:
        lat, noop = build(work)
        client = lab.pod("bench-client-5f6d7-q2w3e", namespace="shop", owner=("ReplicaSet", "bench-client-5f6d7"),
                         labels={"app": "bench-client", "pod-template-hash": "5f6d7"})
        server = lab.pod("bench-server", namespace="shop")
        server.popen([os.path.realpath(sys.executable), "-c", ACCEPTOR, server.ip, "9000"])
        deadline = time.monotonic() + 30
        while client.run([str(lat), "connect", "1", server.ip, "9000"]).stdout.split()[-1:] != ["0"]:
            if time.monotonic() > deadline:
                raise SystemExit("bench.policy: server pod did not listen")
            time.sleep(0.2)
        pods = lab.write_pods(work / "pods.json")
        policies = work / "policies"
        policies.mkdir()
        nsenter = shutil.which("nsenter", path="/usr/bin:/bin:/usr/sbin:/sbin") or "/usr/bin/nsenter"
        (policies / "client.yaml").write_text(POLICY.format(nsenter=nsenter, lat=lat, noop=noop, server=server.ip))
        measure(client, lat, noop, server, 300)  # warm caches
        before = measure(client, lat, noop, server, args.count)
        guards = guards_only(client, lat, noop, server, args.count, nsenter)
        agent = AgentProcess.start(work / "agent-detect", pods)
        try:
            detect = measure(client, lat, noop, server, args.count)
        finally:
            agent.stop()
        agent = AgentProcess.start(work / "agent", pods, extra=["--policy-dir", str(policies)])
        try:
            deadline = time.monotonic() + 90
            while "shop/Deployment/bench-client protect enforced" not in agent.stderr():
                if time.monotonic() > deadline or agent.proc.poll() is not None:
                    raise SystemExit(f"bench.policy: protect was not enforced:\n{agent.stderr()}")
                time.sleep(0.2)
            measure(client, lat, noop, server, 300)
            protect = measure(client, lat, noop, server, args.count)
        finally:
            agent.stop()
        after = measure(client, lat, noop, server, args.count)
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    ratios = {}
    for key in ("exec_p50", "exec_p99", "connect_p50", "connect_p99"):
        base = (before[key] + after[key]) / 2
        ratios[key] = protect[key] / base
        rows.append(f"| {key.replace('_', ' ')} | {before[key]:.1f} | {after[key]:.1f} | {guards[key]:.1f} "
                    f"({guards[key] / base:.2f}) | {detect[key]:.1f} ({detect[key] / base:.2f}) | {protect[key]:.1f} | "
                    f"{ratios[key]:.2f} |")
    markdown = "\n".join([
        "## Protect mode: exec and connect latency (bench/policy.py)",
        "",
        f"A pod's own latency, {args.count} calls each, in microseconds: no agent (before and after); the "
        "guards alone (bpftrace exec guard + cgroup connect4 program, no sensors); the agent detecting only "
        "(no policies); the full agent with the pod's workload in protect (sensors, default rules, guards). "
        "Ratios in brackets are against the mean of the two no-agent rounds.",
        "",
        "| measure | no agent (before) | no agent (after) | guards only | agent, detection only | protect (full agent) "
        "| protect / no agent |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Added p50: exec {100 * (ratios['exec_p50'] - 1):+.1f} % (goal <= 5 %), "
        f"connect {100 * (ratios['connect_p50'] - 1):+.1f} % (goal <= 10 %). The guards alone add "
        f"{100 * (guards['exec_p50'] / ((before['exec_p50'] + after['exec_p50']) / 2) - 1):+.1f} % (exec) and "
        f"{100 * (guards['connect_p50'] / ((before['connect_p50'] + after['connect_p50']) / 2) - 1):+.1f} % "
        "(connect); the rest is the detection sensors' cost (bpftrace probes on execve and connect).",
    ])
    record("policy", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
