"""Choosing and running the agent's sensor under the sensors lane's Supervisor.

`SensorRunner.start()` returns once events flow (or raises SensorStartError with the sensor's one-line
reason, exit code 1); the Supervisor restarts a sensor that dies and reports every blind interval
through `on_gap` (the pipeline turns it into an alert). The agent's own syscalls are dropped here:
they are not the node's activity, and reporting them would feed the agent its own reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from kubeguard.agent.metrics import AgentMetrics
from kubeguard.errors import KubeguardError
from kubeguard.model import Event


class SensorStartError(KubeguardError):
    """An unknown sensor name (code 2) or a sensor that cannot start here (code 1)."""


GapFn = Callable[[str, int, int, str], None]


def sensor_factory(name: str) -> Callable[..., Any]:
    """A factory of sensors by their `--sensor` name (imported lazily: `proc` needs no bpftrace)."""
    if name == "ebpf":
        from kubeguard.sensors.ebpf import EbpfSensor

        return EbpfSensor
    if name == "proc":
        from kubeguard.sensors.proc_connector import ProcConnectorSensor

        return ProcConnectorSensor
    if name == "fanotify":  # file writes; runs next to the process sensor, never alone
        from kubeguard.sensors.fanotify import FanotifySensor

        return FanotifySensor
    raise SensorStartError(f"--sensor {name}: expected ebpf or proc")


class SensorRunner:
    """One supervised sensor feeding `emit`; health and gaps go to metrics and `on_gap`."""

    def __init__(self, factory: Callable[[], Any], emit: Callable[[Event], None], on_gap: GapFn,
                 metrics: AgentMetrics | None = None) -> None:
        from kubeguard.sensors.supervisor import Supervisor

        own = os.getpid()

        def emit_others(event: Event) -> None:
            if event.get("proc.pid") != own:
                emit(event)

        def gap(sensor: str, start_ns: int, end_ns: int, reason: str) -> None:
            self._up(1)  # a gap is reported when a fresh sensor delivers again (or at stop)
            on_gap(sensor, start_ns, end_ns, reason)

        self.metrics = metrics
        self.emit = emit_others
        self.supervisor = Supervisor(factory, gap)

    @property
    def name(self) -> str:
        return self.supervisor.name

    @property
    def blind_spots(self) -> list[str]:
        return self.supervisor.blind_spots

    @property
    def running(self) -> bool:
        """True while a sensor is attached (False between a death and its restart)."""
        return self.supervisor.sensor is not None

    def start(self) -> None:
        from kubeguard.sensors.base import SensorError

        try:
            self.supervisor.start(self.emit)
        except SensorError as exc:
            raise SensorStartError(f"sensor {self.supervisor.name or '?'} cannot start: {exc}", code=1) from exc
        self._up(1)

    def stop(self, timeout: float = 10.0) -> None:
        self.supervisor.stop(timeout)
        self._up(0)

    def stats(self) -> dict[str, dict[str, int]]:
        return {self.supervisor.name: self.supervisor.stats()} if self.supervisor.name else {}

    def refresh_health(self) -> None:
        """Export whether the sensor is attached right now."""
        self._up(1 if self.running else 0)

    def _up(self, value: int) -> None:
        if self.metrics is not None and self.supervisor.name:
            self.metrics.sensor_up.labels(self.supervisor.name).set(value)
