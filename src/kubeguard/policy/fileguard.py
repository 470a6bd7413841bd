"""Guarding file opens below /etc: fanotify FAN_OPEN_PERM, answered per open; learning their real paths.

Runs as its own process (``python -m kubeguard.policy.fileguard``), started by the `Enforcer` while
at least one workload is in discover or protect: a permission event waits for an answer, so the
answering side must never wait on anything that could itself be waiting for an answer (the agent's
own threads open files below /etc; a separate process with its own interpreter answers them at once).

- marks: every directory of the /etc tree of each guarded container, as the container sees it
  (``/proc/PID/root/etc``; inode marks with FAN_EVENT_ON_CHILD, so other containers' and the
  node's files are not touched unless they are the same files); ld.so.cache, opened by every
  dynamic exec, is excluded with an ignore mark. Directories created later are not marked;
- per event: the opener's thread (FAN_REPORT_TID) -> its cgroup (/proc/TID/cgroup); an opener
  outside the guarded containers is allowed at once. The access mode comes from the blocked
  thread's /proc/TID/syscall arguments, the file's real path from /proc/self/fd;
- a learning container (its workload is in discover) is always allowed; each (access, real path)
  it opens is reported once as ``L <cgroup> <r|w> <path>``, so the profile holds the real paths of
  what it reads, also those reached through symlinks from elsewhere (/usr/share/locale/locale.alias
  -> /etc/locale.alias, /usr/lib/ssl/openssl.cnf -> /etc/ssl/openssl.cnf), which the open tracer
  names by the link;
- a protected container: an open of a file the workload's rules do not allow for that access
  (read or write) fails with EPERM and is reported as ``D <tid> <r|w> <path>``;
- the plan comes on stdin, one JSON object per line:
  ``{"<cgroup path>": {"root": "/proc/PID/root", "rules": [[path, access, action], ...], "learn": bool}}``.
  End of stdin ends the guard (and its marks: nothing is blocked once the agent is gone).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import sys
import time
from pathlib import Path

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.policy.document import FileRule, WorkloadPolicy
from kubeguard.sensors.fanotify import (
    FAN_ALLOW,
    FAN_CLASS_CONTENT,
    FAN_CLOEXEC,
    FAN_DENY,
    RESPONSE,
    fanotify_init,
    fd_path,
    read_events,
)

FAN_OPEN_PERM = 0x10000
FAN_EVENT_ON_CHILD = 0x08000000
FAN_REPORT_TID = 0x100
FAN_MARK_IGNORED_MASK = 0x20
FAN_MARK_IGNORED_SURV_MODIFY = 0x40
ROOT = "/etc"
IGNORED = ("/etc/ld.so.cache",)
MAX_DIRS = 20000
SYS_OPEN, SYS_OPENAT, SYS_CREAT, SYS_OPENAT2 = 2, 257, 85, 437  # x86_64


_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded once: finding it later would read /etc (ldconfig)
_LIBC.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_LIBC.fanotify_mark.restype = ctypes.c_int
FAN_MARK_ADD = 0x1
AT_FDCWD = -100


def fanotify_mark(group: int, flags: int, mask: int, path: str) -> None:
    """Add a mark without touching any file below /etc (OSError on failure)."""
    if _LIBC.fanotify_mark(group, FAN_MARK_ADD | flags, mask, AT_FDCWD, path.encode()) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def open_is_write(tid: int) -> bool:
    """Whether the thread blocked in open()/openat()/openat2()/creat() asked for write access.

    The event is queued a moment before the opener goes to sleep; until then /proc/TID/syscall says
    "running", so it is read again for up to ~20 ms. When it still cannot be read the open counts as
    a read (a learned read is never refused for want of a register dump).
    """
    fields: list[str] = []
    for _ in range(200):
        try:
            fields = Path(f"/proc/{tid}/syscall").read_text().split()
        except OSError:
            return False
        if len(fields) >= 7:
            break
        time.sleep(0.0001)
    try:
        nr = int(fields[0])
        args = [int(v, 16) for v in fields[1:7]]
    except (ValueError, IndexError):
        return False
    if nr == SYS_CREAT:
        return True
    if nr == SYS_OPEN:
        return args[1] & 3 != 0
    if nr == SYS_OPENAT:
        return args[2] & 3 != 0
    if nr == SYS_OPENAT2:
        try:
            fd = os.open(f"/proc/{tid}/mem", os.O_RDONLY)
            try:
                how = os.pread(fd, 8, args[2])
            finally:
                os.close(fd)
            return int.from_bytes(how, "little") & 3 != 0
        except OSError:
            return True
    return True


def cgroup_of(tid: int) -> str:
    try:
        for line in Path(f"/proc/{tid}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return ""


def plan_from_json(line: str) -> tuple[dict[str, WorkloadPolicy], set[str], set[str]]:
    """The plan line -> (cgroup path -> a policy holding just the file rules, the containers' roots, the
    cgroups that learn)."""
    out: dict[str, WorkloadPolicy] = {}
    roots: set[str] = set()
    learn: set[str] = set()
    for cgroup, entry in json.loads(line).items():
        policy = WorkloadPolicy(WorkloadRef("-", "Pod", entry["root"]))  # the name holds the container's root
        policy.files = [FileRule(path=r[0], access=r[1], action=r[2]) for r in entry["rules"]]
        out[cgroup] = policy
        roots.add(entry["root"])
        if entry.get("learn"):
            learn.add(cgroup)
    return out, roots, learn


def plan_to_json(plan: dict[str, tuple[str, list[FileRule]]], learn: frozenset[str] = frozenset()) -> str:
    """``{cgroup path: (container root such as /proc/PID/root, file rules)}`` as the guard's plan line;
    the cgroups in `learn` are allowed everything and report what they open."""
    return json.dumps({cg: {"root": root, "rules": [[r.path, r.access, r.action] for r in rules],
                            "learn": cg in learn} for cg, (root, rules) in sorted(plan.items())})


def root_prefix(root: str) -> str:
    """Where a container's root is in the guard's own view ("" when it is the same root, as for lab pods)."""
    try:
        target = os.readlink(root)
    except OSError:
        return ""
    return "" if target == "/" else target.rstrip("/")


def container_path(path: str, prefix: str) -> str:
    """A path the guard resolved, as the container sees it."""
    return path[len(prefix):] if prefix and path.startswith(prefix + "/") else path


def mark_tree(group: int, etc: str, done: set[tuple[int, int]]) -> int:
    """Mark every directory of one /etc tree (once per filesystem object); returns how many were marked."""
    try:
        st = os.stat(etc)
    except OSError:
        return 0
    if (st.st_dev, st.st_ino) in done:
        return 0
    done.add((st.st_dev, st.st_ino))
    directories = [dirpath for dirpath, _dirs, _files in os.walk(etc)][:MAX_DIRS]  # walk before marking
    marked = 0
    for dirpath in directories:
        try:
            fanotify_mark(group, 0, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, dirpath)
            marked += 1
        except OSError:
            continue
    for name in IGNORED:
        try:
            fanotify_mark(group, FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN_PERM,
                          etc + name.removeprefix(ROOT))
        except OSError:
            pass
    return marked


def serve() -> int:
    """The guard process's main loop."""
    group = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_REPORT_TID)
    done: set[tuple[int, int]] = set()
    marked = 0
    plan: dict[str, WorkloadPolicy] = {}
    learning: set[str] = set()
    prefixes: dict[str, str] = {}
    reported: set[tuple[str, bool, str]] = set()
    stdin = sys.stdin.fileno()
    buffered = b""
    out = sys.stdout
    out.write(f"READY {marked}\n")
    out.flush()
    while True:
        ready, _, _ = select.select([group, stdin], [], [])
        if stdin in ready:
            chunk = os.read(stdin, 1 << 20)
            if not chunk:
                return 0
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                plan, roots, learning = plan_from_json(line.decode())
                prefixes = {cgroup: root_prefix(policy.workload.name) for cgroup, policy in plan.items()}
                for root in sorted(roots):
                    marked += mark_tree(group, root.rstrip("/") + ROOT, done)
                out.write(f"PLAN {marked}\n")
                out.flush()
        if group not in ready:
            continue
        lines = []
        for _mask, fd, tid in read_events(os.read(group, 1 << 16)):
            allow = True
            try:
                cgroup = cgroup_of(tid) if plan else ""
                policy = plan.get(cgroup)
                if policy is not None:
                    write = open_is_write(tid)
                    path = container_path(fd_path(fd), prefixes.get(cgroup, ""))
                    access = "w" if write else "r"
                    if path in IGNORED:  # also when replaced since its ignore mark was set (ldconfig)
                        pass
                    elif cgroup in learning:
                        if (cgroup, write, path) not in reported:
                            reported.add((cgroup, write, path))
                            lines.append(f"L {cgroup} {access} {path}\n")
                    elif not policy.file_allowed(path, write):
                        allow = False
                        lines.append(f"D {tid} {access} {path}\n")
            except Exception:  # never leave an opener hanging
                allow = True
            finally:
                os.write(group, RESPONSE.pack(fd, FAN_ALLOW if allow else FAN_DENY))
                os.close(fd)
        if lines:
            out.write("".join(lines))
            out.flush()

if __name__ == "__main__":
    sys.exit(serve())
