"""Supervising the real bpftrace sensor: SIGKILL its bpftrace, it comes back and the gap is reported."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time

from conftest import need_root, require
from kubeguard.model import Event
from kubeguard.sensors.ebpf import EbpfSensor, tracing_dir
from kubeguard.sensors.supervisor import Supervisor


def test_killed_bpftrace_is_restarted_and_the_gap_reported() -> None:
    need_root("bpftrace")
    require(shutil.which("bpftrace") is not None, "bpftrace")
    require(tracing_dir() is not None, "tracefs")
    gaps: list[tuple[str, int, int, str]] = []
    got = threading.Event()
    events: list[Event] = []
    tag = "kgs" + secrets.token_hex(4)

    def emit(event: Event) -> None:
        events.append(event)
        if event.get("proc.args") == tag:
            got.set()

    sup = Supervisor(EbpfSensor, lambda *gap: gaps.append(gap), backoff_initial=0.1)
    sup.start(emit)
    try:
        first = sup.sensor
        assert isinstance(first, EbpfSensor) and first.proc is not None
        killed_at = time.time_ns()
        os.kill(first.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not gaps and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(gaps) == 1, sup.failures
        name, start_ns, end_ns, reason = gaps[0]
        assert name == "ebpf"
        assert "bpftrace exited" in reason and "-9" in reason
        assert killed_at <= start_ns < end_ns
        assert sup.sensor is not first
        subprocess.run(["/bin/echo", tag], check=True, capture_output=True)
        assert got.wait(15), "no event from the restarted sensor"
        assert sup.stats()["restarts"] == 1
    finally:
        sup.stop()
