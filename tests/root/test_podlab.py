"""The test-pod fixture itself: namespace, cgroup placement, pod-to-pod traffic, pods map, teardown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from podlab import PodLab

from kubeguard.cluster.podmap import PodMap


def test_pod_runs_commands_in_its_cgroup_and_namespace(podlab: PodLab) -> None:
    pod = podlab.pod("web", namespace="shop", labels={"app": "web"})
    out = pod.run(["sh", "-c", "cat /proc/self/cgroup; ip -4 -o addr show dev eth0"])
    assert out.returncode == 0, out.stderr
    assert f"0::/kubepods/besteffort/pod{pod.uid}/{pod.container_id}" in out.stdout
    assert pod.ip in out.stdout
    assert pod.cgroup_path == f"/kubepods/besteffort/pod{pod.uid}/{pod.container_id}"
    assert pod.cgroup_id == os.stat(pod.cgroup_v2).st_ino
    host = subprocess.run(["cat", "/proc/self/cgroup"], capture_output=True, text=True).stdout
    assert pod.container_id not in host


SERVE_ONCE = """
import socket, sys
srv = socket.create_server((sys.argv[1], 9099))
print("ready", flush=True)
conn, _ = srv.accept()
print(conn.recv(100).decode().strip(), flush=True)
"""
SEND = """
import socket, sys
with socket.create_connection((sys.argv[1], 9099), timeout=5) as s:
    s.sendall(b"hello\\n")
"""


def test_two_pods_reach_each_other_through_the_root_namespace(podlab: PodLab) -> None:
    server = podlab.pod("server")
    client = podlab.pod("client")
    listener = server.popen([sys.executable, "-c", SERVE_ONCE, server.ip], stdout=subprocess.PIPE, text=True)
    assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
    sent = client.run([sys.executable, "-c", SEND, server.ip])
    assert sent.returncode == 0, sent.stderr
    out, _ = listener.communicate(timeout=10)
    assert out.strip() == "hello"


def test_pods_map_names_each_pod(podlab: PodLab, tmp_path: Path) -> None:
    web = podlab.pod("web", namespace="shop", labels={"app": "web"}, service_account="web-sa")
    db = podlab.pod("db", namespace="data")
    podmap = PodMap.from_file(podlab.write_pods(tmp_path / "pods.json"))
    found = podmap.container(web.container_id)
    assert found is not None
    assert (found.namespace, found.pod, found.service_account, found.labels) == (
        "shop", "web", "web-sa", (("app", "web"),))
    assert podmap.by_ip[db.ip].pod == "db"
    assert podmap.by_pod_uid[db.uid].namespace == "data"


def test_close_kills_processes_and_removes_everything(podlab: PodLab) -> None:
    pod = podlab.pod()
    sleeper = pod.popen(["sh", "-c", "sleep 300 & sleep 300"])
    for _ in range(100):
        if len(pod.pids()) >= 2:
            break
        subprocess.run(["sleep", "0.05"])
    assert len(pod.pids()) >= 2
    pod.close()
    assert sleeper.poll() is not None
    assert not pod.cgroup_v2.exists()
    assert not pod.cgroup_v2.parent.exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert pod.host_veth not in links
    assert pod.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_extra_address_is_local_to_the_pod(podlab: PodLab) -> None:
    pod = podlab.pod()
    pod.add_address("169.254.169.254")
    inside = pod.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"]).stdout
    assert "169.254.169.254" in inside
    host = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    assert "169.254.169.254" not in host
