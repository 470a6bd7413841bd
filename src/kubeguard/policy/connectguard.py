"""Per-workload egress allow-lists in the kernel: cgroup sock_addr programs through raw bpf().

Two LPM-trie maps (IPv4, IPv6) and four BPF_PROG_TYPE_CGROUP_SOCK_ADDR programs per protected
workload, attached to the cgroup of every container of the workload:

- ``connect4`` / ``connect6``: connect() of TCP and UDP sockets (BPF_CGROUP_INET4/6_CONNECT);
- ``sendmsg4`` / ``sendmsg6``: sendto()/sendmsg() with a destination on an unconnected UDP socket
  (BPF_CGROUP_UDP4/6_SENDMSG).

A destination not in the maps fails with EPERM in those containers only, before any packet
leaves. An AF_INET6 socket aimed at an IPv4-mapped address (``::ffff:a.b.c.d``) is checked by the
IPv6 programs; every IPv4 entry is also in the IPv6 map as its mapped /96+n prefix.

Map key: prefixlen (u32, host order), then the matched data: port (2 bytes, network order), L4
protocol (1 byte), padding (1 byte), address (4 or 16 bytes, network order): 12 / 24 bytes. An entry
for a network ``addr/n`` has prefixlen 32 + n. A program looks up (port, protocol, address), then
(0, protocol, address) — "any port of this protocol", used for replies to UDP clients — then
(0, 0, address) — "any port, any protocol".
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import struct
from dataclasses import dataclass

from kubeguard.policy.bpfsys import (
    BPF_MAP_CREATE,
    BPF_PROG_ATTACH,
    BPF_PROG_DETACH,
    BPF_PROG_LOAD,
    BpfError,
    map_delete,
    map_update,
)
from kubeguard.policy.bpfsys import bpf as _bpf

BPF_MAP_TYPE_LPM_TRIE = 11
BPF_F_NO_PREALLOC = 1
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT = 10, 11
BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG = 14, 15
# (attach type, IPv6?, program name): every hook a destination passes through
HOOKS = ((BPF_CGROUP_INET4_CONNECT, False, "kg_connect4"), (BPF_CGROUP_INET6_CONNECT, True, "kg_connect6"),
         (BPF_CGROUP_UDP4_SENDMSG, False, "kg_sendmsg4"), (BPF_CGROUP_UDP6_SENDMSG, True, "kg_sendmsg6"))
BPF_F_ALLOW_MULTI = 2
BPF_FUNC_MAP_LOOKUP_ELEM = 1
IPPROTO = {"TCP": 6, "UDP": 17}
KEY_SIZE = {False: 12, True: 24}
MAX_ENTRIES = 4096
V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _program(map_fd: int, ipv6: bool) -> bytes:
    """A sock_addr program (see the module docstring); returns 1 = allow, 0 = EPERM."""
    r0, r1, r2, r6, r10 = 0, 1, 2, 6, 10
    key = -32 if ipv6 else -16  # 8-byte aligned start of the key on the stack
    ld_map = _insn(0x18, r1, 1, 0, map_fd) + _insn(0)  # r1 = map (BPF_PSEUDO_MAP_FD)
    lookup = ld_map + _insn(0xBF, r2, r10) + _insn(0x07, r2, imm=key) + _insn(0x85, imm=BPF_FUNC_MAP_LOOKUP_ELEM)
    code = [
        _insn(0xBF, r6, r1),                              # r6 = ctx
        _insn(0x62, r10, off=key, imm=64 + 32 * 3 * ipv6),  # key.prefixlen = 32 + address bits
        _insn(0x61, r2, r6, off=24),                      # r2 = ctx->user_port
        _insn(0x6B, r10, r2, off=key + 4),                # key.port = r2 (2 bytes, network order)
        _insn(0x61, r2, r6, off=36),                      # r2 = ctx->protocol
        _insn(0x73, r10, r2, off=key + 6),                # key.proto = r2 (1 byte)
        _insn(0x72, r10, off=key + 7, imm=0),             # key.pad = 0
    ]
    for word in range(4 if ipv6 else 1):                  # key.addr = ctx->user_ip6[] or ctx->user_ip4
        code += [_insn(0x61, r2, r6, off=(8 if ipv6 else 4) + 4 * word), _insn(0x63, r10, r2, off=key + 8 + 4 * word)]
    code += [
        lookup,                                           # (port, proto, addr): 5 insns
        _insn(0x55, r0, off=16, imm=0),                   # if r0 != 0 goto allow
        _insn(0x6A, r10, off=key + 4, imm=0),             # key.port = 0
        lookup,                                           # (0, proto, addr)
        _insn(0x55, r0, off=9, imm=0),                    # if r0 != 0 goto allow
        _insn(0x72, r10, off=key + 6, imm=0),             # key.proto = 0
        lookup,                                           # (0, 0, addr)
        _insn(0x55, r0, off=2, imm=0),                    # if r0 != 0 goto allow
        _insn(0xB7, r0, imm=0), _insn(0x95),              # deny
        _insn(0xB7, r0, imm=1), _insn(0x95),              # allow:
    ]
    return b"".join(code)


@dataclass(frozen=True, slots=True, order=True)
class Allow:
    """One allowed destination: a network (IPv4 or IPv6), a port (0 = any) and a protocol ("" = any)."""

    network: str
    port: int = 0
    protocol: str = ""

    def map_keys(self) -> list[tuple[bool, bytes]]:
        """(IPv6 map?, key) for every map entry this destination needs (an IPv4 one also as mapped IPv6)."""
        net = ipaddress.ip_network(self.network, strict=False)
        head = struct.pack("!HBB", self.port, IPPROTO.get(self.protocol, 0), 0)
        out = [(net.version == 6, struct.pack("<I", 32 + net.prefixlen) + head + net.network_address.packed)]
        if net.version == 4:
            mapped = V4_MAPPED.network_address.packed[:12] + net.network_address.packed
            out.append((True, struct.pack("<I", 32 + 96 + net.prefixlen) + head + mapped))
        return out


class ConnectGuard:
    """One workload's egress allow-list: two maps, four programs, the cgroups they are attached to."""

    def __init__(self) -> None:
        self.map_fds: dict[bool, int] = {}
        self.prog_fds: list[tuple[int, int]] = []  # (attach type, program fd)
        self.entries: set[Allow] = set()
        self.attached: dict[str, int] = {}  # cgroup dir -> its open fd
        try:
            for ipv6 in (False, True):
                attr = struct.pack("<IIIII", BPF_MAP_TYPE_LPM_TRIE, KEY_SIZE[ipv6], 1, MAX_ENTRIES, BPF_F_NO_PREALLOC)
                self.map_fds[ipv6] = _bpf(BPF_MAP_CREATE, attr, "map create")
            for attach_type, ipv6, name in HOOKS:
                self.prog_fds.append((attach_type, self._load(name, attach_type, ipv6)))
        except BpfError:
            self.close()
            raise

    def _load(self, name: str, attach_type: int, ipv6: bool) -> int:
        insns = ctypes.create_string_buffer(_program(self.map_fds[ipv6], ipv6))
        license_ = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(65536)
        attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, len(insns.raw) // 8,
                           ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                           ctypes.addressof(log), 0, 0, name.encode()[:15], 0, attach_type)
        try:
            return _bpf(BPF_PROG_LOAD, attr, f"prog load {name}")
        except BpfError as exc:
            text = log.value.decode(errors="replace").strip().splitlines()
            raise BpfError(f"{exc}{': ' + text[-1] if text else ''}") from None

    def _update(self, ipv6: bool, key: bytes, delete: bool) -> None:
        if delete:
            map_delete(self.map_fds[ipv6], key)
        else:
            map_update(self.map_fds[ipv6], key, b"\x01")

    def set_entries(self, wanted: set[Allow]) -> None:
        """Make the maps hold exactly `wanted` (new entries first, so nothing allowed is ever missing)."""
        keep = {key for entry in wanted for key in entry.map_keys()}
        for entry in sorted(wanted - self.entries):
            for ipv6, key in entry.map_keys():
                self._update(ipv6, key, delete=False)
        gone = {key for entry in self.entries - wanted for key in entry.map_keys()} - keep  # spellings share keys
        for ipv6, key in sorted(gone):
            self._update(ipv6, key, delete=True)
        self.entries = set(wanted)

    def attach(self, cgroup_dir: str) -> None:
        if cgroup_dir in self.attached:
            return
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        done: list[tuple[int, int]] = []
        try:
            for attach_type, prog_fd in self.prog_fds:
                _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", fd, prog_fd, attach_type, BPF_F_ALLOW_MULTI, 0),
                     "prog attach")
                done.append((attach_type, prog_fd))
        except BpfError:
            self._detach(fd, done)
            os.close(fd)
            raise
        self.attached[cgroup_dir] = fd

    @staticmethod
    def _detach(fd: int, progs: list[tuple[int, int]]) -> None:
        for attach_type, prog_fd in progs:
            try:
                _bpf(BPF_PROG_DETACH, struct.pack("<IIIII", fd, prog_fd, attach_type, 0, 0), "prog detach")
            except BpfError:
                pass  # the cgroup is gone (pod deleted): the kernel dropped the attachment with it

    def detach(self, cgroup_dir: str) -> None:
        fd = self.attached.pop(cgroup_dir, None)
        if fd is None:
            return
        try:
            self._detach(fd, self.prog_fds)
        finally:
            os.close(fd)

    def close(self) -> None:
        for cgroup_dir in list(self.attached):
            self.detach(cgroup_dir)
        for fd in [prog_fd for _, prog_fd in self.prog_fds] + list(self.map_fds.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        self.prog_fds, self.map_fds = [], {}
