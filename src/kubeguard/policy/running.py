"""Processes already running in a pod when the agent first lists it, as exec events for the policy engine.

The engine learns a program when the sensor reports its exec. A container that started before the agent (or
before its pod was listed) ran its entrypoint unseen, and its sandbox ran the pause program unseen: without
them in the profile, the container's next start after the promotion to protect (a crash, an OOM kill, a failed
liveness probe, a new replica) would be killed at its first exec. NeuVector's enforcer learns the processes it
finds running too. `running_execs` reads them from /proc with the fields the engine's exec check reads, named as
the exec's own event would name them:

- the executable by the path the exec gave: argv[0] when it is absolute, else looked up in the process's PATH
  (as execvp and the runtime do), inside the process's root, when that names the running file; the file's own
  path (``/proc/PID/exe``) as well, when it differs (a symlink: ``/bin/sh`` -> ``/usr/bin/dash``);
- paths inside the container: the host's path of the process's root (``/proc/PID/root``) is cut off;
- parent executable, user, arguments, working directory, environment (for the code it loads), the cgroup id
  (whether the file was written after the container started).

The engine learns them in discover; in monitor and protect one outside the profile is an alert (a program
started while no agent watched, or before its pod was listed), never a kill.

Memory-backed executables (``memfd:``) are left out: their exec event names no file either.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path

from kubeguard.cluster.cgroups import identity_from_path, path_from_proc_cgroup
from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Event
from kubeguard.policy.podwatch import pod_dirs
from kubeguard.sensors.base import environ_text

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # runc's, when the env has none
DELETED = " (deleted)"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def inside(path: str, root: str) -> str:
    """`path` (as the host names it) as seen from a process whose root is `root` (also as the host names it)."""
    if root in ("", "/"):
        return path
    if path == root:
        return "/"
    return path[len(root):] if path.startswith(root + "/") else path


def _same_file(root_dir: str, path: str, target: os.stat_result) -> bool:
    try:
        found = os.stat(root_dir + path)
    except OSError:
        return False
    return (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino)


def exec_paths(pid: int, argv: list[str], env: str, proc: str = "/proc") -> list[str]:
    """The paths an exec of the running process `pid` may have named: the one its argv[0] resolves to (absolute,
    or the first PATH entry holding it, inside its root) when that is the running file, and the file's own path
    when different; [] when it has none (gone, a kernel thread, memory-backed)."""
    base = f"{proc}/{pid}"
    exe, root = _link(f"{base}/exe"), _link(f"{base}/root")
    if not exe or root is None:
        return []
    exe = exe.removesuffix(DELETED)
    if not exe.startswith("/") or exe.startswith("/memfd:"):
        return []
    own = inside(exe, root)
    try:
        target = os.stat(f"{base}/exe")
    except OSError:
        return [own]
    root_dir = f"{base}/root"
    named = ""
    first = argv[0] if argv else ""
    if first.startswith("/"):
        named = posixpath.normpath(first)
    elif first and "/" not in first:
        search = next((e[5:] for e in env.split(" ") if e.startswith("PATH=")), DEFAULT_PATH)
        for directory in search.split(":"):
            candidate = posixpath.join(directory or ".", first)
            if candidate.startswith("/") and os.path.exists(root_dir + candidate):
                named = candidate  # execvp takes the first it finds
                break
    if named and named != own and _same_file(root_dir, named, target):
        return [named, own]
    return [own]


def running_execs(pod_uids: set[str], podmap: PodMap, user_name: Callable[[int], str],
                  cgroup_root: Path | None = None, proc: str = "/proc") -> Iterator[Event]:
    """An exec event for each live process of the pods `pod_uids`, named by the first of its `exec_paths`, all of
    them in ``_exepaths`` (`user_name`: a uid's name, as the enricher gives it; `cgroup_root`: where cgroup v2 is
    mounted, for the cgroup ids)."""
    pids = _pids_below(pod_uids, cgroup_root) if cgroup_root is not None else None
    if pids is None:  # not every pod's cgroup found: every process's /proc/PID/cgroup says whose it is
        try:
            pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
        except OSError as exc:
            log.warning("running processes: cannot list %s: %s", proc, exc.strerror)
            return
    for pid in pids:
        base = f"{proc}/{pid}"
        text = _read(f"{base}/cgroup")
        if text is None:
            continue
        cgroup = path_from_proc_cgroup(text.decode(errors="replace"))
        uid = identity_from_path(cgroup).pod_uid
        if uid not in pod_uids:
            continue
        argv = _argv(base)
        event = _event(pid, base, argv, proc, cgroup, cgroup_root, user_name)
        if event is None:
            continue
        workload = podmap.by_pod_uid.get(uid)
        event["k8s.pod.uid"] = uid
        event["k8s.pod.labels"] = dict(workload.labels) if workload is not None else {}
        paths = exec_paths(pid, argv, str(event.get("proc.env") or ""), proc)
        if paths:
            event["proc.exepath"], event["_exepaths"] = paths[0], paths
            yield event


def _pids_below(pod_uids: set[str], cgroup_root: Path) -> list[int] | None:
    """The processes in the cgroups of the pods `pod_uids` (their cgroup.procs, sub-cgroups included); None when a
    pod's cgroup is not below `cgroup_root` (cgroup v1 only, another layout)."""
    dirs = pod_dirs(str(cgroup_root))
    if not pod_uids <= dirs.keys():
        return None
    pids: list[int] = []
    for uid in sorted(pod_uids):
        for directory, _, _ in os.walk(dirs[uid]):
            text = _read(os.path.join(directory, "cgroup.procs"))
            pids += [int(pid) for pid in (text or b"").split()]
    return pids


def _argv(base: str) -> list[str]:
    raw = _read(f"{base}/cmdline") or b""
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")] if raw else []


def _event(pid: int, base: str, argv: list[str], proc: str, cgroup: str, cgroup_root: Path | None,
           user_name: Callable[[int], str]) -> Event | None:
    """The fields of `pid`'s exec that do not depend on the path; None when it is gone."""
    status = _read(f"{base}/status")
    root = _link(f"{base}/root")
    if status is None or root is None:
        return None
    fields = dict(line.split(":", 1) for line in status.decode(errors="replace").splitlines() if ":" in line)
    try:
        ppid = int(fields.get("PPid", "0").strip())
        uid = int(fields.get("Uid", "0").split()[0])
    except (ValueError, IndexError):
        return None
    cwd = inside(_link(f"{base}/cwd") or "", root)
    parent_root = _link(f"{proc}/{ppid}/root")
    parent_exe = _link(f"{proc}/{ppid}/exe") if ppid else None
    event = Event({
        "evt.type": "execve", "evt.rawres": 0, "evt.res": "SUCCESS", "_running": True,
        "proc.pid": pid, "proc.ppid": ppid, "proc.exe": argv[0] if argv else "",
        "proc.args": " ".join(argv[1:]), "user.uid": uid, "user.name": user_name(uid),
    })
    if cwd.startswith("/"):
        event["proc.cwd"] = cwd if cwd.endswith("/") else cwd + "/"
    if parent_exe and parent_root is not None:
        event["proc.pexepath"] = inside(parent_exe.removesuffix(DELETED), parent_root)
    raw_env = _read(f"{base}/environ")
    if raw_env:
        event["proc.env"] = environ_text(raw_env)
    if cgroup_root is not None:
        try:
            event["_cgroup_id"] = os.stat(str(cgroup_root) + cgroup).st_ino
        except OSError:
            pass
    return event


