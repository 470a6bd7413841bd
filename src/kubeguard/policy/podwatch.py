"""New pod cgroups as the kubelet makes them (inotify), so the enforcer can put a protected pod's cgroup into the
exec guard's plan before its first container starts.

The kubelet lists a pod (its /pods, the API server) before it creates the pod's cgroup, and creates that cgroup
before the pod's sandbox and containers. The pod cgroups are directories at depth 1 or 2 below the cgroup v2
root's ``kubepods`` tree: ``kubepods/pod<uid>``, ``kubepods/besteffort/pod<uid>`` (cgroupfs driver),
``kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_with_underscores>.slice`` (systemd
driver). `PodCgroupWatch` watches the root, its ``kubepods*`` directories and their directories that are not a
pod's (IN_CREATE on directories; one made later is watched as it appears), and reports the pod directories
created since the last read with their uids.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import struct

log = logging.getLogger(__name__)
IN_CREATE = 0x100
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000  # the watched directory is gone
MAX_DEPTH = 2  # kubepods (1), its QoS class directories (2): pods are below either
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name, NUL-padded)
_POD_DIR = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


class WatchError(Exception):
    """inotify is not available for the cgroup tree; one line."""


def pod_uid(name: str) -> str:
    """The pod uid in a kubelet cgroup directory's name (``pod<uid>``, ``kubepods-besteffort-pod<uid, _ for
    ->.slice``); "" when none."""
    match = _POD_DIR.search(name)
    return match.group(1).replace("_", "-") if match else ""


def pod_dirs(root: str) -> dict[str, str]:
    """The pod cgroup directories that exist now below cgroup v2 root `root`'s kubepods tree, by pod uid."""
    found: dict[str, str] = {}

    def walk(path: str, depth: int) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            uid = pod_uid(entry.name)
            if uid:
                found[uid] = entry.path
            elif depth < MAX_DEPTH:
                walk(entry.path, depth + 1)

    try:
        names = sorted(os.listdir(root))
    except OSError:
        return found
    for name in names:
        if name.startswith("kubepods"):
            walk(os.path.join(root, name), 1)
    return found


class PodCgroupWatch:
    """inotify on the kubepods tree of cgroup v2 root `root`; `read()` gives the pod cgroups made since."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or "/"
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd: int = int(self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        if self.fd < 0:
            raise WatchError(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self._dirs: dict[int, tuple[str, int]] = {}  # watch descriptor -> (directory, depth below root)
        self.overflows = 0
        self._watch(self.root, 0)
        for name in sorted(os.listdir(self.root)):
            self._maybe_watch(os.path.join(self.root, name), 1)

    def fileno(self) -> int:
        return self.fd

    def _watch(self, path: str, depth: int) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), IN_CREATE | IN_ONLYDIR)
        if wd < 0:
            if depth == 0:
                raise WatchError(f"inotify_add_watch {path}: {os.strerror(ctypes.get_errno())}")
            return  # gone meanwhile
        self._dirs[wd] = (path, depth)

    def _maybe_watch(self, path: str, depth: int) -> None:
        """Watch `path` and the directories below it when it is a kubepods directory (depth 1) or one of its QoS class
        directories (depth 2: ``besteffort``, ``kubepods-burstable.slice``), not a pod's."""
        name = os.path.basename(path)
        if (depth > MAX_DEPTH or (depth == 1 and not name.startswith("kubepods")) or pod_uid(name)
                or not os.path.isdir(path)):
            return
        self._watch(path, depth)
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for child in names:
            self._maybe_watch(os.path.join(path, child), depth + 1)

    def read(self) -> list[tuple[str, str]]:
        """The pod cgroups made since the last read, as (uid, directory); none when nothing is waiting."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        pods: list[tuple[str, str]] = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self.overflows += 1  # the enforcer's periodic look still finds them
                continue
            if mask & IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            where = self._dirs.get(wd)
            if where is None or not mask & IN_ISDIR:
                continue
            name = os.fsdecode(raw.rstrip(b"\0"))
            uid = pod_uid(name)
            if uid:
                pods.append((uid, os.path.join(where[0], name)))
            else:
                self._maybe_watch(os.path.join(where[0], name), where[1] + 1)
        return pods

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
