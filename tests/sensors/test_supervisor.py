"""Supervisor: restarts with backoff, reports each blind interval once, sums stats across runs.

The sensors here are small scripted classes following the Sensor contract: what is under test is
the supervision logic (the real bpftrace restart is in tests/root/sensors/test_supervisor_root.py)."""

from __future__ import annotations

import threading
import time

import pytest

from kubeguard.model import Event
from kubeguard.sensors.base import Sensor, SensorError
from kubeguard.sensors.supervisor import Supervisor


class ScriptedSensor:
    """Emits `events` numbered events, then dies with `death` (or runs until stopped when None)."""

    name = "scripted"
    blind_spots = ["everything: scripted"]

    def __init__(self, events: int, death: str | None, fail_start: bool = False) -> None:
        self.events, self.death, self.fail_start = events, death, fail_start
        self.sent = 0
        self.closed = False

    def start(self) -> None:
        if self.fail_start:
            raise SensorError("cannot attach")

    def run(self, emit, stop: threading.Event) -> None:
        for _ in range(self.events):
            self.sent += 1
            emit(Event({"evt.type": "execve", "n": self.sent}))
        if self.death is not None:
            raise SensorError(self.death)
        stop.wait()

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, int]:
        return {"events": self.sent, "lost": 0, "parse_errors": 0}


def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_restarts_after_death_and_reports_the_gap() -> None:
    script = [ScriptedSensor(3, "bpftrace exited with status 1"), ScriptedSensor(0, None, fail_start=True),
              ScriptedSensor(2, None)]
    made: list[ScriptedSensor] = []

    def factory() -> Sensor:
        made.append(script[len(made)])
        return made[-1]

    gaps: list[tuple[str, int, int, str]] = []
    events: list[Event] = []
    sup = Supervisor(factory, lambda *gap: gaps.append(gap), backoff_initial=0.01, backoff_max=0.05)
    before = time.time_ns()
    sup.start(events.append)
    wait_until(lambda: len(events) == 5)
    sup.stop()
    assert [e["n"] for e in events] == [1, 2, 3, 1, 2]
    assert len(gaps) == 1
    name, start_ns, end_ns, reason = gaps[0]
    assert (name, reason) == ("scripted", "bpftrace exited with status 1")
    assert before <= start_ns <= end_ns <= time.time_ns()
    assert sup.restarts == 1
    assert sup.failures == ["bpftrace exited with status 1", "restart failed: cannot attach"]
    assert sup.stats() == {"events": 5, "lost": 0, "parse_errors": 0, "restarts": 1}
    assert made[0].closed and made[2].closed


def test_stop_while_blind_closes_the_gap() -> None:
    gaps: list[tuple[str, int, int, str]] = []
    calls = iter([ScriptedSensor(1, "killed")])

    def factory() -> Sensor:
        return next(calls, ScriptedSensor(0, None, fail_start=True))

    sup = Supervisor(factory, lambda *gap: gaps.append(gap), backoff_initial=0.01, backoff_max=0.02)
    sup.start(lambda e: None)
    wait_until(lambda: len(sup.failures) >= 3)
    sup.stop()
    assert len(gaps) == 1
    assert gaps[0][3] == "killed (not restarted before stop)"
    assert sup.restarts == 0


def test_first_start_failure_is_raised() -> None:
    sup = Supervisor(lambda: ScriptedSensor(0, None, fail_start=True), lambda *gap: None)
    with pytest.raises(SensorError, match="cannot attach"):
        sup.start(lambda e: None)


def test_clean_stop_reports_no_gap() -> None:
    gaps: list[tuple] = []
    sup = Supervisor(lambda: ScriptedSensor(2, None), lambda *gap: gaps.append(gap))
    sup.start(lambda e: None)
    wait_until(lambda: sup.stats()["events"] == 2)
    assert sup.blind_spots == ["everything: scripted"]
    sup.stop()
    assert gaps == []
