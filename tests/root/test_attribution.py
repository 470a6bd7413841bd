"""Attribution on real cgroups: a new pod's cgroup id resolves at once, and a process that moved
into a pod (as every container's first process does) is not left with its old identity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from podlab import PodLab

from kubeguard.agent.enrich import Enricher
from kubeguard.agent.podsource import FilePodSource
from kubeguard.agent.proctable import ProcessTable
from kubeguard.cluster.cgroups import CgroupResolver
from kubeguard.model import Event


def test_new_pod_cgroup_resolves_through_the_process_without_a_rewalk(podlab: PodLab, tmp_path: Path) -> None:
    resolver = CgroupResolver(refresh_interval=3600)
    resolver.path(1)  # walk now, before the pod exists; no other walk for an hour
    walks = resolver.walks
    pod = podlab.pod("web", namespace="shop")
    source = FilePodSource(podlab.write_pods(tmp_path / "pods.json"))
    enricher = Enricher(source, resolver, ProcessTable())
    host_cgroup = os.stat(str(resolver.root) + _v2_path(os.getpid())).st_ino
    sleeper = pod.popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for _ in range(100):
            if sleeper.pid in pod.pids() and "python" in Path(f"/proc/{sleeper.pid}/comm").read_text():
                break
            subprocess.run(["sleep", "0.05"])
        # the wrapper shell's first event was in the host cgroup, with the same pid
        first = enricher.enrich(Event({"evt.type": "execve", "proc.pid": sleeper.pid, "proc.ppid": os.getpid(),
                                       "proc.name": "sh", "_cgroup_id": host_cgroup}))
        assert first["container.id"] == "host"
        later = enricher.enrich(Event({"evt.type": "openat", "proc.pid": sleeper.pid, "proc.name": "python3",
                                       "fd.name": "/etc/shadow", "_cgroup_id": pod.cgroup_id}))
        assert later["container.id"] == pod.container_id
        assert (later["k8s.ns.name"], later["k8s.pod.name"]) == ("shop", "web")
        assert resolver.walks == walks
    finally:
        sleeper.kill()
        sleeper.wait()


def _v2_path(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return "" if line[3:] == "/" else line[3:]
    return ""
