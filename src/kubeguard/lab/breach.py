"""The Tesla breach lab: pods, routes and services of the live scenario, and their complete teardown.

    lab = BreachLab(work_dir)
    try:
        lab.build()               # pods (netns + kubelet-style cgroups), metadata route, services, pods file
        ... run the agent and the attacker ...
    finally:
        lab.close()               # kills everything in the pods, removes routes, cgroups, veths, netns
    assert lab.leftovers() == []

Pods: the open dashboard (kube-system/kubernetes-dashboard-..., a Deployment's pod), the cloud's
metadata service (own netns, 169.254.169.254 on its loopback, reached by the dashboard pod through a
policy route that matches only traffic entering from the dashboard's veth: the host's own route to a
real metadata service is untouched), the S3 store (moto), the CDN edge relay and the mining pool.
The pool's CDN-like name resolves through the lab's hosts file, bind-mounted in the dashboard pod's
own mount namespace (the host's /etc/hosts is never touched).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kubeguard.lab.pods import LabError, Pod, PodLab

log = logging.getLogger(__name__)

METADATA_IP = "169.254.169.254"
CONSOLE_PORT = 9090
S3_PORT = 9000
POOL_PORT = 3333
RELAY_PORT = 8443
POOL_NAME = "edge-17.cdn-static.net"
DASHBOARD = ("kube-system", "kubernetes-dashboard-5d9c7f-x2k8p", "kubernetes-dashboard-5d9c7f")
DASHBOARD_WORKLOAD = "kube-system/Deployment/kubernetes-dashboard"
READY_TIMEOUT = 120.0


class BreachLab:
    """The lab of the live scenario; `close()` is complete and idempotent (call it in `finally`)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pods = PodLab()
        self.table = random.randrange(20000, 30000)  # routing table of the metadata route
        self.dashboard: Pod | None = None
        self.metadata: Pod | None = None
        self.s3: Pod | None = None
        self.relay: Pod | None = None
        self.pool: Pod | None = None
        self._rule_added = False
        self._made: list[tuple[str, str]] = []  # (netns, host veth) of every pod made, for leftovers()
        self._cgroups: list[Path] = []
        self._logs: list[IO[bytes]] = []
        self.firewall_queue: int | None = None  # set by whoever starts the agent's firewall

    # -- building --------------------------------------------------------------------------------
    def build(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Make the pods and start every service; returns once all of them answer."""
        self.work.mkdir(parents=True, exist_ok=True)
        self._write_record()
        ns, name, replica_set = DASHBOARD
        self.dashboard = self._pod(name, namespace=ns, labels={"k8s-app": "kubernetes-dashboard",
                                                               "pod-template-hash": "5d9c7f"},
                                   service_account="kubernetes-dashboard", owner=("ReplicaSet", replica_set),
                                   image="kubernetesui/dashboard:v1.10.1", container_name="kubernetes-dashboard")
        self.metadata = self._pod("instance-metadata", namespace="cloud", image="cloud/metadata:2018")
        self.s3 = self._pod("s3-telemetry", namespace="cloud", image="motoserver/moto:5")
        self.relay = self._pod("cdn-edge", namespace="internet", image="cdn/edge:1")
        self.pool = self._pod("mining-pool", namespace="internet", image="pool/stratum:1")
        self.pods.write_pods(self.pods_file)
        progress("pods made")
        self._metadata_route()
        creds = self.work / "node-role.json"
        self._service(self.s3, "objectstore", "--port", str(S3_PORT), "--credentials", str(creds))
        self._service(self.metadata, "metadata", "--credentials", str(creds))
        self._service(self.pool, "pool", "--port", str(POOL_PORT))
        self._service(self.relay, "relay", "--port", str(RELAY_PORT), "--to", f"{self.pool.ip}:{POOL_PORT}")
        hosts = self.work / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n{self.relay.ip} {POOL_NAME}\n")
        token = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48) + ".lab"
        self._service(self.dashboard, "console", "--port", str(CONSOLE_PORT), "--hosts", str(hosts),
                      "--token", token, unshare=True)
        progress("services answer")

    @property
    def pods_file(self) -> Path:
        return self.work / "pods.json"

    def log_path(self, pod: Pod) -> Path:
        return self.work / f"{pod.name}.log"

    def _pod(self, name: str, **kwargs: Any) -> Pod:
        pod = self.pods.pod(name, **kwargs)
        self._made.append((pod.netns, pod.host_veth))
        self._cgroups.extend([pod.cgroup_v2, *pod.cgroup_v1.values()])
        self._write_record()
        return pod

    def _metadata_route(self) -> None:
        """169.254.169.254 on the metadata pod, routed to it only for packets from the dashboard's veth."""
        assert self.metadata is not None and self.dashboard is not None
        self.metadata.add_address(METADATA_IP)
        _ip("route", "add", f"{METADATA_IP}/32", "via", self.metadata.ip, "dev", self.metadata.host_veth,
            "table", str(self.table))
        _ip("rule", "add", "iif", self.dashboard.host_veth, "to", f"{METADATA_IP}/32", "table", str(self.table),
            "priority", str(self.table))
        self._rule_added = True

    def _service(self, pod: Pod, role: str, *args: str, unshare: bool = False) -> None:
        """Start a service in `pod` and wait for its `ready` line (LabError with its output otherwise)."""
        cmd = [sys.executable, "-m", "kubeguard.lab.services", role, "--ip", pod.ip, "--log",
               str(self.log_path(pod)), *args]
        if unshare:  # its own mount namespace: token, /root, /tmp and hosts of its own
            cmd = [shutil.which("unshare") or "unshare", "--mount", "--propagation", "private", *cmd]
        err = (self.work / f"{pod.name}.stderr").open("wb")
        self._logs.append(err)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = pod.popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        deadline, seen = time.monotonic() + READY_TIMEOUT, b""
        while b"ready" not in seen:
            with contextlib.suppress(BlockingIOError, TypeError):
                seen += proc.stdout.read() or b""
            if proc.poll() is not None or time.monotonic() > deadline:
                text = (self.work / f"{pod.name}.stderr").read_text(errors="replace").strip().splitlines()
                raise LabError(f"lab service {role} in {pod.namespace}/{pod.name} did not start: "
                               f"{text[-1] if text else 'no output'}")
            time.sleep(0.05)

    # -- reading the services' own logs ---------------------------------------------------------------
    def service_log(self, pod: Pod | None) -> list[dict[str, Any]]:
        """The JSON-lines log of a service (complete lines)."""
        if pod is None or not self.log_path(pod).exists():
            return []
        text = self.log_path(pod).read_text(errors="replace")
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.startswith("{")]

    def s3_requests(self) -> list[str]:
        """The object store's request log lines (werkzeug: `"GET /telemetry/... HTTP/1.1" 200 -`)."""
        if self.s3 is None or not self.log_path(self.s3).exists():
            return []
        return [line for line in self.log_path(self.s3).read_text(errors="replace").splitlines() if '"' in line]

    def s3_downloads(self) -> list[str]:
        """Successful object downloads in the store's own log."""
        return [line for line in self.s3_requests()
                if '"GET /telemetry/' in line and '" 200 ' in line.replace("\x1b[0m", "")]

    def pool_shares(self) -> list[dict[str, Any]]:
        return [e for e in self.service_log(self.pool) if e.get("event") == "share"]

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        """Kill every process in the pods, remove the route, the pods' cgroups, veths and namespaces."""
        if self._rule_added:
            _ip("rule", "del", "iif", self.dashboard.host_veth if self.dashboard else "", "to", f"{METADATA_IP}/32",
                "table", str(self.table), "priority", str(self.table), check=False)
            self._rule_added = False
        _ip("route", "flush", "table", str(self.table), check=False)
        self.pods.close()
        for fh in self._logs:
            fh.close()
        self._logs.clear()

    def record(self) -> dict[str, Any]:
        """What this lab made on the host (also written to lab.json as it is made, for checks from outside)."""
        return {"netns": [ns for ns, _ in self._made], "veths": [veth for _, veth in self._made],
                "cgroups": [str(path) for path in self._cgroups], "table": self.table,
                "firewall_queue": self.firewall_queue}

    def _write_record(self) -> None:
        tmp = self.work / ".lab.json.tmp"
        tmp.write_text(json.dumps(self.record()))
        tmp.replace(self.work / "lab.json")

    def leftovers(self) -> list[str]:
        """What of this lab is still on the host (empty after a complete teardown)."""
        return leftovers(self.record())


