"""The primary sensor: kubeguard.bt run by bpftrace (tracepoints, `-f json`), decoded into Events.

The program is built at start from the packaged kubeguard.bt: blocks (`// @section`) whose
tracepoints this kernel lacks are dropped (init_module/finit_module without CONFIG_MODULES), and
the open() path filter is generated from the watched prefixes so it runs in the kernel.
`start` returns once the program printed its own READY line (bpftrace's `attached_probes`
line comes before the probes are attached).

The exec, exec-facts, environment, process-exit, connect and accept sections run as the compiled exec probe
instead (execprobe.py: ~1.5 us per exec instead of ~9 us; one program per connect instead of two) when it can be
built here; its loader writes into the same
pipe as bpftrace, a successful exec as one E line (the decoder reads it without pairing lines, ~3x less of its
time than the split lines), everything else as the sections' own lines. KUBEGUARD_EXEC_PROBE=0 keeps them in
bpftrace.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections import deque
from importlib import resources
from pathlib import Path
from typing import IO

from kubeguard.model import Event
from kubeguard.sensors.base import SENSITIVE_PREFIXES, EmitFn, SensorError, clock_offset_ns
from kubeguard.sensors.ebpf_decode import BpftraceDecoder
from kubeguard.sensors.execprobe import SECTIONS as PROBE_SECTIONS
from kubeguard.sensors.execprobe import ExecProbeUnavailable
from kubeguard.sensors.execprobe import build as build_exec_probe
from kubeguard.sensors.perfwake import shim_env
from kubeguard.sensors.timeorder import TimeOrder, exec_marker_time, marker_time

log = logging.getLogger(__name__)

TRACING_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
TRACEPOINT = re.compile(r"tracepoint:([a-z0-9_]+):([a-z0-9_]+)")
# Opens below these are not reported even though a watched prefix matches: every dynamic exec reads it.
IGNORED_OPENS = ("/etc/ld.so.cache",)
# Sections a consumer may leave out when nothing reads their event types (the agent, when no loaded rule does):
# a UDP server answering many clients makes one event per reply there.
OPTIONAL_SECTIONS: dict[str, tuple[str, ...]] = {"sendto": ("sendto", "sendmsg", "sendmmsg"),
                                                  "recvfrom": ("recvfrom", "recvmsg", "recvmmsg")}
# ... and sections a consumer may leave out when nothing reads their fields: the environment copied at every exec
# (a line per 256 bytes of it).
OPTIONAL_FIELD_SECTIONS: dict[str, tuple[str, ...]] = {"execenv": ("proc.env",)}
DEFAULT_RB_PAGES = 4096  # per-CPU perf ring buffer pages (16 MiB per CPU): no loss at max exec rate
READY_TIMEOUT_S = 60.0
IDLE_FLUSH_S = 0.2
COALESCE_S = 0.05  # at low event rates, gather this long before reading (latency <= 50 ms more)
COALESCE_BELOW = 16 << 10  # ... when the previous read was smaller than this
PIPE_BYTES = 1 << 20  # bpftrace's stdout pipe: room for COALESCE_S of output at storm rates
PROBE_RING_BYTES = 64 << 20  # the exec probe's ring (all CPUs): ~24k execs, over a second at storm rates
# with both writers marking their drains: a writer with no marker for this long is idle (bpftrace's shim marks
# only drains that returned records), so what it stamped before then is out
IDLE_MARK_NS = 100_000_000
CHECK_EXIT_NS = 100_000_000  # while lines come, whether bpftrace or the probe exited is checked this often


def tracing_dir() -> Path | None:
    """Where tracefs is mounted (bpftrace 0.17 reads the debugfs copy, either works for listing)."""
    for path in TRACING_DIRS:
        if (path / "events" / "syscalls").is_dir():
            return path
    return None


def available_tracepoints(root: Path | None = None) -> set[str]:
    """``category:name`` of every tracepoint the kernel offers."""
    base = root if root is not None else tracing_dir()
    if base is None:
        return set()
    events = base / "events"
    found: set[str] = set()
    for category in events.iterdir():
        if category.is_dir():
            found.update(f"{category.name}:{tp.name}" for tp in category.iterdir() if tp.is_dir())
    return found


def _cmp(prefix: str) -> str:
    return f'strncmp($f, "{prefix}", {len(prefix)}) == 0'


def prefix_filter(prefixes: tuple[str, ...], ignored: tuple[str, ...] = IGNORED_OPENS) -> str:
    """The bpftrace condition on `$f` matching the watched prefixes, minus the ignored paths.

    Prefixes are grouped by their first directory and tested group first: a flat chain of 20
    strncmp() makes the verifier give up (over a million instructions explored), nesting keeps
    it small.
    """
    groups: dict[str, list[str]] = {}
    for prefix in prefixes:
        head = "/" + prefix.lstrip("/").split("/", 1)[0]
        head = head + "/" if len(prefix) > len(head) else head
        groups.setdefault(head, []).append(prefix)
    terms = []
    for head, members in groups.items():
        if members == [head]:
            terms.append(_cmp(head))
        else:
            inner = " || ".join(_cmp(m) for m in members)
            terms.append(f"({_cmp(head)} && ({inner}))")
    skip = " && ".join(f'strncmp($f, "{p}", {len(p) + 1}) != 0' for p in ignored)
    return f"(({' || '.join(terms)}){' && ' + skip if skip else ''})"


def split_sections(source: str) -> list[tuple[str, str]]:
    """(name, text) blocks of the program; the preamble is named ""."""
    sections: list[tuple[str, str]] = []
    name, lines = "", list[str]()
    for line in source.splitlines(keepends=True):
        if line.startswith("// @section "):
            sections.append((name, "".join(lines)))
            name, lines = line.split(None, 2)[2].strip(), []
        lines.append(line)
    sections.append((name, "".join(lines)))
    return sections


def build_program(tracepoints: set[str], prefixes: tuple[str, ...] = SENSITIVE_PREFIXES,
                  source: str | None = None, skip: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The program text for this kernel and the sections dropped for missing tracepoints (`skip`: sections
    left out on purpose, not listed)."""
    text = source if source is not None else resources.files("kubeguard.sensors").joinpath(
        "kubeguard.bt").read_text()
    kept, dropped = [], []
    for name, block in split_sections(text):
        needed = {f"{cat}:{tp}" for cat, tp in TRACEPOINT.findall(block)}
        if name in skip:
            continue
        if needed - tracepoints:
            dropped.append(name)
        else:
            kept.append(block)
    return "".join(kept).replace("@@PREFIX_FILTER@@", prefix_filter(prefixes)), dropped


