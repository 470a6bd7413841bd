"""The hold trap's instructions, run by a small interpreter of the few BPF instructions they use (its behaviour on a
real kernel, a held process resumed by someone else killed before it opens its script, is shown on real pods by
tests/root/policy/test_script_guard_root.py)."""

from __future__ import annotations

import struct

import pytest

from kubeguard.policy import holdtrap

PID = 4242


def insns(code: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi", code[i:i + 8])
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def run(code: bytes, syscall: int, held: set[int], key_size: int, map_fd: int) -> tuple[int, list[int]]:
    """Run the trap for a call numbered `syscall` by process PID; its return value and the signals it sent."""
    prog, mask = insns(code), (1 << 64) - 1
    reg = [0] * 11
    reg[1], reg[10] = 0, 512  # r1: ctx (args[0] = regs, args[1] = the number); r10: the frame's top
    ctx = {8: syscall}
    stack: dict[int, bytes] = {}
    signals: list[int] = []
    pc = 0
    while True:
        op, dst, src, off, imm = prog[pc]
        pc += 1
        if op == 0x79:  # ldx dw from the context
            assert reg[src] == 0, "reads only the context"
            reg[dst] = ctx[off]
        elif op == 0x57:
            reg[dst] &= imm & mask
        elif op == 0x77:
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
        elif op == 0x05:
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
@pytest.mark.parametrize("syscall", [257, 2, 437, 59, 322, 425, 426, 295, 5, 11, 257 | holdtrap.X32_SYSCALL_BIT, 520])
def test_a_held_process_is_killed_at_a_call_that_can_bring_in_code(key_size: int, syscall: int) -> None:
    code = holdtrap.program(held_map_fd=42, key_size=key_size)
    assert run(code, syscall, {PID}, key_size, 42) == (0, [holdtrap.SIGKILL])


@pytest.mark.parametrize("syscall", [0, 1, 3, 39, 61, 231, 60])  # read, write, close, getpid, wait4, exit_group
def test_other_calls_return_before_the_lookup(syscall: int) -> None:
    code = holdtrap.program(held_map_fd=42, key_size=8)
    assert run(code, syscall, {PID}, 8, 42) == (0, [])


@pytest.mark.parametrize("syscall", [257, 59])
def test_a_process_not_held_is_left_alone(syscall: int) -> None:
    code = holdtrap.program(held_map_fd=7, key_size=8)
    assert run(code, syscall, {PID + 5}, 8, 7) == (0, [])


def test_every_listed_number_reaches_the_lookup() -> None:
    code = holdtrap.program(held_map_fd=3, key_size=4)
    for number in holdtrap.CODE_SYSCALLS:
        assert run(code, number, {PID}, 4, 3) == (0, [holdtrap.SIGKILL]), number


@pytest.mark.parametrize("syscall", [0, 257])
def test_without_a_list_of_numbers_every_call_is_looked_up(syscall: int) -> None:
    code = holdtrap.program(held_map_fd=42, key_size=8, numbers=None)  # a machine whose numbers are not listed
    assert run(code, syscall, {PID}, 8, 42) == (0, [holdtrap.SIGKILL])
    assert run(code, syscall, {PID + 1}, 8, 42) == (0, [])


def test_the_numbers_are_checked_only_where_they_are_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holdtrap.platform, "machine", lambda: "x86_64")
    assert holdtrap.code_syscalls() == holdtrap.CODE_SYSCALLS
    monkeypatch.setattr(holdtrap.platform, "machine", lambda: "aarch64")
    assert holdtrap.code_syscalls() is None
