"""Find a pod's network interface on this node: the host side of the veth whose peer is in the pod's netns.

The pod's cgroup (from its uid) names a process of the pod; in that process's network namespace the
pod's interface (eth0 with every common CNI) is a veth whose peer ifindex (`link_index`) is the
host-side interface. Without a process to look through (no cgroup found), the route the node uses
for the pod's IP names it, as for quarantine.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

from kubeguard.response.quarantine import interface_of, pod_cgroup


class PodInterfaceError(Exception):
    """The pod's interface could not be found; one line."""


def pod_pids(cgroup_dir: Path) -> list[int]:
    """Processes in the pod's cgroup and its children (containers)."""
    pids: list[int] = []
    for procs in sorted(cgroup_dir.rglob("cgroup.procs")):
        try:
            pids.extend(int(p) for p in procs.read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def veth_peer_of(pid: int) -> str:
    """The host-side interface paired with the veth inside the network namespace of `pid` ("" if none)."""
    nsenter = shutil.which("nsenter") or shutil.which("nsenter", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if nsenter is None:
        return ""
    done = subprocess.run([nsenter, f"--net=/proc/{pid}/ns/net", "--", "ip", "-j", "-d", "link", "show"],
                          capture_output=True, text=True)
    try:
        links = json.loads(done.stdout) if done.returncode == 0 else []
    except ValueError:
        return ""
    for link in links:
        kind = (link.get("linkinfo") or {}).get("info_kind")
        if kind == "veth" and link.get("link_index"):
            try:
                return socket.if_indextoname(int(link["link_index"]))
            except OSError:
                continue
    return ""


def pod_interface(ip: str, pod_uid: str, cgroup_root: Path | None) -> tuple[str, str]:
    """(host interface, how it was found) for the pod with `ip` / `pod_uid`."""
    cgroup = pod_cgroup(pod_uid, cgroup_root)
    if cgroup is not None:
        for pid in pod_pids(cgroup):
            name = veth_peer_of(pid)
            if name:
                return name, f"veth peer of the netns of pid {pid}"
    if ip:
        name = interface_of(ip)
        if name:
            return name, f"route to {ip}"
    raise PodInterfaceError(f"no host-side interface found for the pod (ip {ip or 'none'}, uid {pod_uid})")
