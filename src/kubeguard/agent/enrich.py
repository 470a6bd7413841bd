"""Enrichment: a raw sensor event gets the fields only the agent's tables know.

- `container.*` and `k8s.*`: cgroup (path, or v2 id via `CgroupResolver`, or /proc/PID/cgroup)
  -> container id -> pod, through a `PodSource`. Host processes get ``container.id=host``.
- `proc.pname`, `proc.pexepath`, `proc.pcmdline`, `proc.aname` (a list: index 0 is the process
  itself, 1 its parent, ...), `proc.apid`, and `proc.cmdline`/`proc.exepath`/`proc.tty` for events that did
  not carry them, from the `ProcessTable`.
- `fd.*` for events that name only an fd (dup2 of a socket onto stdin/stdout), from the `FdTable`.
- relative path names of file events joined to their directory (`kubeguard.agent.relpaths`).
- `user.name` from the uid.
"""

from __future__ import annotations

import pwd
from pathlib import Path
from typing import Any

from kubeguard.agent.event_values import as_int
from kubeguard.agent.fdtable import FdTable
from kubeguard.agent.podsource import PodSource
from kubeguard.agent.proctable import ProcessTable, ProcInfo
from kubeguard.agent.relpaths import PATH_ARGS, resolve_relative
from kubeguard.cluster.cgroups import HOST, CgroupIdentity, CgroupResolver, identity_from_path, identity_of_pid
from kubeguard.model import Event
from kubeguard.sensors.base import ENV_LIMIT, LARGE_ENV_LIMIT, environ_text

SETUID_TYPES = frozenset({"setuid", "setreuid", "setresuid"})
_PROCESS_ATTRS = (("proc.name", "name"), ("proc.exepath", "exepath"), ("proc.exe", "exe"), ("proc.args", "args"),
                  ("proc.cmdline", "cmdline"), ("proc.ppid", "ppid"), ("proc.tty", "tty"))  # event key, ProcInfo's


def read_environ(proc: Path, pid: int, limit: int = ENV_LIMIT) -> str | None:
    """Falco's proc.env of a live process: its environment at exec, `NAME=value` entries joined by spaces (the
    first `limit` bytes; ENV_LIMIT is what Falco's driver copies); None when the process is already gone (or
    exec'd again: the kernel then shows the newer environment). The fallback for sensors that do not copy it at
    exec, and for environments longer than the copy (libsinsp's large environments)."""
    try:
        with (proc / str(pid) / "environ").open("rb") as handle:
            raw = handle.read(limit)
    except OSError:
        return None
    return environ_text(raw, limit)


