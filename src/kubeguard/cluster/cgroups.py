"""cgroup paths -> container id and pod uid; cgroup v2 ids (inodes) -> paths.

Kubelet and container runtimes name cgroups in a few well-known ways; this module knows them:

- cgroupfs driver (v1 and v2): ``/kubepods/besteffort/pod<uid>/<64-hex id>``, ``/kubepods/pod<uid>/<id>``
  (Guaranteed QoS), CRI-O ``.../pod<uid>/crio-<id>``;
- systemd driver: ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/``
  ``cri-containerd-<id>.scope`` (also ``crio-<id>.scope``, ``docker-<id>.scope``);
- plain Docker and Podman: ``/docker/<id>``, ``/system.slice/docker-<id>.scope``, ``libpod-<id>.scope``.

The kernel gives eBPF programs a cgroup v2 id: the inode number of the cgroup's directory in the
v2 hierarchy. `CgroupResolver` maps those ids back to paths by walking that hierarchy, caching the
result and walking again (at most once per `refresh_interval`) when an id is unknown.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "host"

# A container id: 64 hex (containerd, CRI-O, Docker). Shorter ids are not accepted: too ambiguous.
_ID = r"(?P<id>[0-9a-f]{64})"
_CONTAINER_LEAF = re.compile(
    rf"^(?:(?:cri-containerd|crio|docker|libpod)-{_ID}\.scope"  # systemd driver scopes
    rf"|(?:crio-)?(?P<id2>[0-9a-f]{{64}}))$"  # cgroupfs driver: bare id or crio-<id>
)
_CONMON = re.compile(r"^crio-conmon-[0-9a-f]{64}\.scope$")
_POD_CGROUPFS = re.compile(r"^pod(?P<uid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_POD_SYSTEMD = re.compile(
    r"^kubepods(?:-(?:besteffort|burstable|guaranteed))?-pod"
    r"(?P<uid>[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice$"
)


@dataclass(frozen=True, slots=True)
class CgroupIdentity:
    """What a cgroup path says about its processes: container id ("host" when none) and pod uid."""

    container_id: str = HOST
    pod_uid: str = ""

    @property
    def is_host(self) -> bool:
        return self.container_id == HOST


def container_id_from_path(path: str) -> str | None:
    """The 64-hex container id a cgroup path names, or None (host process, conmon, unknown layout).

    The deepest component naming a container wins, so nested cgroups (a container's own children,
    e.g. ``.../<id>/init.scope``) still resolve to their container.
    """
    for part in reversed([p for p in path.split("/") if p]):
        if _CONMON.match(part):
            return None
        match = _CONTAINER_LEAF.match(part)
        if match:
            return match.group("id") or match.group("id2")
    return None


def pod_uid_from_path(path: str) -> str | None:
    """The pod uid a kubelet cgroup path names (cgroupfs ``pod<uid>`` or systemd ``...-pod<uid_>.slice``)."""
    for part in path.split("/"):
        match = _POD_CGROUPFS.match(part)
        if match:
            return match.group("uid")
        match = _POD_SYSTEMD.match(part)
        if match:
            return match.group("uid").replace("_", "-")
    return None


def identity_from_path(path: str) -> CgroupIdentity:
    """Container id and pod uid of a cgroup path; ``container_id="host"`` when it names no container."""
    return CgroupIdentity(container_id_from_path(path) or HOST, pod_uid_from_path(path) or "")


def path_from_proc_cgroup(text: str) -> str:
    """The most telling cgroup path in a /proc/PID/cgroup text.

    The v2 line (``0::/path``) when it is not the root; else the first v1 line whose path names a
    container (hybrid hosts often leave v2 at ``/`` while kubelet uses the v1 controllers);
    else the first non-root path; else ``/``.
    """
    v2 = ""
    v1: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            v2 = path
        else:
            v1.append(path)
    if v2 and v2 != "/":
        return v2
    for path in v1:
        if container_id_from_path(path):
            return path
    for path in v1:
        if path != "/":
            return path
    return v2 or "/"


def identity_of_pid(pid: int, proc: Path = Path("/proc")) -> CgroupIdentity | None:
    """Identity of a live process from /proc/PID/cgroup; None when the process is gone."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    return identity_from_path(path_from_proc_cgroup(text))


