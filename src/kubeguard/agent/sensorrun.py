"""Choosing and running the agent's sensor: start it, run it in a thread, report health and gaps.

`SensorRunner` owns the sensor thread: `start()` returns once events flow (or raises UserError
with the sensor's one-line reason), `failed` says why the sensor died, `stop()` detaches it. A
sensor that dies leaves a blind interval, reported through `on_gap` when the runner stops.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from kubeguard.agent.metrics import AgentMetrics
from kubeguard.cliutil import UserError
from kubeguard.model import Event

GapFn = Callable[[str, int, int, str], None]


def make_sensor(name: str) -> Any:
    """A sensor by its `--sensor` name (imported lazily: the proc sensor needs no bpftrace)."""
    if name == "ebpf":
        from kubeguard.sensors.ebpf import EbpfSensor

        return EbpfSensor()
    if name == "proc":
        from kubeguard.sensors.proc import ProcConnectorSensor

        return ProcConnectorSensor()
    raise UserError(f"--sensor {name}: expected ebpf or proc")


class SensorRunner:
    """Runs one sensor's `run()` loop in a daemon thread feeding `emit`."""

    def __init__(self, sensor: Any, emit: Callable[[Event], None], on_gap: GapFn,
                 metrics: AgentMetrics | None = None) -> None:
        self.sensor = sensor
        own = os.getpid()

        def emit_others(event: Event) -> None:  # the agent's own syscalls are not the node's activity
            if event.get("proc.pid") != own:
                emit(event)

        self.emit = emit_others
        self.on_gap = on_gap
        self.metrics = metrics
        self.failed: str | None = None
        self._died_ns: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sensor-{sensor.name}", daemon=True)

    def start(self) -> None:
        from kubeguard.sensors.base import SensorError

        try:
            self.sensor.start()
        except SensorError as exc:
            raise UserError(f"sensor {self.sensor.name} cannot start: {exc}", code=1) from exc
        self._up(1)
        self._thread.start()

    def _run(self) -> None:
        from kubeguard.sensors.base import SensorError

        try:
            self.sensor.run(self.emit, self._stop)
            if not self._stop.is_set():
                self.failed = "its event loop ended"
        except SensorError as exc:
            self.failed = str(exc)
        except Exception as exc:  # a sensor bug must surface as one line and a gap, not a silent thread death
            self.failed = f"{type(exc).__name__}: {exc}"
        if self.failed:
            self._died_ns = time.time_ns()
            self._up(0)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        try:
            self.sensor.close()
        finally:
            self._up(0)
        if self._died_ns is not None and self.failed:
            self.on_gap(self.sensor.name, self._died_ns, time.time_ns(), self.failed)

    def stats(self) -> dict[str, dict[str, int]]:
        try:
            return {self.sensor.name: dict(self.sensor.stats())}
        except Exception:  # stats of a dead sensor
            return {}

    def _up(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.sensor_up.labels(self.sensor.name).set(value)