class Enricher:
    """Adds workload, ancestry, socket and user fields to events, in place."""

    def __init__(self, pods: PodSource, cgroups: CgroupResolver | None = None, procs: ProcessTable | None = None,
                 node: str = "") -> None:
        self.pods = pods
        self.cgroups = cgroups if cgroups is not None else CgroupResolver()
        self.procs = procs if procs is not None else ProcessTable()  # (an empty table is falsy)
        self.fds = FdTable(parent_of=self._parent_of)
        self.node = node
        self.read_env = False  # fill proc.env on execs (set when a loaded rule reads it: one /proc read per exec)
        self.read_duration = False  # fill proc.duration (set when a loaded rule reads it: one /proc read per process)
        self.duration_types: frozenset[str] | None = None  # ... on these event types only (None: every type)
        self._users: dict[int, str] = {0: "root"}
        self._workload_cache: dict[tuple[str, str], dict[str, Any]] = {}  # (container id, pod uid) -> fields
        self._cached_map: object = None  # ... of this pod map

    def enrich(self, event: Event) -> Event:
        """Update the tables from `event`, then fill its derived fields; returns the same event."""
        etype = event.get("evt.type")
        if etype in SETUID_TYPES:
            self._uid_before_change(event)
        self.procs.update(event)
        self.fds.apply(event)
        pid = as_int(event.get("proc.pid"))
        info = self.procs.get(pid) if pid else None
        identity = self._identity(event, pid)
        self._workload_fields(event, identity)
        if pid:
            self._process_fields(event, pid, info if info is not None else self.procs.get(pid))
            if (self.read_env and etype in ("execve", "execveat") and event.get("evt.rawres") == 0
                    and ("proc.env" not in event or event.get("_env_truncated"))):  # else copied at exec (ebpf)
                env = read_environ(self.procs.proc, pid, LARGE_ENV_LIMIT if "proc.env" in event else ENV_LIMIT)
                if env is not None:
                    event["proc.env"] = env
            if etype in PATH_ARGS:
                resolve_relative(event, info.cwd if info is not None else "")
            if self.read_duration:
                if self.duration_types is None or etype in self.duration_types:
                    self._duration(event, pid)
                elif info is not None and etype in ("execve", "execveat") and event.get("evt.rawres") == 0:
                    info.exec_ns = as_int(event.get("evt.time"))  # no /proc read: no rule reads it on execs
        uid = as_int(event.get("user.uid"))
        if uid is None and info is not None:
            uid = info.uid
            if uid is not None:
                event["user.uid"] = uid
        if uid is not None and "user.name" not in event:
            event["user.name"] = self.user_name(uid)
        return event

    def identify(self, event: Event) -> Event:
        """Fill only the workload fields of `event` (from its cgroup, or its process's), updating no table: for
        events that describe a live process rather than report a system call."""
        self._workload_fields(event, self._identity(event, as_int(event.get("proc.pid"))))
        return event

    def _uid_before_change(self, event: Event) -> None:
        """setuid-family events carry the uid the process had *before* the call (Falco's enter event).

        Sensors report the exit, when the uid already changed; the process table remembers the uid
        from the exec (or the previous change) and learns the new one from this event.
        """
        pid = as_int(event.get("proc.pid"))
        info = self.procs.get(pid) if pid else None
        if info is None or info.uid is None:
            return
        after = as_int(event.get("user.uid"))
        event["user.uid"] = info.uid
        res = as_int(event.get("evt.rawres"))
        if res == 0 or (res is None and event.get("evt.res") == "SUCCESS"):
            new = as_int(event.get("evt.arg.ruid", event.get("evt.arg.uid")))
            info.uid = new if new is not None and new >= 0 else after

    def _identity(self, event: Event, pid: int | None) -> CgroupIdentity | None:
        """Whose event: the cgroup path or id the sensor gave, else the process's own /proc entry.

        A process's identity is cached with the cgroup id it was seen in, and used only for events
        of that same cgroup id (or of sensors that give none): processes move between cgroups.
        """
        path = event.get("_cgroup_path")
        if path:
            return identity_from_path(str(path))
        cgroup_id = as_int(event.get("_cgroup_id"))
        if cgroup_id:
            found = self.cgroups.identity(cgroup_id, pid)
            if found is not None:
                return found
        if not pid:
            return None
        info = self.procs.get(pid)
        if info is not None and info.identity is not None and info.cgroup_id == cgroup_id:
            return info.identity
        found = identity_of_pid(pid)
        if found is not None and info is not None:
            info.identity, info.cgroup_id = found, cgroup_id
        return found

    def _workload_fields(self, event: Event, identity: CgroupIdentity | None) -> None:
        if identity is None:
            return
        event["container.id"] = identity.container_id
        if identity.container_id == HOST:
            if self.node:
                event.setdefault("k8s.node.name", self.node)
            return
        key = (identity.container_id, identity.pod_uid)
        fields = self._workload_cache.get(key) if self._cached_map is self.pods.podmap else None
        if fields is None:
            fields = self._container_fields(identity)
            if fields is None:
                if identity.pod_uid:
                    event["k8s.pod.uid"] = identity.pod_uid
                return
            if self._cached_map is not self.pods.podmap:  # the pods were read again: every entry may be stale
                self._workload_cache.clear()
                self._cached_map = self.pods.podmap
            self._workload_cache[key] = fields
        event.update(fields)

    def _container_fields(self, identity: CgroupIdentity) -> dict[str, Any] | None:
        """The workload fields of a container (None while its pod is unknown): the same for each of its events
        until the pods are read again (`_workload_fields` keeps them per pod map)."""
        workload = self.pods.workload(identity.container_id, identity.pod_uid)
        if workload is None:
            return None
        fields = workload.falco_fields()
        fields["container.id"] = identity.container_id
        privileged = self.pods.privileged(identity.container_id)
        if privileged is not None:
            fields["container.privileged"] = privileged
        mounts = self.pods.mounts(identity.container_id)
        if mounts is not None:
            fields["container.mounts"] = mounts
        if workload.image:
            repository, tag = split_image(workload.image)
            fields["container.image.repository"] = repository
            if tag:
                fields["container.image.tag"] = tag
        return fields

    def _process_fields(self, event: Event, pid: int, me: ProcInfo | None) -> None:
        """The process's own missing fields and its ancestry; `me`: the table's entry of `pid`."""
        if me is not None:
            for key, attr in _PROCESS_ATTRS:  # only the missing ones are read (cmdline is built)
                if key not in event:
                    value = getattr(me, attr)
                    if value not in ("", None):
                        event[key] = value
        chain = self.procs.ancestors(pid, as_int(event.get("proc.ppid")))
        parent = chain[0] if chain else None
        if parent is not None:
            event["proc.pname"] = parent.name
            event["proc.pexepath"] = parent.exepath
            event["proc.pcmdline"] = parent.cmdline
        event["proc.aname"] = [event.get("proc.name", me.name if me else "")] + [
            a.name if a else "<NA>" for a in chain]
        event["proc.apid"] = [pid] + [a.pid if a else 0 for a in chain]

    def _duration(self, event: Event, pid: int) -> None:
        """Falco's proc.duration: ns since the process was created (its fork; an exec does not reset it), from
        /proc; for a process already gone when its exec is processed, since that exec (at most its true age)."""
        info = self.procs.get(pid)
        when = as_int(event.get("evt.time"))
        if info is None or when is None:
            return
        started = self.procs.started_ns(info)
        if started is None and event.get("evt.type") in ("execve", "execveat") and event.get("evt.rawres") == 0:
            info.started_ns = started = when
        if started is None:
            started = info.exec_ns
        if started is not None:
            event["proc.duration"] = max(0, when - started)

    def _parent_of(self, pid: int) -> int:
        info = self.procs.get(pid)
        return info.ppid if info else 0

    def user_name(self, uid: int) -> str:
        """The name of `uid` on this node (the uid itself when it has none), remembered."""
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name


def split_image(image: str) -> tuple[str, str]:
    """``registry/app:1.0`` -> (``registry/app``, ``1.0``); digests stay on the repository side."""
    if "@" in image:
        return image.split("@", 1)[0], ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, ""