def leftovers(record: dict[str, Any]) -> list[str]:
    """What of a lab's record (`BreachLab.record()`, lab.json) is still on the host."""
    left: list[str] = []
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    left.extend(f"network namespace {ns}" for ns in record["netns"] if ns in netns)
    left.extend(f"veth {veth}" for veth in record["veths"]
                if subprocess.run(["ip", "link", "show", veth], capture_output=True).returncode == 0)
    left.extend(f"cgroup {path}" for path in map(Path, record["cgroups"]) if path.exists() or path.parent.exists())
    table = record["table"]
    if f"lookup {table}" in subprocess.run(["ip", "rule", "list"], capture_output=True, text=True).stdout:
        left.append(f"ip rule to table {table}")
    if subprocess.run(["ip", "route", "show", "table", str(table)], capture_output=True, text=True).stdout.strip():
        left.append(f"routes in table {table}")
    if record.get("firewall_queue") is not None:
        left.extend(f"iptables chain {chain}" for chain in firewall_chains(int(record["firewall_queue"])))
    return left


def firewall_chains(queue: int) -> list[str]:
    """The agent's iptables chains for NFQUEUE `queue` still in the filter table (KG-FW<queue>, KG-FW<queue>-*)."""
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    names = {line.split()[1] for line in out.splitlines() if line.startswith("-N ")}
    return sorted(n for n in names if n == f"KG-FW{queue}" or n.startswith(f"KG-FW{queue}-"))


def _ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
