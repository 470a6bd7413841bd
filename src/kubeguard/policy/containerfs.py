"""A container's filesystem as the agent reaches it: ``/proc/PID/root`` of one of its live processes.

The container's processes come and go (a probe, a job's loop): a root picked from a process that
exits while the agent is still resolving paths through it would make every path fail, and an
exec plan built from that would allow nothing. So the oldest process whose root can be opened is
used (a zombie has none), and `opened_root` holds that root open (an ``O_PATH`` descriptor): paths
resolved through it keep working for the whole block even if the process exits meanwhile.

A path looked up through ``/proc/PID/root`` follows an absolute symlink from the agent's own root, not the
container's (``/usr/bin/awk -> /etc/alternatives/awk`` would name the host's file): `resolve_in_root`
follows symlinks the way the container's own lookups do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_LINKS = 40  # the kernel's limit on symlinks followed in one lookup


def _pids_oldest_first(cgroup_dir: str) -> list[int]:
    """The cgroup's processes, oldest first (start time, then pid); [] when it has none or is gone."""
    try:
        pids = Path(cgroup_dir, "cgroup.procs").read_text().split()
    except OSError:
        return []
    started: list[tuple[int, int]] = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            started.append((int(stat.rsplit(")", 1)[1].split()[19]), int(pid)))  # field 22: start time
        except (OSError, ValueError, IndexError):
            continue
    return [pid for _, pid in sorted(started)]


def container_root(cgroup_dir: str) -> str:
    """``/proc/PID/root`` of the container's oldest process that has one (its filesystem as it sees it, from a
    process that is not about to exit, such as a probe's); "" when the container has no such process."""
    for pid in _pids_oldest_first(cgroup_dir):
        root = f"/proc/{pid}/root"
        try:
            os.stat(root)
        except OSError:  # exited (a zombie has no root) or gone
            continue
        return root
    return ""


def container_mount_ns(cgroup_dir: str) -> int:
    """The mount namespace (its inode number) of the container's oldest live process; 0 when it has none."""
    for pid in _pids_oldest_first(cgroup_dir):
        try:
            return os.stat(f"/proc/{pid}/ns/mnt").st_ino
        except OSError:
            continue
    return 0


def runtime_mount_ns(cgroup_dir: str) -> int:
    """The mount namespace of the process that started the container: the parent of its oldest live process (the
    runtime's shim, which also starts `runc exec` for kubectl exec and exec probes); 0 when it cannot be read or is
    the container's own (the exec guard then lets any exec from the initial user namespace's other mount
    namespaces through, as before it knew the runtime's)."""
    for pid in _pids_oldest_first(cgroup_dir):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # field 4: ppid
            own, parent = os.stat(f"/proc/{pid}/ns/mnt").st_ino, os.stat(f"/proc/{ppid}/ns/mnt").st_ino
        except (OSError, ValueError, IndexError):
            continue
        return parent if parent != own else 0
    return 0


def host_mount_ns() -> int:
    """The mount namespace container runtimes run in, for a pod none of whose containers is known yet: the node's
    init's (the DaemonSet shares the host's pid namespace), or ours when init's cannot be read; 0 if neither."""
    for path in ("/proc/1/ns/mnt", "/proc/self/ns/mnt"):
        try:
            return os.stat(path).st_ino
        except OSError:
            continue
    return 0


@contextmanager
def opened_root(cgroup_dir: str) -> Iterator[str | None]:
    """The container's root held open for the block: a path (``/proc/self/fd/N``) under which its files resolve
    as in `container_root`, valid even if the process it came from exits; None when it has no live process."""
    fd = -1
    for pid in _pids_oldest_first(cgroup_dir):
        try:
            fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        break
    if fd < 0:
        yield None
        return
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def resolve_in_root(root: str, path: str) -> str | None:
    """`path` as the container sees it, with every symlink followed inside `root` (an absolute target starts
    again from `root`, ``..`` never leaves it); the resolved path, or None when a component is missing or
    the links loop."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            resolved = resolved[:-1]
            continue
        full = os.path.join(root, *resolved, part)
        try:
            if not stat.S_ISLNK(os.lstat(full).st_mode):
                resolved.append(part)
                continue
            target = os.readlink(full)
        except OSError:
            return None
        links += 1
        if links > MAX_LINKS:
            return None
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return "/" + "/".join(resolved)
