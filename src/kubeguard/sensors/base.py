"""The sensor contract every kernel sensor follows, and the pieces they share.

A sensor is started once (`start`, which returns only when events flow), then `run` loops,
calling `emit(event)` per kernel event until `stop` is set, and `close` releases the kernel side.
`stats` reports counters: events read, kernel-side lost, parse errors.

Events are `kubeguard.model.Event` dicts with Falco field names the sensor knows directly
(``evt.type``, ``evt.time`` (ns), ``evt.dir``, ``evt.res``, ``evt.rawres``, ``evt.arg.*``,
``proc.pid``, ``proc.ppid``, ``proc.tid``, ``proc.name``, ``proc.exepath``, ``proc.exe``,
``proc.args``, ``proc.cmdline``, ``proc.cwd``, ``proc.tty``, ``proc.sid``, ``proc.vpid``,
``user.uid``, ``user.loginuid``, ``group.gid``, ``fd.*``) plus internal keys: ``_cgroup_id``
(cgroup v2 inode), ``_pidns`` (pid namespace inode), ``_cgroup_path`` where known, ``_sensor``.
Keys starting with ``_`` are stripped before output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from kubeguard.model import Event

EmitFn = Callable[[Event], None]


class SensorError(Exception):
    """The sensor cannot start or died: one clear line (missing bpftrace, no permission, ...)."""


@runtime_checkable
class Sensor(Protocol):
    """What the agent drives: one source of kernel events."""

    name: str  # "ebpf" | "proc" | "fanotify"
    blind_spots: list[str]  # what this sensor cannot see (the agent prints it at start)

    def start(self) -> None:
        """Attach to the kernel; raise SensorError; return once events flow."""
        ...

    def run(self, emit: EmitFn, stop: threading.Event) -> None:
        """Blocking loop: emit() per event until `stop` is set or the sensor dies (SensorError)."""
        ...

    def close(self) -> None:
        """Detach and release everything; safe to call twice."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: at least ``events``, ``lost`` (kernel side) and ``parse_errors``."""
        ...


# Watched path prefixes shared by the eBPF openat filter and fanotify: sensitive files, binary
# dirs, /etc, service-account tokens, runtime sockets, shared memory, /tmp.
SENSITIVE_PREFIXES: tuple[str, ...] = (
    "/etc/",
    "/root/.ssh/",
    "/root/.aws/",  # cloud credentials (the "Read cloud credentials file" rule's files)
    "/root/.config/gcloud/",
    "/root/.azure/",
    "/var/run/secrets/",
    "/run/secrets/",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/",
    "/var/run/containerd/",
    "/run/crio/",
    "/var/run/crio/",
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/lib/modules/",
    "/boot/",
    "/dev/shm/",
    "/dev/mem",
    "/dev/kmem",
    # the host's filesystem mounted into a container (hostPath /): "Container Access to Host Sensitive Paths"
    "/host/",
    "/rootfs/",
    "/hostfs/",
)


def clock_offset_ns() -> int:
    """Wall clock minus CLOCK_MONOTONIC (bpftrace's `nsecs`, CN_PROC's timestamps): kernel time -> epoch ns."""
    return time.time_ns() - time.monotonic_ns()


# Falco's proc.env: the driver copies at most this many bytes of the new program's environment at execve
# (libscap's MAX_PROC_ARG_ENV); libsinsp splits them at the NULs and joins the entries with spaces.
ENV_LIMIT = 4096
# A longer environment (the kernel's copy was cut) is read whole from /proc/PID/environ while the process lives, as
# libsinsp does with large environments enabled; this much of it at most.
LARGE_ENV_LIMIT = 65536


def environ_text(raw: bytes, limit: int = ENV_LIMIT) -> str:
    """Falco's proc.env of an environment block (`NAME=value` entries separated by NULs), cut at `limit`
    bytes: the entries joined by spaces (empty ones left out)."""
    return " ".join(item.decode(errors="replace") for item in raw[:limit].split(b"\0") if item)
