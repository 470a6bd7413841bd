"""Relative names in file events joined to the directory they are relative to, as Falco resolves them.

The kernel sensor reports a name as the process passed it. Falco joins a relative name to the process's
working directory (dirfd AT_FDCWD, or calls without a dirfd) or to the directory the dirfd names. Here the
directory is read from /proc/PID (`cwd`, `fd/N`) while the process lives, made relative to the process's
root (`/proc/PID/root`, so a container's names are its own paths). For a process already gone, a name
relative to its cwd is joined to the cwd the process had at its exec (from the process table), except for
shells, whose `cd` changes it after the exec; such names, and dirfd names of gone processes, stay as written.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from kubeguard.agent.event_values import as_int

AT_FDCWD = -100
SHELLS = frozenset({"ash", "bash", "csh", "ksh", "sh", "tcsh", "zsh", "dash"})
# evt.type -> (name field, its dirfd field or None when relative to the cwd), per path argument
PATH_ARGS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "open": (("fd.name", None),), "creat": (("fd.name", None),),
    "openat": (("fd.name", "evt.arg.dirfd"),), "openat2": (("fd.name", "evt.arg.dirfd"),),
    "unlink": (("evt.arg.path", None),), "rmdir": (("evt.arg.path", None),), "mkdir": (("evt.arg.path", None),),
    "unlinkat": (("evt.arg.name", "evt.arg.dirfd"),), "mkdirat": (("evt.arg.path", "evt.arg.dirfd"),),
    "link": (("evt.arg.oldpath", None), ("evt.arg.newpath", None)),
    "rename": (("evt.arg.oldpath", None), ("evt.arg.newpath", None)),
    "linkat": (("evt.arg.oldpath", "evt.arg.olddir"), ("evt.arg.newpath", "evt.arg.newdir")),
    "renameat": (("evt.arg.oldpath", "evt.arg.olddirfd"), ("evt.arg.newpath", "evt.arg.newdirfd")),
    "renameat2": (("evt.arg.oldpath", "evt.arg.olddirfd"), ("evt.arg.newpath", "evt.arg.newdirfd")),
    "symlink": (("evt.arg.linkpath", None),), "symlinkat": (("evt.arg.linkpath", "evt.arg.linkdirfd"),),
}


def _live_directory(proc: Path, pid: int, dirfd: int) -> str | None:
    """The directory `dirfd` (or the cwd) of a live process, as the process sees it; None when unknown."""
    base = proc / str(pid)
    try:
        target = os.readlink(base / ("cwd" if dirfd == AT_FDCWD else f"fd/{dirfd}"))
        root = os.readlink(base / "root")
    except OSError:
        return None
    if not target.startswith("/") or target.endswith(" (deleted)"):
        return None
    if root != "/":
        if target != root and not target.startswith(root + "/"):
            return None
        target = target[len(root):] or "/"
    return target


def resolve_relative(event: dict[str, Any], exec_cwd: str = "", proc: Path = Path("/proc")) -> None:
    """Join the event's relative path arguments to their directory, in place (see the module doc)."""
    spec = PATH_ARGS.get(str(event.get("evt.type")))
    pid = as_int(event.get("proc.pid"))
    if spec is None or not pid:
        return
    for field, dirfd_field in spec:
        name = event.get(field)
        if not isinstance(name, str) or not name or name.startswith("/"):
            continue
        dirfd = as_int(event.get(dirfd_field)) if dirfd_field else AT_FDCWD
        if dirfd is None:
            continue
        base = _live_directory(proc, pid, dirfd)
        if base is None and dirfd == AT_FDCWD and exec_cwd.startswith("/") and event.get("proc.name") not in SHELLS:
            base = exec_cwd
        if base is None:
            continue
        full = posixpath.normpath(posixpath.join(base, name))
        full = "/" + full.lstrip("/")
        event[field] = full
        if field == "fd.name":
            event["evt.arg.name"] = full
            event["fd.directory"], event["fd.filename"] = posixpath.split(full)
