"""Falco's syscall fields: their types, and accessors for the ones derived from base fields.

Events are dicts keyed by Falco field names (see docs/rules.md "Event fields"). A missing key is
Falco's ``<NA>``: `exists` is false and every comparison is false. The sensors fill the *base*
fields; the accessors here compute the *derived* ones (``fd.directory``, ``proc.aname[N]``,
``evt.is_open_write``, ``fd.typechar`` ...) with Falco's semantics, preferring a value the
event already carries.

Every accessor takes the event and returns the value or None (``<NA>``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kubeguard.rules.linear import LinearPattern, linear_pattern

# Field types.
STR = "str"
INT = "int"
BOOL = "bool"
IP = "ip"  # an address; compared as text, `in` a CIDR when the field is a *net field
NET = "net"  # an address compared against CIDR networks (fd.net, fd.snet ...)
BYTES = "bytes"
LIST = "list"  # several values: `in` means all of them are in the set, `intersects` any
ANY = "any"  # the formatted value of a syscall argument: compared as text

Getter = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class FieldRef:
    """One field as written in a condition or output: ``proc.aname[2]`` is name proc.aname, arg "2"."""

    name: str
    arg: str | None = None

    @property
    def text(self) -> str:
        return f"{self.name}[{self.arg}]" if self.arg is not None else self.name


class UnknownField(ValueError):
    """The field is not one Falco's syscall source (plus the container/k8s plugins) knows."""


# Plain fields: name -> type. Kept to Falco's syscall source plus the container and k8s metadata
# plugins, which is what Falco's rule files (stable, incubating, sandbox) use.
_BASE: dict[str, str] = {}


def _add(kind: str, names: str) -> None:
    """Declare `names` of type `kind`; a name declared twice is a bug in this table, raised at import."""
    for name in names.split():
        if name in _BASE:
            raise ValueError(f"field {name} declared twice in the field table ({_BASE[name]} and {kind})")
        _BASE[name] = kind


_add(STR, """
evt.type evt.dir evt.args evt.res evt.category evt.cpu evt.hostname evt.plugininfo evt.source evt.info
evt.datetime evt.datetime.s evt.time.s evt.time.iso8601 evt.abspath evt.abspath.src evt.abspath.dst
syscall.type
proc.exe proc.exepath proc.name proc.args proc.cmdline proc.cmdnargs proc.cmdlenargs proc.env proc.cwd
proc.pname proc.pexe proc.pexepath proc.pcmdline proc.sname proc.vpgid.name proc.vpgid.exe
proc.vpgid.exepath proc.exeline proc.tty.name proc.sid.exe proc.sid.exepath
thread.cap_permitted thread.cap_effective thread.cap_inheritable thread.exectime
user.name user.homedir user.shell user.loginname group.name
fd.name fd.nameraw fd.directory fd.filename fd.type fd.typechar fd.l4proto fd.sockfamily fd.uid fd.containername
fd.containerdirectory fd.sip.name fd.cip.name fd.lip.name fd.rip.name fs.path.name fs.path.nameraw fs.path.source
fs.path.sourceraw fs.path.target fs.path.targetraw
container.id container.full_id container.name container.image container.image.id container.image.repository
container.image.tag container.image.digest container.type container.mounts container.host_pid
container.host_network container.host_ipc container.ip container.cni.json container.label container.labels
container.healthcheck container.liveness_probe container.readiness_probe
k8s.ns.name k8s.ns.id k8s.ns.labels k8s.pod.name k8s.pod.id k8s.pod.uid k8s.pod.sandbox_id k8s.pod.full_sandbox_id
k8s.pod.labels k8s.pod.ip k8s.pod.cni.json k8s.pod.sa k8s.rc.name k8s.rs.name k8s.svc.name k8s.deployment.name
k8s.node.name k8s.rc.labels k8s.rs.labels k8s.svc.labels k8s.deployment.labels
""")
_add(INT, """
evt.num evt.time evt.rawtime evt.reltime evt.latency evt.deltatime evt.rawres evt.count evt.buflen evt.around
proc.pid proc.ppid proc.vpid proc.pvpid proc.tty proc.sid proc.vpgid proc.pgid proc.loginshellid proc.duration
proc.ppid.duration proc.fdopencount proc.fdlimit proc.nthreads proc.nchilds proc.exe_ino proc.exe_ino.ctime
proc.exe_ino.mtime proc.exe_ino.ctime_duration_proc_start proc.exe_ino.ctime_duration_pidns_start
proc.pidns_init_start_ts
proc.vmsize proc.vmrss proc.vmswap proc.cpu proc.pid.ts proc.ppid.ts proc.exe_dev proc.stdin.type proc.stdout.type
thread.tid thread.vtid thread.ismain thread.vmsize thread.vmrss thread.totexectime
user.uid user.loginuid group.gid
fd.num fd.sport fd.cport fd.lport fd.rport fd.port fd.dev fd.dev.major fd.dev.minor fd.ino fd.cproto fd.sproto
fd.lproto fd.rproto
container.start_ts container.duration container.privileged_n
""")
_add(BOOL, """
evt.is_open_read evt.is_open_write evt.is_open_exec evt.is_open_create evt.failed evt.is_io evt.is_io_read
evt.is_io_write evt.is_syslog evt.is_wait evt.is_async
proc.is_exe_writable proc.is_exe_upper_layer proc.is_exe_from_memfd proc.is_sid_leader proc.is_vpgid_leader
proc.is_pgid_leader proc.is_container_healthcheck proc.is_container_liveness_probe proc.is_container_readiness_probe
fd.name_changed fd.connected fd.is_server
container.privileged
""")
_add(IP, "fd.ip fd.cip fd.sip fd.lip fd.rip")
_add(NET, "fd.net fd.cnet fd.snet fd.lnet fd.rnet")
_add(BYTES, "evt.buffer evt.rawarg")
_add(LIST, "fd.types proc.aname proc.apid proc.aexe proc.aexepath proc.acmdline")

