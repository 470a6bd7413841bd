"""A new container's first exec in protect: held until the enforcer has planned the container, vs no agent.

Run as root: `PYTHONPATH=src:. python -m bench.new_container [--containers 10] [--rounds 3]`.

A lab pod of a Deployment (its own mount namespace, as a runtime's container) gets `--containers` new
container cgroups per block, which the pods map does not list (a restarted or new container before the kubelet
reports it). In each, two runs of `true` through the lab's pod wrapper (nsenter + sh, ~3 ms of the time): the
first exec, and the second. Blocks, interleaved over `--rounds`: no guard (the peer), the `Enforcer` (in a
process of its own, as the agent is) in protect with a one-path profile (`true` only), and with `/usr/bin/*`
(hundreds of executables to resolve inside the new container and write into the guard's maps before the held
exec is decided). Milliseconds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.record import record
from kubeguard.cluster.podmap import PodMap
from kubeguard.lab.pods import Pod, PodLab, extra_container, remove_extra_container
from kubeguard.policy.enforce import Enforcer
from kubeguard.policy.policy_engine import PolicyEngine
from kubeguard.policy.store import PolicyStore

TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")
PROFILES = {"one path": TRUE, "/usr/bin/*": "/usr/bin/*"}
POLICY = """apiVersion: kubeguard.io/v1alpha1
kind: WorkloadPolicy
metadata: {{name: deployment-web, namespace: shop}}
spec:
  workload: {{kind: Deployment, name: web}}
  mode: protect
  processes: [{{path: "{path}"}}]
"""


def timed_run(container: Pod) -> float:
    began = time.perf_counter()
    done = container.run([TRUE], timeout=120)
    took = 1000 * (time.perf_counter() - began)
    if done.returncode != 0:
        raise SystemExit(f"bench.new_container: an allowed exec failed ({done.returncode}): a false block")
    return took


def block(pod: Pod, count: int, first: list[float], second: list[float]) -> None:
    for _ in range(count):
        container = extra_container(pod)
        try:
            first.append(timed_run(container))
            second.append(timed_run(container))
        finally:
            remove_extra_container(container)


def serve_enforcer(policy_dir: str, pod_object: dict[str, Any], conn: Connection) -> None:
    """In a process of its own (as the agent is the workload's): the enforcer in protect until told to stop; sends
    "ready", then the number of held execs it saw."""
    store = PolicyStore(Path(policy_dir))
    store.open()
    podmap = PodMap.from_pods([pod_object])
    messages: list[str] = []
    enforcer = Enforcer(PolicyEngine(store, lambda: podmap), lambda: podmap, messages.append)
    enforcer.start()
    try:
        deadline = time.monotonic() + 120
        while not any("protect enforced" in m for m in messages):
            if time.monotonic() > deadline:
                conn.send(f"protect was not enforced: {messages}")
                return
            time.sleep(0.05)
        conn.send("ready")
        conn.recv()  # stop
        conn.send(enforcer.exec_guard.new_holds)
    finally:
        enforcer.stop()


def protected_block(pod: Pod, path: str, count: int, first: list[float], second: list[float]) -> int:
    """A block with the enforcer in protect (another process); the held execs it saw."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "web.yaml").write_text(POLICY.format(path=path))
        ours, theirs = multiprocessing.Pipe()
        child = multiprocessing.get_context("spawn").Process(target=serve_enforcer,
                                                             args=(tmp, pod.pod_object(), theirs))
        child.start()
        try:
            said = ours.recv() if ours.poll(180) else "no answer"
            if said != "ready":
                raise SystemExit(f"bench.new_container: the enforcer did not start: {said}")
            block(pod, count, first, second)
            ours.send("stop")
            holds = ours.recv() if ours.poll(120) else -1
            return int(holds)
        finally:
            child.join(timeout=120)
            if child.is_alive():
                child.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10, help="new containers per block")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.new_container needs root (lab pods, the exec guard)")
    lab = PodLab()
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in ("no agent", *PROFILES)}
    holds = 0
    try:
        pod = lab.pod("web-5f6d7-q2w3e", namespace="shop", owner=("ReplicaSet", "web-5f6d7"),
                      labels={"app": "web", "pod-template-hash": "5f6d7"}, mount_ns=True)
        pod.popen(["sleep", "100000"])  # the pod's own container keeps a process, as a real one does
        for _ in range(args.rounds):
            block(pod, args.containers, *times["no agent"])
            for name, path in PROFILES.items():
                holds += protected_block(pod, path, args.containers, *times[name])
    finally:
        lab.close()
    expected = args.rounds * args.containers * len(PROFILES)
    if holds != expected:
        raise SystemExit(f"bench.new_container: {holds} first execs held, expected {expected}")
    base = statistics.median(times["no agent"][0])
    rows = []
    for name, (first, second) in times.items():
        p50 = statistics.median(first)
        versus = "" if name == "no agent" else f"**{p50 / base:.2f}** (+{p50 - base:.1f} ms)"
        rows.append(f"| {name} | {p50:.1f} | {max(first):.1f} | {statistics.median(second):.1f} | {versus} |")
    markdown = "\n".join([
        "## A new container's first exec in protect (bench/new_container.py)",
        "",
        f"{args.rounds} rounds of {args.containers} new containers per condition, interleaved, in a lab pod of a "
        "protected Deployment; the pods map does not list them (a restarted or new container before the kubelet "
        "reports it), so the exec guard holds each one's first exec until the enforcer has planned the "
        "container, then releases it (docs/policy.md). Wall time of `true` through the lab's pod wrapper "
        "(nsenter + sh), milliseconds; the second exec is decided in the kernel. Peer: the same with no agent. "
        f"Every first exec under the enforcer was held ({holds}), none blocked. Under `/usr/bin/*` the second exec "
        "is slower too, and the third onwards are not (a separate run of 12 execs per container: ~15 ms, then "
        "3 to 5 ms); why the exec right after a held one pays for it was not investigated further.",
        "",
        "| condition | first exec p50 | first exec max | second exec p50 | first exec vs no agent |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(markdown)
    record("new_container", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