def find_cgroup2_root(mounts: Path = Path("/proc/self/mounts")) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup or /sys/fs/cgroup/unified), or None."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None


NEW_ID_INTERVAL = 0.05  # seconds between walks for cgroup ids newer than the last walk's


class CgroupResolver:
    """cgroup v2 id (directory inode) -> path relative to the hierarchy (``/kubepods/...``), cached.

    A miss walks the hierarchy again, but at most once per `refresh_interval` seconds, so a storm
    of events from an unknown (e.g. already removed) cgroup does not turn into a storm of walks.
    An id above every id the last walk saw is a cgroup created since (kernfs ids only grow): it
    gets a walk after only `NEW_ID_INTERVAL` seconds, so a new pod's first short-lived process is
    attributed even when its events arrive right after another miss's walk. Thread-safe.
    """

    def __init__(self, root: Path | None = None, refresh_interval: float = 0.5) -> None:
        self.root = root if root is not None else find_cgroup2_root()
        self.refresh_interval = refresh_interval
        self._paths: dict[int, str] = {}
        self._identities: dict[int, CgroupIdentity] = {}
        self._last_walk = float("-inf")
        self._max_id = -1  # the highest id the last walk saw
        self._walked_for: set[int] = set()  # newer ids a walk did not find
        self._lock = threading.Lock()
        self.walks = 0

    def path(self, cgroup_id: int) -> str | None:
        """The cgroup path of `cgroup_id`, or None when not found (even after a refresh)."""
        found = self._paths.get(cgroup_id)
        if found is not None or self.root is None:
            return found
        with self._lock:
            found = self._paths.get(cgroup_id)
            newer = cgroup_id > self._max_id and cgroup_id not in self._walked_for
            since = time.monotonic() - self._last_walk
            if found is None and (since >= self.refresh_interval or (newer and since >= NEW_ID_INTERVAL)):
                self._walk()
                found = self._paths.get(cgroup_id)
                if found is None and newer:
                    if len(self._walked_for) > 4096:
                        self._walked_for.clear()
                    self._walked_for.add(cgroup_id)  # gone already: the interval applies from now on
        return found

    def identity(self, cgroup_id: int, pid: int | None = None) -> CgroupIdentity | None:
        """Container id / pod uid of a cgroup id; None when the id is unknown.

        With `pid` (a process the event says is in that cgroup), a miss first tries the process's
        own v2 cgroup path: exact and cheap, and it works for cgroups created a moment ago.
        """
        found = self._identities.get(cgroup_id)
        if found is not None:
            return found
        path = self._paths.get(cgroup_id)
        if path is None and pid:
            path = self._path_of_pid(cgroup_id, pid)
        if path is None:
            path = self.path(cgroup_id)
        if path is None:
            return None
        found = identity_from_path(path)
        self._identities[cgroup_id] = found
        return found

    def _path_of_pid(self, cgroup_id: int, pid: int) -> str | None:
        """The v2 path of `pid` when its directory's inode is `cgroup_id` (then cached)."""
        if self.root is None:
            return None
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("0::"):
                rel = line[3:]
                try:
                    inode = os.stat(str(self.root) + (rel if rel != "/" else "")).st_ino
                except OSError:
                    return None
                if inode == cgroup_id:
                    self._paths[cgroup_id] = rel
                    return rel
        return None

    def _walk(self) -> None:
        assert self.root is not None
        root = str(self.root)
        paths: dict[int, str] = {}
        for dirpath, _dirs, _files in os.walk(root):
            try:
                inode = os.stat(dirpath).st_ino
            except OSError:
                continue
            rel = dirpath[len(root):] or "/"
            paths[inode] = rel
        self._paths = paths
        self._max_id = max(paths, default=-1)
        self._identities = {k: v for k, v in self._identities.items() if k in paths}
        self._last_walk = time.monotonic()
        self.walks += 1
