"""Keep a sensor running: restart it with backoff when it dies, and report every blind interval.

    sup = Supervisor(EbpfSensor, on_gap)   # on_gap(sensor_name, start_ns, end_ns, reason)
    sup.start(emit)                        # first start is synchronous: raises SensorError
    ...
    sup.stop()

A gap starts when the sensor is found dead (its `run` raised or returned while not stopped) and
ends when a fresh sensor returned from `start` (events flow again), or when the supervisor is
stopped while still blind. Backoff doubles from `backoff_initial` to `backoff_max` and resets once
a sensor stayed up `healthy_after` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from kubeguard.sensors.base import EmitFn, Sensor, SensorError

GapFn = Callable[[str, int, int, str], None]


class Supervisor:
    """Runs sensors made by `sensor_factory` in a thread, one at a time, restarting on failure."""

    def __init__(self, sensor_factory: Callable[[], Sensor], on_gap: GapFn, *, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0, healthy_after: float = 60.0) -> None:
        self.sensor_factory = sensor_factory
        self.on_gap = on_gap
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self.sensor: Sensor | None = None
        self.name = ""
        self.restarts = 0
        self.failures: list[str] = []  # reasons, oldest first (kept short)
        self._past_stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def blind_spots(self) -> list[str]:
        return list(self.sensor.blind_spots) if self.sensor is not None else []

    def start(self, emit: EmitFn) -> None:
        """Start the first sensor (SensorError if it cannot), then supervise it in a thread."""
        sensor = self.sensor_factory()
        self.name = sensor.name
        sensor.start()
        self.sensor = sensor
        self._thread = threading.Thread(target=self._loop, args=(emit,), name=f"supervise-{sensor.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the running sensor and the supervision thread (reports a gap still open)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        """Counters summed over every sensor run so far, plus ``restarts``."""
        with self._lock:
            total = Counter(self._past_stats)
            if self.sensor is not None:
                total.update(self._safe_stats(self.sensor))
        total["restarts"] = self.restarts
        return dict(total)

    @staticmethod
    def _safe_stats(sensor: Sensor) -> dict[str, int]:
        try:
            return dict(sensor.stats())
        except Exception:  # a dead sensor's stats: counted as nothing rather than crash the caller
            return {}

    # ---- the supervision loop ----------------------------------------------------------------
    def _loop(self, emit: EmitFn) -> None:
        backoff = self.backoff_initial
        while not self._stop.is_set():
            sensor = self.sensor
            assert sensor is not None
            began = time.monotonic()
            reason = self._run_once(sensor, emit)
            self._retire(sensor)
            if reason is None:  # stopped on request
                return
            gap_start = time.time_ns()
            self._note(reason)
            if time.monotonic() - began >= self.healthy_after:
                backoff = self.backoff_initial
            while not self._stop.wait(backoff):
                backoff = min(backoff * 2, self.backoff_max)
                try:
                    fresh = self.sensor_factory()
                    fresh.start()
                except SensorError as exc:
                    self._note(f"restart failed: {exc}")
                    continue
                except Exception as exc:  # a bug in a sensor's start must not end supervision
                    self._note(f"restart failed: {type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    self.sensor = fresh
                self.restarts += 1
                self.on_gap(self.name, gap_start, time.time_ns(), reason)
                break
            else:  # stopped while blind
                self.on_gap(self.name, gap_start, time.time_ns(), f"{reason} (not restarted before stop)")
                return

    def _run_once(self, sensor: Sensor, emit: EmitFn) -> str | None:
        """Run until stop (None) or death (the reason)."""
        try:
            sensor.run(emit, self._stop)
        except SensorError as exc:
            return str(exc) or type(exc).__name__
        except Exception as exc:  # a sensor bug: supervised like a crash
            return f"{type(exc).__name__}: {exc}"
        if self._stop.is_set():
            return None
        return "event loop ended"

    def _retire(self, sensor: Sensor) -> None:
        with self._lock:
            self._past_stats.update(self._safe_stats(sensor))
            if self.sensor is sensor:
                self.sensor = None
        try:
            sensor.close()
        except Exception as exc:  # closing a dead sensor must not stop its restart
            self._note(f"close failed: {type(exc).__name__}: {exc}")

    def _note(self, reason: str) -> None:
        self.failures.append(reason)
        del self.failures[:-20]
