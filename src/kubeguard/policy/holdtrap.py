"""The trap for held interpreters: SIGKILL at the first system call that can bring in code, of a process the exec
guard holds.

The exec guard (execguard.py) stops an allowed interpreter at exec (SIGSTOP) until the script answerer has read
its script; only the answerer's SIGCONT releases it (its guard program then removes the pid from its map
``@p``). A SIGCONT from anyone else resumes it with the pid still in ``@p``; before it can read a script it must
open one (or set up io_uring, whose requests open files without a system call of their own): that call ends it.
Code it gets without opening anything is on its command line or stdin, which the answerer releases anyway. An
exec by a held process needs no trap: the exec guard judges the new image like any other (an interpreter is held
again), and with its pid still in ``@p`` the new image dies at its own first open.

The check is one small program (BPF instructions written here: look the calling process up in the guard's
``@p``; if it is there, bpf_send_signal(SIGKILL) to itself) attached to the entry tracepoint of each of those
system calls (`CODE_SYSCALLS`, syscalls:sys_enter_*), so it runs at those calls only. Until 2026-12-07 it was a
raw tracepoint on sys_enter that compared each call's number, so it ran at every system call of the node (5.7
runs, ~0.4 us, per fork + exec + wait of a no-op, bench.policy), and it also trapped execve, whose entry
tracepoint costs ~1 % of that loop's exec on this kernel when anything is attached to it. The syscall
tracepoints do not report a 32-bit process's calls (ia32 or x32), so the exec guard kills a 32-bit interpreter
it would hold instead of holding it. The guard program reports the trap's SIGKILL (``E`` line) from its
signal_generate probe.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

from kubeguard.policy.bpfsys import BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_LOAD, BpfError, bpf
from kubeguard.sensors.ebpf import tracing_dir

BPF_PROG_TYPE_TRACEPOINT = 5
BPF_FUNC_MAP_LOOKUP_ELEM, BPF_FUNC_GET_CURRENT_PID_TGID, BPF_FUNC_SEND_SIGNAL = 1, 14, 109
SIGKILL = 9
MAP_INFO_KEY_SIZE = slice(8, 12)  # struct bpf_map_info: type, id, key_size, ...
# the system calls that can bring in code: their sys_enter tracepoints (a kernel without one, uselib without
# CONFIG_USELIB, has no such call either)
CODE_SYSCALLS = ("open", "creat", "openat", "openat2", "open_by_handle_at", "uselib", "io_uring_setup",
                 "io_uring_enter", "io_uring_register")
REQUIRED_SYSCALLS = ("openat",)  # without its tracepoint the trap would miss every libc open
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF = 0x2400, 0x40042408
PERF_ATTR_SIZE = 128
SYS_PERF_EVENT_OPEN = 298  # x86_64

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ioctl.restype = ctypes.c_int


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
        _insn(0xB7, r0, imm=0), _insn(0x95),             # out: return 0
    ])


def _key_size(map_fd: int) -> int:
    info = ctypes.create_string_buffer(88)
    bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", map_fd, 88, ctypes.addressof(info)), "map info")
    size = int(struct.unpack("<I", info.raw[MAP_INFO_KEY_SIZE])[0])
    if size not in (4, 8):
        raise BpfError(f"the held-process map has {size}-byte keys (4 or 8 expected)")
    return size


def tracepoint_ids(root: Path | None = None) -> dict[str, int]:
    """The tracepoint id of each of `CODE_SYSCALLS`' entries the kernel has (tracefs); BpfError when tracefs is not
    mounted or a call the trap cannot go without (`REQUIRED_SYSCALLS`) has none."""
    base = root if root is not None else tracing_dir()
    if base is None:
        raise BpfError("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
    ids = {}
    for name in CODE_SYSCALLS:
        try:
            ids[name] = int((base / "events" / "syscalls" / f"sys_enter_{name}" / "id").read_text())
        except (OSError, ValueError):
            continue
    missing = [name for name in REQUIRED_SYSCALLS if name not in ids]
    if missing:
        raise BpfError(f"no syscall tracepoint for {', '.join(missing)} in {base}")
    return ids


def _perf_open(tracepoint_id: int, what: str) -> int:
    attr = struct.pack("<IIQQ", PERF_TYPE_TRACEPOINT, PERF_ATTR_SIZE, tracepoint_id, 1).ljust(PERF_ATTR_SIZE, b"\0")
    buf = ctypes.create_string_buffer(attr, PERF_ATTR_SIZE)
    # pid -1, cpu 0: a tracepoint's BPF program runs on every CPU whichever the event is opened on (as libbpf does)
    fd = _libc.syscall(ctypes.c_long(SYS_PERF_EVENT_OPEN), buf, ctypes.c_int(-1), ctypes.c_int(0),
                       ctypes.c_int(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise BpfError(f"perf_event_open({what}) failed: {os.strerror(ctypes.get_errno())}")
    return int(fd)


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    if _libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), ctypes.c_long(arg)) < 0:
        raise BpfError(f"ioctl({what}) failed: {os.strerror(ctypes.get_errno())}")


class HoldTrap:
    """The trap attached to its tracepoints; `close` detaches it."""

    def __init__(self, fds: list[int]) -> None:
        self.fds = fds

    def close(self) -> None:
        """Detach the trap (idempotent)."""
        while self.fds:
            os.close(self.fds.pop())


def attach(held_map_fd: int, root: Path | None = None) -> HoldTrap:
    """Load the trap for the map `held_map_fd` and attach it to each code-bringing system call's entry tracepoint
    (tracefs at `root`, else where it is mounted). Raises BpfError."""
    ids = tracepoint_ids(root)
    insns = ctypes.create_string_buffer(program(held_map_fd, _key_size(held_map_fd)))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_TRACEPOINT, len(insns.raw) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0, 0, b"kg_hold_trap")
    try:
        prog_fd = bpf(BPF_PROG_LOAD, attr, "prog load kg_hold_trap")
    except BpfError as exc:
        text = log.value.decode(errors="replace").strip().splitlines()
        raise BpfError(f"{exc}{': ' + text[-1] if text else ''}") from None
    trap = HoldTrap([])
    try:
        for name, tracepoint_id in ids.items():
            fd = _perf_open(tracepoint_id, f"sys_enter_{name}")
            trap.fds.append(fd)
            _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd, f"attach kg_hold_trap to sys_enter_{name}")
            _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, f"enable sys_enter_{name}")
    except BpfError:
        trap.close()
        raise
    finally:
        os.close(prog_fd)  # the attachments hold the program
    return trap
