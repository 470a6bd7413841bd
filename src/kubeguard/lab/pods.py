"""A "pod" of the lab (root tests and `kubeguard demo --live`): a network namespace, a veth to the root
namespace, a kubelet-style cgroup and an entry in the pods map, so sensors, attribution, rules and
enforcement run end to end.

    lab = PodLab()
    web = lab.pod("web", namespace="shop", labels={"app": "web"})
    client = lab.pod("client")
    web.popen(["python3", "-m", "http.server", "8080", "--bind", web.ip])
    client.run(["curl", f"http://{web.ip}:8080/"])
    lab.write_pods(tmp_path / "pods.json")      # Snapshot JSON for `--pods FILE` / PodMap.from_file
    lab.close()                                  # kills every process in the pods, removes everything

Each pod gets:
- a network namespace ``kgp-<hex>`` with ``eth0`` (the peer of host-side veth ``kgh<hex>``), an
  address from a private /30 that no interface or route on the host uses (chosen under a lock file
  shared by all test processes), a default route via the host side. Forwarding is enabled on the
  host-side veths only (IPv4 forwarding is decided per input interface), so two pods reach each
  other through the root namespace and nothing else is forwarded;
- a cgroup at ``kubepods/besteffort/pod<uid>/<64-hex container id>`` in the cgroup v2 hierarchy
  (detected: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on unified ones) and in the v1
  ``pids`` and ``freezer`` controllers when mounted;
- with ``mount_ns=True``, a mount namespace of its own (bind-mounted below /run/kubeguard-mntns), which its
  commands enter with the network namespace: the host's mount namespace is then the runtime's, not the pod's;
- a Pod object (status.podIP, containerStatuses[].containerID ``containerd://<id>``, labels,
  serviceAccountName, nodeName) for kubeguard.cluster.podmap.PodMap.

Commands run inside the pod through ``sh -c 'echo $$ > cgroup.procs ...; exec nsenter --net=...'``:
the shell moves itself into the cgroups before exec, so the command and all its children are in
the pod from their first instruction. Teardown writes ``1`` to ``cgroup.kill`` (falls back to
SIGKILL of every listed pid), then removes the cgroups, the veth and the namespace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeguard.cluster.snapshot import K8sObject, Snapshot
from kubeguard.errors import KubeguardError

LOCK_FILE = Path("/run/kubeguard-podlab.lock")
MOUNT_NS_DIR = Path("/run/kubeguard-mntns")  # the pods' mount namespaces (those made with mount_ns=True)
POD_CGROUP_PARENT = ("kubepods", "besteffort")
V1_CONTROLLERS = ("pids", "freezer")
NODE_NAME = "kubeguard-test-node"
NSENTER = shutil.which("nsenter", path="/usr/bin:/bin:/usr/sbin:/sbin") or "nsenter"  # no PATH search in the pod


class LabError(KubeguardError):
    """The lab cannot be built here (no cgroup2, no free address, a failing `ip` command)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=1)


