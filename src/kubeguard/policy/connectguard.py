"""Per-workload egress allow-lists in the kernel: a cgroup connect4 program through raw bpf().

One LPM-trie map and one BPF_PROG_TYPE_CGROUP_SOCK_ADDR program (attach type
BPF_CGROUP_INET4_CONNECT) per protected workload; the program is attached to the cgroup of every
container of the workload. connect() to an address/port/protocol not in the map fails with EPERM
in those containers only, before any packet leaves.

Map key (12 bytes): prefixlen (u32, host order), then the matched data: port (2 bytes, network
order), L4 protocol (1 byte), padding (1 byte), IPv4 address (4 bytes, network order). An entry for
a CIDR ``a.b.c.d/n`` and a port has prefixlen 32 + n; "any port, any protocol" entries have port 0
and protocol 0. The program looks up (port, protocol, address) with prefixlen 64 and, when that
misses, (0, 0, address). IPv6 connects (connect6) are not filtered.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import struct
from dataclasses import dataclass

SYS_BPF = 321  # x86_64
BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_PROG_LOAD = 0, 2, 3, 5
BPF_PROG_ATTACH, BPF_PROG_DETACH = 8, 9
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_F_NO_PREALLOC = 1
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
BPF_CGROUP_INET4_CONNECT = 10
BPF_F_ALLOW_MULTI = 2
BPF_FUNC_MAP_LOOKUP_ELEM = 1
IPPROTO = {"TCP": 6, "UDP": 17}
KEY_SIZE = 12
MAX_ENTRIES = 4096


class BpfError(Exception):
    """A bpf() call failed; the message names the call and the errno."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    ret = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), buf, ctypes.c_uint(128))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfError(f"bpf({what}) failed: {os.strerror(err)}")
    return int(ret)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _program(map_fd: int) -> bytes:
    """The connect4 program (see the module docstring); returns 1 = allow, 0 = EPERM."""
    r0, r1, r2, r6, r10 = 0, 1, 2, 6, 10
    ld_map = _insn(0x18, r1, 1, 0, map_fd) + _insn(0)  # r1 = map (BPF_PSEUDO_MAP_FD)
    lookup = ld_map + _insn(0xBF, r2, r10) + _insn(0x07, r2, imm=-16) + _insn(0x85, imm=BPF_FUNC_MAP_LOOKUP_ELEM)
    code = [
        _insn(0xBF, r6, r1),                  # r6 = ctx
        _insn(0x62, r10, off=-16, imm=64),    # key.prefixlen = 64
        _insn(0x61, r2, r6, off=24),          # r2 = ctx->user_port
        _insn(0x6B, r10, r2, off=-12),        # key.port = r2 (2 bytes, network order)
        _insn(0x61, r2, r6, off=36),          # r2 = ctx->protocol
        _insn(0x73, r10, r2, off=-10),        # key.proto = r2 (1 byte)
        _insn(0x72, r10, off=-9, imm=0),      # key.pad = 0
        _insn(0x61, r2, r6, off=4),           # r2 = ctx->user_ip4
        _insn(0x63, r10, r2, off=-8),         # key.addr = r2
        lookup,                               # 5 insns
        _insn(0x55, r0, off=10, imm=0),       # if r0 != 0 goto allow
        _insn(0x6A, r10, off=-12, imm=0),     # key.port = 0
        _insn(0x72, r10, off=-10, imm=0),     # key.proto = 0
        lookup,
        _insn(0x55, r0, off=2, imm=0),        # if r0 != 0 goto allow
        _insn(0xB7, r0, imm=0), _insn(0x95),  # deny
        _insn(0xB7, r0, imm=1), _insn(0x95),  # allow:
    ]
    return b"".join(code)


@dataclass(frozen=True, slots=True, order=True)
class Allow:
    """One allowed destination: a network, a port (0 = any) and a protocol ("" = any)."""

    network: str
    port: int = 0
    protocol: str = ""

    def key(self) -> bytes:
        net = ipaddress.IPv4Network(self.network, strict=False)
        proto = IPPROTO.get(self.protocol, 0) if self.port else 0
        data = struct.pack("!HBB", self.port, proto, 0) + net.network_address.packed
        return struct.pack("<I", 32 + net.prefixlen) + data


class ConnectGuard:
    """One workload's connect4 allow-list: a map, a program, the cgroups it is attached to."""

    def __init__(self, name: str = "kg_connect4") -> None:
        attr = struct.pack("<IIIII", BPF_MAP_TYPE_LPM_TRIE, KEY_SIZE, 1, MAX_ENTRIES, BPF_F_NO_PREALLOC)
        self.map_fd = _bpf(BPF_MAP_CREATE, attr, "map create")
        self.entries: set[Allow] = set()
        self.attached: dict[str, int] = {}  # cgroup dir -> its open fd
        try:
            self.prog_fd = self._load(name)
        except BpfError:
            os.close(self.map_fd)
            raise

    def _load(self, name: str) -> int:
        insns = ctypes.create_string_buffer(_program(self.map_fd))
        license_ = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(65536)
        attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, len(insns.raw) // 8,
                           ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                           ctypes.addressof(log), 0, 0, name.encode()[:15], 0, BPF_CGROUP_INET4_CONNECT)
        try:
            return _bpf(BPF_PROG_LOAD, attr, "prog load")
        except BpfError as exc:
            text = log.value.decode(errors="replace").strip().splitlines()
            raise BpfError(f"{exc}{': ' + text[-1] if text else ''}") from None

    def set_entries(self, wanted: set[Allow]) -> None:
        """Make the map hold exactly `wanted` (new entries first, so nothing allowed is ever missing)."""
        value = ctypes.create_string_buffer(b"\x01", 1)
        for entry in sorted(wanted - self.entries):
            key = ctypes.create_string_buffer(entry.key(), KEY_SIZE)
            _bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", self.map_fd, 0, ctypes.addressof(key),
                                                  ctypes.addressof(value), 0), "map update")
        for entry in sorted(self.entries - wanted):
            key = ctypes.create_string_buffer(entry.key(), KEY_SIZE)
            _bpf(BPF_MAP_DELETE_ELEM, struct.pack("<IIQ", self.map_fd, 0, ctypes.addressof(key)), "map delete")
        self.entries = set(wanted)

    def attach(self, cgroup_dir: str) -> None:
        if cgroup_dir in self.attached:
            return
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", fd, self.prog_fd, BPF_CGROUP_INET4_CONNECT,
                                              BPF_F_ALLOW_MULTI, 0), "prog attach")
        except BpfError:
            os.close(fd)
            raise
        self.attached[cgroup_dir] = fd

    def detach(self, cgroup_dir: str) -> None:
        fd = self.attached.pop(cgroup_dir, None)
        if fd is None:
            return
        try:
            _bpf(BPF_PROG_DETACH, struct.pack("<IIIII", fd, self.prog_fd, BPF_CGROUP_INET4_CONNECT, 0, 0),
                 "prog detach")
        except BpfError:
            pass  # the cgroup is gone (pod deleted): the kernel dropped the attachment with it
        finally:
            os.close(fd)

    def close(self) -> None:
        for cgroup_dir in list(self.attached):
            self.detach(cgroup_dir)
        for fd in (self.prog_fd, self.map_fd):
            try:
                os.close(fd)
            except OSError:
                pass
