"""Kernel-time order for the eBPF sensor's events across CPUs.

bpftrace prints one CPU's ring after another, so with the perfwake shim's 20 ms drains a child's exec read
from one CPU's ring can come before its parent's exec still in the other's, and the agent would look the
parent up after it exited (Falco's parent-name rules then miss). Falco's libscap avoids this by always taking
the oldest record across its rings. Here the shim writes a marker after each drain's records (perfwake.c):
every record stamped before the drain's time is then out, so events are held and released in time order up to
the latest marker. Without markers (plain bpftrace, a wake-up per record) events are held for a short window.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import itemgetter

from kubeguard.model import Event

MARKER_PREFIX = b'{"type": "kg_drain", "data": '
SLACK_NS = 2_000_000  # a record stamped just before the drain looked at its ring may land just after
WINDOW_NS = 50_000_000  # without markers: how long an event waits for earlier ones from another CPU
STUCK_NS = 2_000_000_000  # with markers: at idle, events this old are released even if no marker covers them
_TIME = itemgetter("evt.time")


EXEC_MARKER_PREFIX = b'{"type": "kg_drain_exec", "data": '  # the compiled exec probe's drains (execprobe.c)


def _marker(line: bytes, prefix: bytes) -> int | None:
    if not line.startswith(prefix):
        return None
    try:
        return int(line[len(prefix):].rstrip().rstrip(b"}"))
    except ValueError:
        return None


def marker_time(line: bytes) -> int | None:
    """The drain time (CLOCK_MONOTONIC ns) of a shim marker line, None for any other line."""
    return _marker(line, MARKER_PREFIX)


def exec_marker_time(line: bytes) -> int | None:
    """The drain time of an exec probe marker line, None for any other line."""
    return _marker(line, EXEC_MARKER_PREFIX)


class TimeOrder:
    """Holds decoded events and releases them sorted by evt.time (wall clock ns, `clock_offset_ns` ahead of
    CLOCK_MONOTONIC); stable for equal times."""

    def __init__(self, clock_offset_ns: int = 0, window_ns: int = WINDOW_NS) -> None:
        self.clock_offset_ns = clock_offset_ns
        self.window_ns = window_ns
        self.marked = False  # markers seen: release by them
        self.released_ns = 0  # every event stamped before this (wall clock) has been released
        self.late = 0  # events that came after a later one was released (their order could not be restored)
        self._held: list[Event] = []

    def __len__(self) -> int:
        return len(self._held)

    def add(self, events: list[Event]) -> None:
        self._held.extend(events)

    def drained(self, drain_mono_ns: int) -> list[Event]:
        """A shim marker: everything stamped before its time (less SLACK_NS) is out, in order."""
        self.marked = True
        return self._release(drain_mono_ns + self.clock_offset_ns - SLACK_NS)

    def due(self, now_mono_ns: int) -> list[Event]:
        """What may go now without a marker: older than the window (no markers), or stuck (markers, at idle)."""
        hold = STUCK_NS if self.marked else self.window_ns
        return self._release(now_mono_ns + self.clock_offset_ns - hold)

    def wait_s(self, now_mono_ns: int, idle_s: float) -> float:
        """How long the reader may wait for input before `due` has something (at most `idle_s`)."""
        if not self._held or self.marked:
            return idle_s
        oldest = int(min(self._held, key=_TIME)["evt.time"]) - self.clock_offset_ns
        return max(0.001, min(idle_s, (oldest + self.window_ns - now_mono_ns) / 1e9))

    def flush(self) -> list[Event]:
        """Everything held, in order (at shutdown)."""
        return self._release(None)

    def _release(self, before_ns: int | None) -> list[Event]:
        held = self._held
        if not held:
            return []
        held.sort(key=_TIME)  # runs from each CPU's ring, already in order: a merge
        cut = len(held) if before_ns is None else bisect_left(held, before_ns, key=_TIME)
        if cut == 0:
            return []
        self.late += bisect_left(held, self.released_ns, 0, cut, key=_TIME)
        out = held[:cut]
        del held[:cut]
        self.released_ns = max(self.released_ns, _TIME(out[-1]) if before_ns is None else before_ns)
        return out