# Fields that take an argument in brackets ("k8s.pod.label[app]") and the type of each element.
_INDEXED: dict[str, str] = {
    "proc.aname": STR, "proc.apid": INT, "proc.aexe": STR, "proc.aexepath": STR, "proc.acmdline": STR,
    "proc.env": STR, "proc.args": STR, "proc.cmdargs": STR,
    "k8s.pod.label": STR, "k8s.pod.labels": STR, "k8s.ns.label": STR, "k8s.rc.label": STR,
    "k8s.rs.label": STR, "k8s.svc.label": STR, "k8s.deployment.label": STR, "container.label": STR,
    "container.mount": STR, "container.mount.dest": STR, "container.mount.source": STR,
    "container.mount.mode": STR, "container.mount.rdwr": STR, "container.mount.propagation": STR,
    "fd.types": STR, "evt.arg": ANY, "evt.rawarg": ANY, "thread.cgroup": STR,
}
# Families addressed with a dot suffix: evt.arg.flags, evt.rawarg.res, thread.cgroup.cpu.
_DOTTED: dict[str, str] = {"evt.arg.": ANY, "evt.rawarg.": ANY, "thread.cgroup.": STR}

# Fields whose `=`/`in` checks any of several values (Falco's proc.aname with no index, fd.ip ...).
ANCESTOR_LISTS = {"proc.aname": "proc.name", "proc.apid": "proc.pid", "proc.aexe": "proc.exe",
                  "proc.aexepath": "proc.exepath", "proc.acmdline": "proc.cmdline"}

# Integer fields of the numeric syscall arguments (evt.rawarg.*) compare as numbers.
_NUMERIC_ARGS = {"res", "fd", "uid", "gid", "pid", "ruid", "euid", "suid", "rgid", "egid", "sgid", "request",
                 "mode", "dirfd", "newdirfd", "olddirfd", "size", "tid", "ptid"}


_DECIMAL_INDEX = re.compile(r"-?[0-9]{1,6}")


