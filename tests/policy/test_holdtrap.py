"""The hold trap's instructions (its behaviour, a held process resumed by someone else killed at its first system
call, is shown on real pods by tests/root/policy/test_script_guard_root.py)."""

from __future__ import annotations

import struct

import pytest

from kubeguard.policy import holdtrap


def insns(code: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi", code[i:i + 8])
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


@pytest.mark.parametrize(("key_size", "store"), [(8, 0x7B), (4, 0x63)])
def test_the_key_is_the_process_id_stored_as_the_maps_key(key_size: int, store: int) -> None:
    code = insns(holdtrap.program(held_map_fd=42, key_size=key_size))
    assert code[0] == (0x85, 0, 0, 0, holdtrap.BPF_FUNC_GET_CURRENT_PID_TGID)
    assert code[1] == (0x77, 0, 0, 0, 32)  # the thread group id: bpftrace's `pid`, the @p key
    assert code[2] == (store, 10, 0, -key_size, 0)
    assert code[3] == (0x18, 1, 1, 0, 42)  # the map, by fd
    assert code[6] == (0x07, 2, 0, 0, -key_size)


def test_it_kills_only_when_the_process_is_held_and_always_returns_zero() -> None:
    code = insns(holdtrap.program(held_map_fd=3, key_size=8))
    lookup = code.index((0x85, 0, 0, 0, holdtrap.BPF_FUNC_MAP_LOOKUP_ELEM))
    op, dst, _, off, imm = code[lookup + 1]
    assert (op, dst, imm) == (0x15, 0, 0)  # if r0 == 0: skip the kill
    target = lookup + 2 + off
    assert code[lookup + 2] == (0xB7, 1, 0, 0, holdtrap.SIGKILL)
    assert code[lookup + 3] == (0x85, 0, 0, 0, holdtrap.BPF_FUNC_SEND_SIGNAL)
    assert code[target:] == [(0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]
