"""A running program that writes bpftrace's -f json lines (bpftrace, the compiled exec probe), and what it wrote."""

from __future__ import annotations

import subprocess
import threading

from kubeguard.model import Event
from kubeguard.sensors.ebpf_decode import BpftraceDecoder
from kubeguard.sensors.timeorder import exec_marker_time

PROBE_READY = b'{"type": "kg_exec_ready"'
BPFTRACE_READY = b'"READY\\n"'


class ProbeLines:
    """`command` running, its lines collected (drain markers kept apart); `ready` set at the line holding
    `ready_text`."""

    def __init__(self, command: list[str], ready_text: bytes = PROBE_READY) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[bytes] = []
        self.drained_to = 0
        self.ready = threading.Event()
        self._ready_text = ready_text
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if self._ready_text in raw:
                self.ready.set()
            marker = exec_marker_time(raw)
            if marker is not None:
                self.drained_to = marker
            else:
                self.lines.append(raw)

    def decoded(self) -> list[Event]:
        """Every line so far through a fresh decoder (which must read them all)."""
        decoder = BpftraceDecoder()
        events = [e for line in list(self.lines) for e in decoder.feed(line.decode("utf-8", "replace"))]
        events += decoder.flush()
        assert decoder.parse_errors == 0
        return events

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
