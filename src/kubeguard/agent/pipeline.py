"""The agent's pipeline: sensor -> enrich -> rules -> alerts -> store + outputs, with bounded queues.

Three threads meet here:
- the sensor threads (one per sensor) call `submit()` per event; it never blocks: when the event
  queue is full the event is dropped and counted by type (Falco's ``n_drops``); the counters they
  share are updated under `_counts_lock`;
- the worker thread enriches, writes the event log (``--events-out``), runs the rules and hands
  alerts to the alert queue; every `drop_report_interval` seconds it turns new drops (queue and
  kernel side) into a "Falco internal: syscall event drop" alert;
- the alert thread writes alerts to the store first (durable), then to every output.

`stop()` drains both queues and flushes everything: after it returns, every accepted event is
in the event log and every alert is in the store and the outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from kubeguard.agent.enrich import Enricher
from kubeguard.agent.metrics import AgentMetrics
from kubeguard.agent.outputs import Output
from kubeguard.agent.portscan import PortScanDetector
from kubeguard.errors import KubeguardError
from kubeguard.model import Alert, Event, format_time_ns, identity_fields
from kubeguard.store.alerts import AlertStore, StoreError

log = logging.getLogger(__name__)


class PipelineError(KubeguardError):
    """The pipeline cannot start: its event log or alert store cannot be opened."""


DROP_RULE = "Falco internal: syscall event drop"
GAP_RULE = "Kubeguard agent: sensor gap"
_STOP = object()


class RuleMatcher(Protocol):
    """What the pipeline needs from the rule engine."""

    def process(self, event: Event) -> list[Alert]: ...


class PolicyHook(Protocol):
    """What the pipeline needs from the workload policy engine (kubeguard.policy.policy_engine)."""

    def process(self, event: Event) -> list[Alert]: ...

    def tick(self) -> list[str]: ...

    def running_events(self) -> list[Event]: ...


# Events-log lines: orjson (UTF-8 as is, ~5x faster than the json module's encoder on a ~40-field event); the
# json module for what orjson refuses (an integer beyond 64 bits, a non-string key), as before.
_LINE_ENCODER = json.JSONEncoder(default=str, check_circular=False)  # json.dumps(default=str) builds one per call
_LINE_OPTIONS = orjson.OPT_APPEND_NEWLINE
# After the queue runs empty the worker waits this long before blocking on it again: at a steady ~1k events/s
# it then wakes once per few events instead of once per event (each wake-up is a futex round trip and a GIL
# hand-over, more than the event's own processing); alerts come at most this much later.
BATCH_WAIT_SECONDS = 0.002
# The internal keys live sensors put on most events (left out of the log, as every ``_`` key is)
SENSOR_INTERNAL_KEYS = ("_cgroup_id", "_cgroup_path", "_pidns", "_env_truncated", "_argv_truncated")


def event_line(event: Mapping[str, Any]) -> bytes:
    """One events-log line (JSON and a newline) for `event`."""
    try:
        return orjson.dumps(event, default=str, option=_LINE_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return (_LINE_ENCODER.encode(event) + "\n").encode()


class EventLog:
    """``--events-out``: enriched events as JSON lines (the replay format), internal keys stripped."""

    def __init__(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise PipelineError(f"{path}: cannot open events output: {exc.strerror}") from exc
        self.path = path
        self.stream: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 16)
        self.written = 0

    def write(self, event: Event) -> None:
        shown: dict[str, Any] = event
        known = [key for key in SENSOR_INTERNAL_KEYS if key in event]  # 5 lookups, not a scan of ~40 keys
        if known:
            shown = dict(event)  # faster than internal_stripped's filtered copy for a few keys of ~40
            for key in known:
                del shown[key]
        if shown and min(shown) < "`":  # a key from "_" down ("_x", or "A"): another internal key maybe, rare
            shown = {key: value for key, value in shown.items() if key[:1] != "_"}
        self.stream.write(event_line(shown))
        self.written += 1

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


class Pipeline:
    """Runs enrichment, rules and outputs on events submitted by a sensor thread."""

    def __init__(
        self,
        enricher: Enricher,
        rules: RuleMatcher,
        outputs: Sequence[Output] = (),
        store_path: Path | None = None,
        events_out: Path | None = None,
        metrics: AgentMetrics | None = None,
        queue_size: int = 65536,
        alert_queue_size: int = 16384,
        drop_report_interval: float = 10.0,
        sensor_stats: Callable[[], dict[str, dict[str, int]]] | None = None,
        hostname: str | None = None,
    ) -> None:
        self.enricher = enricher
        self.rules = rules
        self.outputs = list(outputs)
        self.store_path = store_path
        self.metrics = metrics or AgentMetrics()
        self.events_log = EventLog(events_out) if events_out else None
        self.portscan = PortScanDetector()
        self.events: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.batch_wait = BATCH_WAIT_SECONDS
        self.alerts: queue.Queue[Any] = queue.Queue(maxsize=alert_queue_size)
        self.drop_report_interval = drop_report_interval
        self.sensor_stats = sensor_stats
        self.hostname = hostname or socket.gethostname()
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.processed = 0
        self.rule_errors = 0
        self.alerts_raised = 0
        self.stored = 0
        self._reported_drops = 0
        self._reported_lost = 0
        self._reported_processed = 0
        self._last_report = time.monotonic()
        self._last_flush = time.monotonic()
        self._event_counters: dict[str, Any] = {}
        self._exported: dict[str, int] = {}  # event counts already added to the events metric
        self._drop_counters: dict[str, Any] = {}
        self._counts_lock = threading.Lock()  # received, dropped, alerts_raised: written by several threads
        self._worker = threading.Thread(target=self._work, name="pipeline", daemon=True)
        self._sink = threading.Thread(target=self._sink_loop, name="alerts", daemon=True)
        self._store_ready = threading.Event()
        self._store_error: str | None = None
        self._stopped = False
        self.policy: PolicyHook | None = None  # learned workload policies, set before start()
        self.on_message: Callable[[str], None] = log.info  # policy status lines (the agent prints them)
        self.on_event: Callable[[Event], None] | None = None  # every enriched event (the console flow aggregator)

    # -- sensor side -------------------------------------------------------------------------
    def submit(self, event: Event) -> None:
        """Queue one event; never blocks. A full queue drops the event and counts it by type."""
        etype = str(event.get("evt.type", "unknown"))
        with self._counts_lock:
            self.received[etype] += 1  # exported to the events metric by the worker, once a second
        try:
            self.events.put_nowait(event)
        except queue.Full:
            with self._counts_lock:
                self.dropped[etype] += 1
                drop = self._drop_counters.get(etype)
                if drop is None:
                    drop = self._drop_counters[etype] = self.metrics.drops.labels(etype)
            drop.inc()

    def on_gap(self, sensor: str, start_ns: int, end_ns: int, reason: str) -> None:
        """A sensor was blind from `start_ns` to `end_ns` (Supervisor callback): raise an alert."""
        self.metrics.sensor_gaps.labels(sensor).inc()
        seconds = max(0, end_ns - start_ns) / 1e9
        alert = Alert(
            rule=GAP_RULE, priority="Critical", source="internal", hostname=self.hostname,
            output=(f"Sensor {sensor} was not delivering events for {seconds:.3f}s "
                    f"(from {format_time_ns(start_ns)} to {format_time_ns(end_ns)}): {reason}"),
            output_fields={"sensor": sensor, "gap.start": format_time_ns(start_ns),
                           "gap.end": format_time_ns(end_ns), "gap.seconds": round(seconds, 3), "reason": reason},
            tags=["kubeguard_internal", "T1562.001"],
        )
        self._raise([alert])

    def raise_alert(self, alert: Alert) -> None:
        """An alert from another lane in this process (the inline firewall): to the outputs; thread-safe."""
        if not alert.hostname:
            alert.hostname = self.hostname
        self._raise([alert])

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker and alert threads; raises PipelineError when the store cannot be opened."""
        self._sink.start()
        self._store_ready.wait()
        if self._store_error:
            raise PipelineError(self._store_error)
        self._worker.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Drain the queues, report final drops, flush and close every output."""
        if self._stopped:
            return
        self._stopped = True
        self.events.put(_STOP)
        self._worker.join(timeout)
        self.alerts.put(_STOP)
        self._sink.join(timeout)
        if self.events_log:
            self.events_log.close()

    @property
    def total_dropped(self) -> int:
        with self._counts_lock:
            return sum(self.dropped.values())

    # -- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                item = self.events.get(timeout=0.25)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None:
                self._process(item)
                if self.batch_wait and self.events.empty():
                    time.sleep(self.batch_wait)  # let the sensor's burst gather: one wake-up for many events
            now = time.monotonic()
            if now - self._last_flush >= 1.0:
                self._last_flush = now
                self._export_counts()
                if self.events_log:
                    self.events_log.flush()
                self.enricher.procs.expire()
                if self.policy is not None:
                    self._judge_running(self.policy)
                    for line in self.policy.tick():
                        self.on_message(line)
            if now - self._last_report >= self.drop_report_interval:
                self._report_drops()
        self._report_drops()
        self._export_counts()
        if self.events_log:
            self.events_log.flush()

    def _export_counts(self) -> None:
        """Bring the events metric and the queue-depth gauge up to date (not per event: a
        Prometheus counter takes a lock on every `inc`)."""
        with self._counts_lock:
            received = list(self.received.items())
        for etype, count in received:
            delta = count - self._exported.get(etype, 0)
            if delta:
                counter = self._event_counters.get(etype)
                if counter is None:
                    counter = self._event_counters[etype] = self.metrics.events.labels(etype)
                counter.inc(delta)
                self._exported[etype] = count
        self.metrics.queue_depth.set(self.events.qsize())

    def _process(self, event: Event) -> None:
        self.enricher.enrich(event)
        if self.events_log:
            self.events_log.write(event)
        if self.on_event is not None:
            self.on_event(event)
        try:
            alerts = self.rules.process(event)
        except Exception as exc:  # a rule must never stop the agent; counted and reported once
            self.metrics.rule_errors.inc()
            self.rule_errors += 1
            if self.rule_errors == 1:
                log.warning(f"rule engine failed on a {event.get('evt.type')} event: {exc}")
            alerts = []
        alerts = alerts + self.portscan.process(event)
        if self.policy is not None:
            alerts = alerts + self.policy.process(event)
        self.processed += 1
        if alerts:
            self._raise_for(event, alerts)

    def _judge_running(self, policy: PolicyHook) -> None:
        """The policy engine's events for the processes found running in newly listed pods: given their pod's
        identity, then judged by the engine alone (no rule sees them: no exec happened now)."""
        for event in policy.running_events():
            self.enricher.identify(event)
            alerts = policy.process(event)
            if alerts:
                self._raise_for(event, alerts)

    def _raise_for(self, event: Event, alerts: list[Alert]) -> None:
        identity = identity_fields(event)
        for alert in alerts:
            if not alert.hostname:
                alert.hostname = self.hostname
            for key, value in identity.items():  # like Falco's -pk: who it was, on every alert
                alert.output_fields.setdefault(key, value)
            if alert.workload is None:
                alert.workload = event.workload
        self._raise(alerts)

    def _raise(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            with self._counts_lock:  # the worker and the sensors' gap callbacks both raise
                self.alerts_raised += 1
            self.metrics.alerts.labels(alert.rule, alert.priority).inc()
            try:
                self.alerts.put_nowait(alert)
            except queue.Full:
                self.metrics.alert_drops.inc()

    def _report_drops(self) -> None:
        """Raise one alert for the drops (queue + kernel side) since the last report, if any."""
        now = time.monotonic()
        interval = now - self._last_report
        self._last_report = now
        lost = 0
        if self.sensor_stats is not None:
            for sensor, stats in self.sensor_stats().items():
                sensor_lost = int(stats.get("lost", 0))
                self.metrics.kernel_lost.labels(sensor).set(sensor_lost)
                lost += sensor_lost
        drops = self.total_dropped
        new_drops, new_lost = drops - self._reported_drops, lost - self._reported_lost
        new_events = self.processed - self._reported_processed
        self._reported_drops, self._reported_lost, self._reported_processed = drops, lost, self.processed
        if new_drops <= 0 and new_lost <= 0:
            return
        with self._counts_lock:
            by_type = dict(sorted(self.dropped.items()))
        total = new_drops + new_lost
        alert = Alert(
            rule=DROP_RULE, priority="Critical", source="internal", hostname=self.hostname,
            output=(f"Falco internal: syscall event drop. {total} system calls dropped in last "
                    f"{interval:.1f}s ({new_drops} by the agent queue, {new_lost} by the kernel buffer)."),
            output_fields={"n_drops": total, "n_drops_queue": new_drops, "n_drops_buffer": new_lost,
                           "n_evts": new_events + new_drops, "n_drops_by_type_total": by_type,
                           "interval_s": round(interval, 3)},
            tags=["kubeguard_internal"],
        )
        self._raise([alert])

    # -- alert sink --------------------------------------------------------------------------
    def _sink_loop(self) -> None:
        store: AlertStore | None = None
        if self.store_path is not None:
            try:
                store = AlertStore(self.store_path)
            except StoreError as exc:
                self._store_error = str(exc)
        self._store_ready.set()
        if self._store_error:
            return
        try:
            done = False
            while not done:
                batch: list[Alert] = []
                item = self.alerts.get()
                while True:
                    if item is _STOP:
                        done = True
                        break
                    batch.append(item)
                    if len(batch) >= 256:
                        break
                    try:
                        item = self.alerts.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._deliver(store, batch)
        finally:
            for output in self.outputs:
                with contextlib.suppress(Exception):
                    output.close()
            if store is not None:
                store.close()

    def _deliver(self, store: AlertStore | None, batch: list[Alert]) -> None:
        if store is not None:
            try:
                self.stored += store.add(batch)
            except StoreError as exc:
                log.warning(str(exc))
        for output in self.outputs:
            output.send(batch)
            output.flush()
            self.metrics.output_failures.labels(output.name).set(output.failures)
