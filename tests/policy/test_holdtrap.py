"""The hold trap's instructions, run by a small interpreter of the few BPF instructions they use (its behaviour on a
real kernel, a held process resumed by someone else killed before it opens its script, is shown on real pods by
tests/root/policy/test_script_guard_root.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kubeguard.policy import holdtrap
from kubeguard.policy.bpfsys import BpfError

PID = 4242


def insns(code: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi", code[i:i + 8])
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def run(code: bytes, held: set[int], key_size: int, map_fd: int) -> tuple[int, list[int]]:
    """Run the trap at a call of process PID; its return value and the signals it sent."""
    prog, mask = insns(code), (1 << 64) - 1
    reg = [0] * 11
    reg[1], reg[10] = 0, 512  # r1: ctx (the tracepoint's record, not read); r10: the frame's top
    stack: dict[int, bytes] = {}
    signals: list[int] = []
    pc = 0
    while True:
        op, dst, src, off, imm = prog[pc]
        pc += 1
        if op == 0x77:
            reg[dst] >>= imm
        elif op == 0xB7:
            reg[dst] = imm & mask
        elif op == 0xBF:
            reg[dst] = reg[src]
        elif op == 0x07:
            reg[dst] = (reg[dst] + imm) & mask
        elif op in (0x7B, 0x63):
            size = 8 if op == 0x7B else 4
            stack[reg[dst] + off] = reg[src].to_bytes(8, "little")[:size]
        elif op == 0x18:
            assert (src, imm) == (1, map_fd)  # BPF_PSEUDO_MAP_FD: the held map
            reg[dst] = ("map", imm)  # type: ignore[call-overload]
            pc += 1
        elif op == 0x15:
            if reg[dst] == (imm & mask):
                pc += off
        elif op == 0x85:
            if imm == holdtrap.BPF_FUNC_GET_CURRENT_PID_TGID:
                reg[0] = PID << 32 | (PID + 1)
            elif imm == holdtrap.BPF_FUNC_MAP_LOOKUP_ELEM:
                assert reg[1] == ("map", map_fd)
                key = stack[reg[2]]
                assert len(key) == key_size
                reg[0] = 1 if int.from_bytes(key, "little") in held else 0
            elif imm == holdtrap.BPF_FUNC_SEND_SIGNAL:
                signals.append(reg[1])
                reg[0] = 0
            else:
                raise AssertionError(f"unexpected helper {imm}")
        elif op == 0x95:
            return reg[0], signals
        else:
            raise AssertionError(f"unexpected instruction {op:#x}")


@pytest.mark.parametrize("key_size", [8, 4])
def test_a_held_process_is_killed(key_size: int) -> None:
    code = holdtrap.program(held_map_fd=42, key_size=key_size)
    assert run(code, {PID}, key_size, 42) == (0, [holdtrap.SIGKILL])


@pytest.mark.parametrize("key_size", [8, 4])
def test_a_process_not_held_is_left_alone(key_size: int) -> None:
    code = holdtrap.program(held_map_fd=7, key_size=key_size)
    assert run(code, {PID + 5}, key_size, 7) == (0, [])
    assert run(code, set(), key_size, 7) == (0, [])


def test_the_trapped_calls_are_those_that_open_files() -> None:
    """open and its kin, and io_uring's calls (its requests open files); not exec, which the exec guard judges."""
    assert {"open", "openat", "openat2", "creat", "open_by_handle_at", "io_uring_setup", "io_uring_enter"} <= \
        set(holdtrap.CODE_SYSCALLS)
    assert not {"execve", "execveat", "read", "mmap"} & set(holdtrap.CODE_SYSCALLS)
    assert set(holdtrap.REQUIRED_SYSCALLS) <= set(holdtrap.CODE_SYSCALLS)


def tracefs(tmp_path: Path, names: dict[str, str]) -> Path:
    for name, text in names.items():
        event = tmp_path / "events" / "syscalls" / f"sys_enter_{name}"
        event.mkdir(parents=True)
        (event / "id").write_text(text)
    return tmp_path


def test_each_tracepoint_the_kernel_has_is_used(tmp_path: Path) -> None:
    root = tracefs(tmp_path, {"openat": "612\n", "open": "616\n", "io_uring_enter": "88\n", "read": "5\n"})
    assert holdtrap.tracepoint_ids(root) == {"open": 616, "openat": 612, "io_uring_enter": 88}


@pytest.mark.parametrize("names", [{}, {"open": "616\n"}, {"openat": "not a number\n"}])
def test_without_openat_s_tracepoint_there_is_no_trap(tmp_path: Path, names: dict[str, str]) -> None:
    with pytest.raises(BpfError, match="no syscall tracepoint for openat"):
        holdtrap.tracepoint_ids(tracefs(tmp_path, names))


def test_without_tracefs_there_is_no_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holdtrap, "tracing_dir", lambda: None)
    with pytest.raises(BpfError, match="tracefs is not mounted"):
        holdtrap.tracepoint_ids()