class EbpfSensor:
    """bpftrace tracepoint sensor (see kubeguard.bt for what it traces)."""

    name = "ebpf"

    def __init__(self, bpftrace: str = "bpftrace", prefixes: tuple[str, ...] = SENSITIVE_PREFIXES,
                 rb_pages: int = DEFAULT_RB_PAGES, ready_timeout: float = READY_TIMEOUT_S,
                 record: Path | None = None, source: str | None = None, batch_wakeups: bool | None = None,
                 skip_sections: tuple[str, ...] = (), exec_probe: bool | None = None) -> None:
        self.bpftrace = bpftrace
        # the compiled exec probe for the exec sections (execprobe.py) unless KUBEGUARD_EXEC_PROBE=0
        self.exec_probe = exec_probe if exec_probe is not None else os.environ.get("KUBEGUARD_EXEC_PROBE", "1") != "0"
        self.exec_probe_state = "off"  # "compiled" when it runs, else why not
        self.probe: subprocess.Popen[bytes] | None = None
        self.probe_stderr: list[str] = []
        self._fd = -1  # the pipe both bpftrace and the exec probe write to
        self._marks: dict[str, int] = {}  # each writer's last drain marker (CLOCK_MONOTONIC ns)
        self.skip_sections = skip_sections  # of OPTIONAL_(FIELD_)SECTIONS: what no consumer reads
        # the perfwake shim (no perf wake-up per printf) by default; KUBEGUARD_PERF_SHIM=0 opts out. Its 20 ms
        # drains read a thread's exec lines from two CPUs' rings far apart: the decoder pairs them by timestamp
        self.batch_wakeups = batch_wakeups if batch_wakeups is not None else os.environ.get(
            "KUBEGUARD_PERF_SHIM", "1") != "0"
        self.wakeups = "per event"
        self.source = source  # program text instead of the packaged kubeguard.bt (benchmarks compare versions)
        self.prefixes = prefixes
        self.rb_pages = rb_pages
        self.ready_timeout = ready_timeout
        self.record = record  # every raw bpftrace line is appended there (recordings for replay tests)
        self._record_file: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.decoder = BpftraceDecoder(clock_offset_ns())
        self.order = TimeOrder(self.decoder.clock_offset_ns)
        self.dropped_sections: list[str] = []
        self.stderr_lines: list[str] = []
        self.startup_s = 0.0
        self._buffer = b""
        self._pending_lines: list[bytes] = []
        self._ready_lines: deque[bytes] = deque()
        self._last_read = 0
        self.blind_spots = [
            "relative paths are reported as written with their dirfd (the agent joins them to the directory of a "
            "live process, or the exec-time cwd of a gone non-shell); reads are traced below watched prefixes, of "
            "disk devices, /proc/*/environ and with '..' only",
            "paths longer than 64 bytes are cut",
            "cwd deeper than 9 components is reported with a leading '...'",
            "reads of already-open files (no per-read events); writes are seen by fanotify",
            "datagrams without connect: sendto/sendmsg/sendmmsg/recvfrom/recvmsg/recvmmsg only when the socket's "
            "peer changes (forgotten every minute: the current peer is then reported once more); sendmmsg/recvmmsg: "
            "the first 4 messages of a call",
        ]

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        exe = shutil.which(self.bpftrace)
        if exe is None:
            raise SensorError(f"{self.bpftrace} not found on PATH (install Debian's bpftrace package)")
        if os.geteuid() != 0:
            raise SensorError("the ebpf sensor needs root (CAP_BPF, CAP_PERFMON and tracefs access)")
        if tracing_dir() is None:
            raise SensorError("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
        probe_cmd = self._probe_command()
        skip = (*self.skip_sections, *PROBE_SECTIONS) if probe_cmd else self.skip_sections
        program, self.dropped_sections = build_program(available_tracepoints(), self.prefixes, self.source, skip)
        if self.skip_sections:
            self.blind_spots.append("not traced, no loaded rule reads them: " + ", ".join(
                call for name in self.skip_sections
                for call in OPTIONAL_SECTIONS.get(name) or OPTIONAL_FIELD_SECTIONS.get(name) or (name,)))
        if self.dropped_sections:
            self.blind_spots.append("no tracepoints on this kernel for: " + ", ".join(self.dropped_sections))
        env = dict(os.environ, BPFTRACE_PERF_RB_PAGES=str(self.rb_pages), BPFTRACE_STRLEN="64")
        if self.batch_wakeups:
            shim = shim_env(self.rb_pages, markers=True)
            env.update(shim)
            self.wakeups = "batched" if shim else "per event"
            if not shim:
                self.blind_spots.append("perf wake-up shim unavailable: every event wakes bpftrace (adds ~10 us "
                                        "per traced exec/connect on VMs)")
        began = time.monotonic()
        if self.record is not None:
            self._record_file = self.record.open("ab")
        self.decoder = BpftraceDecoder(clock_offset_ns())
        self.order = TimeOrder(self.decoder.clock_offset_ns)
        self._marks = {}
        self._fd, write_end = os.pipe()  # bpftrace and the exec probe write whole lines into one pipe
        _enlarge_pipe(self._fd)
        try:
            if probe_cmd:
                self.probe = subprocess.Popen(probe_cmd, stdout=write_end, stderr=subprocess.PIPE,
                                              stdin=subprocess.DEVNULL)
                threading.Thread(target=self._read_probe_stderr, name="execprobe-stderr", daemon=True).start()
            self.proc = subprocess.Popen([exe, "-f", "json", "-e", program], stdout=write_end,
                                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        finally:
            os.close(write_end)
        self.decoder.own_pid = self.proc.pid  # its own program loads are not events (Falco's are profiled: "falco")
        threading.Thread(target=self._read_stderr, name="bpftrace-stderr", daemon=True).start()
        deadline = began + self.ready_timeout
        probe_ready = self.probe is None
        while not (self.decoder.ready and probe_ready):
            # short waits: the probe shares the pipe with bpftrace, so its exit is no EOF here
            line = self._next_line(min(0.5, max(0.0, deadline - time.monotonic())))
            if line is None:
                if self.proc.poll() is not None or (self.probe is not None and self.probe.poll() is not None) \
                        or time.monotonic() >= deadline:
                    break
                continue
            if line.startswith(b'{"type": "kg_exec_ready"'):
                probe_ready = True
            elif b'"READY\\n"' in line:
                self.decoder.feed(line.decode("utf-8", "replace"))
            else:
                self._pending_lines.append(line)  # decoded by `run` (the exec probe's may come before READY)
        if not probe_ready and self.proc.poll() is None:
            # a probe this kernel refused (a prebuilt one, say): start again with its sections in bpftrace
            why = self._probe_failure()
            self.close()
            log.warning("ebpf sensor: the exec probe did not start (%s); its sections run in bpftrace", why)
            self.exec_probe = False
            self.blind_spots = [b for b in self.blind_spots if not b.startswith("exec arguments past")]
            self.blind_spots.append(f"compiled exec probe did not start ({why}): execs cost ~9 us of probe time")
            self.start()
            self.exec_probe_state = f"did not start: {why}"
            self.blind_spots = list(dict.fromkeys(self.blind_spots))  # the second start said some again
            return
        if not self.decoder.ready:
            why = self._failure_reason()
            self.close()
            raise SensorError(f"bpftrace did not start: {why}")
        self.startup_s = time.monotonic() - began

    def _probe_command(self) -> list[str] | None:
        """The exec probe's command line, or None (not wanted, or not buildable here: said in blind_spots)."""
        split_argv = "exec arguments longer than 64 bytes are cut; at most 15 argv entries; an empty one ends argv"
        if not self.exec_probe or self.source is not None:
            self.exec_probe_state = "off"
            self.blind_spots.append(split_argv)
            return None
        try:
            probe = build_exec_probe(want_env="execenv" not in self.skip_sections)
        except ExecProbeUnavailable as exc:
            self.exec_probe_state = str(exc)
            log.warning("ebpf sensor: exec sections in bpftrace (~9 us per exec instead of ~1.5): %s", exc)
            self.blind_spots.append(f"compiled exec probe unavailable ({exc}): execs cost ~9 us of probe time")
            self.blind_spots.append(split_argv)
            return None
        self.exec_probe_state = "compiled"
        self.blind_spots.append("exec arguments past the first 1 KiB of the argument area are cut")
        return probe.command(PROBE_RING_BYTES)

    def _read_probe_stderr(self) -> None:
        probe = self.probe
        if probe is None or probe.stderr is None:
            return
        for raw in probe.stderr:
            if len(self.probe_stderr) < 200:
                self.probe_stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _probe_failure(self) -> str:
        time.sleep(0.1)
        errors = [ln for ln in self.probe_stderr if ln.startswith("execprobe:")]
        if errors:
            return errors[0]
        if self.probe is not None and self.probe.poll() is not None:
            return f"exited with status {self.probe.returncode}"
        return f"no ready line within {self.ready_timeout:.0f} s"

    def _failure_reason(self) -> str:
        time.sleep(0.1)
        errors = [ln for ln in self.stderr_lines if "ERROR" in ln.upper() and "RLIMIT_MEMLOCK" not in ln]
        if errors:
            return errors[0].strip()
        if self.proc is not None and self.proc.poll() is not None:
            return f"exited with status {self.proc.returncode}"
        return f"no READY line within {self.ready_timeout:.0f} s"

    def _read_stderr(self) -> None:
        proc = self.proc
        if proc is None or proc.stderr is None:
            return
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if len(self.stderr_lines) < 200:
                self.stderr_lines.append(line)
            if line.startswith("Lost ") and line.endswith(" events"):
                self.decoder.feed(line)

    def _read_lines(self, timeout: float) -> list[bytes] | None:
        """The complete stdout lines of one read (maybe none yet); None after `timeout` s idle or at EOF.

        At low rates a read would return one line per wake-up; waiting COALESCE_S first lets a batch
        gather (the pipe is enlarged so bpftrace never blocks meanwhile), which cuts the per-event
        wake-ups of this thread and of the pipeline worker. At high rates reads are big anyway.
        """
        fd = self._fd
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        if self._last_read < COALESCE_BELOW:
            time.sleep(COALESCE_S)
        chunk = os.read(fd, 1 << 20)
        self._last_read = len(chunk)
        if not chunk:
            return None
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        if self._record_file is not None and lines:
            self._record_file.write(b"\n".join(lines) + b"\n")
        return lines

    def _next_line(self, timeout: float) -> bytes | None:
        """One stdout line, or None after `timeout` seconds without a full line (or at EOF)."""
        while not self._ready_lines:
            lines = self._read_lines(timeout)
            if lines is None:
                return None
            self._ready_lines.extend(lines)
        return self._ready_lines.popleft()

    def run(self, emit: EmitFn, stop: threading.Event) -> None:
        if self.proc is None:
            raise SensorError("ebpf sensor not started")
        own_pid = self.proc.pid
        decoder, order = self.decoder, self.order

        def deliver(events: list[Event]) -> None:
            for event in events:
                if event.get("proc.pid") != own_pid:
                    emit(event)

        lines: list[bytes] | None = [*self._pending_lines, *self._ready_lines]
        self._pending_lines = []
        self._ready_lines.clear()
        expired_at = checked_at = 0
        while True:
            now = time.monotonic_ns()
            if lines is None or (self.probe is not None and now - expired_at > IDLE_MARK_NS):
                # at idle; with the probe, whose drain markers keep the pipe busy, every IDLE_MARK_NS
                order.add(decoder.expire(now))
                expired_at = now
            if lines is not None:
                for line in lines:
                    drained = marker_time(line)
                    probe_drained = exec_marker_time(line) if drained is None else None
                    if drained is not None or probe_drained is not None:
                        deliver(self._marked("bpftrace" if drained is not None else "probe",
                                             drained if drained is not None else probe_drained or 0))
                    else:
                        order.add(decoder.feed(line.decode("utf-8", "replace")))
            if lines is None or now - checked_at > CHECK_EXIT_NS:  # (a waitpid per read was ~10 % of this thread)
                checked_at = now
                if (lines is None or self.probe is not None) and self.proc.poll() is not None:
                    # (with the probe writing to the pipe too, bpftrace's end is no end of file)
                    deliver(order.flush())
                    raise SensorError(f"bpftrace exited with status {self.proc.returncode}: {self._failure_reason()}")
                if self.probe is not None and self.probe.poll() is not None:
                    deliver(order.flush())
                    raise SensorError(
                        f"the exec probe exited with status {self.probe.returncode}: {self._probe_failure()}")
            deliver(order.due(time.monotonic_ns()))
            if stop.is_set():
                break
            lines = self._read_lines(order.wait_s(time.monotonic_ns(), IDLE_FLUSH_S))
        order.add(decoder.flush())
        deliver(order.flush())

    def _marked(self, writer: str, drain_ns: int) -> list[Event]:
        """A writer's drain marker. bpftrace's alone orders as before; with the exec probe writing too, what
        both have put out is what is stamped before the older of their last markers (a writer silent for
        IDLE_MARK_NS before the probe's last mark counts as marked up to then: the shim does not mark idle
        drains, the probe marks every drain)."""
        self._marks[writer] = drain_ns
        if self.probe is None:
            return self.order.drained(drain_ns) if writer == "bpftrace" else []
        if self.wakeups != "batched":
            return []  # plain bpftrace (no shim markers): the order's window applies to both writers
        probe = self._marks.get("probe", 0)  # the probe marks every drain: its marks are the clock here
        upto = min(max(self._marks.get("bpftrace", 0), probe - IDLE_MARK_NS), probe)
        return self.order.drained(upto) if upto > 0 else []

    def close(self) -> None:
        for attr in ("probe", "proc"):
            proc = getattr(self, attr)
            setattr(self, attr, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        if self._record_file is not None:
            self._record_file.close()
            self._record_file = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def stats(self) -> dict[str, int]:
        return {"events": self.decoder.events, "lost": self.decoder.lost, "parse_errors": self.decoder.parse_errors,
                "late": self.order.late}


def _enlarge_pipe(fd: int) -> None:
    """Grow a pipe to PIPE_BYTES (best effort: capped by /proc/sys/fs/pipe-max-size for non-root)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass
