"""Helpers for the sensor root tests: run a sensor in a thread and wait for the events tests cause."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubeguard.model import Event
from kubeguard.sensors.base import Sensor


class EventLog:
    """Collects a running sensor's events; tests wait for the one they caused."""

    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self.events: list[Event] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"sensor-{sensor.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.sensor.run(self._emit, self.stop)
        except BaseException as exc:  # reported by wait() so a dead sensor fails the test clearly
            self.error = exc

    def _emit(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def wait(self, match: Callable[[Event], bool], timeout: float = 15.0) -> Event:
        """The first event satisfying `match`; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self.lock:
                fresh = self.events[seen:]
                seen = len(self.events)
            for event in fresh:
                if match(event):
                    return event
            if self.error is not None:
                raise AssertionError(f"sensor died: {self.error}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event within {timeout} s ({seen} events seen)")
            time.sleep(0.05)

    def all(self, match: Callable[[Event], bool]) -> list[Event]:
        with self.lock:
            return [e for e in self.events if match(e)]


def run_sensor(sensor: Sensor) -> Iterator[EventLog]:
    """Start `sensor`, yield its EventLog, stop and close it afterwards."""
    sensor.start()
    log = EventLog(sensor)
    log.thread.start()
    try:
        yield log
    finally:
        log.stop.set()
        log.thread.join(timeout=10)
        sensor.close()


def fields(event: Event, *names: str) -> dict[str, Any]:
    """A few fields of an event (for readable assertion messages)."""
    return {n: event.get(n) for n in names}
