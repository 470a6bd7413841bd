"""The trap for held interpreters: SIGKILL at the first system call of a process the exec guard holds.

The exec guard (execguard.py) stops an allowed interpreter at exec (SIGSTOP) until the script answerer has read
its script; only the answerer's SIGCONT releases it (its bpftrace program then removes the pid from its map
``@p``). A SIGCONT from anyone else resumes it with the pid still in ``@p``: its first system call must end it.
bpftrace 0.17 can only do that with a probe on the raw_syscalls:sys_enter tracepoint, which runs a BPF program
through the perf tracepoint path at every system call of every process: ~2 us on each fork + exec + wait of a
no-op here (bench.policy), for a check that almost never holds. This module loads the same check as a raw
tracepoint program (BPF_PROG_TYPE_RAW_TRACEPOINT on sys_enter: called directly, no perf buffer), written in
BPF instructions: look the calling process up in the guard's ``@p``, and if it is there, bpf_send_signal(SIGKILL)
to itself. The guard's bpftrace program reports that SIGKILL (``E`` line) from its signal_generate probe.
"""

from __future__ import annotations

import ctypes
import os
import struct

from kubeguard.policy.bpfsys import BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_LOAD, BpfError, bpf

BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_GET_CURRENT_PID_TGID, BPF_FUNC_SEND_SIGNAL = 1, 14, 109
SIGKILL = 9
MAP_INFO_KEY_SIZE = slice(8, 12)  # struct bpf_map_info: type, id, key_size, ...


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(held_map_fd: int, key_size: int) -> bytes:
    """The trap's instructions: key = the calling process's pid (bpftrace's `pid`, the thread group id) as the
    map's `key_size` bytes; lookup; SIGKILL to the caller when found; return 0."""
    r0, r1, r2, r10 = 0, 1, 2, 10
    store = _insn(0x7B, r10, r0, off=-8) if key_size == 8 else _insn(0x63, r10, r0, off=-4)  # *(u64|u32 *)(fp-n)
    return b"".join([
        _insn(0x85, imm=BPF_FUNC_GET_CURRENT_PID_TGID),  # r0 = tgid << 32 | tid
        _insn(0x77, r0, imm=32),                         # r0 >>= 32: the process id
        store,                                           # key = r0
        _insn(0x18, r1, 1, 0, held_map_fd), _insn(0),    # r1 = @p (BPF_PSEUDO_MAP_FD)
        _insn(0xBF, r2, r10),                            # r2 = fp
        _insn(0x07, r2, imm=-key_size),                  # r2 = &key
        _insn(0x85, imm=BPF_FUNC_MAP_LOOKUP_ELEM),       # r0 = lookup(@p, &key)
        _insn(0x15, r0, off=2, imm=0),                   # if r0 == 0 goto out
        _insn(0xB7, r1, imm=SIGKILL),                    # r1 = SIGKILL
        _insn(0x85, imm=BPF_FUNC_SEND_SIGNAL),           # bpf_send_signal(SIGKILL): the caller's process
        _insn(0xB7, r0, imm=0),                          # out: return 0
        _insn(0x95),
    ])


def _key_size(map_fd: int) -> int:
    info = ctypes.create_string_buffer(88)
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", map_fd, 88, ctypes.addressof(info)), "map info")
    size = int(struct.unpack("<I", info.raw[MAP_INFO_KEY_SIZE])[0])
    if size not in (4, 8):
        raise BpfError(f"the held-process map has {size}-byte keys (4 or 8 expected)")
    return size


def attach(held_map_fd: int) -> int:
    """Load the trap for the map `held_map_fd` and attach it to sys_enter; its fd (closing it detaches the trap).
    Raises BpfError."""
    insns = ctypes.create_string_buffer(program(held_map_fd, _key_size(held_map_fd)))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_RAW_TRACEPOINT, len(insns.raw) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0, 0, b"kg_hold_trap")
    try:
        prog_fd = bpf(BPF_PROG_LOAD, attr, "prog load kg_hold_trap")
    except BpfError as exc:
        text = log.value.decode(errors="replace").strip().splitlines()
        raise BpfError(f"{exc}{': ' + text[-1] if text else ''}") from None
    name = ctypes.create_string_buffer(b"sys_enter")
    try:
        return bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("<QI", ctypes.addressof(name), prog_fd),
                   "raw tracepoint open sys_enter")
    finally:
        os.close(prog_fd)  # the attachment holds the program