def cgroup2_root() -> Path:
    """The cgroup v2 mount: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup when unified."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    raise LabError("no cgroup2 hierarchy mounted")


def cgroup1_roots() -> dict[str, Path]:
    """Mounted cgroup v1 controllers among V1_CONTROLLERS -> their mount point."""
    roots: dict[str, Path] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "cgroup":
            for option in parts[3].split(","):
                if option in V1_CONTROLLERS:
                    roots[option] = Path(parts[1])
    return roots


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a set-up command; a failure raises LabError with the command and its stderr."""
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network configured on an interface or routed in the root namespace."""
    used: list[ipaddress.IPv4Network] = []
    for line in _sh("ip", "-4", "-o", "addr").stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            used.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    for line in _sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest and dest[0].isdigit():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(dest, strict=False))
    return used


def _pick_network() -> ipaddress.IPv4Network:
    """A random /30 in 10.200.0.0/13 that overlaps nothing on the host (caller holds the lock)."""
    used = _used_networks()
    for _ in range(200):
        base = ipaddress.IPv4Address("10.200.0.0") + random.randrange(0, 1 << 19) * 4
        net = ipaddress.IPv4Network(f"{base}/30")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise LabError("no free /30 in 10.200.0.0/13 for a lab pod")


@dataclass
class Pod:
    """One test pod. Create through `PodLab.pod()`; closed by `PodLab.close()` (or `close()`)."""

    name: str
    namespace: str
    uid: str
    container_id: str
    container_name: str
    image: str
    labels: dict[str, str]
    service_account: str
    netns: str
    host_veth: str
    network: ipaddress.IPv4Network
    cgroup_v2: Path
    cgroup_v1: dict[str, Path] = field(default_factory=dict)
    owner: tuple[str, str] | None = None  # (kind, name) of the controller, e.g. ("ReplicaSet", "web-5d9c7")
    privileged: bool = False  # the container's securityContext.privileged (what the pods map says)
    host_mounts: tuple[tuple[str, str], ...] = ()  # hostPath volumes the spec says: (host path, mount path)
    mount_ns: str = ""  # a mount namespace of its own (the bind-mounted ns file), as a runtime's container has
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def ip(self) -> str:
        """The pod's address (eth0 inside the namespace)."""
        return str(self.network.network_address + 2)

    @property
    def host_ip(self) -> str:
        """The root namespace's address on this pod's veth (the pod's gateway)."""
        return str(self.network.network_address + 1)

    @property
    def cgroup_id(self) -> int:
        """The cgroup v2 id (the directory's inode), as bpftrace's `cgroup` builtin reports it."""
        return os.stat(self.cgroup_v2).st_ino

    @property
    def cgroup_path(self) -> str:
        """The v2 cgroup path as /proc/PID/cgroup shows it (`/kubepods/besteffort/pod<uid>/<id>`)."""
        return "/" + str(self.cgroup_v2.relative_to(cgroup2_root()))

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        """`cmd` prefixed so that it runs in this pod's cgroups and network namespace.

        The network namespace is entered first, from the host: the lab's own setns is not the pod's event
        (in the pod's cgroup it would be Falco's "Change thread namespace" for every pod)."""
        procs = [self.cgroup_v2 / "cgroup.procs", *(p / "cgroup.procs" for p in self.cgroup_v1.values())]
        moves = " && ".join(f"echo $$ > {p}" for p in procs)
        mount = [f"--mount={self.mount_ns}"] if self.mount_ns else []
        return [NSENTER, f"--net=/run/netns/{self.netns}", *mount, "--", "sh", "-c", f'{moves} && exec "$@"', "kg-pod",
                *cmd]

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `cmd` inside the pod (subprocess.Popen keyword arguments pass through)."""
        proc = subprocess.Popen(self.wrap(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, cmd: Sequence[str], timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run `cmd` inside the pod to completion (subprocess.run keyword arguments pass through)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.wrap(cmd), timeout=timeout, **kwargs)

    def add_address(self, address: str) -> None:
        """Give the pod an extra address on its own loopback (e.g. 169.254.169.254 or fd00::1, reachable only here)."""
        prefix = 128 if ":" in address else 32
        nodad = ("nodad",) if prefix == 128 else ()
        _sh("ip", "-n", self.netns, "addr", "add", f"{address}/{prefix}", "dev", "lo", *nodad)

    def pids(self) -> list[int]:
        """Every pid currently in the pod's cgroup."""
        try:
            text = (self.cgroup_v2 / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def pod_object(self) -> dict[str, Any]:
        """The Pod as the API server would return it (what the pods map indexes)."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid, "labels": dict(self.labels),
                         **({"ownerReferences": [{"apiVersion": "apps/v1", "kind": self.owner[0], "name": self.owner[1],
                                                  "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(self.owner))),
                                                  "controller": True}]} if self.owner else {})},
            "spec": {
                "serviceAccountName": self.service_account,
                "nodeName": NODE_NAME,
                "containers": [{"name": self.container_name, "image": self.image,
                                **({"securityContext": {"privileged": True}} if self.privileged else {}),
                                **({"volumeMounts": [{"name": f"host-{i}", "mountPath": dest}
                                                     for i, (_, dest) in enumerate(self.host_mounts)]}
                                   if self.host_mounts else {})}],
                **({"volumes": [{"name": f"host-{i}", "hostPath": {"path": source}}
                                for i, (source, _) in enumerate(self.host_mounts)]} if self.host_mounts else {}),
            },
            "status": {
                "phase": "Running",
                "podIP": self.ip,
                "podIPs": [{"ip": self.ip}],
                "hostIP": self.host_ip,
                "containerStatuses": [{
                    "name": self.container_name,
                    "image": self.image,
                    "containerID": f"containerd://{self.container_id}",
                    "ready": True,
                    "state": {"running": {}},
                }],
            },
        }

    def close(self) -> None:
        """Kill everything in the pod and remove its cgroups, veth and namespace (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._kill_all()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for path in [self.cgroup_v2, *self.cgroup_v1.values()]:
            if path.is_absolute():
                _remove_cgroup(path)
        _sh("ip", "link", "del", self.host_veth, check=False)
        _sh("ip", "netns", "del", self.netns, check=False)
        if self.mount_ns:
            _sh("umount", self.mount_ns, check=False)
            with contextlib.suppress(OSError):
                os.unlink(self.mount_ns)

    def _kill_all(self) -> None:
        if not self.cgroup_v2.is_absolute():
            return
        kill_file = self.cgroup_v2 / "cgroup.kill"
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            try:
                kill_file.write_text("1")
            except OSError:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)


def extra_container(pod: Pod) -> Pod:
    """Another container of `pod` (a restarted or sidecar container, as the kubelet's runtime makes it): a new
    container cgroup (v2 only) in the pod's cgroup, sharing the pod's network and mount namespaces; the pods map
    does not list it. Remove it with `remove_extra_container` (closing it would take the pod's namespaces)."""
    cid = secrets.token_hex(32)
    path = pod.cgroup_v2.parent / cid
    path.mkdir()
    return dataclasses.replace(pod, container_id=cid, cgroup_v2=path, cgroup_v1={}, _procs=[], _closed=False)


def remove_extra_container(container: Pod, timeout: float = 30.0) -> None:
    """Kill what runs in an `extra_container` and remove its cgroup; the pod keeps its own."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            (container.cgroup_v2 / "cgroup.kill").write_text("1")
        try:
            container.cgroup_v2.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _remove_cgroup(path: Path) -> None:
    """rmdir the container cgroup and its pod parent; shared parents (kubepods/...) are left alone."""
    for target in (path, path.parent):
        for _ in range(40):
            try:
                target.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


class PodLab:
    """Creates test pods and the pods map that names them; `close()` removes them all."""

    def __init__(self) -> None:
        self.pods: list[Pod] = []
        self.v2_root = cgroup2_root()
        self.v1_roots = cgroup1_roots()

    def pod(
        self,
        name: str | None = None,
        namespace: str = "default",
        labels: dict[str, str] | None = None,
        service_account: str = "default",
        image: str = "registry.example/test/app:1.0",
        container_name: str = "app",
        owner: tuple[str, str] | None = None,
        privileged: bool = False,
        host_mounts: tuple[tuple[str, str], ...] = (),
        mount_ns: bool = False,
    ) -> Pod:
        """Create a pod; `name` defaults to a unique one; `owner` = (kind, name) of its controller;
        `host_mounts`: (host path, mount path) hostPath volumes its spec declares (the pods map only: the lab
        mounts nothing); `mount_ns`: its commands run in a mount namespace of their own (a copy of the host's
        mounts, receiving later ones), as a container runtime's do, so the host's mount namespace is not the
        pod's."""
        suffix = secrets.token_hex(4)
        uid = str(uuid.uuid4())
        pod = Pod(
            name=name or f"pod-{suffix}",
            namespace=namespace,
            uid=uid,
            container_id=secrets.token_hex(32),
            container_name=container_name,
            image=image,
            labels=dict(labels or {"app": name or "test"}),
            service_account=service_account,
            netns=f"kgp-{suffix}",
            host_veth=f"kgh{suffix}",
            network=ipaddress.IPv4Network("0.0.0.0/30"),
            cgroup_v2=Path(),
            owner=owner,
            privileged=privileged,
            host_mounts=host_mounts,
        )
        rel = Path(*POD_CGROUP_PARENT, f"pod{uid}", pod.container_id)
        try:
            self._make_cgroups(pod, rel)
            self._make_network(pod, suffix)
            if mount_ns:
                self._make_mount_ns(pod, suffix)
        except BaseException:
            pod.close()
            raise
        self.pods.append(pod)
        return pod

    def _make_cgroups(self, pod: Pod, rel: Path) -> None:
        pod.cgroup_v2 = self.v2_root / rel
        pod.cgroup_v2.mkdir(parents=True)
        for controller, root in self.v1_roots.items():
            path = root / rel
            path.mkdir(parents=True)
            pod.cgroup_v1[controller] = path

    def _make_network(self, pod: Pod, suffix: str) -> None:
        peer = f"kgc{suffix}"
        LOCK_FILE.touch(exist_ok=True)
        with LOCK_FILE.open("r") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pod.network = _pick_network()
            _sh("ip", "netns", "add", pod.netns)
            _sh("ip", "link", "add", pod.host_veth, "type", "veth", "peer", "name", peer)
            _sh("ip", "addr", "add", f"{pod.host_ip}/30", "dev", pod.host_veth)
        _sh("ip", "link", "set", peer, "netns", pod.netns)
        _sh("ip", "-n", pod.netns, "link", "set", peer, "name", "eth0")
        _sh("ip", "-n", pod.netns, "addr", "add", f"{pod.ip}/30", "dev", "eth0")
        _sh("ip", "-n", pod.netns, "link", "set", "lo", "up")
        _sh("ip", "-n", pod.netns, "link", "set", "eth0", "up")
        _sh("ip", "-n", pod.netns, "route", "add", "default", "via", pod.host_ip)
        _sh("ip", "link", "set", pod.host_veth, "up")
        _sh("sysctl", "-q", "-w", f"net.ipv4.conf.{pod.host_veth}.forwarding=1")

    def _make_mount_ns(self, pod: Pod, suffix: str) -> None:
        """A persistent mount namespace for `pod`: bind-mounted on a file below MOUNT_NS_DIR, which is made a
        private mount first (a namespace file cannot be bound on a shared one), as `ip netns` does for /run/netns."""
        LOCK_FILE.touch(exist_ok=True)
        with LOCK_FILE.open("r") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            MOUNT_NS_DIR.mkdir(parents=True, exist_ok=True)
            if _sh("mountpoint", "-q", str(MOUNT_NS_DIR), check=False).returncode != 0:
                _sh("mount", "--bind", str(MOUNT_NS_DIR), str(MOUNT_NS_DIR))
                _sh("mount", "--make-private", str(MOUNT_NS_DIR))
        path = MOUNT_NS_DIR / f"kgp-{suffix}"
        path.touch()
        pod.mount_ns = str(path)
        _sh("unshare", f"--mount={path}", "--propagation", "slave", "true")

    def snapshot(self) -> Snapshot:
        """A Snapshot holding every live pod (the `--pods FILE` format)."""
        snap = Snapshot(cluster="kubeguard-test")
        snap.extend(K8sObject(p.pod_object()) for p in self.pods if not p._closed)
        return snap

    def write_pods(self, path: Path) -> Path:
        """Write the pods map as Snapshot JSON, atomically (readers never see half a file); returns `path`."""
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        self.snapshot().write_json(tmp)
        tmp.replace(path)
        return path

    def close(self) -> None:
        """Tear down every pod (errors in one do not stop the others)."""
        for pod in reversed(self.pods):
            with contextlib.suppress(Exception):
                pod.close()
        self.pods.clear()