def field_type(ref: FieldRef) -> str:
    """Type of a field reference; raises UnknownField when Falco would not know it."""
    name, arg = ref.name, ref.arg
    if arg is not None:
        if name in _INDEXED:
            if name in ANCESTOR_LISTS and not _DECIMAL_INDEX.fullmatch(arg):
                raise UnknownField(f"{ref.text}: the argument of {name} must be a number (decimal, 0-999999)")
            return _INDEXED[name]
        raise UnknownField(f"field {name} takes no argument [{arg}]")
    if name in _BASE:
        return _BASE[name]
    for prefix, kind in _DOTTED.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            if prefix == "evt.rawarg." and name[len(prefix):] in _NUMERIC_ARGS:
                return INT
            return kind
    if name in _INDEXED:  # proc.env, k8s.pod.labels ... with no argument
        return STR
    raise UnknownField(f"unknown field {name}")


# ---------------------------------------------------------------------------------------------
# Value normalisation

def to_int(value: Any) -> int | None:
    """A numeric field's value as int; None when absent or not a number."""
    if type(value) is int:
        return value
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    try:
        return int(str(value).strip(), 0) if str(value).strip()[:2].lower() == "0x" else int(str(value).strip())
    except ValueError:
        return None


def to_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None


def to_str(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def to_bytes(value: Any) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return str(value).encode()


# ---------------------------------------------------------------------------------------------
# Derived accessors (Falco's semantics)

_FD_TYPECHAR = {"file": "f", "directory": "d", "ipv4": "4", "ipv6": "6", "unix": "u", "pipe": "p",
                "event": "e", "signalfd": "s", "eventpoll": "l", "inotify": "i", "timerfd": "t",
                "netlink": "n", "bpf": "b", "userfaultfd": "u", "io_uring": "r", "memfd": "m", "pidfd": "P"}
_OPEN_TYPES = frozenset({"open", "openat", "openat2", "open_by_handle_at"})
_O_ACCMODE = 3
_O_FLAG_NAMES = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
                 (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"),
                 (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
                 (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"), (0o20000000, "O_TMPFILE"))
ERRNO_NAMES = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM",
               13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
               24: "EMFILE", 28: "ENOSPC", 30: "EROFS", 32: "EPIPE", 38: "ENOSYS", 95: "EOPNOTSUPP",
               98: "EADDRINUSE", 101: "ENETUNREACH", 104: "ECONNRESET", 110: "ETIMEDOUT", 111: "ECONNREFUSED",
               113: "EHOSTUNREACH", 115: "EINPROGRESS"}


def open_flags_text(flags: int) -> str:
    """Linux open(2) flags as Falco prints them: ``O_WRONLY|O_CREAT|O_TRUNC``."""
    names = [("O_RDONLY", "O_WRONLY", "O_RDWR", "O_RDWR")[flags & _O_ACCMODE]]
    names += [name for bit, name in _O_FLAG_NAMES if flags & bit]
    return "|".join(names)


def _arg_flags(e: Mapping[str, Any]) -> str | None:
    flags = e.get("evt.arg.flags")
    if isinstance(flags, int) and not isinstance(flags, bool):
        return open_flags_text(flags) if e.get("evt.type") in _OPEN_TYPES else str(flags)
    return to_str(flags)


def _open_mode(want: str) -> Getter:
    """evt.is_open_<want>: from the event's own field, else from the open flags (answers cached by flags)."""
    explicit_key = f"evt.is_open_{want}"
    seen: dict[str, bool] = {}  # flags text -> answer; a host repeats a handful of flag sets endlessly

    def get(e: Mapping[str, Any]) -> bool | None:
        explicit = e.get(explicit_key)
        if explicit is not None:
            return to_bool(explicit)
        if e.get("evt.type") not in _OPEN_TYPES:
            return False
        flags = e.get("evt.arg.flags")
        if type(flags) is not str:
            flags = _arg_flags(e)
            if flags is None:
                return None
        hit = seen.get(flags)
        if hit is None:
            hit = _open_mode_of(want, flags)
            if len(seen) >= 4096:
                seen.clear()
            seen[flags] = hit
        return hit
    return get


def _open_mode_of(want: str, flags: str) -> bool:
    parts = set(flags.split("|"))
    if want == "write":
        return bool(parts & {"O_WRONLY", "O_RDWR"})
    if want == "read":
        return bool(parts & {"O_RDONLY", "O_RDWR"}) or not (parts & {"O_WRONLY"})
    if want == "create":
        return "O_CREAT" in parts
    return "O_EXEC" in parts or "O_PATH" in parts


def _fd_typechar(e: Mapping[str, Any]) -> str | None:
    explicit = e.get("fd.typechar")
    if explicit is not None:
        return to_str(explicit)
    kind = e.get("fd.type")
    return None if kind is None else _FD_TYPECHAR.get(str(kind), "o")


def _fd_directory(e: Mapping[str, Any]) -> str | None:
    explicit = e.get("fd.directory")
    if explicit is not None:
        return to_str(explicit)
    name = e.get("fd.name")
    if not isinstance(name, str) or not name.startswith("/"):
        return None
    if e.get("fd.type") == "directory":
        return name
    head = name[:name.rfind("/") + 1]  # os.path.dirname without its call overhead
    return head.rstrip("/") or head


def _fd_filename(e: Mapping[str, Any]) -> str | None:
    explicit = e.get("fd.filename")
    if explicit is not None:
        return to_str(explicit)
    name = e.get("fd.name")
    if not isinstance(name, str) or not name.startswith("/") or e.get("fd.type") == "directory":
        return None
    return name[name.rfind("/") + 1:]  # os.path.basename


def _evt_res(e: Mapping[str, Any]) -> str | None:
    res = e.get("evt.res")
    if res is None:
        res = e.get("evt.rawres")
    if res is None or type(res) is str:
        return res
    code = to_int(res)
    if code is None:
        return to_str(res)
    return "SUCCESS" if code >= 0 else ERRNO_NAMES.get(-code, f"E{-code}")


def _evt_rawres(e: Mapping[str, Any]) -> int | None:
    raw = e.get("evt.rawres")
    if raw is not None:
        return to_int(raw)
    res = e.get("evt.res")
    if res is None:
        return None
    if isinstance(res, int):
        return res
    if res == "SUCCESS":
        return 0
    for code, name in ERRNO_NAMES.items():
        if name == res:
            return -code
    return to_int(res)


def _evt_failed(e: Mapping[str, Any]) -> bool | None:
    raw = _evt_rawres(e)
    return None if raw is None else raw < 0


def _evt_dir(e: Mapping[str, Any]) -> str:
    # Falco 0.42 deprecated direction: `evt.dir = <` matches everything, `>` nothing. The sensors emit
    # exit events, so an event without the key is an exit event.
    value = e.get("evt.dir")
    return "<" if value is None else str(value)


def _evt_args(e: Mapping[str, Any]) -> str | None:
    explicit = e.get("evt.args")
    if explicit is not None:
        return to_str(explicit)
    parts = [f"{k[8:]}={to_str(v)}" for k, v in e.items() if k.startswith("evt.arg.")]
    return " ".join(parts) if parts else None


def _syscall_type(e: Mapping[str, Any]) -> Any:
    return e.get("evt.type")


def _proc_pname(e: Mapping[str, Any]) -> str | None:
    explicit = e.get("proc.pname")
    return to_str(explicit) if explicit is not None else ancestor(e, "proc.aname", 1)


def _proc_exe_dir(field: str, index: int) -> Getter:
    def get(e: Mapping[str, Any]) -> Any:
        explicit = e.get(field)
        return explicit if explicit is not None else ancestor(e, ANCESTOR_FOR[field], index)
    return get


ANCESTOR_FOR = {"proc.pexe": "proc.aexe", "proc.pexepath": "proc.aexepath", "proc.pcmdline": "proc.acmdline",
                "proc.ppid": "proc.apid"}


def _fd_any(*keys: str) -> Getter:
    def get(e: Mapping[str, Any]) -> list[Any] | None:
        values = [e[k] for k in keys if e.get(k) is not None]
        return values or None
    return get


def _fd_local_remote(which: str, kind: str) -> Getter:
    """fd.lip/fd.rip/fd.lport/fd.rport from client/server when the sensor gave only those."""
    key = f"fd.{which}{kind}"

    def get(e: Mapping[str, Any]) -> Any:
        value = e.get(key)
        if value is not None:
            return value
        server = to_bool(e.get("fd.is_server"))
        if server is None:
            return None
        local_is_server = server
        side = ("s" if local_is_server else "c") if which == "l" else ("c" if local_is_server else "s")
        return e.get(f"fd.{side}{kind}")
    return get


def _fd_types(e: Mapping[str, Any]) -> Any:
    value = e.get("fd.types")
    if value is not None:
        return value if isinstance(value, list) else [value]
    kind = e.get("fd.type")
    return None if kind is None else [kind]


def _is_vpgid_leader(e: Mapping[str, Any]) -> bool | None:
    explicit = e.get("proc.is_vpgid_leader")
    if explicit is not None:
        return to_bool(explicit)
    vpid, vpgid = e.get("proc.vpid"), e.get("proc.vpgid")
    return None if vpid is None or vpgid is None else to_int(vpid) == to_int(vpgid)


def _is_sid_leader(e: Mapping[str, Any]) -> bool | None:
    explicit = e.get("proc.is_sid_leader")
    if explicit is not None:
        return to_bool(explicit)
    pid, sid = e.get("proc.vpid", e.get("proc.pid")), e.get("proc.sid")
    return None if pid is None or sid is None else to_int(pid) == to_int(sid)


def _container_image(e: Mapping[str, Any]) -> Any:
    explicit = e.get("container.image")
    if explicit is not None:
        return explicit
    repo, tag = e.get("container.image.repository"), e.get("container.image.tag")
    if repo is None:
        return None
    return f"{repo}:{tag}" if tag else repo


# Derived plain fields: the accessor computes the value (it returns the event's own when present).
DERIVED: dict[str, Getter] = {
    "fd.typechar": _fd_typechar,
    "fd.directory": _fd_directory,
    "fd.filename": _fd_filename,
    "evt.res": _evt_res,
    "evt.rawres": _evt_rawres,
    "evt.failed": _evt_failed,
    "evt.dir": _evt_dir,
    "evt.args": _evt_args,
    "evt.arg.flags": _arg_flags,
    "syscall.type": _syscall_type,
    "evt.is_open_write": _open_mode("write"),
    "evt.is_open_read": _open_mode("read"),
    "evt.is_open_exec": _open_mode("exec"),
    "evt.is_open_create": _open_mode("create"),
    "proc.pname": _proc_pname,
    "proc.pexe": _proc_exe_dir("proc.pexe", 1),
    "proc.pexepath": _proc_exe_dir("proc.pexepath", 1),
    "proc.pcmdline": _proc_exe_dir("proc.pcmdline", 1),
    "proc.ppid": _proc_exe_dir("proc.ppid", 1),
    "fd.lip": _fd_local_remote("l", "ip"),
    "fd.rip": _fd_local_remote("r", "ip"),
    "fd.lport": _fd_local_remote("l", "port"),
    "fd.rport": _fd_local_remote("r", "port"),
    "fd.types": _fd_types,
    "proc.is_vpgid_leader": _is_vpgid_leader,
    "proc.is_sid_leader": _is_sid_leader,
    "container.image": _container_image,
}

# Derived fields whose accessor already returns the field's type (or None): no coercion needed.
TYPED_DERIVED = frozenset({"evt.is_open_write", "evt.is_open_read", "evt.is_open_exec", "evt.is_open_create",
                           "evt.failed", "proc.is_vpgid_leader", "proc.is_sid_leader"})

# Multi-valued fields that are the plain fields they gather (the values are those not <NA>).
MULTI_SOURCES: dict[str, tuple[str, ...]] = {
    "fd.ip": ("fd.cip", "fd.sip"), "fd.port": ("fd.cport", "fd.sport"), "fd.net": ("fd.cip", "fd.sip"),
    "fd.cnet": ("fd.cip",), "fd.snet": ("fd.sip",)}

# Fields that stand for "any of": the comparison holds when it holds for one of the values.
MULTI: dict[str, Getter] = {
    "fd.ip": _fd_any("fd.cip", "fd.sip"),
    "fd.port": _fd_any("fd.cport", "fd.sport"),
    "fd.net": _fd_any("fd.cip", "fd.sip"),
    "fd.cnet": _fd_any("fd.cip"),
    "fd.snet": _fd_any("fd.sip"),
    "fd.lnet": lambda e: (lambda v: None if v is None else [v])(DERIVED["fd.lip"](e)),
    "fd.rnet": lambda e: (lambda v: None if v is None else [v])(DERIVED["fd.rip"](e)),
}


def ancestor(e: Mapping[str, Any], field: str, index: int) -> Any:
    """proc.aname[N] and friends: index 0 is the process itself, 1 its parent, 2 the grandparent."""
    chain = e.get(field)
    if isinstance(chain, list | tuple):
        if 0 <= index < len(chain):
            return chain[index]
        return None
    if index == 0:
        return e.get(ANCESTOR_LISTS[field])
    if index == 1 and field == "proc.aname":
        return e.get("proc.pname")
    return None


def ancestors(e: Mapping[str, Any], field: str) -> list[Any] | None:
    """All ancestors (parent first) for proc.aname with no index."""
    chain = e.get(field)
    if isinstance(chain, list | tuple):
        return list(chain[1:]) or None
    if field == "proc.aname" and e.get("proc.pname") is not None:
        return [e["proc.pname"]]
    return None


def indexed(e: Mapping[str, Any], name: str, arg: str) -> Any:
    """Value of a bracketed field: k8s.pod.label[app], proc.env[HOME], evt.arg[0], container.mount.dest[/x]."""
    if name in ANCESTOR_LISTS:
        return ancestor(e, name, int(arg)) if _DECIMAL_INDEX.fullmatch(arg) else None
    explicit = e.get(f"{name}[{arg}]")
    if explicit is not None:
        return explicit
    if name in ("k8s.pod.label", "k8s.pod.labels", "k8s.ns.label", "container.label"):
        labels = e.get(name + "s") if not name.endswith("s") else e.get(name)
        return labels.get(arg) if isinstance(labels, dict) else None
    if name == "proc.env":
        env = e.get("proc.env")
        if isinstance(env, dict):
            return env.get(arg)
        if isinstance(env, str):
            for item in env.split(" "):
                key, _, value = item.partition("=")
                if key == arg:
                    return value
        return None
    if name in ("proc.args", "proc.cmdargs"):
        args = e.get("proc.args")
        parts = args if isinstance(args, list) else str(args).split() if args is not None else []
        i = to_int(arg)
        return parts[i] if i is not None and 0 <= i < len(parts) else None
    if name in ("evt.arg", "evt.rawarg"):
        if arg.isascii() and arg.isdigit():
            args = [k for k in e if k.startswith("evt.arg.")]
            return e[args[int(arg)]] if int(arg) < len(args) else None
        return e.get(f"evt.arg.{arg}")
    if name.startswith("container.mount"):
        return _mount_field(e, name, arg)
    if name == "fd.types":
        types = _fd_types(e)
        i = to_int(arg)
        return types[i] if types and i is not None and 0 <= i < len(types) else None
    return None


def _mount_field(e: Mapping[str, Any], name: str, arg: str) -> Any:
    """container.mount.dest[/path*] etc. from ``container.mounts``: a list of {source, dest, mode, rdwr}.

    None when the container's mounts are unknown; "N/A" when they are known and none matches (libsinsp's
    value: Falco's sensitive_mount macro tests `not container.mount.dest[/proc*] in ("<NA>","N/A")`)."""
    mounts = e.get("container.mounts")
    if not isinstance(mounts, list):
        return None
    key = name.rsplit(".", 1)[-1] if name != "container.mount" else None
    for i, mount in enumerate(mounts):
        if not isinstance(mount, dict):
            continue
        if arg.isascii() and arg.isdigit():
            hit = i == int(arg)
        else:
            try:
                pattern = glob_matcher(arg)
            except ValueError:
                return None
            against = "dest" if name == "container.mount.source" else "source"
            hit = pattern.fullmatch(str(mount.get(against, ""))) is not None
        if hit:
            if key is None:
                return ":".join(str(mount.get(k, "")) for k in ("source", "dest", "mode", "rdwr", "propagation"))
            if name == "container.mount.dest":
                return mount.get("dest")
            return mount.get(key)
    return "N/A"  # libsinsp's value when the container's mounts are known and none matches


def glob_matcher(patterns: str | tuple[str, ...], nocase: bool = False) -> LinearPattern | re.Pattern[str]:
    """A matcher of one glob (or any of several) in time linear in the value.

    Falco matches globs with fnmatch(3) and no flags (libsinsp's glob_match), so `*` crosses `/`:
    ``/proc/*/environ`` matches ``/proc/1/task/1/environ`` and ``*../*../*`` any path with two ``../``.
    A glob with at most one star has one way to match and Python's `re` (the faster of the two on short
    values) runs it in linear time; globs with more stars (whose backtracking is polynomial in the number
    of stars) go to Hyperscan (`kubeguard.rules.linear`). ValueError when a glob cannot be compiled.
    """
    globs = (patterns,) if isinstance(patterns, str) else patterns
    source = "|".join(f"(?:{glob_regex(g)})" for g in globs) if len(globs) > 1 else glob_regex(globs[0])
    if all(g.count("*") <= 1 for g in globs):
        try:
            return re.compile(source, re.S | (re.I if nocase else 0))
        except (re.error, RecursionError, OverflowError) as exc:
            raise ValueError(str(exc)) from exc
    return linear_pattern(source, nocase)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> str:
    """Falco's glob as regex source: fnmatch(3) without flags; `*` and `?` match `/` too."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=65536)
def _address(text: str) -> tuple[int, int] | None:
    """(version, address as int) of an IP address text; None when it is not one."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return addr.version, int(addr)


class NetSet:
    """CIDR networks matched with integer masks (fd.net / fd.snet ... comparisons)."""

    MAX_CACHE = 65536

    def __init__(self, nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> None:
        self.nets = nets
        self.masks = tuple((n.version, int(n.network_address), int(n.netmask)) for n in nets)
        self._seen: dict[str, bool] = {}  # address text -> answer (a pod talks to few peers)

    def __contains__(self, value: Any) -> bool:
        text = value if type(value) is str else str(value)
        hit = self._seen.get(text)
        if hit is None:
            hit = self._lookup(text)
            if len(self._seen) >= self.MAX_CACHE:
                self._seen.clear()
            self._seen[text] = hit
        return hit

    def has_any(self, *values: Any) -> bool:
        """Multi-valued `fd.net in (...)`: one of the addresses (None: absent) is inside."""
        return self._scan(values, True)

    def lacks_any(self, *values: Any) -> bool:
        """Multi-valued `fd.net != ...`: one of the addresses (None: absent) is outside."""
        return self._scan(values, False)

    def _scan(self, values: tuple[Any, ...], want: bool) -> bool:
        seen = self._seen
        for v in values:
            if v is None:
                continue
            text = v if type(v) is str else to_str(v)
            hit = seen.get(text)  # type: ignore[arg-type]
            if hit is None:
                hit = text in self
            if hit is want:
                return True
        return False

    def _lookup(self, text: str) -> bool:
        got = _address(text)
        if got is None:
            return False
        version, addr = got
        return any(v == version and addr & mask == net for v, net, mask in self.masks)


def ip_in_nets(value: Any, nets: NetSet) -> bool:
    """True when the address is inside one of the networks."""
    return value in nets


def parse_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR or a single address, as a network; raises ValueError."""
    return ipaddress.ip_network(text.strip(), strict=False)


def value_getter(ref: FieldRef) -> Getter:
    """A callable returning the field's raw value (None for <NA>); multi-valued fields give a list."""
    name, arg = ref.name, ref.arg
    if arg is not None:
        if name in ANCESTOR_LISTS:
            if not _DECIMAL_INDEX.fullmatch(arg):
                return lambda e: None  # field_type refuses it at load
            index = int(arg)
            return lambda e: ancestor(e, name, index)
        return lambda e: indexed(e, name, arg)
    if name in DERIVED:
        return DERIVED[name]
    if name in MULTI:
        return MULTI[name]
    if name in ANCESTOR_LISTS:
        return lambda e: ancestors(e, name)
    return lambda e: e.get(name)


def is_multi(ref: FieldRef) -> bool:
    """True for fields whose comparisons hold when they hold for any one of several values."""
    return ref.arg is None and (ref.name in MULTI or ref.name in ANCESTOR_LISTS)
