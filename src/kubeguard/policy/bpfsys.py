"""The bpf() system call from Python (ctypes): the commands the guards use, and the maps of a running program.

`process_maps` finds the maps another process holds (an exec guard program) by their names, through the map ids
in its /proc fdinfo; `map_update` / `map_delete` then change them from outside, as `bpftool map update` does.
"""

from __future__ import annotations

import ctypes
import os
import struct

SYS_BPF = 321  # x86_64
BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_PROG_LOAD = 0, 2, 3, 5
BPF_PROG_ATTACH, BPF_PROG_DETACH = 8, 9
BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 14, 15
MAP_INFO_SIZE = 88  # struct bpf_map_info up to its name and a little past it
MAP_INFO_NAME = slice(24, 40)  # char name[BPF_OBJ_NAME_LEN] after type, id, key/value size, max entries, flags


class BpfError(Exception):
    """A bpf() call failed; the message names the call and the errno."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def bpf(cmd: int, attr: bytes, what: str) -> int:
    """bpf(cmd, attr); its result, or BpfError naming `what`."""
    buf = ctypes.create_string_buffer(attr, 128)
    ret = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), buf, ctypes.c_uint(128))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(f"bpf({what}) failed: {os.strerror(err)}")
    return int(ret)


def map_update(map_fd: int, key: bytes, value: bytes) -> None:
    """Set `key` to `value` in the map (created or replaced)."""
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0),
        "map update")


def map_delete(map_fd: int, key: bytes) -> None:
    """Remove `key` from the map (BpfError when it is not there)."""
    k = ctypes.create_string_buffer(key, len(key))
    bpf(BPF_MAP_DELETE_ELEM, struct.pack("<IIQ", map_fd, 0, ctypes.addressof(k)), "map delete")


def map_name(map_fd: int) -> str:
    """The name the map was created with (at most 15 bytes)."""
    info = ctypes.create_string_buffer(MAP_INFO_SIZE)
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", map_fd, MAP_INFO_SIZE, ctypes.addressof(info)), "map info")
    return info.raw[MAP_INFO_NAME].split(b"\0", 1)[0].decode(errors="replace")


def process_maps(pid: int, names: set[str]) -> dict[str, int]:
    """Open fds (the caller closes them) of the maps process `pid` holds whose names are in `names`."""
    found: dict[str, int] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError as exc:
        raise BpfError(f"maps of pid {pid}: {exc.strerror}") from None
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if "map_id" not in fields:
            continue
        map_fd = bpf(BPF_MAP_GET_FD_BY_ID, struct.pack("<III", int(fields["map_id"]), 0, 0), "map get fd by id")
        name = map_name(map_fd)
        if name in names and name not in found:
            found[name] = map_fd
        else:
            os.close(map_fd)
    return found
