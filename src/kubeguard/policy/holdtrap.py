"""The trap for held interpreters: SIGKILL at the first system call that can bring in code, of a process the exec
guard holds.

The exec guard (execguard.py) stops an allowed interpreter at exec (SIGSTOP) until the script answerer has read
its script; only the answerer's SIGCONT releases it (its guard program then removes the pid from its map
``@p``). A SIGCONT from anyone else resumes it with the pid still in ``@p``; before it can read a script it must
open one (or exec, or set up io_uring, whose requests open files without a system call of their own): that call
ends it. Code it gets without opening anything is on its command line or stdin, which the answerer releases
anyway. bpftrace 0.17 could only do this with a probe on raw_syscalls:sys_enter, which runs a BPF program
through the perf tracepoint path at every system call of every process (~2 us on each fork + exec + wait of a
no-op here, bench.policy). This module loads the check as a raw tracepoint program (BPF_PROG_TYPE_RAW_TRACEPOINT
on sys_enter: called directly, no perf buffer), written in BPF instructions: compare the system call's number
with `CODE_SYSCALLS` (a few instructions; every other call returns there), then look the calling process up in
the guard's ``@p``, and if it is there, bpf_send_signal(SIGKILL) to itself. The guard program reports
that SIGKILL (``E`` line) from its signal_generate probe.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from kubeguard.policy.bpfsys import BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_LOAD, BpfError, bpf

BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_GET_CURRENT_PID_TGID, BPF_FUNC_SEND_SIGNAL = 1, 14, 109
SIGKILL = 9
MAP_INFO_KEY_SIZE = slice(8, 12)  # struct bpf_map_info: type, id, key_size, ...
X32_SYSCALL_BIT = 0x40000000
# x86-64 numbers (x32 the same with X32_SYSCALL_BIT, masked off, except its own execve and execveat) and the
# 32-bit (ia32) ones, which the same sys_enter reports for 32-bit processes: open, creat, openat, openat2,
# open_by_handle_at, uselib, execve, execveat, io_uring_setup / enter / register. A 64-bit call whose number is
# one of the ia32 ones (fstat, lseek, munmap, preadv, link) is only looked up too.
CODE_SYSCALLS = (
    2, 85, 257, 437, 304, 134, 59, 322, 425, 426, 427,  # x86-64
    520, 545,  # x32 execve, execveat
    5, 8, 295, 342, 86, 11, 358,  # ia32 (openat2 and io_uring share the x86-64 numbers)
)


def code_syscalls() -> tuple[int, ...] | None:
    """The numbers the trap checks on this machine; None (a lookup at every call) where they are not listed here."""
    return CODE_SYSCALLS if platform.machine() == "x86_64" else None


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(held_map_fd: int, key_size: int, numbers: tuple[int, ...] | None = CODE_SYSCALLS) -> bytes:
    """The trap's instructions: return at once unless the system call is one of `numbers` (None: every call);
    then key = the calling process's pid (bpftrace's `pid`, the thread group id) as the map's `key_size` bytes;
    lookup; SIGKILL to the caller when found; return 0."""
    r0, r1, r2, r3, r10 = 0, 1, 2, 3, 10
    store = _insn(0x7B, r10, r0, off=-8) if key_size == 8 else _insn(0x63, r10, r0, off=-4)  # *(u64|u32 *)(fp-n)
    check = [
        _insn(0x79, r3, r1, off=8),                      # r3 = ctx->args[1]: the system call's number
        _insn(0x57, r3, imm=~X32_SYSCALL_BIT),           # r3 &= ~X32_SYSCALL_BIT
    ]
    count = len(numbers or ())
    for index, number in enumerate(numbers or ()):       # if r3 == number goto lookup
        check.append(_insn(0x15, r3, off=count - index, imm=number))
    lookup = [
        _insn(0x85, imm=BPF_FUNC_GET_CURRENT_PID_TGID),  # lookup: r0 = tgid << 32 | tid
        _insn(0x77, r0, imm=32),                         # r0 >>= 32: the process id
        store,                                           # key = r0
        _insn(0x18, r1, 1, 0, held_map_fd), _insn(0),    # r1 = @p (BPF_PSEUDO_MAP_FD)
        _insn(0xBF, r2, r10),                            # r2 = fp
        _insn(0x07, r2, imm=-key_size),                  # r2 = &key
        _insn(0x85, imm=BPF_FUNC_MAP_LOOKUP_ELEM),       # r0 = lookup(@p, &key)
        _insn(0x15, r0, off=2, imm=0),                   # if r0 == 0 goto out
        _insn(0xB7, r1, imm=SIGKILL),                    # r1 = SIGKILL
        _insn(0x85, imm=BPF_FUNC_SEND_SIGNAL),           # bpf_send_signal(SIGKILL): the caller's process
    ]
    out = [_insn(0xB7, r0, imm=0), _insn(0x95)]          # out: return 0
    if numbers is None:
        return b"".join([*lookup, *out])
    return b"".join([*check, _insn(0x05, off=len(lookup)), *lookup, *out])  # no number matched: goto out


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
    insns = ctypes.create_string_buffer(program(held_map_fd, _key_size(held_map_fd), code_syscalls()))
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
