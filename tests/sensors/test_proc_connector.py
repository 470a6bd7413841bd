"""CN_PROC datagram parsing and decoding, on messages laid out as the kernel's uapi cn_proc.h does."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kubeguard.sensors.proc_connector import (
    CN_IDX_PROC,
    PROC_EVENT_EXEC,
    PROC_EVENT_EXIT,
    PROC_EVENT_FORK,
    PROC_EVENT_PTRACE,
    PROC_EVENT_UID,
    ProcConnectorSensor,
    listen_message,
    parse_messages,
)


def datagram(*events: tuple[int, bytes]) -> bytes:
    out = b""
    for what, body in events:
        payload = struct.pack("=IIQ", what, 1, 123_456) + body
        cn = struct.pack("=IIIIHH", CN_IDX_PROC, 1, 7, 0, len(payload), 0) + payload
        msg = struct.pack("=IHHII", 16 + len(cn), 3, 0, 7, 0) + cn
        out += msg + b"\0" * ((-len(msg)) % 4)
    return out


@pytest.fixture
def sensor(tmp_path: Path) -> ProcConnectorSensor:
    return ProcConnectorSensor(proc=tmp_path)  # an empty /proc: every process is already gone


def test_listen_message_layout() -> None:
    msg = listen_message(1)
    length, mtype = struct.unpack_from("=IH", msg)
    assert (length, mtype, len(msg)) == (40, 3, 40)
    assert struct.unpack_from("=IIIIHHI", msg, 16) == (1, 1, 0, 0, 4, 0, 1)


def test_parse_several_events_in_one_datagram() -> None:
    data = datagram((PROC_EVENT_EXEC, struct.pack("=ii", 42, 42)),
                    (PROC_EVENT_EXIT, struct.pack("=iiIIii", 42, 42, 3 << 8, 17, 1, 1)))
    assert [(w, t) for w, t, _ in parse_messages(data)] == [(PROC_EVENT_EXEC, 123_456), (PROC_EVENT_EXIT, 123_456)]
    with pytest.raises(ValueError):
        parse_messages(struct.pack("=I", 9999) + data[4:])  # length past the datagram


def test_decode_kinds(sensor: ProcConnectorSensor) -> None:
    sensor.offset = 1000
    exe = sensor.decode(PROC_EVENT_EXEC, 5, struct.pack("=ii", 42, 42))
    assert exe is not None
    assert (exe["evt.type"], exe["proc.pid"], exe["proc.name"], exe["evt.time"]) == ("execve", 42, "<NA>", 1005)
    assert sensor.stats()["proc_gone"] == 1
    fork = sensor.decode(PROC_EVENT_FORK, 5, struct.pack("=iiii", 10, 10, 43, 43))
    assert fork is not None and (fork["evt.type"], fork["proc.pid"], fork["evt.arg.pid"]) == ("clone", 10, 43)
    assert sensor.decode(PROC_EVENT_FORK, 5, struct.pack("=iiii", 10, 10, 44, 43)) is None  # a thread
    uid = sensor.decode(PROC_EVENT_UID, 5, struct.pack("=iiII", 42, 42, 1000, 0))
    assert uid is not None and (uid["evt.type"], uid["evt.arg.uid"], uid["evt.arg.ruid"]) == ("setuid", 0, 1000)
    trace = sensor.decode(PROC_EVENT_PTRACE, 5, struct.pack("=iiii", 42, 42, 77, 77))
    assert trace is not None and (trace["proc.pid"], trace["evt.arg.pid"]) == (77, 42)
    assert sensor.decode(PROC_EVENT_PTRACE, 5, struct.pack("=iiii", 42, 42, 0, 0)) is None  # detach
    gone = sensor.decode(PROC_EVENT_EXIT, 5, struct.pack("=iiIIii", 42, 42, 3 << 8, 17, 1, 1))
    assert gone is not None and (gone["evt.type"], gone["evt.arg.ret"]) == ("procexit", 3)


def test_start_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeguard.sensors.base import SensorError

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(SensorError, match="needs root"):
        ProcConnectorSensor().start()
